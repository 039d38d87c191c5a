//! The providers: one folder each, holding its API client, its webhook
//! scheme and envelope, its transforms and the streams a pull reads, behind
//! the small traits of [`kit`] that the pipelines use; [`registry`] maps a
//! [`Provider`] to its kit. Shared by all of them: the HTTP foundation
//! ([`http`]: budgets, retries, typed errors, call log), credentials and
//! single-flight token renewal ([`auth`]), and the OAuth apps and consent
//! flow ([`connect`]).
//!
//! ARCHITECTURE.md shows how to add a provider.

pub mod auth;
pub mod connect;
pub mod http;
pub mod kit;
pub mod registry;

pub mod marketman;
pub mod quickbooks;
pub mod square;
pub mod timetracking;
pub mod toast;
pub mod xero;

pub use http::{
    Idempotence, LazyClient, ProviderError, ProviderHttp, ProviderMessage, RateScope, Reply,
    RetryPolicy,
};

use crate::ids::SecretName;
use auth::{Renewer, TokenManager};
use secrecy::{ExposeSecret, SecretString};

/// Where each provider's API lives. Production hosts by default; tests and the
/// demo point them at the sandboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Toast API host.
    pub toast: String,
    /// Square API host.
    pub square: String,
    /// MarketMan API host.
    pub marketman: String,
    /// QuickBooks Online API host.
    pub quickbooks: String,
    /// Intuit OAuth token endpoint.
    pub quickbooks_token: String,
    /// Xero API host (`/api.xro/2.0`, `/connections`).
    pub xero: String,
    /// Xero OAuth token endpoint.
    pub xero_token: String,
    /// Square OAuth token endpoint.
    pub square_token: String,
    /// Where QuickBooks users authorize the hub.
    pub quickbooks_authorize: String,
    /// Where Xero users authorize the hub.
    pub xero_authorize: String,
    /// Where Square sellers authorize the hub.
    pub square_authorize: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints {
            toast: "https://ws-api.toasttab.com".into(),
            square: "https://connect.squareup.com".into(),
            marketman: "https://api.marketman.com".into(),
            quickbooks: "https://quickbooks.api.intuit.com".into(),
            quickbooks_token: "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer".into(),
            xero: "https://api.xero.com".into(),
            xero_token: "https://identity.xero.com/connect/token".into(),
            square_token: "https://connect.squareup.com/oauth2/token".into(),
            quickbooks_authorize: "https://appcenter.intuit.com/connect/oauth2".into(),
            xero_authorize: "https://login.xero.com/identity/connect/authorize".into(),
            square_authorize: "https://connect.squareup.com/oauth2/authorize".into(),
        }
    }
}

/// Sends a request with the connection's access token, and once more with a
/// renewed one if the provider answers 401.
pub(crate) async fn with_token<T, F, Fut>(
    tokens: &TokenManager,
    secret: &SecretName,
    renewer: &dyn Renewer,
    call: F,
) -> Result<T, ProviderError>
where
    F: Fn(SecretString) -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    let token = tokens.access_token(secret, renewer).await?;
    match call(token.clone()).await {
        Err(ProviderError::Unauthorized(why)) => {
            tracing::info!(secret = %secret, reason = %why, "access token refused; renewing");
            let renewed = tokens.after_rejection(secret, renewer, &token).await?;
            call(renewed).await
        }
        other => other,
    }
}

/// `Bearer <token>`.
pub(crate) fn bearer(token: &SecretString) -> String {
    format!("Bearer {}", token.expose_secret())
}

/// Builds each provider's client for a connection.
#[derive(Debug, Clone)]
pub struct ProviderClients {
    stores: crate::Stores,
    http: ProviderHttp,
    tokens: TokenManager,
    endpoints: Endpoints,
    public_url: String,
}

impl ProviderClients {
    /// Clients on `stores`' budgets, call log, secrets and leases.
    pub fn new(stores: &crate::Stores, endpoints: Endpoints, public_url: &str) -> Self {
        let http = stores.provider_http();
        ProviderClients {
            tokens: TokenManager::new(
                http.clone(),
                stores.secrets.clone(),
                stores.idempotency.clone(),
            ),
            http,
            stores: stores.clone(),
            endpoints,
            public_url: public_url.to_string(),
        }
    }

    /// The HTTP client.
    pub fn http(&self) -> &ProviderHttp {
        &self.http
    }

    /// The token manager.
    pub fn tokens(&self) -> &TokenManager {
        &self.tokens
    }

    /// Where the APIs are.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    fn check(c: &crate::model::Connection, p: crate::model::Provider) -> Result<(), ProviderError> {
        if c.provider == p {
            Ok(())
        } else {
            Err(ProviderError::Permanent(format!(
                "connection {}/{} is {}, not {p}",
                c.tenant, c.id, c.provider
            )))
        }
    }

    async fn app(&self, p: crate::model::Provider) -> Result<auth::OAuthApp, ProviderError> {
        connect::oauth_app(&self.stores, &self.endpoints, &self.public_url, p)
            .await
            .map_err(|e| ProviderError::Unauthorized(e.to_string()))
    }
}
