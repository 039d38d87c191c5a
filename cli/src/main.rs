//! The `hub` binary: parse, configure, dispatch.

use anyhow::Context;
use clap::Parser;
use hub::commands::{Cli, Command, Invalid, UsageError, execute};
use hub::serve::{AppState, run};
use shared::{Config, Stores};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_cli(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.is::<Invalid>() => std::process::ExitCode::from(1),
        Err(e) if e.is::<UsageError>() => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_cli(cli: Cli) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    match cli.command {
        Command::Serve { addr } => {
            shared::telemetry::init(config.log_format);
            let stores = Stores::from_config(&config)
                .await
                .context("open the configured stores")?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listen on {addr}"))?;
            let local = listener.local_addr()?;
            tracing::info!(addr = %local, backend = stores.backend, "hub serve listening");
            eprintln!(
                "hub serve: listening on http://{local} ({} backend)",
                stores.backend
            );
            run(
                listener,
                AppState::with_connect(
                    stores,
                    config.webhook_settings(),
                    config.endpoints.clone(),
                    &config.public_url,
                )
                .with_intake_token(config.intake_token.clone()),
                async {
                    let _ = tokio::signal::ctrl_c().await;
                },
            )
            .await?;
            Ok(())
        }
        other => {
            // The operator's commands speak to a person on stderr; their
            // logs join in only when asked for.
            if std::env::var_os("RUST_LOG").is_some() {
                shared::telemetry::init(config.log_format);
            }
            execute(other, &config).await
        }
    }
}
