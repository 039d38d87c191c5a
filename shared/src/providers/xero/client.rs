//! Xero: BankTransactions in batches with `summarizeErrors=false` (each item
//! gets its own status and validation errors) and an `Idempotency-Key`, the
//! chart of accounts, and the connections endpoint that names the tenants a
//! token may use. Every call names its tenant in `xero-tenant-id`. Limits per
//! tenant: 60 a minute, 5,000 a day, 5 in flight (providers.md §4).

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

/// Xero's documented limits per tenant.
pub fn limits() -> Vec<Limit> {
    vec![
        Limit::new("minute", 60, Duration::from_secs(60)),
        Limit::new("day", 5_000, Duration::from_secs(86_400)),
    ]
}

/// Concurrent requests per tenant.
pub const MAX_CONCURRENT: u32 = 5;

/// Bank transactions per request: Xero recommends bundles of up to 50
/// (providers.md §4.2; a request is capped at 3.5 MB, far above 50 of these).
pub const MAX_BATCH: usize = 50;

/// Xero's `{"Type":"ValidationException","Message",...,"Elements":[{"ValidationErrors":[{"Message"}]}]}`.
pub fn errors(body: &[u8]) -> Vec<ProviderMessage> {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let mut out: Vec<ProviderMessage> = v["Elements"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| {
            e["ValidationErrors"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|e| {
            e["Message"].as_str().map(|m| ProviderMessage {
                code: None,
                message: m.to_string(),
            })
        })
        .collect();
    if out.is_empty()
        && let Some(m) = v["Message"]
            .as_str()
            .or(v["Detail"].as_str())
            .or(v["detail"].as_str())
    {
        out.push(ProviderMessage {
            code: v["Type"]
                .as_str()
                .or(v["title"].as_str())
                .map(str::to_string),
            message: m.to_string(),
        });
    }
    out
}

/// One bank transaction's result.
/// What a save writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Collection {
    /// RECEIVE and SPEND bank transactions (records stored without parts).
    BankTransactions,
    /// Manual journals: a record's parts, a line per account.
    ManualJournals,
}

impl Collection {
    /// The collection's name in paths and bodies.
    pub fn name(self) -> &'static str {
        match self {
            Collection::BankTransactions => "BankTransactions",
            Collection::ManualJournals => "ManualJournals",
        }
    }

    /// The field that holds an item's id.
    pub fn id_field(self) -> &'static str {
        match self {
            Collection::BankTransactions => "BankTransactionID",
            Collection::ManualJournals => "ManualJournalID",
        }
    }

    fn endpoint(self) -> &'static str {
        match self {
            Collection::BankTransactions => "xero.banktransactions.save",
            Collection::ManualJournals => "xero.manualjournals.save",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ItemResult {
    /// Created or updated.
    Saved {
        /// Xero's `BankTransactionID`.
        id: String,
        /// The transaction as Xero returned it.
        entity: Value,
    },
    /// Refused, with Xero's validation messages.
    Invalid(Vec<ProviderMessage>),
}

/// A client for one Xero tenant (organisation).
#[derive(Debug, Clone)]
pub struct XeroClient {
    http: ProviderHttp,
    tokens: TokenManager,
    base_url: String,
    tenant: ProviderAccountId,
    secret: SecretName,
    app: OAuthApp,
    scope: RateScope,
}

impl XeroClient {
    /// A client for `tenant` through `app`, tokens in `secret`.
    pub fn new(
        http: ProviderHttp,
        tokens: TokenManager,
        base_url: &str,
        tenant: ProviderAccountId,
        secret: SecretName,
        app: OAuthApp,
    ) -> Self {
        XeroClient {
            scope: RateScope::new(
                Provider::Xero,
                tenant.as_str(),
                limits(),
                Some(MAX_CONCURRENT),
            ),
            http,
            tokens,
            base_url: base_url.trim_end_matches('/').to_string(),
            tenant,
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

    async fn call(
        &self,
        endpoint: &'static str,
        method: reqwest::Method,
        url: String,
        query: Vec<(&str, String)>,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, ProviderError> {
        with_token(&self.tokens, &self.secret, &self.app, |token| {
            let (url, query, body, method) = (&url, &query, &body, &method);
            async move {
                self.http
                    .send(&self.scope, endpoint, Idempotence::Safe, errors, || {
                        let mut req = self
                            .http
                            .client()
                            .request(method.clone(), url)
                            .query(query)
                            .header("authorization", bearer(&token))
                            .header("xero-tenant-id", self.tenant.as_str())
                            .header("accept", "application/json");
                        if let Some(k) = idempotency_key {
                            req = req.header("idempotency-key", k);
                        }
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
    }

    /// The chart of accounts.
    pub async fn accounts(&self) -> Result<Vec<Value>, ProviderError> {
        let v = self
            .call(
                "xero.accounts",
                reqwest::Method::GET,
                format!("{}/api.xro/2.0/Accounts", self.base_url),
                Vec::new(),
                None,
                None,
            )
            .await?;
        Ok(v["Accounts"].as_array().cloned().unwrap_or_default())
    }

    /// The organisation's lock: the later of `PeriodLockDate` and
    /// `EndOfYearLockDate` (`GET /Organisation`; each "shown if set").
    /// Nothing dated on or before it may be written.
    pub async fn lock_date(&self) -> Result<Option<jiff::civil::Date>, ProviderError> {
        let v = self
            .call(
                "xero.organisation",
                reqwest::Method::GET,
                format!("{}/api.xro/2.0/Organisation", self.base_url),
                Vec::new(),
                None,
                None,
            )
            .await?;
        let org = &v["Organisations"][0];
        let mut lock = None;
        for field in ["PeriodLockDate", "EndOfYearLockDate"] {
            if let Some(raw) = org[field].as_str().filter(|s| !s.is_empty()) {
                let d = xero_date(raw).ok_or_else(|| {
                    ProviderError::Permanent(format!("{field} {raw:?} is not a date"))
                })?;
                lock = lock.max(Some(d));
            }
        }
        Ok(lock)
    }

    /// Creates or updates (`POST`, Xero's update-or-create; `PUT` only ever
    /// creates) the items of `collection` (`BankTransactions`,
    /// `ManualJournals`) with `summarizeErrors=false`, so each item has its
    /// own result, under `idempotency_key`. An item that carries its id
    /// (`BankTransactionID`, `ManualJournalID`) is updated in place.
    pub async fn save(
        &self,
        collection: Collection,
        items: &[Value],
        idempotency_key: &str,
    ) -> Result<Vec<ItemResult>, ProviderError> {
        let name = collection.name();
        let v = self
            .call(
                collection.endpoint(),
                reqwest::Method::POST,
                format!("{}/api.xro/2.0/{name}", self.base_url),
                vec![("summarizeErrors", "false".to_string())],
                Some(json!({ name: items })),
                Some(idempotency_key),
            )
            .await?;
        let answers = v[name].as_array().cloned().unwrap_or_default();
        if answers.len() != items.len() {
            return Err(ProviderError::Permanent(format!(
                "Xero answered {} results for {} {name}",
                answers.len(),
                items.len()
            )));
        }
        Ok(answers
            .into_iter()
            .map(|item| {
                let errs: Vec<ProviderMessage> = item["ValidationErrors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| {
                        e["Message"].as_str().map(|m| ProviderMessage {
                            code: None,
                            message: m.to_string(),
                        })
                    })
                    .collect();
                if item["StatusAttributeString"].as_str() == Some("ERROR") || !errs.is_empty() {
                    ItemResult::Invalid(errs)
                } else {
                    ItemResult::Saved {
                        id: item[collection.id_field()]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        entity: item,
                    }
                }
            })
            .collect())
    }

    /// The tenants this connection's token may use (`GET /connections`).
    pub async fn connections(&self) -> Result<Vec<Value>, ProviderError> {
        let v = self
            .call(
                "xero.connections",
                reqwest::Method::GET,
                format!("{}/connections", self.base_url),
                Vec::new(),
                None,
                None,
            )
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }
}

/// A Xero date field: `/Date(<ms since the epoch>[+0000])/` (the
/// definition's `x-is-msdate`) or `YYYY-MM-DD[T...]`.
pub fn xero_date(raw: &str) -> Option<jiff::civil::Date> {
    if let Some(inner) = raw
        .strip_prefix("/Date(")
        .and_then(|r| r.strip_suffix(")/"))
    {
        let ms: String = inner
            .chars()
            .enumerate()
            .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && *c == '-'))
            .map(|(_, c)| c)
            .collect();
        let ts = jiff::Timestamp::from_millisecond(ms.parse().ok()?).ok()?;
        return Some(ts.to_zoned_datetime(jiff::tz::TimeZone::UTC).date());
    }
    raw.get(..10)?.parse().ok()
}

#[cfg(test)]
mod date_tests {
    use super::xero_date;

    #[test]
    fn xero_dates_read_in_both_forms() {
        let d: jiff::civil::Date = "2025-06-02".parse().unwrap();
        assert_eq!(xero_date("/Date(1748822400000+0000)/"), Some(d));
        assert_eq!(xero_date("/Date(1748822400000)/"), Some(d));
        assert_eq!(xero_date("2025-06-02T00:00:00"), Some(d));
        assert_eq!(xero_date("2025-06-02"), Some(d));
        assert_eq!(xero_date("soon"), None);
    }
}
