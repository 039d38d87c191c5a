//! Square sandbox: OAuth token endpoint, ListPayments and
//! BatchRetrieveInventoryCounts for one merchant with several locations.
//!
//! Follows providers.md §2:
//! - `GET /v2/payments` (§2.2): `begin_time` (inclusive, default now − 1
//!   year) and `end_time` (default now) on `created_at`; `sort_order`
//!   `ASC`/`DESC` (default `DESC`); `cursor`; `limit` (at most 100: larger
//!   values fall back to 100); `location_id` (default: the main location);
//!   `total`, `last_4`, `card_brand`; and the newer `updated_at_begin_time`,
//!   `updated_at_end_time`, `sort_field` (SECONDARY in providers.md). Answers
//!   `{payments, cursor}` as in `list_payments_response*.json`; no cursor on
//!   the last page. Amounts are integer cents in `amount_money`, `tip_money`,
//!   `total_money`, `approved_money`, `refunded_money`.
//! - `POST /v2/inventory/counts/batch-retrieve` (§2.2): body
//!   `catalog_object_ids`, `location_ids`, `updated_after`, `cursor`,
//!   `states`, `limit`; counts newest `calculated_at` first, `quantity` a
//!   decimal string, as in `batch_retrieve_inventory_counts_response.json`.
//! - `POST /oauth2/token` (§2.3): JSON body with `client_id`,
//!   `client_secret`, `grant_type` (`authorization_code` or `refresh_token`);
//!   access tokens last 30 days (24 h with `short_lived`); the code flow's
//!   refresh returns the *same* refresh token. Response as in
//!   `oauth_obtain_token_response.json` plus `short_lived`.
//! - `Authorization: Bearer` on every API call; `Square-Version` accepted.
//! - Errors (§2.2) are `{"errors":[{category,code,detail,field?}]}` with the
//!   status of the first error: 401 `UNAUTHORIZED` (as `error_unauthorized.json`)
//!   or `ACCESS_TOKEN_EXPIRED`; 429 `RATE_LIMIT_ERROR`/`RATE_LIMITED`.
//! - Rate limits are not published: none by default; configure
//!   [`SquareConfig::limits`] (per merchant) to test 429 handling.
//!
//! UNVERIFIED, chosen here: `end_time` and `updated_at_end_time` exclusive;
//! an empty page is `{}` (Square omits empty arrays); cursors carry the
//! original query, so later pages need only `cursor`; an unknown
//! `location_id` is 404 `NOT_FOUND`; the inventory page size (providers.md:
//! 100 or 1,000; default here 100, `limit` up to 1,000); `updated_after`
//! strictly after; the error codes `INVALID_TIME`, `INVALID_TIME_RANGE`,
//! `INVALID_SORT_ORDER`, `INVALID_CURSOR`, `INVALID_VALUE`; the OAuth error
//! bodies; `Retry-After` on 429 (Square documents no rate-limit headers).

use crate::common::data;
use crate::common::gate::{self, Gate, Rules, Shape};
use crate::common::http::{json, query_get, query_pairs};
use crate::common::limits::{LimitPlan, Refused};
use crate::common::server::{ConnInfo, ServerHandle, StartError};
use crate::common::time;
use crate::common::tokens::{IssuedTokens, TokenError, TokenPolicy, TokenStore};
use crate::common::{Limit, OBSERVE_WINDOW, common_handle};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http::StatusCode;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest ListPayments page.
pub const MAX_PAYMENTS_PAGE: usize = 100;
/// Largest inventory `limit` accepted.
pub const MAX_INVENTORY_LIMIT: usize = 1000;

/// How to build a Square sandbox.
#[derive(Debug, Clone)]
pub struct SquareConfig {
    /// Seed for generated data, tokens and faults.
    pub seed: u64,
    /// Locations of the merchant (the first is the main one).
    pub locations: usize,
    /// First date with payments (`None`: the `days` days before today, see
    /// [`data::first_date`]).
    pub first_date: Option<Date>,
    /// Days with payments.
    pub days: u32,
    /// Payments per location per day.
    pub payments_per_day: u32,
    /// Catalog item variations with inventory counts (per location).
    pub catalog_items: usize,
    /// Locations' time zone (payments fall in local business hours).
    pub time_zone: String,
    /// OAuth application id.
    pub client_id: String,
    /// OAuth application secret.
    pub client_secret: String,
    /// Access-token lifetime (30 days).
    pub access_ttl: Duration,
    /// Lifetime with `short_lived: true` (24 hours).
    pub short_lived_ttl: Duration,
    /// Rate limits per merchant (none published; none by default).
    pub limits: Vec<Limit>,
    /// Inventory counts per page when no `limit` is given.
    pub inventory_page_size: usize,
    /// Window for `Counters::max_calls_per_window`.
    pub observe_window: Duration,
}

