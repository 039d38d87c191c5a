//! Toast: the POS the hub pulls orders and menus from, and whose order and
//! menu webhooks it takes.
//!
//! - [`client`]: the API (bulk orders, menus, the restaurant's currency).
//!   Its machine-client login is in the client: two an hour at most.
//! - [`webhook`]: `Toast-Signature` and the envelope.
//! - [`transform`]: orders into sales, menus into items.
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
use jiff::SignedDuration;

/// Toast's kit.
#[derive(Debug)]
pub struct Toast;

#[async_trait]
impl Kit for Toast {
    fn provider(&self) -> Provider {
        Provider::Toast
    }

    fn webhooks(&self) -> Option<&dyn Webhooks> {
        Some(&webhook::ToastWebhooks)
    }

    fn source(&self) -> Option<&dyn Source> {
        Some(self)
    }

    async fn ping(&self, clients: &ProviderClients, c: &Connection) -> Result<(), ProviderError> {
        clients.toast(c)?.menus_metadata().await.map(|_| ())
    }
}

#[async_trait]
impl Source for Toast {
    /// Calls per pull, as measured against the sandbox (one business day of
    /// a restaurant): a login amortized to nothing, one or two pages of
    /// orders, the menus and their metadata (4).
    fn cadence(&self) -> Cadence {
        let quarter = SignedDuration::from_mins(15);
        Cadence {
            tick: quarter,
            target: quarter,
            calls_per_pull: 4,
            budget: Some(limits()[1]),
        }
    }

    fn stream_names(&self) -> &'static [&'static str] {
        &["orders", "menus"]
    }

    /// A restaurant's currency is read once from the restaurants API (its
    /// orders carry none) and kept on the stored connection.
    async fn prepare(
        &self,
        clients: &ProviderClients,
        c: &Connection,
    ) -> Result<Connection, ProviderError> {
        if c.currency.is_some() {
            return Ok(c.clone());
        }
        let currency = clients.toast(c)?.currency().await?;
        let mut known = c.clone();
        known.currency = Some(currency);
        clients
            .stores
            .connections
            .register(&known)
            .await
            .map_err(|e| {
                ProviderError::Transient(format!("store the connection's currency: {e}"))
            })?;
        Ok(known)
    }

    async fn streams(
        &self,
        clients: &ProviderClients,
        c: &Connection,
    ) -> Result<Vec<Stream>, PullError> {
        let client = clients.toast(c)?;
        Ok(vec![
            Stream::Windowed(Box::new(streams::ToastOrders {
                client: client.clone(),
                connection: c.clone(),
            })),
            Stream::Snapshot(Box::new(streams::ToastMenus {
                client,
                connection: c.clone(),
            })),
        ])
    }

    /// Order events carry the order; menu events carry no menu, so the menus
    /// are fetched.
    async fn event_records(
        &self,
        clients: &ProviderClients,
        c: &Connection,
        e: &WebhookEvent,
    ) -> Result<Option<Vec<Record>>, PullError> {
        Ok(Some(match e.event_type.as_str() {
            "order_updated" | "channel_order_updated" => {
                let c = self.prepare(clients, c).await?;
                transform::order_to_transactions(&e.payload["details"]["order"], &c)?
                    .into_iter()
                    .map(Record::Transaction)
                    .collect()
            }
            "menus_updated" => {
                let menus = clients.toast(c)?.menus().await?;
                transform::menus_to_items(&menus, c)?
                    .into_iter()
                    .map(Record::MenuItem)
                    .collect()
            }
            _ => return Ok(None),
        }))
    }
}

impl ProviderClients {
    /// A Toast client.
    pub fn toast(&self, c: &Connection) -> Result<ToastClient, ProviderError> {
        Self::check(c, Provider::Toast)?;
        Ok(ToastClient::new(
            self.http.clone(),
            self.tokens.clone(),
            &self.endpoints.toast,
            c.account_id.clone(),
            c.credentials.clone(),
        ))
    }
}
