//! Credentials and access tokens, shared by every invocation.
//!
//! A connection's secret holds its [`Credentials`]: login material (Toast
//! client id/secret, MarketMan API key/password), and the current token
//! (access token, refresh token, expiries). Getting an access token reads the
//! secret; if the token is (about to be) expired, it is renewed **once across
//! all invocations**: the renewer takes a lease in the idempotency store,
//! re-reads the secret (someone may have renewed it meanwhile), renews, and
//! writes the new token — with the newest refresh token — as a new secret
//! version before releasing the lease. Everyone else waits for that version.
//! This is what keeps a rotated refresh token from being lost to a race.

use super::http::{
    ErrorParser, Idempotence, ProviderError, ProviderHttp, ProviderMessage, RateScope,
};
use crate::ids::{IdempotencyKey, SecretName};
use crate::model::Provider;
use crate::ports::{ClaimOutcome, IdempotencyStore, SecretStore};
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An access token and what renews it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    /// The bearer token.
    pub access_token: String,
    /// The refresh token, for OAuth connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token stops working.
    pub expires_at: Timestamp,
    /// When the refresh token stops working, where the provider says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_expires_at: Option<Timestamp>,
}

impl std::fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredToken")
            .field("access_token", &"[REDACTED]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("expires_at", &self.expires_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .finish()
    }
}

/// What a connection's secret holds.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The current token, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<StoredToken>,
    /// Login material: `client_id`/`client_secret` (Toast), `api_key`/
    /// `api_password` (MarketMan), `access_token` (a Square personal token).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub login: BTreeMap<String, String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.token)
            .field("login", &self.login.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    /// Reads the JSON a secret holds.
    pub fn parse(secret: &SecretString, name: &SecretName) -> Result<Self, ProviderError> {
        serde_json::from_str(secret.expose_secret()).map_err(|e| {
            // serde names a position, never the secret's contents.
            ProviderError::Unauthorized(format!(
                "credentials in secret {name} are not valid JSON: {e}"
            ))
        })
    }

    /// The JSON to store.
    pub fn to_secret(&self) -> SecretString {
        serde_json::to_string(self).unwrap_or_default().into()
    }

    /// A login value, or an error naming the missing field.
    pub fn login(&self, field: &str, name: &SecretName) -> Result<SecretString, ProviderError> {
        self.login
            .get(field)
            .filter(|v| !v.is_empty())
            .map(|v| SecretString::from(v.clone()))
            .ok_or_else(|| {
                ProviderError::Unauthorized(format!("secret {name} has no login.{field}"))
            })
    }
}

/// Renews a connection's token: an OAuth refresh, a Toast login, a MarketMan
/// `GetToken`.
#[async_trait]
pub trait Renewer: Send + Sync + std::fmt::Debug {
    /// A new token from the current credentials.
    async fn renew(
        &self,
        http: &ProviderHttp,
        creds: &Credentials,
        name: &SecretName,
    ) -> Result<StoredToken, ProviderError>;
}

/// Hands out access tokens, renewing them single-flight.
#[derive(Debug, Clone)]
pub struct TokenManager {
    http: ProviderHttp,
    secrets: Arc<dyn SecretStore>,
    locks: Arc<dyn IdempotencyStore>,
    /// Renew this long before expiry.
    pub skew: Duration,
    /// How long a renewer holds the lease.
    pub lease: Duration,
    /// How long a caller waits for someone else's renewal.
    pub max_wait: Duration,
}

/// The result of one look at the secret.
enum Look {
    Usable(SecretString),
    Stale(Credentials),
}

impl TokenManager {
    /// A manager over the hub's secrets, using the idempotency store for leases.
    pub fn new(
        http: ProviderHttp,
        secrets: Arc<dyn SecretStore>,
        locks: Arc<dyn IdempotencyStore>,
    ) -> Self {
        TokenManager {
            http,
            secrets,
            locks,
            skew: Duration::from_secs(60),
            lease: Duration::from_secs(30),
            max_wait: Duration::from_secs(30),
        }
    }

    /// The secret store it reads and writes.
    pub fn secrets(&self) -> &Arc<dyn SecretStore> {
        &self.secrets
    }

    async fn look(
        &self,
        name: &SecretName,
        fresh: bool,
        rejected: Option<&str>,
    ) -> Result<Look, ProviderError> {
        if fresh {
            self.secrets.invalidate(name).await;
        }
        let raw = self.secrets.get(name).await.map_err(|e| match e {
            crate::ports::StoreError::NotFound(_) => {
                ProviderError::Unauthorized(format!("no credentials: secret {name} does not exist"))
            }
            e => ProviderError::Transient(format!("reading secret {name}: {e}")),
        })?;
        let creds = Credentials::parse(&raw, name)?;
        let skew = SignedDuration::try_from(self.skew).unwrap_or(SignedDuration::ZERO);
        if let Some(t) = &creds.token
            && t.expires_at > Timestamp::now() + skew
            && rejected != Some(t.access_token.as_str())
        {
            return Ok(Look::Usable(SecretString::from(t.access_token.clone())));
        }
        Ok(Look::Stale(creds))
    }