impl Default for SquareConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            locations: 2,
            first_date: None,
            days: 3,
            payments_per_day: 30,
            catalog_items: 12,
            time_zone: "America/Los_Angeles".into(),
            client_id: "sq0idp-sandbox-client".into(),
            client_secret: "sq0csp-sandbox-secret".into(),
            access_ttl: Duration::from_secs(30 * 24 * 3600),
            short_lived_ttl: Duration::from_secs(24 * 3600),
            limits: Vec::new(),
            inventory_page_size: 100,
            observe_window: OBSERVE_WINDOW,
        }
    }
}

impl SquareConfig {
    /// Defaults with `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }
}

/// A location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquareLocation {
    /// Location id.
    pub id: String,
    /// Name.
    pub name: String,
}

/// A payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquarePayment {
    /// Payment id.
    pub id: String,
    /// Location id.
    pub location_id: String,
    /// Order id.
    pub order_id: String,
    /// Created.
    pub created_at: Timestamp,
    /// Last updated (a refund moves it).
    pub updated_at: Timestamp,
    /// Amount excluding tip, cents.
    pub amount_cents: i64,
    /// Tip, cents.
    pub tip_cents: i64,
    /// Refunded so far, cents.
    pub refunded_cents: i64,
    /// `COMPLETED`, `APPROVED`, `CANCELED` or `FAILED`.
    pub status: String,
    /// `CARD` or `CASH`.
    pub source_type: String,
    /// Card brand, for card payments.
    pub card_brand: Option<String>,
    /// Last four digits, for card payments.
    pub last_4: Option<String>,
    /// ISO currency.
    pub currency: String,
}

impl SquarePayment {
    fn money(&self, cents: i64) -> Value {
        json!({"amount": cents, "currency": self.currency})
    }

    /// The Payment JSON, shaped like `list_payments_response.json`.
    pub fn to_json(&self) -> Value {
        let mut p = json!({
            "id": self.id,
            "created_at": time::rfc3339_ms(self.created_at),
            "updated_at": time::rfc3339_ms(self.updated_at),
            "amount_money": self.money(self.amount_cents),
            "total_money": self.money(self.amount_cents + self.tip_cents),
            "approved_money": self.money(self.amount_cents + self.tip_cents),
            "status": self.status,
            "source_type": self.source_type,
            "location_id": self.location_id,
            "order_id": self.order_id,
            "receipt_number": self.id.get(..4).unwrap_or(&self.id),
            "receipt_url": format!("https://squareup.com/receipt/preview/{}", self.id),
            "version_token": format!("v{}", self.updated_at.as_millisecond()),
        });
        if self.tip_cents > 0 {
            p["tip_money"] = self.money(self.tip_cents);
        }
        if self.refunded_cents > 0 {
            p["refunded_money"] = self.money(self.refunded_cents);
            p["refund_ids"] = json!([format!("{}_refund", self.id)]);
        }
        if self.source_type == "CARD" {
            let card_status = match self.status.as_str() {
                "COMPLETED" => "CAPTURED",
                "APPROVED" => "AUTHORIZED",
                "CANCELED" => "VOIDED",
                _ => "FAILED",
            };
            p["card_details"] = json!({
                "status": card_status,
                "card": {
                    "card_brand": self.card_brand,
                    "last_4": self.last_4,
                    "exp_month": 11,
                    "exp_year": 2030,
                    "card_type": "CREDIT",
                },
                "entry_method": "EMV",
                "cvv_status": "CVV_ACCEPTED",
                "avs_status": "AVS_ACCEPTED",
                "statement_description": "SQ *SANDBOX BISTRO",
            });
            if self.status == "COMPLETED" {
                // 2.6% + 10 cents, in cents.
                let fee = (self.amount_cents + self.tip_cents) * 26 / 1000 + 10;
                p["processing_fee"] = json!([{
                    "effective_at": time::rfc3339_ms(self.created_at),
                    "type": "INITIAL",
                    "amount_money": self.money(fee),
                }]);
            }
        } else {
            p["cash_details"] = json!({
                "buyer_supplied_money": self.money(self.amount_cents + self.tip_cents),
                "change_back_money": self.money(0),
            });
        }
        p
    }
}

