//! QuickBooks Online: query (with STARTPOSITION/MAXRESULTS paging), create
//! with `requestid` (Intuit replays the first answer for a repeated id), read,
//! sparse update with SyncToken (a stale one is a `Conflict`), batch, and the
//! chart of accounts. 500 requests a minute and 10 in flight per realm, and
//! of those at most 40 batches a minute (providers.md §3.2).

use crate::ids::{ProviderAccountId, SecretName};
use crate::model::Provider;
use crate::ports::Limit;
use crate::providers::auth::{OAuthApp, TokenManager};
use crate::providers::http::{
    Idempotence, ProviderError, ProviderHttp, ProviderMessage, RateScope,
};
use crate::providers::{bearer, with_token};
use serde_json::{Value, json};
use std::time::Duration;

/// The API minor version the hub is written against.
pub const MINOR_VERSION: &str = "75";
/// Items per batch request. The sources disagree (10, 30 or 50); 10 is what
/// every one of them allows (providers.md §3.2).
pub const MAX_BATCH: usize = 10;

/// Batch requests a minute per realm (they also count against the 500).
pub fn batch_limits() -> Vec<Limit> {
    vec![Limit::new("batch", 40, Duration::from_secs(60))]
}
/// Rows per query page.
pub const QUERY_PAGE: u32 = 1000;

/// Intuit's documented limits per realm.
pub fn limits() -> Vec<Limit> {
    vec![Limit::new("minute", 500, Duration::from_secs(60))]
}

/// Concurrent requests per realm.
pub const MAX_CONCURRENT: u32 = 10;

/// `{"Fault":{"Error":[{"Message","Detail","code"}],"type"}}`.
pub fn errors(body: &[u8]) -> Vec<ProviderMessage> {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let fault = if v["Fault"].is_object() {
        &v["Fault"]
    } else {
        &v["fault"]
    };
    let list = fault["Error"]
        .as_array()
        .or_else(|| fault["error"].as_array());
    list.map(|errs| {
        errs.iter()
            .map(|e| ProviderMessage {
                code: e["code"].as_str().map(str::to_string),
                message: match (
                    e["Message"].as_str().or(e["message"].as_str()),
                    e["Detail"].as_str().or(e["detail"].as_str()),
                ) {
                    (Some(m), Some(d)) => format!("{m}: {d}"),
                    (Some(m), None) => m.to_string(),
                    (None, Some(d)) => d.to_string(),
                    (None, None) => "error".to_string(),
                },
            })
            .collect()
    })
    .unwrap_or_default()
}

/// A created or updated entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    /// Its QuickBooks id.
    pub id: String,
    /// Its SyncToken now.
    pub sync_token: String,
    /// The whole entity as QuickBooks returned it.
    pub entity: Value,
}

/// One item's result in a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchResult {
    /// Saved.
    Saved(Saved),
    /// Refused, with QuickBooks' messages.
    Failed(ProviderError),
}

/// A client for one realm (company).
#[derive(Debug, Clone)]
pub struct QuickBooksClient {
    http: ProviderHttp,
    tokens: TokenManager,
    base_url: String,
    realm: ProviderAccountId,
    secret: SecretName,
    app: OAuthApp,
    scope: RateScope,
}

fn saved(entity_name: &str, v: &Value) -> Result<Saved, ProviderError> {
    let e = &v[entity_name];
    match (e["Id"].as_str(), e["SyncToken"].as_str()) {
        (Some(id), Some(token)) => Ok(Saved {
            id: id.to_string(),
            sync_token: token.to_string(),
            entity: e.clone(),
        }),
        _ => Err(ProviderError::Permanent(format!(
            "QuickBooks answered no {entity_name}.Id/SyncToken"
        ))),
    }
}

/// A stale SyncToken (fault code 5010) is a conflict, not a validation error.
fn stale_to_conflict(e: ProviderError) -> ProviderError {
    match e {
        ProviderError::Validation(m) if m.iter().any(|m| m.code.as_deref() == Some("5010")) => {
            ProviderError::Conflict(m)
        }
        e => e,
    }
}

