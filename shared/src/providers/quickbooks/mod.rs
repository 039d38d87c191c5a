//! QuickBooks Online: a destination the hub books sales into. Its webhooks
//! are verified and acknowledged; the books are read back by the
//! reconciliation, not pulled as a source.
//!
//! - [`client`]: the API (query, create, sparse update, batch, accounts).
//! - [`webhook`]: `intuit-signature` and both envelopes.
//! - [`journal`]: a day's journal entry as a `JournalEntry`.

pub mod client;
pub mod journal;
pub mod webhook;

pub use client::*;

use super::ProviderClients;
use super::http::ProviderError;
use super::kit::{Kit, Webhooks};
use crate::model::{Connection, Provider};
use async_trait::async_trait;

/// QuickBooks' kit.
#[derive(Debug)]
pub struct QuickBooks;

#[async_trait]
impl Kit for QuickBooks {
    fn provider(&self) -> Provider {
        Provider::QuickBooks
    }

    fn webhooks(&self) -> Option<&dyn Webhooks> {
        Some(&webhook::QuickBooksWebhooks)
    }

    async fn ping(&self, clients: &ProviderClients, c: &Connection) -> Result<(), ProviderError> {
        clients.quickbooks(c).await?.accounts().await.map(|_| ())
    }
}

impl ProviderClients {
    /// A QuickBooks client.
    pub async fn quickbooks(&self, c: &Connection) -> Result<QuickBooksClient, ProviderError> {
        Self::check(c, Provider::QuickBooks)?;
        let app = self.app(Provider::QuickBooks).await?;
        Ok(QuickBooksClient::new(
            self.http.clone(),
            self.tokens.clone(),
            &self.endpoints.quickbooks,
            c.account_id.clone(),
            c.credentials.clone(),
            app,
        ))
    }
}