/// One inventory count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquareInventoryCount {
    /// Catalog object (item variation) id.
    pub catalog_object_id: String,
    /// `ITEM_VARIATION`.
    pub catalog_object_type: String,
    /// `IN_STOCK`, `SOLD`, `WASTE`, ...
    pub state: String,
    /// Location id.
    pub location_id: String,
    /// Quantity (a decimal; sent as a string).
    pub quantity: Decimal,
    /// When Square computed it.
    pub calculated_at: Timestamp,
}

impl SquareInventoryCount {
    /// The InventoryCount JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "catalog_object_id": self.catalog_object_id,
            "catalog_object_type": self.catalog_object_type,
            "state": self.state,
            "location_id": self.location_id,
            "quantity": self.quantity.normalize().to_string(),
            "calculated_at": time::rfc3339_ms(self.calculated_at),
        })
    }
}

const BRANDS: &[&str] = &["VISA", "MASTERCARD", "AMERICAN_EXPRESS", "DISCOVER"];

#[derive(Debug)]
struct SquareData {
    merchant_id: String,
    locations: Vec<SquareLocation>,
    payments: BTreeMap<String, SquarePayment>,
    counts: Vec<SquareInventoryCount>,
    rng: ChaCha8Rng,
}

fn generate_payment(
    rng: &mut ChaCha8Rng,
    location_id: &str,
    created_at: Timestamp,
) -> SquarePayment {
    let amount = rng.random_range(500..12_000i64);
    let card = rng.random_bool(0.75);
    let tip = if card {
        amount * [0, 15, 18, 20].choose(rng).copied().unwrap_or(0) / 100
    } else {
        0
    };
    let roll: f64 = rng.random();
    let status = if roll < 0.02 {
        "FAILED"
    } else if roll < 0.04 {
        "CANCELED"
    } else {
        "COMPLETED"
    };
    let refunded = if status == "COMPLETED" && rng.random_bool(0.03) {
        amount / 2
    } else {
        0
    };
    let updated = Timestamp::from_millisecond(
        created_at.as_millisecond()
            + rng.random_range(100..2_000)
            + if refunded > 0 { 3_600_000 } else { 0 },
    )
    .unwrap_or(created_at);
    SquarePayment {
        id: data::base62_id(rng, 29),
        location_id: location_id.to_string(),
        order_id: data::base62_id(rng, 28),
        created_at,
        updated_at: updated,
        amount_cents: amount,
        tip_cents: tip,
        refunded_cents: refunded,
        status: status.into(),
        source_type: if card { "CARD" } else { "CASH" }.into(),
        card_brand: card.then(|| BRANDS.choose(rng).copied().unwrap_or("VISA").to_string()),
        last_4: card.then(|| format!("{:04}", rng.random_range(0..10_000))),
        currency: "USD".into(),
    }
}

impl SquareData {
    fn generate(config: &SquareConfig) -> Self {
        let mut rng = data::rng(config.seed, 2);
        let tz = TimeZone::get(&config.time_zone).unwrap_or(TimeZone::UTC);
        let merchant_id = data::alnum_id(&mut rng, 13);
        let locations: Vec<SquareLocation> = (0..config.locations.max(1))
            .map(|n| SquareLocation {
                id: data::alnum_id(&mut rng, 13),
                name: format!("Sandbox Cafe {}", n + 1),
            })
            .collect();
        let first = data::first_date(config.first_date, config.days);
        let mut payments = BTreeMap::new();
        for loc in &locations {
            for day in 0..config.days {
                let date = data::add_days(first, i64::from(day));
                for _ in 0..config.payments_per_day {
                    let secs = 7 * 3600 + rng.random_range(0..14 * 3600);
                    let ms = rng.random_range(0..1000);
                    let created = data::local(date, secs, ms, &tz);
                    let p = generate_payment(&mut rng, &loc.id, created);
                    payments.insert(p.id.clone(), p);
                }
            }
        }
        let items: Vec<String> = (0..config.catalog_items)
            .map(|_| data::alnum_id(&mut rng, 24))
            .collect();
        let last_day = data::add_days(first, i64::from(config.days));
        let mut counts = Vec::new();
        for loc in &locations {
            for item in &items {
                let secs = rng.random_range(0..86_400);
                counts.push(SquareInventoryCount {
                    catalog_object_id: item.clone(),
                    catalog_object_type: "ITEM_VARIATION".into(),
                    state: "IN_STOCK".into(),
                    location_id: loc.id.clone(),
                    quantity: Decimal::from(rng.random_range(0..200)),
                    calculated_at: data::local(last_day, secs, rng.random_range(0..1000), &tz),
                });
            }
        }
        Self {
            merchant_id,
            locations,
            payments,
            counts,
            rng,
        }
    }
}

