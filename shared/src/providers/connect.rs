//! The OAuth 2.0 connect flow for QuickBooks, Xero and Square: an operator
//! starts it for a tenant (`hub connect`, or `GET /connect/{provider}`), the
//! user authorizes at the provider, and the provider sends them back to
//! `/connect/{provider}/callback` with a code and our `state`. The state is
//! checked (it must be one we issued, unexpired, for this provider), the code
//! exchanged, the tokens stored as the connection's secret, and the connection
//! registered: QuickBooks' realm comes with the callback, Xero's tenants from
//! its connections endpoint, Square's merchant from the token response.
//!
//! App credentials live in the secret `apps/<provider>` as
//! `{"client_id": "...", "client_secret": "..."}`.

use super::auth::{ClientAuth, Credentials, OAuthApp, StoredToken};
use super::http::{Idempotence, ProviderError, ProviderHttp, RateScope};
use super::{Endpoints, bearer};
use crate::Stores;
use crate::ids::{ConnectionId, IdempotencyKey, ProviderAccountId, SecretName, TenantId};
use crate::model::{BusinessDayClose, Connection, Provider, TimeZoneName};
use crate::ports::{ClaimOutcome, StoreError};
use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// How long a started connect flow may take.
pub const STATE_LIFETIME: SignedDuration = SignedDuration::from_mins(15);

/// Why a connect step failed; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The provider has no OAuth flow here.
    #[error("{0} connections are not made through OAuth")]
    Unsupported(Provider),
    /// A request is missing something or has it wrong.
    #[error("{0}")]
    BadRequest(String),
    /// The hub is missing configuration (the app's credentials).
    #[error("{0}")]
    NotConfigured(String),
    /// The provider refused or failed.
    #[error("{0}")]
    Provider(#[from] ProviderError),
    /// A store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// What the callback needs to finish: stored under the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingConnect {
    /// Which provider.
    pub provider: Provider,
    /// Whose connection.
    pub tenant: TenantId,
    /// Its id.
    pub connection: ConnectionId,
    /// The restaurant's (or books') time zone.
    pub time_zone: TimeZoneName,
    /// When its business day ends.
    pub business_day_close: BusinessDayClose,
}

/// The OAuth app for `provider`, from the secret `apps/<provider>`; users come
/// back to `<public_url>/connect/<provider>/callback`.
pub async fn oauth_app(
    stores: &Stores,
    endpoints: &Endpoints,
    public_url: &str,
    provider: Provider,
) -> Result<OAuthApp, ConnectError> {
    let (authorize_url, token_url, scopes, client_auth) = match provider {
        Provider::QuickBooks => (
            &endpoints.quickbooks_authorize,
            &endpoints.quickbooks_token,
            vec!["com.intuit.quickbooks.accounting".to_string()],
            ClientAuth::BasicForm,
        ),
        Provider::Xero => (
            &endpoints.xero_authorize,
            &endpoints.xero_token,
            vec![
                "offline_access".into(),
                "accounting.transactions".into(),
                "accounting.settings.read".into(),
            ],
            ClientAuth::BasicForm,
        ),
        Provider::Square => (
            &endpoints.square_authorize,
            &endpoints.square_token,
            vec![
                "PAYMENTS_READ".into(),
                "INVENTORY_READ".into(),
                "ORDERS_READ".into(),
                "MERCHANT_PROFILE_READ".into(),
            ],
            ClientAuth::JsonBody,
        ),
        p => return Err(ConnectError::Unsupported(p)),
    };
    let name = SecretName::new(format!("apps/{provider}"))
        .map_err(|e| ConnectError::BadRequest(e.to_string()))?;
    let raw = stores.secrets.get(&name).await.map_err(|e| match e {
        StoreError::NotFound(_) => ConnectError::NotConfigured(format!(
            "the {provider} app is not configured: write {{\"client_id\":...,\"client_secret\":...}} to the secret {name}"
        )),
        e => ConnectError::Store(e),
    })?;
    #[derive(Deserialize)]
    struct AppSecret {
        client_id: String,
        client_secret: String,
    }
    let app: AppSecret = serde_json::from_str(raw.expose_secret()).map_err(|e| {
        ConnectError::NotConfigured(format!(
            "secret {name} is not {{client_id, client_secret}}: {e}"
        ))
    })?;
    Ok(OAuthApp {
        provider,
        authorize_url: authorize_url.clone(),
        token_url: token_url.clone(),
        client_id: app.client_id,
        client_secret: SecretString::from(app.client_secret),
        redirect_uri: format!(
            "{}/connect/{provider}/callback",
            public_url.trim_end_matches('/')
        ),
        scopes,
        client_auth,
    })
}

/// The connect flow's service, built once per process.
#[derive(Debug, Clone)]
pub struct ConnectService {
    stores: Stores,
    http: ProviderHttp,
    endpoints: Endpoints,
    /// The hub's public base URL; callbacks come to `<base>/connect/<provider>/callback`.
    public_url: String,
}

