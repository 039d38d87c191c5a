//! Xero: a destination the hub books sales into. Its webhooks are verified
//! and acknowledged; the books are read back by the reconciliation.
//!
//! - [`client`]: the API (bank transactions, accounts, connections).
//! - [`webhook`]: `x-xero-signature` and the envelope.
//! - [`journal`]: a day's journal entry as a `ManualJournal`.

pub mod client;
pub mod journal;
pub mod webhook;

pub use client::*;

use super::ProviderClients;
use super::http::ProviderError;
use super::kit::{Kit, Webhooks};
use crate::model::{Connection, Provider};
use async_trait::async_trait;

/// Xero's kit.
#[derive(Debug)]
pub struct Xero;

#[async_trait]
impl Kit for Xero {
    fn provider(&self) -> Provider {
        Provider::Xero
    }

    fn webhooks(&self) -> Option<&dyn Webhooks> {
        Some(&webhook::XeroWebhooks)
    }

    async fn ping(&self, clients: &ProviderClients, c: &Connection) -> Result<(), ProviderError> {
        clients.xero(c).await?.accounts().await.map(|_| ())
    }
}

impl ProviderClients {
    /// A Xero client.
    pub async fn xero(&self, c: &Connection) -> Result<XeroClient, ProviderError> {
        Self::check(c, Provider::Xero)?;
        let app = self.app(Provider::Xero).await?;
        Ok(XeroClient::new(
            self.http.clone(),
            self.tokens.clone(),
            &self.endpoints.xero,
            c.account_id.clone(),
            c.credentials.clone(),
            app,
        ))
    }
}