#[derive(Debug)]
struct SquareApp {
    gate: Gate,
    tokens: TokenStore,
    config: SquareConfig,
    data: Mutex<SquareData>,
}

/// A Square error response (the status of the first error).
fn error(
    status: StatusCode,
    category: &str,
    code: &str,
    detail: &str,
    field: Option<&str>,
) -> Response {
    let mut e = json!({"category": category, "code": code, "detail": detail});
    if let Some(f) = field {
        e["field"] = json!(f);
    }
    json(status, &json!({"errors": [e]}))
}

fn invalid(code: &str, detail: &str, field: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "INVALID_REQUEST_ERROR",
        code,
        detail,
        Some(field),
    )
}

impl Shape for SquareApp {
    fn rate_limited(&self, _refused: &Refused) -> Response {
        error(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMIT_ERROR",
            "RATE_LIMITED",
            "Rate limit exceeded.",
            None,
        )
    }

    fn server_error(&self, status: StatusCode) -> Response {
        let code = if status == StatusCode::SERVICE_UNAVAILABLE {
            "SERVICE_UNAVAILABLE"
        } else {
            "INTERNAL_SERVER_ERROR"
        };
        error(status, "API_ERROR", code, "Injected by the sandbox.", None)
    }
}

impl Rules for SquareApp {
    fn gate(&self) -> &Gate {
        &self.gate
    }

    fn plan(&self, request: &Request, conn: &ConnInfo) -> (Option<String>, LimitPlan) {
        if request.uri().path().starts_with("/oauth2/") {
            return (None, LimitPlan::default());
        }
        let account = self
            .tokens
            .account_of(request.headers())
            .unwrap_or_else(|| format!("ip:{}", conn.remote.ip()));
        (
            Some(account),
            LimitPlan {
                scopes: vec![("merchant".into(), self.config.limits.clone())],
                ..LimitPlan::default()
            },
        )
    }

    fn authenticate(&self, request: &mut Request) -> Result<(), Response> {
        if request.uri().path().starts_with("/oauth2/") {
            return Ok(());
        }
        let expired = self.gate.faults().expire_tokens;
        match self.tokens.check(request.headers(), expired) {
            Ok(_) => Ok(()),
            Err(TokenError::Expired) => Err(error(
                StatusCode::UNAUTHORIZED,
                "AUTHENTICATION_ERROR",
                "ACCESS_TOKEN_EXPIRED",
                "The access token has expired.",
                None,
            )),
            Err(_) => Err(error(
                StatusCode::UNAUTHORIZED,
                "AUTHENTICATION_ERROR",
                "UNAUTHORIZED",
                "This request could not be authorized.",
                None,
            )),
        }
    }
}