fn state_key(state: &str) -> Result<IdempotencyKey, ConnectError> {
    IdempotencyKey::new(format!("oauth-state:{state}"))
        .map_err(|_| ConnectError::BadRequest("malformed state".into()))
}

impl ConnectService {
    /// The service on `stores`, calling providers through `http`.
    pub fn new(stores: Stores, http: ProviderHttp, endpoints: Endpoints, public_url: &str) -> Self {
        ConnectService {
            stores,
            http,
            endpoints,
            public_url: public_url.trim_end_matches('/').to_string(),
        }
    }

    /// The OAuth app for `provider`, from the secret `apps/<provider>`.
    pub async fn app(&self, provider: Provider) -> Result<OAuthApp, ConnectError> {
        oauth_app(&self.stores, &self.endpoints, &self.public_url, provider).await
    }

    /// Starts a flow: remembers `pending` under a fresh state and returns the
    /// URL to send the user to.
    pub async fn start(&self, pending: PendingConnect) -> Result<String, ConnectError> {
        if self
            .stores
            .connections
            .get_tenant(&pending.tenant)
            .await?
            .is_none()
        {
            return Err(ConnectError::BadRequest(format!(
                "tenant {} does not exist",
                pending.tenant
            )));
        }
        let app = self.app(pending.provider).await?;
        let state =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let key = state_key(&state)?;
        let until = Timestamp::now() + STATE_LIFETIME;
        let ClaimOutcome::Claimed(token) = self.stores.idempotency.claim(&key, until).await? else {
            return Err(ConnectError::BadRequest(
                "state collision; start again".into(),
            ));
        };
        let json =
            serde_json::to_string(&pending).map_err(|e| ConnectError::BadRequest(e.to_string()))?;
        self.stores
            .idempotency
            .complete(&key, &token, Some(&json), until)
            .await?;
        Ok(app.authorize_url(&state))
    }

    /// Finishes a flow from the provider's callback. `realm_id`: QuickBooks'
    /// `realmId` parameter. Returns the connections registered.
    pub async fn callback(
        &self,
        provider: Provider,
        code: &str,
        state: &str,
        realm_id: Option<&str>,
    ) -> Result<Vec<Connection>, ConnectError> {
        if code.is_empty() {
            return Err(ConnectError::BadRequest("the callback has no code".into()));
        }
        let key = state_key(state)?;
        let pending: PendingConnect = match self
            .stores
            .idempotency
            .claim(&key, Timestamp::now() + SignedDuration::from_secs(1))
            .await?
        {
            ClaimOutcome::Done {
                result: Some(json), ..
            } => serde_json::from_str(&json)
                .map_err(|_| ConnectError::BadRequest("unreadable state".into()))?,
            ClaimOutcome::Claimed(token) => {
                let _ = self.stores.idempotency.release(&key, &token).await;
                return Err(ConnectError::BadRequest(
                    "unknown or expired state: start the connection again".into(),
                ));
            }
            _ => {
                return Err(ConnectError::BadRequest(
                    "unknown or expired state: start the connection again".into(),
                ));
            }
        };
        if pending.provider != provider {
            return Err(ConnectError::BadRequest(format!(
                "this state was issued for {}, not {provider}",
                pending.provider
            )));
        }
        let realm = realm_id.filter(|r| !r.is_empty());
        if provider == Provider::QuickBooks && realm.is_none() {
            // Checked before the code is spent.
            return Err(ConnectError::BadRequest(
                "the QuickBooks callback has no realmId".into(),
            ));
        }
        let app = self.app(provider).await?;
        let (token, merchant) = app.exchange_code_with_extras(&self.http, code).await?;
        let accounts: Vec<String> = match provider {
            Provider::QuickBooks => vec![realm.unwrap_or_default().to_string()],
            Provider::Xero => self.xero_tenants(&token).await?,
            Provider::Square => vec![merchant.ok_or_else(|| {
                ConnectError::BadRequest("Square's token answer named no merchant_id".into())
            })?],
            p => return Err(ConnectError::Unsupported(p)),
        };
        let mut out = Vec::new();
        for (i, account) in accounts.iter().enumerate() {
            let id = if i == 0 {
                pending.connection.clone()
            } else {
                ConnectionId::new(format!("{}-{}", pending.connection, i + 1))
                    .map_err(|e| ConnectError::BadRequest(e.to_string()))?
            };
            let secret = SecretName::new(format!("{}/{}", pending.tenant, id))
                .map_err(|e| ConnectError::BadRequest(e.to_string()))?;
            let creds = Credentials {
                token: Some(token.clone()),
                login: Default::default(),
            };
            self.stores.secrets.put(&secret, &creds.to_secret()).await?;
            let connection = Connection {
                id,
                tenant: pending.tenant.clone(),
                provider,
                account_id: ProviderAccountId::new(account.as_str())
                    .map_err(|e| ConnectError::BadRequest(e.to_string()))?,
                time_zone: pending.time_zone.clone(),
                business_day_close: pending.business_day_close,
                credentials: secret,
                mappings: Default::default(),
                codes: Default::default(),
            };
            self.stores.connections.register(&connection).await?;
            tracing::info!(tenant = %connection.tenant, connection = %connection.id, %provider, account = %connection.account_id, "connected");
            out.push(connection);
        }
        Ok(out)
    }