impl QuickBooksClient {
    /// A client for `realm` through `app`, tokens in `secret`.
    pub fn new(
        http: ProviderHttp,
        tokens: TokenManager,
        base_url: &str,
        realm: ProviderAccountId,
        secret: SecretName,
        app: OAuthApp,
    ) -> Self {
        QuickBooksClient {
            scope: RateScope::new(
                Provider::QuickBooks,
                realm.as_str(),
                limits(),
                Some(MAX_CONCURRENT),
            ),
            http,
            tokens,
            base_url: base_url.trim_end_matches('/').to_string(),
            realm,
            secret,
            app,
        }
    }

    /// Overrides the rate limits and concurrency (tests).
    pub fn with_limits(mut self, limits: Vec<Limit>, max_concurrent: Option<u32>) -> Self {
        self.scope.limits = limits;
        self.scope.max_concurrent = max_concurrent;
        self
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v3/company/{}/{path}", self.base_url, self.realm)
    }

    async fn call(
        &self,
        endpoint: &'static str,
        method: reqwest::Method,
        path: &str,
        query: Vec<(&str, String)>,
        body: Option<Value>,
    ) -> Result<Value, ProviderError> {
        let url = self.url(path);
        let mut query = query;
        query.push(("minorversion", MINOR_VERSION.to_string()));
        with_token(&self.tokens, &self.secret, &self.app, |token| {
            let (url, query, body, method) = (&url, &query, &body, &method);
            async move {
                // Reads and requestid-carrying writes are safe to repeat.
                self.http
                    .send(&self.scope, endpoint, Idempotence::Safe, errors, || {
                        let mut req = self
                            .http
                            .client()
                            .request(method.clone(), url)
                            .query(query)
                            .header("authorization", bearer(&token))
                            .header("accept", "application/json");
                        if let Some(b) = body {
                            req = req.json(b);
                        }
                        req
                    })
                    .await?
                    .json()
            }
        })
        .await
        .map_err(stale_to_conflict)
    }

    /// Runs a query, page by page, returning every row of `entity`.
    pub async fn query_all(&self, entity: &str, select: &str) -> Result<Vec<Value>, ProviderError> {
        let mut out = Vec::new();
        let mut start = 1;
        loop {
            let q = format!("{select} STARTPOSITION {start} MAXRESULTS {QUERY_PAGE}");
            let v = self
                .call(
                    "quickbooks.query",
                    reqwest::Method::GET,
                    "query",
                    vec![("query", q)],
                    None,
                )
                .await?;
            let rows = v["QueryResponse"][entity]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let n = rows.len();
            out.extend(rows);
            if n < QUERY_PAGE as usize {
                return Ok(out);
            }
            start += QUERY_PAGE;
        }
    }

    /// The chart of accounts.
    pub async fn accounts(&self) -> Result<Vec<Value>, ProviderError> {
        self.query_all("Account", "select * from Account").await
    }

    /// The company's closing date (`GET preferences`:
    /// `AccountingInfoPrefs.BookCloseDate`): nothing dated on or before it
    /// may be written. `None` when the books are not closed.
    pub async fn book_close_date(&self) -> Result<Option<jiff::civil::Date>, ProviderError> {
        let v = self
            .call(
                "quickbooks.preferences",
                reqwest::Method::GET,
                "preferences",
                Vec::new(),
                None,
            )
            .await?;
        match v["Preferences"]["AccountingInfoPrefs"]["BookCloseDate"].as_str() {
            None | Some("") => Ok(None),
            Some(d) => d
                .get(..10)
                .and_then(|d| d.parse().ok())
                .map(Some)
                .ok_or_else(|| {
                    ProviderError::Permanent(format!("BookCloseDate {d:?} is not a date"))
                }),
        }
    }