async fn obtain_token(State(app): State<Arc<SquareApp>>, body: Bytes) -> Response {
    app.gate.stats().update(|c| c.token_requests += 1);
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return invalid(
            "INVALID_BODY",
            "The request body is not valid JSON.",
            "body",
        );
    };
    let field = |k: &str| req.get(k).and_then(Value::as_str);
    if field("client_id") != Some(app.config.client_id.as_str())
        || field("client_secret") != Some(app.config.client_secret.as_str())
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "AUTHENTICATION_ERROR",
            "UNAUTHORIZED",
            "Invalid client_id or client_secret.",
            None,
        );
    }
    let issued = match field("grant_type") {
        Some("refresh_token") => {
            app.gate.stats().update(|c| c.refreshes += 1);
            let Some(rt) = field("refresh_token") else {
                return invalid(
                    "MISSING_REQUIRED_PARAMETER",
                    "refresh_token is required.",
                    "refresh_token",
                );
            };
            app.tokens.refresh(rt)
        }
        Some("authorization_code") => {
            let Some(code) = field("code") else {
                return invalid("MISSING_REQUIRED_PARAMETER", "code is required.", "code");
            };
            app.tokens.redeem_code(code)
        }
        _ => {
            return invalid(
                "INVALID_VALUE",
                "grant_type must be authorization_code or refresh_token.",
                "grant_type",
            );
        }
    };
    let Some(mut issued) = issued else {
        app.gate.stats().update(|c| c.invalid_grants += 1);
        return error(
            StatusCode::UNAUTHORIZED,
            "AUTHENTICATION_ERROR",
            "UNAUTHORIZED",
            "The authorization code or refresh token is invalid, revoked or expired.",
            None,
        );
    };
    let short_lived = req
        .get("short_lived")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if short_lived {
        // Re-issue the access token with the 24-hour lifetime.
        let ttl = app.tokens.access_ttl();
        app.tokens.set_access_ttl(app.config.short_lived_ttl);
        let short = app.tokens.issue(&issued.account, false);
        app.tokens.set_access_ttl(ttl);
        issued.access_token = short.access_token;
        issued.expires_at = short.expires_at;
        issued.expires_in = short.expires_in;
    }
    json(
        StatusCode::OK,
        &json!({
            "access_token": issued.access_token,
            "token_type": "bearer",
            "expires_at": time::rfc3339_ms(issued.expires_at).replace(".000Z", "Z"),
            "merchant_id": issued.account,
            "refresh_token": issued.refresh_token,
            "short_lived": short_lived,
        }),
    )
}

/// The query a ListPayments cursor stands for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PaymentsQuery {
    begin: i64,
    end: i64,
    updated_begin: Option<i64>,
    updated_end: Option<i64>,
    by_updated: bool,
    descending: bool,
    location: String,
    total: Option<i64>,
    last_4: Option<String>,
    card_brand: Option<String>,
    limit: usize,
    offset: usize,
}

fn encode_cursor<T: serde::Serialize>(value: &T) -> String {
    B64.encode(serde_json::to_vec(value).unwrap_or_default())
}

fn decode_cursor<T: serde::de::DeserializeOwned>(cursor: &str) -> Option<T> {
    serde_json::from_slice(&B64.decode(cursor).ok()?).ok()
}

fn parse_time(pairs: &[(String, String)], name: &str) -> Result<Option<Timestamp>, Response> {
    match query_get(pairs, name) {
        None => Ok(None),
        Some(s) => time::parse_rfc3339(s).map(Some).ok_or_else(|| {
            invalid(
                "INVALID_TIME",
                &format!("{name} must be an RFC 3339 timestamp."),
                name,
            )
        }),
    }
}

impl SquareApp {
    fn payments_query(&self, pairs: &[(String, String)]) -> Result<PaymentsQuery, Response> {
        if let Some(cursor) = query_get(pairs, "cursor") {
            return decode_cursor(cursor)
                .ok_or_else(|| invalid("INVALID_CURSOR", "The cursor is not valid.", "cursor"));
        }
        let now = Timestamp::now();
        let begin = parse_time(pairs, "begin_time")?.unwrap_or_else(|| {
            Timestamp::from_second(now.as_second() - 365 * 86_400).unwrap_or(now)
        });
        let end = parse_time(pairs, "end_time")?.unwrap_or(now);
        if end < begin {
            return Err(invalid(
                "INVALID_TIME_RANGE",
                "end_time must not be before begin_time.",
                "end_time",
            ));
        }
        let updated_begin = parse_time(pairs, "updated_at_begin_time")?;
        let updated_end = parse_time(pairs, "updated_at_end_time")?;
        let descending = match query_get(pairs, "sort_order") {
            None | Some("DESC") => true,
            Some("ASC") => false,
            Some(_) => {
                return Err(invalid(
                    "INVALID_SORT_ORDER",
                    "sort_order must be ASC or DESC.",
                    "sort_order",
                ));
            }
        };
        let by_updated = match query_get(pairs, "sort_field") {
            None | Some("CREATED_AT") | Some("OFFLINE_CREATED_AT") => false,
            Some("UPDATED_AT") => true,
            Some(_) => {
                return Err(invalid(
                    "INVALID_VALUE",
                    "sort_field must be CREATED_AT, OFFLINE_CREATED_AT or UPDATED_AT.",
                    "sort_field",
                ));
            }
        };
        let limit = match query_get(pairs, "limit").map(str::parse::<i64>) {
            None => MAX_PAYMENTS_PAGE,
            Some(Ok(n)) if n >= 1 => usize::try_from(n)
                .unwrap_or(MAX_PAYMENTS_PAGE)
                .min(MAX_PAYMENTS_PAGE),
            Some(_) => {
                return Err(invalid(
                    "INVALID_VALUE",
                    "limit must be a positive integer.",
                    "limit",
                ));
            }
        };
        let data = self.data.lock().unwrap();
        let location = match query_get(pairs, "location_id") {
            None => data.locations[0].id.clone(),
            Some(id) if data.locations.iter().any(|l| l.id == id) => id.to_string(),
            Some(id) => {
                return Err(error(
                    StatusCode::NOT_FOUND,
                    "INVALID_REQUEST_ERROR",
                    "NOT_FOUND",
                    &format!("Location `{id}` not found."),
                    Some("location_id"),
                ));
            }
        };
        let total = match query_get(pairs, "total").map(str::parse::<i64>) {
            None => None,
            Some(Ok(t)) => Some(t),
            Some(Err(_)) => {
                return Err(invalid(
                    "INVALID_VALUE",
                    "total must be an integer.",
                    "total",
                ));
            }
        };
        Ok(PaymentsQuery {
            begin: begin.as_millisecond(),
            end: end.as_millisecond(),
            updated_begin: updated_begin.map(Timestamp::as_millisecond),
            updated_end: updated_end.map(Timestamp::as_millisecond),
            by_updated,
            descending,
            location,
            total,
            last_4: query_get(pairs, "last_4").map(str::to_string),
            card_brand: query_get(pairs, "card_brand").map(str::to_string),
            limit,
            offset: 0,
        })
    }
}