    async fn xero_tenants(&self, token: &StoredToken) -> Result<Vec<String>, ConnectError> {
        let url = format!("{}/connections", self.endpoints.xero.trim_end_matches('/'));
        let access = SecretString::from(token.access_token.clone());
        let scope = RateScope::new(Provider::Xero, "identity", Vec::new(), None);
        let reply = self
            .http
            .send(
                &scope,
                "xero.connections",
                Idempotence::Safe,
                super::xero::errors,
                || {
                    self.http
                        .client()
                        .get(&url)
                        .header("authorization", bearer(&access))
                },
            )
            .await?;
        let list: Vec<serde_json::Value> = reply.json()?;
        let tenants: Vec<String> = list
            .iter()
            .filter(|c| c["tenantType"].as_str().is_none_or(|t| t == "ORGANISATION"))
            .filter_map(|c| c["tenantId"].as_str().map(str::to_string))
            .collect();
        if tenants.is_empty() {
            return Err(ConnectError::BadRequest(
                "the Xero authorization granted no organisation".into(),
            ));
        }
        Ok(tenants)
    }
}

/// An HTTP answer from the connect routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    /// Status.
    pub status: u16,
    /// `Location` for a redirect.
    pub location: Option<String>,
    /// JSON body.
    pub body: String,
}

impl ConnectResponse {
    fn json(status: u16, v: serde_json::Value) -> Self {
        ConnectResponse {
            status,
            location: None,
            body: v.to_string(),
        }
    }
}

impl From<ConnectError> for ConnectResponse {
    fn from(e: ConnectError) -> Self {
        let status = match &e {
            ConnectError::Unsupported(_) => 404,
            ConnectError::BadRequest(_) => 400,
            ConnectError::NotConfigured(_) => 503,
            ConnectError::Provider(p) if p.is_retryable() => 503,
            ConnectError::Provider(_) => 502,
            ConnectError::Store(_) => 503,
        };
        tracing::warn!(status, error = %e, "connect flow refused");
        ConnectResponse::json(status, serde_json::json!({ "error": e.to_string() }))
    }
}

impl ConnectService {
    /// Serves `GET /connect/{provider}` (start) and `GET /connect/{provider}/callback`.
    /// `rest` is the path after `/connect/`; `query` the raw query string.
    pub async fn handle(&self, method: &str, rest: &str, query: &str) -> ConnectResponse {
        if !method.eq_ignore_ascii_case("GET") {
            return ConnectResponse::json(
                405,
                serde_json::json!({"error": format!("{method} is not allowed: use GET")}),
            );
        }
        let params: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
        let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let (provider, callback) = match rest.trim_matches('/').split_once('/') {
            Some((p, "callback")) => (p, true),
            None => (rest.trim_matches('/'), false),
            Some(_) => {
                return ConnectResponse::json(
                    404,
                    serde_json::json!({"error": "no such connect route"}),
                );
            }
        };
        let Ok(provider) = provider.parse::<Provider>() else {
            return ConnectResponse::json(
                404,
                serde_json::json!({"error": format!("unknown provider {provider:?}: connect quickbooks, xero or square")}),
            );
        };
        let result: Result<ConnectResponse, ConnectError> = async {
            if callback {
                if let Some(err) = get("error") {
                    return Err(ConnectError::BadRequest(format!("the authorization was declined at {provider}: {err}")));
                }
                let code = get("code").ok_or_else(|| ConnectError::BadRequest("the callback has no code".into()))?;
                let state = get("state").ok_or_else(|| ConnectError::BadRequest("the callback has no state".into()))?;
                let connected = self.callback(provider, code, state, get("realmId")).await?;
                let list: Vec<_> = connected
                    .iter()
                    .map(|c| serde_json::json!({"tenant": c.tenant, "connection": c.id, "provider": c.provider, "account": c.account_id}))
                    .collect();
                Ok(ConnectResponse::json(200, serde_json::json!({ "connected": list })))
            } else {
                let need = |k: &str| get(k).ok_or_else(|| ConnectError::BadRequest(format!("missing query parameter `{k}`")));
                let pending = PendingConnect {
                    provider,
                    tenant: TenantId::new(need("tenant")?).map_err(|e| ConnectError::BadRequest(e.to_string()))?,
                    connection: ConnectionId::new(need("connection")?).map_err(|e| ConnectError::BadRequest(e.to_string()))?,
                    time_zone: TimeZoneName::new(need("time_zone")?)
                        .map_err(|e| ConnectError::BadRequest(format!("time_zone: {e}")))?,
                    business_day_close: BusinessDayClose(
                        get("close")
                            .unwrap_or("00:00")
                            .parse()
                            .map_err(|e| ConnectError::BadRequest(format!("close: {e}")))?,
                    ),
                };
                let url = self.start(pending).await?;
                Ok(ConnectResponse { status: 302, location: Some(url), body: String::new() })
            }
        }
        .await;
        result.unwrap_or_else(Into::into)
    }
}
