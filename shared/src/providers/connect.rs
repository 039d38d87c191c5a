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
//!
//! The start is the door to a tenant's books, so it is never open: `hub
//! connect` (an operator with the store's credentials) starts a flow
//! directly, or issues a link to `GET /connect/{provider}` signed with the
//! key in the secret `links/connect` (HMAC-SHA256 over every parameter and
//! its expiry; at most [`MAX_LINK_LIFETIME`], usable once). The callback is
//! public and bound to its start by the state. A connection that exists is
//! replaced by a different provider account only when the link said so
//! (`--replace`): otherwise the callback refuses with 409 and stores nothing.
//! Credentials are stored under `tenants/<tenant>/<connection>`.

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

/// The secret holding the key connect links are signed with.
pub const LINK_KEY_SECRET: &str = "links/connect";

/// The longest a signed connect link may live.
pub const MAX_LINK_LIFETIME: SignedDuration = SignedDuration::from_hours(24);

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

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
    /// The start is not authorized: no signed link, or a bad, expired or
    /// used one.
    #[error("{0}")]
    Unauthorized(String),
    /// The authorization would replace what a connection is linked to, and
    /// nobody decided so.
    #[error("{0}")]
    Conflict(String),
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
    /// The operator decided that an existing connection of this id may be
    /// linked to another provider account.
    #[serde(default)]
    pub replace: bool,
}