    /// Creates an entity (`salesreceipt`, `purchase`) with a `requestid`, so a
    /// retry of the same request creates nothing new.
    pub async fn create(
        &self,
        entity: &str,
        body: &Value,
        request_id: &str,
    ) -> Result<Saved, ProviderError> {
        let v = self
            .call(
                "quickbooks.create",
                reqwest::Method::POST,
                &entity.to_ascii_lowercase(),
                vec![("requestid", request_id.to_string())],
                Some(body.clone()),
            )
            .await?;
        saved(entity, &v)
    }

    /// Reads an entity by id.
    pub async fn read(&self, entity: &str, id: &str) -> Result<Saved, ProviderError> {
        let v = self
            .call(
                "quickbooks.read",
                reqwest::Method::GET,
                &format!("{}/{id}", entity.to_ascii_lowercase()),
                Vec::new(),
                None,
            )
            .await?;
        saved(entity, &v)
    }

    /// A sparse update: only `fields` change. A stale `sync_token` is a `Conflict`.
    pub async fn sparse_update(
        &self,
        entity: &str,
        id: &str,
        sync_token: &str,
        fields: &Value,
        request_id: &str,
    ) -> Result<Saved, ProviderError> {
        let mut body = fields.clone();
        body["Id"] = id.into();
        body["SyncToken"] = sync_token.into();
        body["sparse"] = true.into();
        let v = self
            .call(
                "quickbooks.update",
                reqwest::Method::POST,
                &entity.to_ascii_lowercase(),
                vec![("requestid", request_id.to_string())],
                Some(body),
            )
            .await?;
        saved(entity, &v)
    }

    /// Takes one batch request from the realm's 40 a minute if one is left
    /// now (`false`: spent; send singly instead, or wait).
    pub async fn try_batch_budget(&self) -> Result<bool, ProviderError> {
        self.http.try_budget(&self.scope, &batch_limits()).await
    }

    /// Waits for one batch request from the realm's 40 a minute.
    pub async fn wait_batch_budget(&self) -> Result<(), ProviderError> {
        self.http.wait_budget(&self.scope, &batch_limits()).await
    }

    /// Up to [`MAX_BATCH`] creates in one request, each with its own result.
    /// The caller takes the batch budget first ([`Self::try_batch_budget`]).
    /// `items`: (batch id, entity name, body).
    pub async fn batch_create(
        &self,
        items: &[(String, String, Value)],
        request_id: &str,
    ) -> Result<Vec<(String, BatchResult)>, ProviderError> {
        if items.len() > MAX_BATCH {
            return Err(ProviderError::Validation(vec![ProviderMessage {
                code: None,
                message: format!(
                    "{} items in one batch; QuickBooks takes at most {MAX_BATCH}",
                    items.len()
                ),
            }]));
        }
        let req: Vec<Value> = items
            .iter()
            .map(|(bid, entity, body)| json!({"bId": bid, "operation": "create", entity.as_str(): body}))
            .collect();
        let v = self
            .call(
                "quickbooks.batch",
                reqwest::Method::POST,
                "batch",
                vec![("requestid", request_id.to_string())],
                Some(json!({"BatchItemRequest": req})),
            )
            .await?;
        let responses = v["BatchItemResponse"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(items
            .iter()
            .map(|(bid, entity, _)| {
                let r = responses.iter().find(|r| r["bId"].as_str() == Some(bid));
                let result = match r {
                    Some(r) if r["Fault"].is_object() => BatchResult::Failed(stale_to_conflict(
                        ProviderError::Validation(errors(r.to_string().as_bytes())),
                    )),
                    Some(r) => {
                        saved(entity, r).map_or_else(BatchResult::Failed, BatchResult::Saved)
                    }
                    None => BatchResult::Failed(ProviderError::Transient(format!(
                        "batch answered nothing for {bid}"
                    ))),
                };
                (bid.clone(), result)
            })
            .collect())
    }
}