async fn list_payments(State(app): State<Arc<SquareApp>>, RawQuery(raw): RawQuery) -> Response {
    let pairs = query_pairs(raw.as_deref());
    let q = match app.payments_query(&pairs) {
        Ok(q) => q,
        Err(e) => return e,
    };
    let mut matching: Vec<SquarePayment> = {
        let data = app.data.lock().unwrap();
        data.payments
            .values()
            .filter(|p| {
                let created = p.created_at.as_millisecond();
                let updated = p.updated_at.as_millisecond();
                p.location_id == q.location
                    && created >= q.begin
                    && created < q.end
                    && q.updated_begin.is_none_or(|b| updated >= b)
                    && q.updated_end.is_none_or(|e| updated < e)
                    && q.total.is_none_or(|t| p.amount_cents + p.tip_cents == t)
                    && q.last_4
                        .as_ref()
                        .is_none_or(|l| p.last_4.as_ref() == Some(l))
                    && q.card_brand.as_ref().is_none_or(|b| {
                        p.card_brand
                            .as_deref()
                            .is_some_and(|c| c.eq_ignore_ascii_case(b))
                    })
            })
            .cloned()
            .collect()
    };
    matching.sort_by(|a, b| {
        let key = |p: &SquarePayment| {
            (
                if q.by_updated {
                    p.updated_at
                } else {
                    p.created_at
                },
                p.id.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    if q.descending {
        matching.reverse();
    }
    let from = q.offset.min(matching.len());
    let to = from.saturating_add(q.limit).min(matching.len());
    let mut body = json!({});
    if to > from {
        body["payments"] = Value::Array(
            matching[from..to]
                .iter()
                .map(SquarePayment::to_json)
                .collect(),
        );
    }
    if to < matching.len() {
        body["cursor"] = json!(encode_cursor(&PaymentsQuery {
            offset: to,
            ..q.clone()
        }));
    }
    json(StatusCode::OK, &body)
}

/// The query an inventory cursor stands for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CountsQuery {
    ids: Option<Vec<String>>,
    locations: Option<Vec<String>>,
    after: Option<i64>,
    states: Option<Vec<String>>,
    limit: usize,
    offset: usize,
}

fn string_list(v: &Value, name: &str) -> Result<Option<Vec<String>>, Response> {
    match v.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| {
                invalid(
                    "INVALID_VALUE",
                    &format!("{name} must be a list of strings."),
                    name,
                )
            }),
        Some(_) => Err(invalid(
            "INVALID_VALUE",
            &format!("{name} must be a list of strings."),
            name,
        )),
    }
}

async fn batch_retrieve_counts(State(app): State<Arc<SquareApp>>, body: Bytes) -> Response {
    let req: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => {
                return invalid(
                    "INVALID_BODY",
                    "The request body is not valid JSON.",
                    "body",
                );
            }
        }
    };
    let q = if let Some(cursor) = req.get("cursor").and_then(Value::as_str) {
        match decode_cursor::<CountsQuery>(cursor) {
            Some(q) => q,
            None => return invalid("INVALID_CURSOR", "The cursor is not valid.", "cursor"),
        }
    } else {
        let parse = || -> Result<CountsQuery, Response> {
            let after = match req.get("updated_after").and_then(Value::as_str) {
                None => None,
                Some(s) => Some(
                    time::parse_rfc3339(s)
                        .ok_or_else(|| {
                            invalid(
                                "INVALID_TIME",
                                "updated_after must be RFC 3339.",
                                "updated_after",
                            )
                        })?
                        .as_millisecond(),
                ),
            };
            let limit = match req.get("limit") {
                None | Some(Value::Null) => app.config.inventory_page_size,
                Some(v) => match v.as_u64() {
                    Some(n) if n >= 1 => usize::try_from(n)
                        .unwrap_or(MAX_INVENTORY_LIMIT)
                        .min(MAX_INVENTORY_LIMIT),
                    _ => {
                        return Err(invalid(
                            "INVALID_VALUE",
                            "limit must be a positive integer.",
                            "limit",
                        ));
                    }
                },
            };
            Ok(CountsQuery {
                ids: string_list(&req, "catalog_object_ids")?,
                locations: string_list(&req, "location_ids")?,
                after,
                states: string_list(&req, "states")?,
                limit,
                offset: 0,
            })
        };
        match parse() {
            Ok(q) => q,
            Err(e) => return e,
        }
    };
    let mut counts: Vec<SquareInventoryCount> = app
        .data
        .lock()
        .unwrap()
        .counts
        .iter()
        .filter(|c| {
            q.ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&c.catalog_object_id))
                && q.locations
                    .as_ref()
                    .is_none_or(|l| l.contains(&c.location_id))
                && q.states.as_ref().is_none_or(|s| s.contains(&c.state))
                && q.after.is_none_or(|a| c.calculated_at.as_millisecond() > a)
        })
        .cloned()
        .collect();
    counts.sort_by(|a, b| {
        b.calculated_at
            .cmp(&a.calculated_at)
            .then_with(|| a.catalog_object_id.cmp(&b.catalog_object_id))
            .then_with(|| a.location_id.cmp(&b.location_id))
    });
    let from = q.offset.min(counts.len());
    let to = from.saturating_add(q.limit).min(counts.len());
    let mut body = json!({"errors": []});
    if to > from {
        body["counts"] = Value::Array(
            counts[from..to]
                .iter()
                .map(SquareInventoryCount::to_json)
                .collect(),
        );
    }
    if to < counts.len() {
        body["cursor"] = json!(encode_cursor(&CountsQuery {
            offset: to,
            ..q.clone()
        }));
    }
    json(StatusCode::OK, &body)
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "INVALID_REQUEST_ERROR",
        "NOT_FOUND",
        "No such endpoint.",
        None,
    )
}