impl PendingConnect {
    /// What a link signs: every parameter, the expiry and the link's nonce.
    fn link_message(&self, expires: i64, nonce: &str) -> String {
        format!(
            "hub-connect-link/v1\n{}\n{}\n{}\n{}\n{}\n{}\n{expires}\n{nonce}",
            self.provider,
            self.tenant,
            self.connection,
            self.time_zone.as_str(),
            self.business_day_close.0,
            self.replace
        )
    }
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
        /// The scopes to ask for, replacing the defaults (Xero apps created
        /// from March 2026 take granular scopes: see the README).
        #[serde(default)]
        scopes: Option<Vec<String>>,
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
        scopes: match app.scopes {
            Some(asked) if !asked.is_empty() => asked,
            _ => scopes,
        },
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
    /// Empty: each request's own host (behind API Gateway).
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
        self.app_at(provider, &self.public_url).await
    }

    async fn app_at(&self, provider: Provider, base: &str) -> Result<OAuthApp, ConnectError> {
        if base.is_empty() {
            return Err(ConnectError::NotConfigured(
                "the hub's public URL is unknown: set HUB_PUBLIC_URL".into(),
            ));
        }
        oauth_app(&self.stores, &self.endpoints, base, provider).await
    }

    /// The key connect links are signed with; made (32 random bytes) when
    /// `create` and missing.
    async fn link_key(&self, create: bool) -> Result<SecretString, ConnectError> {
        let name = SecretName::new(LINK_KEY_SECRET)
            .map_err(|e| ConnectError::BadRequest(e.to_string()))?;
        match self.stores.secrets.get(&name).await {
            Ok(key) => Ok(key),
            Err(StoreError::NotFound(_)) if create => {
                let key = SecretString::from(
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(rand::random::<[u8; 32]>()),
                );
                self.stores.secrets.put(&name, &key).await?;
                // Read back: a concurrent issuer may have written first.
                Ok(self.stores.secrets.get(&name).await?)
            }
            Err(StoreError::NotFound(_)) => Err(ConnectError::Unauthorized(format!(
                "no connect links have been issued (the secret {name} does not exist): \
                 issue one with `hub connect --link`"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    fn sign(key: &SecretString, message: &str) -> Result<HmacSha256, ConnectError> {
        use hmac::KeyInit;
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key.expose_secret().as_bytes())
            .map_err(|_| ConnectError::NotConfigured("the connect link key is unusable".into()))?;
        hmac::Mac::update(&mut mac, message.as_bytes());
        Ok(mac)
    }

    /// A link to this hub's `GET /connect/{provider}` that starts `pending`
    /// once, within `lifetime` (at most [`MAX_LINK_LIFETIME`]), for whoever
    /// is to authorize at the provider.
    pub async fn issue_link(
        &self,
        pending: &PendingConnect,
        lifetime: SignedDuration,
    ) -> Result<String, ConnectError> {
        self.check_tenant(&pending.tenant).await?;
        if lifetime > MAX_LINK_LIFETIME || lifetime <= SignedDuration::ZERO {
            return Err(ConnectError::BadRequest(format!(
                "a connect link lives at most {} hours",
                MAX_LINK_LIFETIME.as_hours()
            )));
        }
        if self.public_url.is_empty() {
            return Err(ConnectError::NotConfigured(
                "set HUB_PUBLIC_URL to the hub's public base URL to issue links".into(),
            ));
        }
        let key = self.link_key(true).await?;
        let expires = (Timestamp::now() + lifetime).as_second();
        let nonce =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>());
        let sig = hmac::Mac::finalize(Self::sign(&key, &pending.link_message(expires, &nonce))?)
            .into_bytes();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig);
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("tenant", pending.tenant.as_str())
            .append_pair("connection", pending.connection.as_str())
            .append_pair("time_zone", pending.time_zone.as_str())
            .append_pair("close", &pending.business_day_close.0.to_string())
            .append_pair("replace", if pending.replace { "true" } else { "false" })
            .append_pair("expires", &expires.to_string())
            .append_pair("nonce", &nonce)
            .append_pair("sig", &sig)
            .finish();
        Ok(format!(
            "{}/connect/{}?{query}",
            self.public_url, pending.provider
        ))
    }

    /// Checks a start's link: signed by the hub over these parameters, not
    /// expired, not used before (it is spent here).
    async fn check_link(
        &self,
        pending: &PendingConnect,
        expires: Option<&str>,
        nonce: Option<&str>,
        sig: Option<&str>,
    ) -> Result<(), ConnectError> {
        let (Some(expires), Some(nonce), Some(sig)) = (expires, nonce, sig) else {
            return Err(ConnectError::Unauthorized(
                "starting a connection needs a link signed by the hub: issue one with \
                 `hub connect --link` (or run `hub connect` yourself)"
                    .into(),
            ));
        };
        let expires: i64 = expires
            .parse()
            .map_err(|_| ConnectError::Unauthorized("the link's expiry is not a time".into()))?;
        let now = Timestamp::now().as_second();
        if expires <= now {
            return Err(ConnectError::Unauthorized(
                "this connect link has expired: issue a new one".into(),
            ));
        }
        if expires - now > MAX_LINK_LIFETIME.as_secs() {
            return Err(ConnectError::Unauthorized(
                "this connect link claims to live longer than any link may".into(),
            ));
        }
        let given = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| {
                ConnectError::Unauthorized("the link's signature is not base64url".into())
            })?;
        let key = self.link_key(false).await?;
        hmac::Mac::verify_slice(
            Self::sign(&key, &pending.link_message(expires, nonce))?,
            &given,
        )
        .map_err(|_| {
            ConnectError::Unauthorized(
                "the link's signature does not match its parameters: use the link as issued".into(),
            )
        })?;
        let used = IdempotencyKey::new(format!("connect-link:{sig}"))
            .map_err(|_| ConnectError::Unauthorized("malformed link signature".into()))?;
        let until = Timestamp::from_second(expires)
            .map_err(|_| ConnectError::Unauthorized("the link's expiry is out of range".into()))?;
        match self.stores.idempotency.claim(&used, until).await? {
            ClaimOutcome::Claimed(token) => {
                self.stores
                    .idempotency
                    .complete(&used, &token, Some("used"), until)
                    .await?;
                Ok(())
            }
            _ => Err(ConnectError::Unauthorized(
                "this connect link was already used: issue a new one".into(),
            )),
        }
    }

    async fn check_tenant(&self, tenant: &TenantId) -> Result<(), ConnectError> {
        if self.stores.connections.get_tenant(tenant).await?.is_none() {
            return Err(ConnectError::BadRequest(format!(
                "tenant {tenant} does not exist"
            )));
        }
        Ok(())
    }

    /// Starts a flow: remembers `pending` under a fresh state and returns the
    /// URL to send the user to.
    pub async fn start(&self, pending: PendingConnect) -> Result<String, ConnectError> {
        self.start_at(pending, &self.public_url).await
    }

    async fn start_at(&self, pending: PendingConnect, base: &str) -> Result<String, ConnectError> {
        self.check_tenant(&pending.tenant).await?;
        let app = self.app_at(pending.provider, base).await?;
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
        self.callback_at(provider, code, state, realm_id, &self.public_url)
            .await
    }

    async fn callback_at(
        &self,
        provider: Provider,
        code: &str,
        state: &str,
        realm_id: Option<&str>,
        base: &str,
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
        let app = self.app_at(provider, base).await?;
        let (token, merchant) = app.exchange_code_with_extras(&self.http, code).await?;
        let accounts: Vec<String> = match provider {
            Provider::QuickBooks => vec![realm.unwrap_or_default().to_string()],
            Provider::Xero => self.xero_tenants(&token).await?,
            Provider::Square => vec![merchant.ok_or_else(|| {
                ConnectError::BadRequest("Square's token answer named no merchant_id".into())
            })?],
            p => return Err(ConnectError::Unsupported(p)),
        };
        let ids = accounts
            .iter()
            .enumerate()
            .map(|(i, _)| {
                if i == 0 {
                    Ok(pending.connection.clone())
                } else {
                    ConnectionId::new(format!("{}-{}", pending.connection, i + 1))
                        .map_err(|e| ConnectError::BadRequest(e.to_string()))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Nothing is stored unless every connection may take its account.
        for (id, account) in ids.iter().zip(&accounts) {
            if let Some(existing) = self.stores.connections.get(&pending.tenant, id).await?
                && (existing.provider != provider || existing.account_id.as_str() != account)
                && !pending.replace
            {
                return Err(ConnectError::Conflict(format!(
                    "connection {}/{id} is linked to {} account {}; this authorization is for \
                     {provider} account {account}. Nothing was changed: to switch it, issue the \
                     link with --replace",
                    pending.tenant, existing.provider, existing.account_id
                )));
            }
        }
        let mut out = Vec::new();
        for (id, account) in ids.into_iter().zip(&accounts) {
            let secret = Connection::default_secret(&pending.tenant, &id)
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
                currency: None,
                // A new books connection posts daily summaries.
                books: if provider.is_accounting() {
                    crate::model::journal::DestinationBooks::new_connection()
                } else {
                    Default::default()
                },
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
            ConnectError::Unauthorized(_) => 401,
            ConnectError::Conflict(_) => 409,
            ConnectError::Provider(p) if p.is_retryable() => 503,
            ConnectError::Provider(_) => 502,
            ConnectError::Store(_) => 503,
        };
        tracing::warn!(status, error = %e, "connect flow refused");
        ConnectResponse::json(status, serde_json::json!({ "error": e.to_string() }))
    }
}

impl ConnectService {
    /// Serves `GET /connect/{provider}` (start, with a signed link) and `GET
    /// /connect/{provider}/callback`. `rest` is the path after `/connect/`;
    /// `query` the raw query string; `request_base` the base URL the request
    /// came to (`https://<Host>`), used when no public URL is configured.
    pub async fn handle(
        &self,
        method: &str,
        rest: &str,
        query: &str,
        request_base: Option<&str>,
    ) -> ConnectResponse {
        let base = if self.public_url.is_empty() {
            request_base.unwrap_or_default().trim_end_matches('/')
        } else {
            self.public_url.as_str()
        };
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
                let connected = self.callback_at(provider, code, state, get("realmId"), base).await?;
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
                    replace: match get("replace") {
                        None | Some("false") => false,
                        Some("true") => true,
                        Some(v) => return Err(ConnectError::BadRequest(format!("replace: expected true or false, not {v:?}"))),
                    },
                };
                if !matches!(provider, Provider::QuickBooks | Provider::Xero | Provider::Square) {
                    return Err(ConnectError::Unsupported(provider));
                }
                self.check_link(&pending, get("expires"), get("nonce"), get("sig")).await?;
                let url = self.start_at(pending, base).await?;
                Ok(ConnectResponse { status: 302, location: Some(url), body: String::new() })
            }
        }
        .await;
        result.unwrap_or_else(Into::into)
    }
}
