//! Square: ListPayments (cursor paging, at most 100 a page) and inventory
//! counts batch-retrieve (cursor), bearer tokens from OAuth or a personal
//! access token. Square publishes no rate limits; a 429 (`RATE_LIMITED`) is
//! waited out like any other (providers.md §2.2–2.3).

use super::auth::{Credentials, OAuthApp, Renewer, StoredToken, TokenManager};
use super::http::{Idempotence, ProviderError, ProviderHttp, ProviderMessage, RateScope};
use super::{bearer, with_token};
use crate::ids::{ProviderAccountId, SecretName};
use crate::model::Provider;
use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::Value;

/// The `Square-Version` the hub is written against.
pub const SQUARE_VERSION: &str = "2025-10-16";

/// Square's `{"errors":[{"category","code","detail","field"}]}`.
pub fn errors(body: &[u8]) -> Vec<ProviderMessage> {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    v["errors"]
        .as_array()
        .map(|errs| {
            errs.iter()
                .map(|e| ProviderMessage {
                    code: e["code"].as_str().map(str::to_string),
                    message: match (e["detail"].as_str(), e["field"].as_str()) {
                        (Some(d), Some(f)) => format!("{d} (field {f})"),
                        (Some(d), None) => d.to_string(),
                        (None, _) => e["category"].as_str().unwrap_or("error").to_string(),
                    },
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How a Square connection authenticates.
#[derive(Debug, Clone)]
pub enum SquareAuth {
    /// OAuth: refreshed through the app.
    OAuth(OAuthApp),
    /// A personal access token in `login.access_token` (single-account use).
    Personal,
}

#[async_trait]
impl Renewer for SquareAuth {
    async fn renew(
        &self,
        http: &ProviderHttp,
        creds: &Credentials,
        name: &SecretName,
    ) -> Result<StoredToken, ProviderError> {
        match self {
            SquareAuth::OAuth(app) => app.renew(http, creds, name).await,
            SquareAuth::Personal => {
                let token = creds.login("access_token", name)?;
                Ok(StoredToken {
                    access_token: secrecy::ExposeSecret::expose_secret(&token).to_string(),
                    refresh_token: None,
                    // Personal tokens do not expire; re-read daily.
                    expires_at: Timestamp::now() + jiff::SignedDuration::from_hours(24),
                    refresh_expires_at: None,
                })
            }
        }
    }
}

/// A page of results and the cursor to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The items.
    pub items: Vec<Value>,
    /// `None` on the last page.
    pub cursor: Option<String>,
}

/// A client for one merchant.
#[derive(Debug, Clone)]
pub struct SquareClient {
    http: ProviderHttp,
    tokens: TokenManager,
    base_url: String,
    secret: SecretName,
    auth: SquareAuth,
    scope: RateScope,
}

impl SquareClient {
    /// A client for `merchant`.
    pub fn new(
        http: ProviderHttp,
        tokens: TokenManager,
        base_url: &str,
        merchant: &ProviderAccountId,
        secret: SecretName,
        auth: SquareAuth,
    ) -> Self {
        SquareClient {
            scope: RateScope::new(Provider::Square, merchant.as_str(), Vec::new(), None),
            http,
            tokens,
            base_url: base_url.trim_end_matches('/').to_string(),
            secret,
            auth,
        }
    }

    async fn call(
        &self,
        endpoint: &'static str,
        build: impl Fn(&reqwest::Client, String) -> reqwest::RequestBuilder,
    ) -> Result<Value, ProviderError> {
        with_token(&self.tokens, &self.secret, &self.auth, |token| {
            let build = &build;
            async move {
                self.http
                    .send(&self.scope, endpoint, Idempotence::Safe, errors, || {
                        build(self.http.client(), self.base_url.clone())
                            .header("authorization", bearer(&token))
                            .header("square-version", SQUARE_VERSION)
                    })
                    .await?
                    .json()
            }
        })
        .await
    }

    /// One page of payments created in `[begin, end)`, oldest first.
    pub async fn list_payments(
        &self,
        begin: Timestamp,
        end: Timestamp,
        location: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<Page, ProviderError> {
        let mut query = vec![
            ("begin_time", begin.to_string()),
            ("end_time", end.to_string()),
            ("sort_order", "ASC".to_string()),
            ("limit", "100".to_string()),
        ];
        if let Some(l) = location {
            query.push(("location_id", l.to_string()));
        }
        if let Some(c) = cursor {
            query.push(("cursor", c.to_string()));
        }
        let v = self
            .call("square.ListPayments", |c, base| {
                c.get(format!("{base}/v2/payments")).query(&query)
            })
            .await?;
        Ok(page(&v, "payments"))
    }

    /// One page of inventory counts changed after `updated_after`.
    pub async fn batch_retrieve_inventory_counts(
        &self,
        locations: &[String],
        updated_after: Option<Timestamp>,
        cursor: Option<&str>,
    ) -> Result<Page, ProviderError> {
        let mut body = serde_json::json!({});
        if !locations.is_empty() {
            body["location_ids"] = serde_json::json!(locations);
        }
        if let Some(t) = updated_after {
            body["updated_after"] = t.to_string().into();
        }
        if let Some(c) = cursor {
            body["cursor"] = c.into();
        }
        let v = self
            .call("square.BatchRetrieveInventoryCounts", |c, base| {
                c.post(format!("{base}/v2/inventory/counts/batch-retrieve"))
                    .json(&body)
            })
            .await?;
        Ok(page(&v, "counts"))
    }
}

fn page(v: &Value, field: &str) -> Page {
    Page {
        items: v[field].as_array().cloned().unwrap_or_default(),
        cursor: v["cursor"]
            .as_str()
            .filter(|c| !c.is_empty())
            .map(str::to_string),
    }
}