fn router(app: Arc<SquareApp>) -> Router {
    Router::new()
        .route("/oauth2/token", post(obtain_token))
        .route("/v2/payments", get(list_payments))
        .route(
            "/v2/inventory/counts/batch-retrieve",
            post(batch_retrieve_counts),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            gate::middleware::<SquareApp>,
        ))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::common::MAX_BODY_BYTES,
        ))
        .with_state(app)
}

/// A running Square sandbox.
#[derive(Debug)]
pub struct SquareSandbox {
    server: ServerHandle,
    app: Arc<SquareApp>,
}

common_handle!(SquareSandbox);

impl SquareSandbox {
    /// Generates the data and starts serving.
    pub async fn start(config: SquareConfig) -> Result<Self, StartError> {
        if TimeZone::get(&config.time_zone).is_err() {
            return Err(StartError::Config {
                sandbox: "square",
                message: format!("unknown time zone {:?}", config.time_zone),
            });
        }
        let app = Arc::new(SquareApp {
            gate: Gate::new(config.seed, config.observe_window),
            tokens: TokenStore::new(
                TokenPolicy {
                    access_ttl: config.access_ttl,
                    refresh_ttl: Duration::from_secs(10 * 365 * 86_400),
                    rotate_refresh: false,
                    reuse_grace: Duration::ZERO,
                    prefix: "EAAA",
                },
                config.seed,
            ),
            data: Mutex::new(SquareData::generate(&config)),
            config,
        });
        let server = ServerHandle::start("square", router(app.clone())).await?;
        Ok(Self { server, app })
    }

