//! Every provider's kit, by [`Provider`]: the one place a provider is
//! registered. The pipelines reach a provider's webhooks, streams, cadence
//! and health probe through here, never by naming it.

use super::ProviderClients;
use super::http::ProviderError;
use super::kit::{Cadence, Kit, Source};
use super::{marketman, quickbooks, square, timetracking, toast, xero};
use crate::model::{Connection, Provider};

/// The kits, one per provider.
static KITS: &[&dyn Kit] = &[
    &toast::Toast,
    &square::Square,
    &marketman::MarketMan,
    &quickbooks::QuickBooks,
    &xero::Xero,
    &timetracking::TimeTracking,
];

/// `provider`'s kit.
pub fn kit(provider: Provider) -> &'static dyn Kit {
    KITS.iter()
        .copied()
        .find(|k| k.provider() == provider)
        .unwrap_or_else(|| unreachable!("{provider} has no kit registered"))
}

/// `provider`'s source side, if it is pulled.
pub fn source(provider: Provider) -> Option<&'static dyn Source> {
    kit(provider).source()
}

/// The providers the hub pulls from.
pub fn sources() -> impl Iterator<Item = Provider> {
    KITS.iter()
        .filter(|k| k.source().is_some())
        .map(|k| k.provider())
}

/// The providers whose webhooks the hub takes.
pub fn webhook_providers() -> impl Iterator<Item = Provider> {
    KITS.iter()
        .filter(|k| k.webhooks().is_some())
        .map(|k| k.provider())
}

/// `c` ready to be read ([`Source::prepare`]); as it is for a provider that
/// is not pulled.
pub async fn prepare(
    clients: &ProviderClients,
    c: &Connection,
) -> Result<Connection, ProviderError> {
    match source(c.provider) {
        Some(s) => s.prepare(clients, c).await,
        None => Ok(c.clone()),
    }
}

/// The account part of the rate budget `c`'s calls draw on
/// ([`Kit::budget_account`]).
pub async fn budget_account(
    clients: &ProviderClients,
    c: &Connection,
) -> Result<String, ProviderError> {
    kit(c.provider).budget_account(clients, c).await
}

impl Cadence {
    /// The cadence of `provider`'s pulls; `None` for providers not pulled.
    pub fn of(provider: Provider) -> Option<Cadence> {
        source(provider).map(|s| s.cadence())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_is_registered_once() {
        for p in Provider::ALL {
            assert_eq!(KITS.iter().filter(|k| k.provider() == p).count(), 1, "{p}");
            assert_eq!(kit(p).provider(), p);
        }
        assert_eq!(KITS.len(), Provider::ALL.len());
    }

    #[test]
    fn sources_and_webhooks_are_the_documented_ones() {
        assert_eq!(
            sources().collect::<Vec<_>>(),
            [Provider::Toast, Provider::Square, Provider::MarketMan]
        );
        assert_eq!(
            webhook_providers().collect::<Vec<_>>(),
            [
                Provider::Toast,
                Provider::Square,
                Provider::QuickBooks,
                Provider::Xero
            ]
        );
        for p in sources() {
            let s = source(p).unwrap();
            assert!(!s.stream_names().is_empty(), "{p}");
            assert!(s.cadence().calls_per_pull > 0, "{p}");
        }
    }
}
