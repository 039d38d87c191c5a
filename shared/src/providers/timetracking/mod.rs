//! The time-tracking system the hub sends shifts to.
//!
//! - [`client`]: the API (`POST /api/timeentries`, `PUT /api/timeentries/{id}`).

pub mod client;

pub use client::*;

use super::ProviderClients;
use super::http::ProviderError;
use super::kit::Kit;
use crate::model::{Connection, Provider};
use async_trait::async_trait;
use secrecy::ExposeSecret;

/// The time-tracking kit.
#[derive(Debug)]
pub struct TimeTracking;

#[async_trait]
impl Kit for TimeTracking {
    fn provider(&self) -> Provider {
        Provider::TimeTracking
    }

    /// No active check; the call log speaks for it.
    async fn ping(&self, _clients: &ProviderClients, _c: &Connection) -> Result<(), ProviderError> {
        Ok(())
    }
}

impl ProviderClients {
    /// A time-tracking client: base URL and API token from the connection's
    /// secret (`login.base_url`, `login.api_token`).
    pub async fn timetracking(&self, c: &Connection) -> Result<TimeTrackingClient, ProviderError> {
        Self::check(c, Provider::TimeTracking)?;
        let raw = self.stores.secrets.get(&c.credentials).await.map_err(|e| {
            ProviderError::Unauthorized(format!("credentials of {}/{}: {e}", c.tenant, c.id))
        })?;
        let creds = super::auth::Credentials::parse(&raw, &c.credentials)?;
        let base = creds.login("base_url", &c.credentials)?;
        Ok(TimeTrackingClient::new(
            self.http.clone(),
            self.stores.secrets.clone(),
            base.expose_secret(),
            c.credentials.clone(),
        ))
    }
}
