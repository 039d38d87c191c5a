//! MarketMan: every call a JSON POST under `/v3/buyers/` with the
//! `AUTH_TOKEN` header from `GetToken`; every answer carries `IsSuccess` and
//! `ErrorMessage`, and a spent daily budget (500 calls per 24 h) is an HTTP 200
//! saying "Reached max calls" (providers.md §5). No idempotency key exists, so
//! creates are not retried after the request may have been received.

use crate::ids::{ProviderAccountId, SecretName};
use crate::model::Provider;
use crate::ports::Limit;
use crate::providers::auth::{Credentials, Renewer, StoredToken, TokenManager};
use crate::providers::http::{
    Idempotence, ProviderError, ProviderHttp, ProviderMessage, RateScope,
};
use crate::providers::with_token;
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::time::Duration;

/// MarketMan's documented budget per API consumer.
pub fn limits() -> Vec<Limit> {
    vec![Limit::new("day", 500, Duration::from_secs(86_400))]
}

/// The budget key of the API consumer whose key is `api_key`: the 500 calls
/// a day are the consumer's, shared by every buyer it reads, so every
/// connection holding that key draws on one budget. A digest, never the key:
/// budget keys are stored, logged and shown in `hub status`.
pub fn consumer(api_key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("marketman api consumer\0{api_key}").as_bytes());
    format!("consumer-{}", hex::encode(&digest[..8]))
}

/// The budget key of the consumer whose credentials `creds` hold.
pub fn consumer_of(
    creds: &crate::providers::auth::Credentials,
    name: &SecretName,
) -> Result<String, ProviderError> {
    Ok(consumer(creds.login("api_key", name)?.expose_secret()))
}

/// An amount as an exact JSON number (never a string, never rounded).
fn number(d: Decimal) -> Result<Value, ProviderError> {
    crate::transforms::json_number(d).map_err(ProviderError::Permanent)
}

/// `{"IsSuccess":false,"ErrorMessage":...}`.
pub fn errors(body: &[u8]) -> Vec<ProviderMessage> {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    v["ErrorMessage"]
        .as_str()
        .filter(|m| !m.is_empty())
        .map(|m| {
            vec![ProviderMessage {
                code: v["ErrorCode"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| v["ErrorCode"].as_i64().map(|c| c.to_string())),
                message: m.to_string(),
            }]
        })
        .unwrap_or_default()
}

/// Turns `IsSuccess: false` into the right error.
pub fn check_success(v: &Value) -> Result<(), ProviderError> {
    if v["IsSuccess"].as_bool() == Some(true) {
        return Ok(());
    }
    let message = v["ErrorMessage"]
        .as_str()
        .unwrap_or("IsSuccess is false")
        .to_string();
    if message.to_ascii_lowercase().contains("max calls") {
        // The 24-hour budget is spent: wait for the next UTC day.
        let now = Timestamp::now();
        let secs = 86_400 - now.as_second().rem_euclid(86_400);
        return Err(ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(u64::try_from(secs).unwrap_or(3600))),
        });
    }
    if message.to_ascii_lowercase().contains("token") {
        return Err(ProviderError::Unauthorized(message));
    }
    Err(ProviderError::Validation(errors(v.to_string().as_bytes())))
}

