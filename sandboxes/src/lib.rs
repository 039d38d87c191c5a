//! Provider sandboxes: small HTTP servers that behave like the providers' own
//! endpoints, for tests, benchmarks and the demo.
//!
//! Each sandbox binds `127.0.0.1:0`, serves the provider's documented paths,
//! query parameters, headers, status codes and JSON shapes (providers.md
//! §1–§5 and the published examples in `tests/fixtures/`), and is driven
//! through a typed handle: `start(config)`, `base_url()`, `set_faults(..)`,
//! `counters()`, and provider-specific helpers to seed, add and edit records
//! and to read back what the hub wrote.
//!
//! Module layout:
//! - [`common`]: serving (connections that can really be dropped), injected
//!   [`Faults`], rate [`Limit`]s, [`Counters`], tokens, seeded data helpers,
//!   and the money and time wire formats.
//! - [`toast`], [`square`], [`marketman`]: the sources (POS and inventory).
//! - [`quickbooks`], [`xero`]: the accounting destinations.
//! - [`timetracking`]: the hub's own generic time-entry target.
//! - [`webhook`]: sends a webhook signed the way each provider signs it.
//! - [`Sandboxes`]: starts every sandbox at once.
//!
//! Every request takes the same path before its handler (`common::gate`):
//! counted per endpoint; charged to its provider account and refused with the
//! provider's 429 when over a limit; delayed by the injected latency; then the
//! fault dice may drop the connection or answer 500/503; then the bearer token
//! is checked (401 in the provider's shape). Generated data is deterministic
//! for a given seed; faults are drawn from a seeded `ChaCha8Rng`.
//!
//! Anything the sandboxes do that providers.md does not establish is marked
//! UNVERIFIED in the module's header.

// Handlers bail out early with the provider's error response; boxing every
// `Result<_, Response>` on this error path of a test server buys nothing.
#![allow(clippy::result_large_err)]

pub mod common;
pub mod marketman;
pub mod quickbooks;
pub mod square;
pub mod timetracking;
pub mod toast;
pub mod webhook;
pub mod xero;

pub use common::{Counters, Faults, IssuedTokens, Limit, StartError, Truth, WindowKind};
pub use webhook::{WebhookError, send_webhook};

/// Every sandbox, started together with one seed (default configurations).
#[derive(Debug)]
pub struct Sandboxes {
    /// Toast.
    pub toast: toast::ToastSandbox,
    /// Square.
    pub square: square::SquareSandbox,
    /// MarketMan.
    pub marketman: marketman::MarketManSandbox,
    /// QuickBooks Online.
    pub quickbooks: quickbooks::QuickBooksSandbox,
    /// Xero.
    pub xero: xero::XeroSandbox,
    /// Time tracking.
    pub timetracking: timetracking::TimeTrackingSandbox,
}

impl Sandboxes {
    /// Starts all six with `seed` and their default configurations.
    pub async fn start_all(seed: u64) -> Result<Self, StartError> {
        Ok(Self {
            toast: toast::ToastSandbox::start(toast::ToastConfig::seeded(seed)).await?,
            square: square::SquareSandbox::start(square::SquareConfig::seeded(seed)).await?,
            marketman: marketman::MarketManSandbox::start(marketman::MarketManConfig::seeded(seed))
                .await?,
            quickbooks: quickbooks::QuickBooksSandbox::start(quickbooks::QuickBooksConfig::seeded(
                seed,
            ))
            .await?,
            xero: xero::XeroSandbox::start(xero::XeroConfig::seeded(seed)).await?,
            timetracking: timetracking::TimeTrackingSandbox::start(
                timetracking::TimeTrackingConfig::seeded(seed),
            )
            .await?,
        })
    }

    /// Applies the same faults to every sandbox.
    pub fn set_faults(&self, faults: Faults) {
        self.toast.set_faults(faults.clone());
        self.square.set_faults(faults.clone());
        self.marketman.set_faults(faults.clone());
        self.quickbooks.set_faults(faults.clone());
        self.xero.set_faults(faults.clone());
        self.timetracking.set_faults(faults);
    }

    /// Stops every sandbox.
    pub async fn shutdown(self) {
        self.toast.shutdown().await;
        self.square.shutdown().await;
        self.marketman.shutdown().await;
        self.quickbooks.shutdown().await;
        self.xero.shutdown().await;
        self.timetracking.shutdown().await;
    }
}