    /// The merchant id.
    pub fn merchant_id(&self) -> String {
        self.app.data.lock().unwrap().merchant_id.clone()
    }

    /// The locations (the first is the main one).
    pub fn locations(&self) -> Vec<SquareLocation> {
        self.app.data.lock().unwrap().locations.clone()
    }

    /// The OAuth application id.
    pub fn client_id(&self) -> &str {
        &self.app.config.client_id
    }

    /// The OAuth application secret.
    pub fn client_secret(&self) -> &str {
        &self.app.config.client_secret
    }

    /// Issues an access token and refresh token for the merchant, as a
    /// completed authorization would.
    pub fn grant(&self) -> IssuedTokens {
        self.app.tokens.issue(&self.merchant_id(), true)
    }

    /// An authorization code for `POST /oauth2/token`.
    pub fn authorization_code(&self) -> String {
        self.app.tokens.issue_code(&self.merchant_id())
    }

    /// Expires every access token issued so far.
    pub fn expire_access_tokens(&self) {
        self.app.tokens.expire_access(None);
    }

    /// Every payment, by created time.
    pub fn payments(&self) -> Vec<SquarePayment> {
        let mut v: Vec<SquarePayment> = self
            .app
            .data
            .lock()
            .unwrap()
            .payments
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        v
    }

    /// One payment.
    pub fn payment(&self, id: &str) -> Option<SquarePayment> {
        self.app.data.lock().unwrap().payments.get(id).cloned()
    }

    /// Adds (or replaces) a payment.
    pub fn add_payment(&self, payment: SquarePayment) {
        self.app
            .data
            .lock()
            .unwrap()
            .payments
            .insert(payment.id.clone(), payment);
    }

    /// Generates a payment at `location_id` created at `created_at`, adds and
    /// returns it.
    pub fn generate_payment(&self, location_id: &str, created_at: Timestamp) -> SquarePayment {
        let mut data = self.app.data.lock().unwrap();
        let p = generate_payment(&mut data.rng, location_id, created_at);
        data.payments.insert(p.id.clone(), p.clone());
        p
    }

    /// A late edit: applies `edit` and moves `updated_at` to now.
    pub fn edit_payment(
        &self,
        id: &str,
        edit: impl FnOnce(&mut SquarePayment),
    ) -> Option<SquarePayment> {
        let mut data = self.app.data.lock().unwrap();
        let p = data.payments.get_mut(id)?;
        edit(p);
        p.updated_at = Timestamp::now().max(p.updated_at);
        Some(p.clone())
    }

    /// Every inventory count.
    pub fn inventory_counts(&self) -> Vec<SquareInventoryCount> {
        self.app.data.lock().unwrap().counts.clone()
    }

    /// Sets a count (adding it if new), `calculated_at` now.
    pub fn set_inventory_count(
        &self,
        location_id: &str,
        catalog_object_id: &str,
        quantity: Decimal,
    ) {
        let mut data = self.app.data.lock().unwrap();
        let now = Timestamp::now();
        match data.counts.iter_mut().find(|c| {
            c.location_id == location_id
                && c.catalog_object_id == catalog_object_id
                && c.state == "IN_STOCK"
        }) {
            Some(c) => {
                c.quantity = quantity;
                c.calculated_at = now;
            }
            None => data.counts.push(SquareInventoryCount {
                catalog_object_id: catalog_object_id.into(),
                catalog_object_type: "ITEM_VARIATION".into(),
                state: "IN_STOCK".into(),
                location_id: location_id.into(),
                quantity,
                calculated_at: now,
            }),
        }
    }

    /// The body of a `payment.updated` webhook for one payment.
    pub fn payment_updated_event(&self, id: &str) -> Option<Vec<u8>> {
        let p = self.payment(id)?;
        let body = json!({
            "merchant_id": self.merchant_id(),
            "type": "payment.updated",
            "event_id": uuid::Uuid::new_v4().to_string(),
            "created_at": time::rfc3339_ms(Timestamp::now()),
            "data": {"type": "payment", "id": p.id, "object": {"payment": p.to_json()}},
        });
        serde_json::to_vec(&body).ok()
    }
}