/// MarketMan's `yyyy/mm/dd hh:mm:ss` UTC dates.
pub fn parse_utc(s: &str) -> Option<Timestamp> {
    jiff::civil::DateTime::strptime("%Y/%m/%d %H:%M:%S", s.trim())
        .ok()
        .and_then(|dt| dt.to_zoned_datetime(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
}

/// MarketMan's date format.
pub fn format_utc(t: Timestamp) -> String {
    t.strftime("%Y/%m/%d %H:%M:%S").to_string()
}

/// One line of an order to a vendor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    /// The vendor's catalog item code.
    pub catalog_item_code: String,
    /// How much.
    pub quantity: Decimal,
}

/// A client for one buyer.
#[derive(Debug, Clone)]
pub struct MarketManClient {
    http: ProviderHttp,
    tokens: TokenManager,
    base_url: String,
    buyer: ProviderAccountId,
    secret: SecretName,
    login: MarketManLogin,
    scope: RateScope,
}

impl MarketManClient {
    /// A client for `buyer`, whose API key lives in `secret`, drawing on
    /// the budget of `consumer` (see [`consumer`]).
    pub fn new(
        http: ProviderHttp,
        tokens: TokenManager,
        base_url: &str,
        buyer: ProviderAccountId,
        secret: SecretName,
        consumer: &str,
    ) -> Self {
        let base_url = base_url.trim_end_matches('/').to_string();
        MarketManClient {
            // The budget is per API consumer: the key, not the buyer.
            scope: RateScope::new(Provider::MarketMan, consumer, limits(), None),
            login: MarketManLogin {
                base_url: base_url.clone(),
            },
            http,
            tokens,
            base_url,
            buyer,
            secret,
        }
    }

    /// Posts `body` to `/v3/buyers/<path>` and checks `IsSuccess`.
    async fn post(
        &self,
        endpoint: &'static str,
        path: &str,
        body: Value,
        idempotence: Idempotence,
    ) -> Result<Value, ProviderError> {
        let url = format!("{}/v3/buyers/{path}", self.base_url);
        with_token(&self.tokens, &self.secret, &self.login, |token| {
            let (url, body) = (&url, &body);
            async move {
                let reply = self
                    .http
                    .send(&self.scope, endpoint, idempotence, errors, || {
                        self.http
                            .client()
                            .post(url)
                            .header("AUTH_TOKEN", token.expose_secret())
                            .json(body)
                    })
                    .await?;
                let v: Value = reply.json()?;
                check_success(&v)?;
                Ok(v)
            }
        })
        .await
    }

    /// The buyer's inventory items.
    pub async fn inventory_items(&self) -> Result<Vec<Value>, ProviderError> {
        let v = self
            .post(
                "marketman.GetInventoryItems",
                "inventory/GetInventoryItems",
                json!({"BuyerGuid": self.buyer.as_str()}),
                Idempotence::Safe,
            )
            .await?;
        Ok(v["Items"].as_array().cloned().unwrap_or_default())
    }

    /// One page of items (`Take`/`Skip`).
    pub async fn items_page(&self, take: u32, skip: u32) -> Result<Vec<Value>, ProviderError> {
        let v = self
            .post(
                "marketman.GetItems",
                "inventory/GetItems",
                json!({"BuyerGuid": self.buyer.as_str(), "Take": take, "Skip": skip}),
                Idempotence::Safe,
            )
            .await?;
        Ok(v["Items"].as_array().cloned().unwrap_or_default())
    }

    /// Every item, `Take`/`Skip` page by page.
    pub async fn items(&self, page_size: u32) -> Result<Vec<Value>, ProviderError> {
        let mut out = Vec::new();
        loop {
            let v = self
                .post(
                    "marketman.GetItems",
                    "inventory/GetItems",
                    json!({"BuyerGuid": self.buyer.as_str(), "Take": page_size, "Skip": out.len()}),
                    Idempotence::Safe,
                )
                .await?;
            let items = v["Items"].as_array().cloned().unwrap_or_default();
            let n = items.len();
            out.extend(items);
            if n < page_size as usize || n == 0 {
                return Ok(out);
            }
        }
    }

    /// Inventory counts taken in `[from, to)`.
    pub async fn inventory_counts(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Value>, ProviderError> {
        let v = self
            .post(
                "marketman.GetInventoryCounts",
                "inventory/GetInventoryCounts",
                json!({"BuyerGUID": self.buyer.as_str(), "DateTimeFromUTC": format_utc(from), "DateTimeToUTC": format_utc(to), "GetLineDetails": true}),
                Idempotence::Safe,
            )
            .await?;
        Ok(v["InventoryCounts"]
            .as_array()
            .or_else(|| v["Counts"].as_array())
            .cloned()
            .unwrap_or_default())
    }

    /// Records a delivery received (a document) from `vendor` (UNVERIFIED
    /// endpoint: the vendor API's `docs/SetDocs`, the closest documented call;
    /// see providers.md §5). `items`: (catalog item code, quantity, unit price).
    pub async fn set_docs(
        &self,
        vendor: &str,
        doc_number: &str,
        received: Timestamp,
        order_number: Option<&str>,
        items: &[(String, Decimal, Decimal)],
    ) -> Result<Value, ProviderError> {
        // Numbers, not strings: MarketMan takes JSON numbers (a Decimal
        // serializes as a string by default).
        let items: Vec<Value> = items
            .iter()
            .map(|(code, qty, price)| {
                Ok(json!({"CatalogItemCode": code, "Quantity": number(*qty)?, "Price": number(*price)?}))
            })
            .collect::<Result<_, ProviderError>>()?;
        let mut doc = json!({
            "BuyerGuid": self.buyer.as_str(),
            "DocNumber": doc_number,
            "DocType": "DeliveryNote",
            "DocDateUTC": format_utc(received),
            "Items": items,
        });
        if let Some(o) = order_number {
            doc["OrderNumber"] = o.into();
        }
        let url = format!("{}/v3/vendors/docs/SetDocs", self.base_url);
        let body = json!({"VendorGuid": vendor, "Docs": [doc]});
        with_token(&self.tokens, &self.secret, &self.login, |token| {
            let (url, body) = (&url, &body);
            async move {
                let reply = self
                    .http
                    .send(
                        &self.scope,
                        "marketman.SetDocs",
                        Idempotence::Unsafe,
                        errors,
                        || {
                            self.http
                                .client()
                                .post(url)
                                .header("AUTH_TOKEN", token.expose_secret())
                                .json(body)
                        },
                    )
                    .await?;
                let v: Value = reply.json()?;
                check_success(&v)?;
                Ok(v)
            }
        })
        .await
    }

    /// Sends an order to a vendor; returns MarketMan's answer.
    pub async fn create_order(
        &self,
        vendor: &str,
        delivery: Timestamp,
        comment: &str,
        lines: &[OrderLine],
    ) -> Result<Value, ProviderError> {
        let items: Vec<Value> = lines
            .iter()
            .map(|l| {
                Ok(json!({"CatalogItemCode": l.catalog_item_code, "Quantity": number(l.quantity)?}))
            })
            .collect::<Result<_, ProviderError>>()?;
        self.post(
            "marketman.CreateOrder",
            "orders/CreateOrder",
            json!({
                "BuyerGuid": self.buyer.as_str(),
                "VendorGuid": vendor,
                "OrderStatus": "Sent",
                "deliveryDateUTC": format_utc(delivery),
                "sentDateUTC": format_utc(Timestamp::now()),
                "comment": comment,
                "catalogItems": items,
            }),
            Idempotence::Unsafe,
        )
        .await
    }
}

/// MarketMan `GetToken` with an API key and password; the token lives until
/// its `ExpireDateUTC`.
#[derive(Debug, Clone)]
pub struct MarketManLogin {
    /// The MarketMan API base, e.g. `https://api.marketman.com`.
    pub base_url: String,
}

#[async_trait]
impl Renewer for MarketManLogin {
    async fn renew(
        &self,
        http: &ProviderHttp,
        creds: &Credentials,
        name: &SecretName,
    ) -> Result<StoredToken, ProviderError> {
        let key = creds.login("api_key", name)?;
        let password = creds.login("api_password", name)?;
        // `GetToken` counts against the consumer's budget like any call.
        let scope = RateScope::new(
            Provider::MarketMan,
            &consumer(key.expose_secret()),
            limits(),
            None,
        );
        let url = format!(
            "{}/v3/buyers/auth/GetToken",
            self.base_url.trim_end_matches('/')
        );
        let reply = http
            .send(
                &scope,
                "marketman.GetToken",
                Idempotence::Safe,
                errors,
                || {
                    http.client().post(&url).json(&serde_json::json!({
                        "APIKey": key.expose_secret(),
                        "APIPassword": password.expose_secret(),
                    }))
                },
            )
            .await?;
        let v: serde_json::Value = reply.json()?;
        check_success(&v)?;
        let token = v["Token"]
            .as_str()
            .ok_or_else(|| ProviderError::Permanent("GetToken answered no Token".into()))?;
        let expires_at = v["ExpireDateUTC"]
            .as_str()
            .and_then(parse_utc)
            .unwrap_or_else(|| Timestamp::now() + SignedDuration::from_hours(1));
        Ok(StoredToken {
            access_token: token.to_string(),
            refresh_token: None,
            expires_at,
            refresh_expires_at: None,
        })
    }
}