    /// A usable access token for the connection whose secret is `name`.
    pub async fn access_token(
        &self,
        name: &SecretName,
        renewer: &dyn Renewer,
    ) -> Result<SecretString, ProviderError> {
        self.get(name, renewer, None).await
    }

    /// A new access token after the provider refused `rejected` (401): renews
    /// unless someone already has.
    pub async fn after_rejection(
        &self,
        name: &SecretName,
        renewer: &dyn Renewer,
        rejected: &SecretString,
    ) -> Result<SecretString, ProviderError> {
        self.get(name, renewer, Some(rejected.expose_secret()))
            .await
    }

    async fn get(
        &self,
        name: &SecretName,
        renewer: &dyn Renewer,
        rejected: Option<&str>,
    ) -> Result<SecretString, ProviderError> {
        if let Look::Usable(t) = self.look(name, false, rejected).await? {
            return Ok(t);
        }
        let lock = IdempotencyKey::new(format!("token-renewal:{name}"))
            .map_err(|e| ProviderError::Permanent(e.to_string()))?;
        let started = Instant::now();
        loop {
            if let Look::Usable(t) = self.look(name, true, rejected).await? {
                return Ok(t);
            }
            let lease_until = Timestamp::now()
                + SignedDuration::try_from(self.lease).unwrap_or(SignedDuration::MAX);
            let claim = self
                .locks
                .claim(&lock, lease_until)
                .await
                .map_err(|e| ProviderError::Transient(format!("token renewal lease: {e}")))?;
            match claim {
                ClaimOutcome::Claimed(token) => {
                    let result = self.renew_holding_lease(name, renewer, rejected).await;
                    if let Err(e) = self.locks.release(&lock, &token).await {
                        tracing::warn!(secret = %name, error = %e, "could not release the token renewal lease");
                    }
                    return result;
                }
                ClaimOutcome::InProgress { .. } | ClaimOutcome::Done { .. } => {
                    if started.elapsed() > self.max_wait {
                        return Err(ProviderError::Transient(format!(
                            "waited {:?} for another worker to renew the token in {name}",
                            self.max_wait
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(50 + rand::random_range(0..50))).await;
                }
            }
        }
    }

    async fn renew_holding_lease(
        &self,
        name: &SecretName,
        renewer: &dyn Renewer,
        rejected: Option<&str>,
    ) -> Result<SecretString, ProviderError> {
        // Someone may have renewed between our last look and the lease.
        let creds = match self.look(name, true, rejected).await? {
            Look::Usable(t) => return Ok(t),
            Look::Stale(c) => c,
        };
        let token = renewer.renew(&self.http, &creds, name).await?;
        let mut updated = creds.clone();
        let mut token = token;
        if token.refresh_token.is_none() {
            // Providers that do not rotate keep the refresh token we had.
            token.refresh_token = creds.token.as_ref().and_then(|t| t.refresh_token.clone());
        }
        let access = SecretString::from(token.access_token.clone());
        updated.token = Some(token);
        self.secrets
            .put(name, &updated.to_secret())
            .await
            .map_err(|e| {
                ProviderError::Transient(format!("storing the renewed token in {name}: {e}"))
            })?;
        tracing::info!(secret = %name, "access token renewed");
        Ok(access)
    }
}

/// How a token endpoint wants the client's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Form body, client id and secret in HTTP Basic (QuickBooks, Xero).
    BasicForm,
    /// JSON body carrying client id and secret (Square `ObtainToken`).
    JsonBody,
}

/// An OAuth 2.0 application registered with a provider.
#[derive(Clone)]
pub struct OAuthApp {
    /// Which provider.
    pub provider: Provider,
    /// Where users authorize.
    pub authorize_url: String,
    /// Where codes and refresh tokens are exchanged.
    pub token_url: String,
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: SecretString,
    /// Where the provider sends users back.
    pub redirect_uri: String,
    /// Scopes to ask for.
    pub scopes: Vec<String>,
    /// How the token endpoint authenticates the app.
    pub client_auth: ClientAuth,
}

impl std::fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthApp")
            .field("provider", &self.provider)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

/// A token endpoint's answer (RFC 6749 §5.1, plus Intuit's and Square's extras).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
    /// Square: an RFC 3339 expiry instead of `expires_in`.
    #[serde(default)]
    expires_at: Option<String>,
    /// Intuit: the refresh token's lifetime.
    #[serde(default)]
    x_refresh_token_expires_in: Option<i64>,
    /// Square: the merchant the token is for.
    #[serde(default)]
    merchant_id: Option<String>,
}

/// RFC 6749 error bodies (`{"error":"invalid_grant","error_description":...}`)
/// and Square's `{"errors":[...]}`.
pub fn oauth_errors(body: &[u8]) -> Vec<ProviderMessage> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if let Some(e) = v["error"].as_str() {
        return vec![ProviderMessage {
            code: Some(e.to_string()),
            message: v["error_description"].as_str().unwrap_or(e).to_string(),
        }];
    }
    super::http::errors_array(body)
}

