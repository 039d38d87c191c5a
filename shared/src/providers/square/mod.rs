//! Square: the POS the hub pulls payments (with their orders and refunds)
//! and inventory from, and whose payment and inventory webhooks it takes.
//!
//! - [`client`]: the API (locations, payments, orders, refunds, inventory).
//! - [`webhook`]: `x-square-hmacsha256-signature` and the envelope.
//! - [`transform`]: sales into transactions, counts into levels.
//! - [`streams`]: what a pull reads.

pub mod client;
pub mod streams;
pub mod transform;
pub mod webhook;

pub use client::*;

use super::ProviderClients;
use super::http::ProviderError;
use super::kit::{Cadence, Kit, PullError, Source, Stream, WebhookEvent, Webhooks};
use crate::model::{Connection, Provider, Record};
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

/// Square's kit.
#[derive(Debug)]
pub struct Square;

#[async_trait]
impl Kit for Square {
    fn provider(&self) -> Provider {
        Provider::Square
    }

    fn webhooks(&self) -> Option<&dyn Webhooks> {
        Some(&webhook::SquareWebhooks)
    }

    fn source(&self) -> Option<&dyn Source> {
        Some(self)
    }

    /// Every location: a request without `location_id` reads only the main
    /// one, so one unreadable location would go unnoticed.
    async fn ping(&self, clients: &ProviderClients, c: &Connection) -> Result<(), ProviderError> {
        let now = Timestamp::now();
        let client = clients.square(c).await?;
        for location in client.list_locations().await? {
            let Some(id) = location["id"].as_str() else {
                continue;
            };
            client
                .list_payments(now - SignedDuration::from_mins(1), now, Some(id), None)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Source for Square {
    /// Calls per pull, as measured against the sandbox (one business day of
    /// a restaurant): the locations, a page or two of orders and payments,
    /// the inventory (4). Square documents no budget, only 429s
    /// (providers.md §2).
    fn cadence(&self) -> Cadence {
        let quarter = SignedDuration::from_mins(15);
        Cadence {
            tick: quarter,
            target: quarter,
            calls_per_pull: 4,
            budget: None,
        }
    }

    fn stream_names(&self) -> &'static [&'static str] {
        &["payments", "inventory"]
    }

    async fn streams(
        &self,
        clients: &ProviderClients,
        c: &Connection,
    ) -> Result<Vec<Stream>, PullError> {
        let client = clients.square(c).await?;
        Ok(vec![
            Stream::Windowed(Box::new(streams::SquarePayments {
                client: client.clone(),
                connection: c.clone(),
            })),
            Stream::Snapshot(Box::new(streams::SquareInventory {
                client,
                connection: c.clone(),
            })),
        ])
    }

    /// A payment event carries the payment, which is completed with its
    /// order, the order's other payments, its refunds and their return
    /// orders, so the records match a pull's; an inventory event carries the
    /// counts.
    async fn event_records(
        &self,
        clients: &ProviderClients,
        c: &Connection,
        e: &WebhookEvent,
    ) -> Result<Option<Vec<Record>>, PullError> {
        let kind = e.event_type.as_str();
        if kind.starts_with("payment.") {
            let payment = e.payload["data"]["object"]["payment"].clone();
            let batch = clients.square(c).await?.sales_for(vec![payment]).await?;
            let records = transform::sales_to_transactions(
                &batch.payments,
                &batch.orders,
                &batch.refunds,
                c,
            )?
            .into_iter()
            .map(Record::Transaction)
            .collect();
            return Ok(Some(records));
        }
        if kind == "inventory.count.updated" {
            let mut out = Vec::new();
            for count in e.payload["data"]["object"]["inventory_counts"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(l) = transform::count_to_level(count, c)? {
                    out.push(Record::InventoryLevel(l));
                }
            }
            return Ok(Some(out));
        }
        Ok(None)
    }
}

impl ProviderClients {
    /// A Square client: OAuth through the app, or the personal token the
    /// connection's secret holds.
    pub async fn square(&self, c: &Connection) -> Result<SquareClient, ProviderError> {
        Self::check(c, Provider::Square)?;
        let raw = self.stores.secrets.get(&c.credentials).await.map_err(|e| {
            ProviderError::Unauthorized(format!("credentials of {}/{}: {e}", c.tenant, c.id))
        })?;
        let creds = super::auth::Credentials::parse(&raw, &c.credentials)?;
        let auth = if creds.login.contains_key("access_token") {
            SquareAuth::Personal
        } else {
            SquareAuth::OAuth(self.app(Provider::Square).await?)
        };
        Ok(SquareClient::new(
            self.http.clone(),
            self.tokens.clone(),
            &self.endpoints.square,
            &c.account_id,
            c.credentials.clone(),
            auth,
        ))
    }
}
