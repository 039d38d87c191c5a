//! Provider clients: the HTTP foundation (`http`: budgets, retries, typed
//! errors, call log), credentials and single-flight token renewal (`auth`),
//! and one client per provider for what the pipelines need.

pub mod auth;
pub mod connect;
pub mod http;
pub mod marketman;
pub mod quickbooks;
pub mod square;
pub mod timetracking;
pub mod toast;
pub mod xero;

pub use http::{
    Idempotence, ProviderError, ProviderHttp, ProviderMessage, RateScope, Reply, RetryPolicy,
};

use crate::ids::SecretName;
use crate::model::{Connection, Provider};
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
    /// `c` with its currency known: a Toast restaurant's is read once from
    /// the restaurants API (its orders carry none) and kept on the stored
    /// connection; any other connection as it is.
    pub async fn with_currency(&self, c: &Connection) -> Result<Connection, ProviderError> {
        if c.provider != Provider::Toast || c.currency.is_some() {
            return Ok(c.clone());
        }
        let currency = self.toast(c)?.currency().await?;
        let mut known = c.clone();
        known.currency = Some(currency);
        self.stores
            .connections
            .register(&known)
            .await
            .map_err(|e| {
                ProviderError::Transient(format!("store the connection's currency: {e}"))
            })?;
        Ok(known)
    }

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

    /// A Toast client.
    pub fn toast(&self, c: &crate::model::Connection) -> Result<toast::ToastClient, ProviderError> {
        Self::check(c, crate::model::Provider::Toast)?;
        Ok(toast::ToastClient::new(
            self.http.clone(),
            self.tokens.clone(),
            &self.endpoints.toast,
            c.account_id.clone(),
            c.credentials.clone(),
        ))
    }

    /// A Square client: OAuth through the app, or the personal token the
    /// connection's secret holds.
    pub async fn square(
        &self,
        c: &crate::model::Connection,
    ) -> Result<square::SquareClient, ProviderError> {
        Self::check(c, crate::model::Provider::Square)?;
        let raw = self.stores.secrets.get(&c.credentials).await.map_err(|e| {
            ProviderError::Unauthorized(format!("credentials of {}/{}: {e}", c.tenant, c.id))
        })?;
        let creds = auth::Credentials::parse(&raw, &c.credentials)?;
        let auth = if creds.login.contains_key("access_token") {
            square::SquareAuth::Personal
        } else {
            square::SquareAuth::OAuth(self.app(crate::model::Provider::Square).await?)
        };
        Ok(square::SquareClient::new(
            self.http.clone(),
            self.tokens.clone(),
            &self.endpoints.square,
            &c.account_id,
            c.credentials.clone(),
            auth,
        ))
    }

    /// A MarketMan client.
    pub async fn marketman(
        &self,
        c: &crate::model::Connection,
    ) -> Result<marketman::MarketManClient, ProviderError> {
        Self::check(c, crate::model::Provider::MarketMan)?;
        let consumer = self.budget_key(c).await?;
        Ok(marketman::MarketManClient::new(
            self.http.clone(),
            self.tokens.clone(),
            &self.endpoints.marketman,
            c.account_id.clone(),
            c.credentials.clone(),
            &consumer,
        ))
    }

    /// The account part of the budget `c`'s calls draw on: a MarketMan
    /// connection shares its API consumer's ([`marketman::consumer`], read
    /// from its credentials); any other provider's budget is the account's.
    pub async fn budget_key(&self, c: &crate::model::Connection) -> Result<String, ProviderError> {
        if c.provider != crate::model::Provider::MarketMan {
            return Ok(c.account_id.to_string());
        }
        let raw = self.stores.secrets.get(&c.credentials).await.map_err(|e| {
            ProviderError::Unauthorized(format!("reading secret {}: {e}", c.credentials))
        })?;
        let creds = auth::Credentials::parse(&raw, &c.credentials)?;
        marketman::consumer_of(&creds, &c.credentials)
    }

    /// A QuickBooks client.
    pub async fn quickbooks(
        &self,
        c: &crate::model::Connection,
    ) -> Result<quickbooks::QuickBooksClient, ProviderError> {
        Self::check(c, crate::model::Provider::QuickBooks)?;
        let app = self.app(crate::model::Provider::QuickBooks).await?;
        Ok(quickbooks::QuickBooksClient::new(
            self.http.clone(),
            self.tokens.clone(),
            &self.endpoints.quickbooks,
            c.account_id.clone(),
            c.credentials.clone(),
            app,
        ))
    }

    /// A time-tracking client: base URL and API token from the connection's
    /// secret (`login.base_url`, `login.api_token`).
    pub async fn timetracking(
        &self,
        c: &crate::model::Connection,
    ) -> Result<timetracking::TimeTrackingClient, ProviderError> {
        Self::check(c, crate::model::Provider::TimeTracking)?;
        let raw = self.stores.secrets.get(&c.credentials).await.map_err(|e| {
            ProviderError::Unauthorized(format!("credentials of {}/{}: {e}", c.tenant, c.id))
        })?;
        let creds = auth::Credentials::parse(&raw, &c.credentials)?;
        let base = creds.login("base_url", &c.credentials)?;
        Ok(timetracking::TimeTrackingClient::new(
            self.http.clone(),
            self.stores.secrets.clone(),
            base.expose_secret(),
            c.credentials.clone(),
        ))
    }

    /// A Xero client.
    pub async fn xero(
        &self,
        c: &crate::model::Connection,
    ) -> Result<xero::XeroClient, ProviderError> {
        Self::check(c, crate::model::Provider::Xero)?;
        let app = self.app(crate::model::Provider::Xero).await?;
        Ok(xero::XeroClient::new(
            self.http.clone(),
            self.tokens.clone(),
            &self.endpoints.xero,
            c.account_id.clone(),
            c.credentials.clone(),
            app,
        ))
    }
}