impl OAuthApp {
    /// The URL to send a user to, carrying `state`.
    pub fn authorize_url(&self, state: &str) -> String {
        let mut url = url::Url::parse(&self.authorize_url).unwrap_or_else(|_| {
            url::Url::parse("https://invalid.example/").unwrap_or_else(|_| unreachable!())
        });
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("response_type", "code")
            .append_pair("scope", &self.scopes.join(" "))
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("state", state);
        url.into()
    }

    async fn token_request(
        &self,
        http: &ProviderHttp,
        params: &[(&str, &str)],
        endpoint: &str,
    ) -> Result<StoredToken, ProviderError> {
        self.token_request_with_extras(http, params, endpoint)
            .await
            .map(|(t, _)| t)
    }

    async fn token_request_with_extras(
        &self,
        http: &ProviderHttp,
        params: &[(&str, &str)],
        endpoint: &str,
    ) -> Result<(StoredToken, Option<String>), ProviderError> {
        let scope = RateScope::new(
            self.provider,
            &format!("oauth:{}", self.client_id),
            Vec::new(),
            None,
        );
        let errors: ErrorParser = oauth_errors;
        let reply = http
            .send(&scope, endpoint, Idempotence::Unsafe, errors, || {
                let req = http.client().post(&self.token_url).header("accept", "application/json");
                match self.client_auth {
                    ClientAuth::BasicForm => req
                        .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
                        .form(params),
                    ClientAuth::JsonBody => {
                        let mut body: serde_json::Map<String, serde_json::Value> =
                            params.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect();
                        body.insert("client_id".into(), self.client_id.clone().into());
                        body.insert("client_secret".into(), self.client_secret.expose_secret().into());
                        req.json(&body)
                    }
                }
            })
            .await
            .map_err(|e| match e {
                ProviderError::Validation(m) if m.iter().any(|m| m.code.as_deref() == Some("invalid_grant")) => {
                    ProviderError::Unauthorized(format!(
                        "the {} refresh token or code was refused (invalid_grant): the connection must be authorized again",
                        self.provider
                    ))
                }
                e => e,
            })?;
        let t: TokenResponse = reply.json()?;
        let now = Timestamp::now();
        let expires_at = match (t.expires_in, t.expires_at.as_deref()) {
            (Some(secs), _) => now + SignedDuration::from_secs(secs),
            (None, Some(at)) => at
                .parse()
                .map_err(|e| ProviderError::Permanent(format!("token expires_at {at:?}: {e}")))?,
            (None, None) => now + SignedDuration::from_hours(1),
        };
        Ok((
            StoredToken {
                access_token: t.access_token,
                refresh_token: t.refresh_token,
                expires_at,
                refresh_expires_at: t
                    .x_refresh_token_expires_in
                    .map(|s| now + SignedDuration::from_secs(s)),
            },
            t.merchant_id,
        ))
    }

    /// Exchanges an authorization code for the first token.
    pub async fn exchange_code(
        &self,
        http: &ProviderHttp,
        code: &str,
    ) -> Result<StoredToken, ProviderError> {
        self.exchange_code_with_extras(http, code)
            .await
            .map(|(t, _)| t)
    }

    /// Exchanges an authorization code; also returns Square's `merchant_id`.
    pub async fn exchange_code_with_extras(
        &self,
        http: &ProviderHttp,
        code: &str,
    ) -> Result<(StoredToken, Option<String>), ProviderError> {
        self.token_request_with_extras(
            http,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect_uri),
            ],
            "oauth.code",
        )
        .await
    }
}

#[async_trait]
impl Renewer for OAuthApp {
    async fn renew(
        &self,
        http: &ProviderHttp,
        creds: &Credentials,
        name: &SecretName,
    ) -> Result<StoredToken, ProviderError> {
        let refresh = creds
            .token
            .as_ref()
            .and_then(|t| t.refresh_token.clone())
            .ok_or_else(|| {
                ProviderError::Unauthorized(format!(
                    "secret {name} has no refresh token: authorize the connection"
                ))
            })?;
        self.token_request(
            http,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
            "oauth.refresh",
        )
        .await
    }
}
