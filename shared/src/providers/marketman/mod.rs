//! MarketMan: the back office the hub pulls inventory from and sends
//! purchase orders to. It sends no webhooks the hub takes.
//!
//! - [`client`]: the API (items, vendors, orders, deliveries).
//! - [`transform`]: items into inventory levels.
//! - [`streams`]: what a pull reads.

pub mod client;
pub mod streams;
pub mod transform;

pub use client::*;

use super::ProviderClients;
use super::http::ProviderError;
use super::kit::{Cadence, Kit, PullError, Source, Stream, WebhookEvent};
use crate::model::{Connection, Provider, Record};
use async_trait::async_trait;
use jiff::SignedDuration;

/// MarketMan's kit.
#[derive(Debug)]
pub struct MarketMan;

#[async_trait]
impl Kit for MarketMan {
    fn provider(&self) -> Provider {
        Provider::MarketMan
    }

    fn source(&self) -> Option<&dyn Source> {
        Some(self)
    }

    /// 500 calls a day: no active check; the call log speaks for it.
    async fn ping(&self, _clients: &ProviderClients, _c: &Connection) -> Result<(), ProviderError> {
        Ok(())
    }

    /// The API consumer's budget ([`consumer`], read from the credentials),
    /// shared by every buyer the consumer key reads.
    async fn budget_account(
        &self,
        clients: &ProviderClients,
        c: &Connection,
    ) -> Result<String, ProviderError> {
        let raw = clients
            .stores
            .secrets
            .get(&c.credentials)
            .await
            .map_err(|e| {
                ProviderError::Unauthorized(format!("reading secret {}: {e}", c.credentials))
            })?;
        let creds = super::auth::Credentials::parse(&raw, &c.credentials)?;
        consumer_of(&creds, &c.credentials)
    }
}

#[async_trait]
impl Source for MarketMan {
    /// Calls per pull: `GetToken` (its token lives an hour, so each pull 6
    /// hours apart needs one) and `GetInventory` (2).
    fn cadence(&self) -> Cadence {
        Cadence {
            tick: SignedDuration::from_mins(15),
            target: SignedDuration::from_hours(6),
            calls_per_pull: 2,
            budget: limits().first().copied(),
        }
    }

    fn stream_names(&self) -> &'static [&'static str] {
        &["inventory"]
    }

    async fn streams(
        &self,
        clients: &ProviderClients,
        c: &Connection,
    ) -> Result<Vec<Stream>, PullError> {
        Ok(vec![Stream::Snapshot(Box::new(
            streams::MarketManInventory {
                client: clients.marketman(c).await?,
                connection: c.clone(),
            },
        ))])
    }

    async fn event_records(
        &self,
        _clients: &ProviderClients,
        _c: &Connection,
        _e: &WebhookEvent,
    ) -> Result<Option<Vec<Record>>, PullError> {
        Ok(None)
    }
}

impl ProviderClients {
    /// A MarketMan client, on its API consumer's budget.
    pub async fn marketman(&self, c: &Connection) -> Result<MarketManClient, ProviderError> {
        Self::check(c, Provider::MarketMan)?;
        let consumer = MarketMan.budget_account(self, c).await?;
        Ok(MarketManClient::new(
            self.http.clone(),
            self.tokens.clone(),
            &self.endpoints.marketman,
            c.account_id.clone(),
            c.credentials.clone(),
            &consumer,
        ))
    }
}
