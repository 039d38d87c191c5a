//! The `hub` binary: parse, configure, dispatch.

use anyhow::Context;
use clap::Parser;
use hub::commands::{Cli, Command, execute};
use hub::serve::{AppState, run};
use shared::{Config, Stores};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
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
            run(listener, AppState { stores }, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
            Ok(())
        }
        other => execute(other, &config).await,
    }
}
