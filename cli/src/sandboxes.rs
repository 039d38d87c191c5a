//! `hub sandboxes`: every provider sandbox on loopback, seeded, for a
//! developer running a function under `cargo lambda watch` (or `hub serve`)
//! against them. Prints the `HUB_ENDPOINT_*` settings that point the hub at
//! them and the credentials they were seeded with, then serves until Ctrl-C.

use anyhow::{Context, Result};
use hub_sandboxes::marketman::{MarketManConfig, MarketManSandbox};
use hub_sandboxes::quickbooks::{QuickBooksConfig, QuickBooksSandbox};
use hub_sandboxes::square::{SquareConfig, SquareSandbox};
use hub_sandboxes::toast::{ToastConfig, ToastLimits, ToastSandbox};
use hub_sandboxes::xero::{XeroConfig, XeroSandbox};
use serde_json::{Value, json};

/// `hub sandboxes` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxesArgs {
    /// Seed of every sandbox: the same seed, the same data and credentials.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Business days of sales each point of sale holds.
    #[arg(long, default_value_t = 1)]
    pub days: u32,
    /// Print one JSON object (settings and credentials) instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Write the JSON object to this file as well (for scripts).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// The running sandboxes; they stop when dropped.
#[derive(Debug)]
pub struct Running {
    _toast: ToastSandbox,
    _square: SquareSandbox,
    _marketman: MarketManSandbox,
    _quickbooks: QuickBooksSandbox,
    _xero: XeroSandbox,
    /// Settings and credentials.
    pub info: Value,
}

/// Starts one sandbox of each provider on loopback.
pub async fn start(args: &SandboxesArgs) -> Result<Running> {
    let toast = ToastSandbox::start(ToastConfig {
        restaurants: 1,
        days: args.days,
        limits: ToastLimits::unlimited(),
        ..ToastConfig::seeded(args.seed)
    })
    .await
    .context("start the Toast sandbox")?;
    let square = SquareSandbox::start(SquareConfig {
        days: args.days,
        ..SquareConfig::seeded(args.seed.wrapping_add(1))
    })
    .await
    .context("start the Square sandbox")?;
    let marketman = MarketManSandbox::start(MarketManConfig {
        buyers: 1,
        days: args.days,
        ..MarketManConfig::seeded(args.seed.wrapping_add(2))
    })
    .await
    .context("start the MarketMan sandbox")?;
    let quickbooks = QuickBooksSandbox::start(QuickBooksConfig::seeded(args.seed.wrapping_add(3)))
        .await
        .context("start the QuickBooks sandbox")?;
    let xero = XeroSandbox::start(XeroConfig::seeded(args.seed.wrapping_add(4)))
        .await
        .context("start the Xero sandbox")?;
    let restaurant = toast
        .restaurant_guids()
        .first()
        .cloned()
        .unwrap_or_default();
    let all = toast.orders(&restaurant);
    let orders: Vec<String> = all.iter().map(|o| o.guid.clone()).collect();
    // Signed by the sender, not here: the bodies of two `order_updated`
    // webhooks, for trying the webhook function: plain sales (live, nothing
    // refunded), so each is one record to book.
    let events: Vec<String> = all
        .iter()
        .filter(|o| !o.voided && !o.deleted && o.refunded_payments() == 0)
        .take(2)
        .filter_map(|o| toast.order_updated_event(&restaurant, &o.guid))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect();
    let realm = quickbooks.realm_id();
    let qg = quickbooks.grant(&realm);
    let xg = xero.grant();
    let sg = square.grant();
    let info = json!({
        "settings": {
            "HUB_ENDPOINT_TOAST": toast.base_url(),
            "HUB_ENDPOINT_SQUARE": square.base_url(),
            "HUB_ENDPOINT_SQUARE_TOKEN": format!("{}/oauth2/token", square.base_url()),
            "HUB_ENDPOINT_MARKETMAN": marketman.base_url(),
            "HUB_ENDPOINT_QUICKBOOKS": quickbooks.base_url(),
            "HUB_ENDPOINT_QUICKBOOKS_TOKEN": format!("{}/oauth2/v1/tokens/bearer", quickbooks.base_url()),
            "HUB_ENDPOINT_XERO": xero.base_url(),
            "HUB_ENDPOINT_XERO_TOKEN": format!("{}/connect/token", xero.base_url()),
        },
        "toast": {
            "client_id": toast.client_id(),
            "client_secret": toast.client_secret(),
            "restaurant_guids": toast.restaurant_guids(),
            "order_guids": orders,
            "order_updated_events": events,
        },
        "square": {
            "client_id": square.client_id(),
            "client_secret": square.client_secret(),
            "merchant_id": square.merchant_id(),
            "access_token": sg.access_token,
            "refresh_token": sg.refresh_token,
        },
        "marketman": {
            "api_key": marketman.api_key(),
            "api_password": marketman.api_password(),
            "buyer_guids": marketman.buyer_guids(),
        },
        "quickbooks": {
            "client_id": quickbooks.client_id(),
            "client_secret": quickbooks.client_secret(),
            "realm_id": realm,
            "access_token": qg.access_token,
            "refresh_token": qg.refresh_token,
        },
        "xero": {
            "client_id": xero.client_id(),
            "client_secret": xero.client_secret(),
            "tenant_id": xero.tenant_id(),
            "access_token": xg.access_token,
            "refresh_token": xg.refresh_token,
        },
    });
    Ok(Running {
        _toast: toast,
        _square: square,
        _marketman: marketman,
        _quickbooks: quickbooks,
        _xero: xero,
        info,
    })
}

/// Runs `hub sandboxes` until Ctrl-C.
pub async fn run(args: SandboxesArgs) -> Result<()> {
    let running = start(&args).await?;
    let text = serde_json::to_string_pretty(&running.info)?;
    if let Some(path) = &args.out {
        std::fs::write(path, &text).with_context(|| format!("write {}", path.display()))?;
    }
    if args.json {
        println!("{text}");
    } else {
        println!(
            "# Point the hub at the sandboxes (export these, or pass them to cargo lambda watch):"
        );
        if let Some(settings) = running.info["settings"].as_object() {
            for (k, v) in settings {
                println!("{k}={}", v.as_str().unwrap_or_default());
            }
        }
        println!("\n# Seeded credentials (sandbox values, not secrets of anyone's):");
        for provider in ["toast", "square", "marketman", "quickbooks", "xero"] {
            println!("{provider}: {}", running.info[provider]);
        }
    }
    eprintln!("sandboxes running; Ctrl-C stops them");
    tokio::signal::ctrl_c().await.context("wait for Ctrl-C")?;
    Ok(())
}
