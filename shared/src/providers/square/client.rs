//! Square: ListPayments (cursor paging, at most 100 a page, by creation or
//! by update time), ListLocations, BatchRetrieveOrders (at most 100 ids a
//! call), GetPayment, GetPaymentRefund and inventory counts batch-retrieve
//! (cursor), bearer tokens from OAuth or a personal access token. Square
//! publishes no rate limits; a 429 (`RATE_LIMITED`) is waited out like any
//! other (providers.md §2.2–2.3).
//!
//! [`SquareClient::sales_for`] gathers what the sales transform needs around
//! some payments: their orders, the orders' other payments, their refunds and
//! the refunds' return orders.

use crate::ids::{ProviderAccountId, SecretName};
use crate::model::Provider;
use crate::providers::auth::{Credentials, OAuthApp, Renewer, StoredToken, TokenManager};
use crate::providers::http::{
    Idempotence, ProviderError, ProviderHttp, ProviderMessage, RateScope,
};
use crate::providers::{bearer, with_token};
use async_trait::async_trait;
use jiff::Timestamp;
use serde_json::Value;
use std::collections::BTreeSet;

/// The `Square-Version` the hub is written against.
pub const SQUARE_VERSION: &str = "2025-10-16";

/// Square's `{"errors":[{"category","code","detail","field"}]}`.
pub fn errors(body: &[u8]) -> Vec<ProviderMessage> {
    crate::providers::http::errors_array(body)
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

    /// One page of payments *updated* in `[begin, end)`, oldest update first
    /// (`updated_at_begin_time`, `updated_at_end_time`, `sort_field`
    /// `UPDATED_AT`), so refunds, tip adjustments and captures of older
    /// payments are seen again. `begin_time` (on `created_at`, default now
    /// − 1 year) is set to a year before `begin` and `end_time` to `end`: a
    /// payment updated in the window but created more than a year before it
    /// is not listed (UNVERIFIED that Square accepts ranges over a year).
    /// `location`: `None` is the main location only.
    pub async fn list_payments_updated(
        &self,
        begin: Timestamp,
        end: Timestamp,
        location: Option<&str>,
        cursor: Option<&str>,
    ) -> Result<Page, ProviderError> {
        let created_from = begin
            .checked_sub(jiff::SignedDuration::from_hours(365 * 24))
            .unwrap_or(begin);
        let mut query = vec![
            ("begin_time", created_from.to_string()),
            ("end_time", end.to_string()),
            ("updated_at_begin_time", begin.to_string()),
            ("updated_at_end_time", end.to_string()),
            ("sort_field", "UPDATED_AT".to_string()),
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

    /// The merchant's locations (`GET /v2/locations`, not paged).
    pub async fn list_locations(&self) -> Result<Vec<Value>, ProviderError> {
        let v = self
            .call("square.ListLocations", |c, base| {
                c.get(format!("{base}/v2/locations"))
            })
            .await?;
        Ok(v["locations"].as_array().cloned().unwrap_or_default())
    }

    /// Orders by id, in calls of at most [`MAX_ORDER_IDS`]; ids Square does
    /// not know are left out (as the response omits them).
    pub async fn batch_retrieve_orders(&self, ids: &[String]) -> Result<Vec<Value>, ProviderError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_ORDER_IDS) {
            let body = serde_json::json!({ "order_ids": chunk });
            let v = self
                .call("square.BatchRetrieveOrders", |c, base| {
                    c.post(format!("{base}/v2/orders/batch-retrieve"))
                        .json(&body)
                })
                .await?;
            out.extend(v["orders"].as_array().cloned().unwrap_or_default());
        }
        Ok(out)
    }

    /// One payment (`GET /v2/payments/{id}`).
    pub async fn get_payment(&self, id: &str) -> Result<Value, ProviderError> {
        let v = self
            .call("square.GetPayment", |c, base| {
                c.get(format!("{base}/v2/payments/{}", urlencode(id)))
            })
            .await?;
        Ok(v["payment"].clone())
    }

    /// One refund (`GET /v2/refunds/{id}`).
    pub async fn get_refund(&self, id: &str) -> Result<Value, ProviderError> {
        let v = self
            .call("square.GetPaymentRefund", |c, base| {
                c.get(format!("{base}/v2/refunds/{}", urlencode(id)))
            })
            .await?;
        Ok(v["refund"].clone())
    }

    /// What the sales transform needs around `payments`
    /// (`transforms::square::sales_to_transactions`):
    /// - their orders (BatchRetrieveOrders);
    /// - every payment of those orders: the orders' `tenders[].payment_id`
    ///   not among `payments` are fetched one by one (GetPayment), so an
    ///   order split over two pages, or over a page and a webhook, still
    ///   has all its tenders (a payment Square does not find is left out,
    ///   and the order is then held by the transform);
    /// - their refunds, by the payments' `refund_ids` (GetPaymentRefund),
    ///   rather than a second ListPaymentRefunds window: a refund changes
    ///   its payment's `refunded_money` and `refund_ids`, so the payment is
    ///   listed again by update time (UNVERIFIED that Square moves the
    ///   payment's `updated_at` then), and the refund comes with the
    ///   payment it needs for its tender;
    /// - the refunds' `order_id` orders (an itemized refund's return order,
    ///   with the returned tax and tip).
    pub async fn sales_for(&self, payments: Vec<Value>) -> Result<SalesBatch, ProviderError> {
        let mut payments = payments;
        let mut seen: BTreeSet<String> = payments
            .iter()
            .filter_map(|p| p["id"].as_str().map(str::to_string))
            .collect();
        let order_ids: Vec<String> = payments
            .iter()
            .filter_map(|p| p["order_id"].as_str().map(str::to_string))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut orders = self.batch_retrieve_orders(&order_ids).await?;
        let missing: Vec<String> = orders
            .iter()
            .flat_map(|o| o["tenders"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t["payment_id"].as_str().map(str::to_string))
            .filter(|id| !seen.contains(id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for id in missing {
            match self.get_payment(&id).await {
                Ok(p) if p.is_object() => {
                    seen.insert(id);
                    payments.push(p);
                }
                Ok(_) | Err(ProviderError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let refund_ids: BTreeSet<String> = payments
            .iter()
            .flat_map(|p| p["refund_ids"].as_array().cloned().unwrap_or_default())
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect();
        let mut refunds = Vec::new();
        for id in refund_ids {
            match self.get_refund(&id).await {
                Ok(r) if r.is_object() => refunds.push(r),
                Ok(_) | Err(ProviderError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let known: BTreeSet<String> = orders
            .iter()
            .filter_map(|o| o["id"].as_str().map(str::to_string))
            .collect();
        let return_ids: Vec<String> = refunds
            .iter()
            .filter_map(|r| r["order_id"].as_str().map(str::to_string))
            .filter(|id| !known.contains(id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        orders.extend(self.batch_retrieve_orders(&return_ids).await?);
        Ok(SalesBatch {
            payments,
            orders,
            refunds,
        })
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

/// Payments, their orders and refunds, as [`SquareClient::sales_for`]
/// gathers them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SalesBatch {
    /// The payments, and their orders' other payments.
    pub payments: Vec<Value>,
    /// Their orders and the refunds' return orders.
    pub orders: Vec<Value>,
    /// The payments' refunds.
    pub refunds: Vec<Value>,
}

/// Most order ids one BatchRetrieveOrders call takes.
pub const MAX_ORDER_IDS: usize = 100;

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
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
