//! The time-tracking system the hub sends shifts to: a generic REST API
//! (`POST /api/timeentries`, `PUT /api/timeentries/{id}`), base URL and bearer
//! token from the connection's configuration and secret (`login.api_token`).

use crate::ids::SecretName;
use crate::ports::SecretStore;
use crate::providers::http::{
    Idempotence, ProviderError, ProviderHttp, ProviderMessage, RateScope,
};
use secrecy::ExposeSecret;
use serde_json::Value;
use std::sync::Arc;

/// `{"error": "..."}` or `{"message": "..."}` or `{"errors": {...}}`.
pub fn errors(body: &[u8]) -> Vec<ProviderMessage> {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    v["error"]
        .as_str()
        .or(v["message"].as_str())
        .map(|m| {
            vec![ProviderMessage {
                code: None,
                message: m.to_string(),
            }]
        })
        .unwrap_or_else(|| match v["errors"].as_object() {
            Some(map) => map
                .iter()
                .map(|(k, e)| ProviderMessage {
                    code: Some(k.clone()),
                    message: e.to_string(),
                })
                .collect(),
            None => Vec::new(),
        })
}

/// A client for one time-tracking account.
#[derive(Debug, Clone)]
pub struct TimeTrackingClient {
    http: ProviderHttp,
    secrets: Arc<dyn SecretStore>,
    base_url: String,
    secret: SecretName,
    scope: RateScope,
}

impl TimeTrackingClient {
    /// A client for the API at `base_url`, token in `secret`.
    pub fn new(
        http: ProviderHttp,
        secrets: Arc<dyn SecretStore>,
        base_url: &str,
        secret: SecretName,
    ) -> Self {
        TimeTrackingClient {
            scope: RateScope {
                key: format!("timetracking:{}", secret),
                limits: Vec::new(),
                max_concurrent: None,
            },
            http,
            secrets,
            base_url: base_url.trim_end_matches('/').to_string(),
            secret,
        }
    }

    async fn token(&self) -> Result<secrecy::SecretString, ProviderError> {
        let raw =
            self.secrets.get(&self.secret).await.map_err(|e| {
                ProviderError::Unauthorized(format!("time-tracking credentials: {e}"))
            })?;
        crate::providers::auth::Credentials::parse(&raw, &self.secret)?
            .login("api_token", &self.secret)
    }

    /// Creates an entry; returns the system's answer (with its id). With an
    /// idempotency key a retry replays the first answer instead of creating twice.
    pub async fn create(
        &self,
        entry: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Value, ProviderError> {
        let token = self.token().await?;
        let url = format!("{}/api/timeentries", self.base_url);
        let idempotence = if idempotency_key.is_some() {
            Idempotence::Safe
        } else {
            Idempotence::Unsafe
        };
        self.http
            .send(
                &self.scope,
                "timetracking.create",
                idempotence,
                errors,
                || {
                    let req = self
                        .http
                        .client()
                        .post(&url)
                        .bearer_auth(token.expose_secret())
                        .json(entry);
                    match idempotency_key {
                        Some(k) => req.header("idempotency-key", k),
                        None => req,
                    }
                },
            )
            .await?
            .json()
    }

    /// Replaces entry `id`.
    pub async fn update(&self, id: &str, entry: &Value) -> Result<Value, ProviderError> {
        let token = self.token().await?;
        let url = format!("{}/api/timeentries/{id}", self.base_url);
        self.http
            .send(
                &self.scope,
                "timetracking.update",
                Idempotence::Safe,
                errors,
                || {
                    self.http
                        .client()
                        .put(&url)
                        .bearer_auth(token.expose_secret())
                        .json(entry)
                },
            )
            .await?
            .json()
    }
}
