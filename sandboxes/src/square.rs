//! Square sandbox: OAuth token endpoint, ListLocations, ListPayments,
//! GetPayment, BatchRetrieveOrders, GetPaymentRefund and
//! BatchRetrieveInventoryCounts for one merchant with several locations.
//!
//! Follows providers.md §2 and `specs/square/api.json`:
//! - `GET /v2/locations` (ListLocations): `{locations: [Location]}`, the
//!   first the main one.
//! - `GET /v2/payments` (§2.2): `begin_time` (inclusive, default now − 1
//!   year) and `end_time` (default now) on `created_at`; `sort_order`
//!   `ASC`/`DESC` (default `DESC`); `cursor`; `limit` (at most 100: larger
//!   values fall back to 100); `location_id` (default: the main location
//!   only); `total`, `last_4`, `card_brand`; and `updated_at_begin_time`,
//!   `updated_at_end_time`, `sort_field`. Answers `{payments, cursor}` as
//!   in `list_payments_response*.json`; no cursor on the last page.
//! - `GET /v2/payments/{id}` (GetPayment): `{payment}`.
//! - `POST /v2/orders/batch-retrieve` (BatchRetrieveOrders): body
//!   `{location_id?, order_ids}` (at most 100); `{orders}` leaving out
//!   unknown ids (and, with `location_id`, other locations' orders).
//! - `GET /v2/refunds/{id}` (GetPaymentRefund): `{refund}`.
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
//! # Generated sales
//! Orders (`payments_per_day` per location per day, local business hours)
//! with two to four lines (`ITEM`, some `CUSTOM_AMOUNT`, some `GIFT_CARD`),
//! two additive line-item taxes (`State Tax` 6.25 %, `City Tax` 2.25 %; gift
//! cards untaxed, custom amounts only the state tax), a line discount (10 %)
//! and an order discount ($2, apportioned onto the lines), service charges
//! (an 18 % `AUTO_GRATUITY`, a taxable $2.99 `CUSTOM` delivery fee), tips on
//! card payments, split tenders (card + cash), Square gift card redemptions
//! (`card_brand` `SQUARE_GIFT_CARD`), `EXTERNAL` delivery-app payments,
//! declined (`FAILED`) and voided (`CANCELED`) attempts beside the payment
//! that paid, card payments approved then captured minutes later, a few
//! still `APPROVED` (their orders are not fully paid), canceled orders,
//! processing fees (2.6 % + 10¢ of completed card payments), and full and
//! partial (one line) refunds, some on a later day, each with a return
//! order (`returns[]` with `return_line_items`, `return_taxes`,
//! `return_service_charges`, `return_tips`, `return_amounts`; `refunds[]`).
//! Every money field is integer minor units of [`SquareConfig::currency`].
//!
//! [`SquareSandbox::truth`] is the money of every part per location ×
//! business date, from the sandbox's own integers (see
//! [`crate::common::truth`]): an order counts when it is `COMPLETED` and its
//! `COMPLETED` payments pay its `total_money` (the hub holds the others); a
//! refund counts when `COMPLETED`, on the business date of its own
//! creation. Business dates are the location's local dates (midnight close).
//!
//! UNVERIFIED, chosen here: `end_time` and `updated_at_end_time` exclusive;
//! an empty page is `{}` (Square omits empty arrays); cursors carry the
//! original query, so later pages need only `cursor`; an unknown
//! `location_id` is 404 `NOT_FOUND`; the inventory page size (providers.md:
//! 100 or 1,000; default here 100, `limit` up to 1,000); `updated_after`
//! strictly after; the error codes `INVALID_TIME`, `INVALID_TIME_RANGE`,
//! `INVALID_SORT_ORDER`, `INVALID_CURSOR`, `INVALID_VALUE`,
//! `ARRAY_LENGTH_TOO_LONG` and `EXPECTED_JSON_BODY` (both in
//! Square's `ErrorCode` enumeration); the OAuth error bodies; `Retry-After` on 429
//! (Square documents no rate-limit headers); an order's `tenders[]` lists its
//! `COMPLETED` and `APPROVED` payments only; a refund moves its payment's
//! `updated_at`; a return order's `total_money` is zero and its
//! `net_amounts` the negated `return_amounts`; the sale order is not changed
//! by its returns; gift card and external payments carry no processing fee;
//! the tender `type` of a gift card (`SQUARE_GIFT_CARD`) and of an external
//! payment (`OTHER`).

use crate::common::data;
use crate::common::gate::{self, Gate, Rules, Shape};
use crate::common::http::{json, query_get, query_pairs};
use crate::common::limits::{LimitPlan, Refused};
use crate::common::server::{ConnInfo, ServerHandle, StartError};
use crate::common::time;
use crate::common::tokens::{IssuedTokens, TokenError, TokenPolicy, TokenStore};
use crate::common::{Limit, OBSERVE_WINDOW, Truth, common_handle};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
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
/// Most ids one BatchRetrieveOrders call takes.
pub const MAX_ORDER_IDS: usize = 100;

/// How to build a Square sandbox.
#[derive(Debug, Clone)]
pub struct SquareConfig {
    /// Seed for generated data, tokens and faults.
    pub seed: u64,
    /// Locations of the merchant (the first is the main one).
    pub locations: usize,
    /// First date with sales (`None`: the `days` days before today, see
    /// [`data::first_date`]).
    pub first_date: Option<Date>,
    /// Days with sales.
    pub days: u32,
    /// Orders per location per day (each paid by one or more payments).
    pub payments_per_day: u32,
    /// Catalog item variations with inventory counts (per location).
    pub catalog_items: usize,
    /// Locations' time zone (sales fall in local business hours).
    pub time_zone: String,
    /// ISO 4217 currency of every amount (integer minor units).
    pub currency: String,
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
            currency: "USD".into(),
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

fn money(cents: i64, currency: &str) -> Value {
    json!({"amount": cents, "currency": currency})
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
    /// Last updated (a capture or refund moves it).
    pub updated_at: Timestamp,
    /// Amount excluding tip, cents.
    pub amount_cents: i64,
    /// Tip, cents.
    pub tip_cents: i64,
    /// Refunded so far, cents.
    pub refunded_cents: i64,
    /// `COMPLETED`, `APPROVED`, `CANCELED` or `FAILED`.
    pub status: String,
    /// `CARD`, `CASH` or `EXTERNAL`.
    pub source_type: String,
    /// Card brand, for card payments (`SQUARE_GIFT_CARD` for gift cards).
    pub card_brand: Option<String>,
    /// Last four digits, for card payments.
    pub last_4: Option<String>,
    /// ISO currency.
    pub currency: String,
    /// Square's processing fee, cents (0: none).
    pub fee_cents: i64,
    /// `external_details.type` of an EXTERNAL payment.
    pub external_type: Option<String>,
    /// `external_details.source` of an EXTERNAL payment ("DoorDash").
    pub external_source: Option<String>,
    /// When an approved card payment was captured.
    pub captured_at: Option<Timestamp>,
    /// Its refunds.
    pub refund_ids: Vec<String>,
}

/// 2.6 % + 10¢ of a completed card payment's total, in cents.
fn card_fee(total_cents: i64) -> i64 {
    total_cents * 26 / 1000 + 10
}

impl SquarePayment {
    fn money(&self, cents: i64) -> Value {
        money(cents, &self.currency)
    }

    /// Whether it is a Square gift card payment.
    pub fn is_gift_card(&self) -> bool {
        self.card_brand.as_deref() == Some("SQUARE_GIFT_CARD")
    }

    /// Its role in the books (`tender:card`, `gift_cards_redeemed`, ...).
    pub fn role(&self) -> String {
        if self.is_gift_card() {
            return "gift_cards_redeemed".into();
        }
        match self.source_type.as_str() {
            "CASH" => "tender:cash".into(),
            "EXTERNAL" => format!(
                "tender:other:{}",
                self.external_type
                    .as_deref()
                    .unwrap_or("external")
                    .to_ascii_lowercase()
            ),
            _ => "tender:card".into(),
        }
    }

    /// The Payment JSON, shaped like `list_payments_response.json`.
    pub fn to_json(&self) -> Value {
        let total = self.amount_cents + self.tip_cents;
        let mut p = json!({
            "id": self.id,
            "created_at": time::rfc3339_ms(self.created_at),
            "updated_at": time::rfc3339_ms(self.updated_at),
            "amount_money": self.money(self.amount_cents),
            "total_money": self.money(total),
            "approved_money": self.money(total),
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
        }
        if !self.refund_ids.is_empty() {
            p["refund_ids"] = json!(self.refund_ids);
        }
        if self.fee_cents != 0 {
            p["processing_fee"] = json!([{
                "effective_at": time::rfc3339_ms(self.captured_at.unwrap_or(self.created_at)),
                "type": "INITIAL",
                "amount_money": self.money(self.fee_cents),
            }]);
        }
        match self.source_type.as_str() {
            "CARD" => {
                let card_status = match self.status.as_str() {
                    "COMPLETED" => "CAPTURED",
                    "APPROVED" => "AUTHORIZED",
                    "CANCELED" => "VOIDED",
                    _ => "FAILED",
                };
                let mut timeline = json!({"authorized_at": time::rfc3339_ms(self.created_at)});
                if self.status == "COMPLETED" {
                    timeline["captured_at"] =
                        time::rfc3339_ms(self.captured_at.unwrap_or(self.created_at)).into();
                }
                p["card_details"] = json!({
                    "status": card_status,
                    "card": {
                        "card_brand": self.card_brand,
                        "last_4": self.last_4,
                        "exp_month": 11,
                        "exp_year": 2030,
                        "card_type": if self.is_gift_card() { "UNKNOWN_CARD_TYPE" } else { "CREDIT" },
                    },
                    "entry_method": "EMV",
                    "cvv_status": "CVV_ACCEPTED",
                    "avs_status": "AVS_ACCEPTED",
                    "statement_description": "SQ *SANDBOX BISTRO",
                    "card_payment_timeline": timeline,
                });
                if self.status == "APPROVED" {
                    p["delay_action"] = "CANCEL".into();
                    p["delay_duration"] = "PT168H".into();
                }
            }
            "EXTERNAL" => {
                p["external_details"] = json!({
                    "type": self.external_type.as_deref().unwrap_or("EXTERNAL"),
                    "source": self.external_source.as_deref().unwrap_or("External"),
                    "source_id": format!("ext-{}", self.id.get(..10).unwrap_or(&self.id)),
                });
            }
            _ => {
                p["cash_details"] = json!({
                    "buyer_supplied_money": self.money(total),
                    "change_back_money": self.money(0),
                });
            }
        }
        p
    }

    fn tender_json(&self, order_id: &str) -> Value {
        let mut t = json!({
            "id": self.id,
            "location_id": self.location_id,
            "transaction_id": order_id,
            "created_at": time::rfc3339_ms(self.created_at),
            "amount_money": self.money(self.amount_cents + self.tip_cents),
            "payment_id": self.id,
            "type": match (self.source_type.as_str(), self.is_gift_card()) {
                (_, true) => "SQUARE_GIFT_CARD",
                ("CARD", _) => "CARD",
                ("CASH", _) => "CASH",
                _ => "OTHER",
            },
        });
        if self.tip_cents > 0 {
            t["tip_money"] = self.money(self.tip_cents);
        }
        if self.fee_cents != 0 {
            t["processing_fee_money"] = self.money(self.fee_cents);
        }
        if self.source_type == "CARD" {
            t["card_details"] = json!({
                "status": if self.status == "COMPLETED" { "CAPTURED" } else { "AUTHORIZED" },
                "card": {"card_brand": self.card_brand, "last_4": self.last_4},
                "entry_method": "EMV",
            });
        }
        t
    }
}

/// A tax of an order: additive, line-item scoped, a percentage in basis
/// points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquareTax {
    /// Its uid within the order.
    pub uid: String,
    /// Its name (`State Tax`).
    pub name: String,
    /// Its rate in basis points (625 = 6.25 %).
    pub basis_points: i64,
}

impl SquareTax {
    fn percentage(&self) -> String {
        Decimal::new(self.basis_points, 2).normalize().to_string()
    }
}

/// A discount of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquareDiscount {
    /// Its uid within the order.
    pub uid: String,
    /// Its name.
    pub name: String,
    /// `Some(basis points)` for `FIXED_PERCENTAGE`, `None` for `FIXED_AMOUNT`.
    pub basis_points: Option<i64>,
    /// The declared amount of a `FIXED_AMOUNT` discount, cents.
    pub amount_cents: i64,
    /// `LINE_ITEM` or `ORDER`.
    pub scope: String,
}

/// A line of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquareLine {
    /// Its uid within the order.
    pub uid: String,
    /// Its name.
    pub name: String,
    /// `ITEM`, `CUSTOM_AMOUNT` or `GIFT_CARD`.
    pub item_type: String,
    /// The catalog variation of an `ITEM`.
    pub catalog_object_id: Option<String>,
    /// How many.
    pub quantity: i64,
    /// Price of one, cents.
    pub base_price_cents: i64,
    /// Discounts applied: (discount uid, cents).
    pub discounts: Vec<(String, i64)>,
    /// Taxes applied: (tax uid, cents).
    pub taxes: Vec<(String, i64)>,
}

impl SquareLine {
    /// Gross sales: price × quantity.
    pub fn gross(&self) -> i64 {
        self.base_price_cents * self.quantity
    }
    /// Its discounts.
    pub fn discount(&self) -> i64 {
        self.discounts.iter().map(|(_, c)| c).sum()
    }
    /// Its taxes.
    pub fn tax(&self) -> i64 {
        self.taxes.iter().map(|(_, c)| c).sum()
    }
    /// What it collects: gross − discounts + taxes.
    pub fn total(&self) -> i64 {
        self.gross() - self.discount() + self.tax()
    }
}

/// A service charge of an order (subtotal phase, not apportioned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquareServiceCharge {
    /// Its uid within the order.
    pub uid: String,
    /// Its name.
    pub name: String,
    /// `AUTO_GRATUITY` or `CUSTOM`.
    pub kind: String,
    /// `Some(basis points)` for a percentage charge.
    pub basis_points: Option<i64>,
    /// Its applied money (before its additive taxes), cents.
    pub amount_cents: i64,
    /// Taxes applied: (tax uid, cents).
    pub taxes: Vec<(String, i64)>,
}

impl SquareServiceCharge {
    /// Its taxes.
    pub fn tax(&self) -> i64 {
        self.taxes.iter().map(|(_, c)| c).sum()
    }
    /// What it collects.
    pub fn total(&self) -> i64 {
        self.amount_cents + self.tax()
    }
}

/// What a return order returns of its sale order: whole lines, the service
/// charges, the tip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquareReturn {
    /// The sale order.
    pub source_order_id: String,
    /// The payment refunded.
    pub payment_id: String,
    /// The returned lines' uids.
    pub line_uids: Vec<String>,
    /// Whether the service charges are returned.
    pub service_charges: bool,
    /// Tip returned, cents.
    pub tip_cents: i64,
}

/// An order: a sale, or a return (`ret`) of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquareOrder {
    /// Order id.
    pub id: String,
    /// Location id.
    pub location_id: String,
    /// Created.
    pub created_at: Timestamp,
    /// Last updated.
    pub updated_at: Timestamp,
    /// `COMPLETED`, `OPEN` or `CANCELED`.
    pub state: String,
    /// ISO currency.
    pub currency: String,
    /// Its lines (none for a return).
    pub lines: Vec<SquareLine>,
    /// Its taxes.
    pub taxes: Vec<SquareTax>,
    /// Its discounts.
    pub discounts: Vec<SquareDiscount>,
    /// Its service charges.
    pub service_charges: Vec<SquareServiceCharge>,
    /// Its payments, every attempt (failed ones too), in order.
    pub payment_ids: Vec<String>,
    /// For a return order: what it returns.
    pub ret: Option<SquareReturn>,
    /// For a return order: its refunds.
    pub refund_ids: Vec<String>,
}

impl SquareOrder {
    /// What it collects: lines + service charges.
    pub fn total(&self) -> i64 {
        self.lines.iter().map(SquareLine::total).sum::<i64>()
            + self
                .service_charges
                .iter()
                .map(SquareServiceCharge::total)
                .sum::<i64>()
    }

    fn tax_name(&self, uid: &str) -> String {
        self.taxes
            .iter()
            .find(|t| t.uid == uid)
            .map(|t| t.name.clone())
            .unwrap_or_else(|| uid.to_string())
    }
}

/// A refund of a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquareRefund {
    /// Refund id (`<payment id>_<suffix>`).
    pub id: String,
    /// The payment refunded.
    pub payment_id: String,
    /// Its return order (itemized), or the sale order (by amount).
    pub order_id: String,
    /// Location id.
    pub location_id: String,
    /// Created.
    pub created_at: Timestamp,
    /// Last updated.
    pub updated_at: Timestamp,
    /// `COMPLETED`, `PENDING`, `REJECTED` or `FAILED`.
    pub status: String,
    /// Refunded, cents.
    pub amount_cents: i64,
    /// ISO currency.
    pub currency: String,
    /// Why.
    pub reason: String,
    /// `CARD`, `CASH`, `EXTERNAL`.
    pub destination_type: String,
}

impl SquareRefund {
    /// The PaymentRefund JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status,
            "location_id": self.location_id,
            "unlinked": false,
            "destination_type": self.destination_type,
            "amount_money": money(self.amount_cents, &self.currency),
            "payment_id": self.payment_id,
            "order_id": self.order_id,
            "reason": self.reason,
            "created_at": time::rfc3339_ms(self.created_at),
            "updated_at": time::rfc3339_ms(self.updated_at),
        })
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
const MENU: &[(&str, i64)] = &[
    ("Burger", 1450),
    ("Fries", 550),
    ("Caesar Salad", 1200),
    ("Margherita Pizza", 1800),
    ("Iced Tea", 350),
    ("Latte", 475),
    ("Cheesecake", 800),
    ("IPA Pint", 750),
];
const STATE_TAX_BP: i64 = 625;
const CITY_TAX_BP: i64 = 225;

/// `base × basis points / 10 000`, rounded half up (base ≥ 0).
fn rate(base: i64, basis_points: i64) -> i64 {
    (base * basis_points + 5_000) / 10_000
}

fn later(t: Timestamp, millis: i64) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond() + millis).unwrap_or(t)
}

#[derive(Debug)]
struct SquareData {
    merchant_id: String,
    locations: Vec<SquareLocation>,
    payments: BTreeMap<String, SquarePayment>,
    orders: BTreeMap<String, SquareOrder>,
    refunds: BTreeMap<String, SquareRefund>,
    counts: Vec<SquareInventoryCount>,
    rng: ChaCha8Rng,
    tz: TimeZone,
    currency: String,
}

/// One generated sale: its order, its payments, its refunds with their
/// return orders.
struct Sale {
    order: SquareOrder,
    payments: Vec<SquarePayment>,
    refunds: Vec<(SquareRefund, Option<SquareOrder>)>,
}

fn generate_sale(
    rng: &mut ChaCha8Rng,
    location_id: &str,
    created_at: Timestamp,
    currency: &str,
    refund_next_day: bool,
) -> Sale {
    let order_id = data::base62_id(rng, 28);
    let taxes = vec![
        SquareTax {
            uid: data::base62_id(rng, 22),
            name: "State Tax".into(),
            basis_points: STATE_TAX_BP,
        },
        SquareTax {
            uid: data::base62_id(rng, 22),
            name: "City Tax".into(),
            basis_points: CITY_TAX_BP,
        },
    ];
    let n_lines = rng.random_range(2..=4);
    let mut lines: Vec<SquareLine> = Vec::new();
    for i in 0..n_lines {
        let roll: f64 = rng.random();
        let has_gift = lines.iter().any(|l| l.item_type == "GIFT_CARD");
        let uid = data::base62_id(rng, 22);
        let line = if i > 0 && roll < 0.12 && !has_gift {
            SquareLine {
                uid,
                name: "eGift Card".into(),
                item_type: "GIFT_CARD".into(),
                catalog_object_id: None,
                quantity: 1,
                base_price_cents: [2500, 5000].choose(rng).copied().unwrap_or(2500),
                discounts: Vec::new(),
                taxes: Vec::new(),
            }
        } else if i > 0 && roll < 0.27 {
            SquareLine {
                uid,
                name: "Custom Amount".into(),
                item_type: "CUSTOM_AMOUNT".into(),
                catalog_object_id: None,
                quantity: 1,
                base_price_cents: rng.random_range(300..3000),
                discounts: Vec::new(),
                taxes: Vec::new(),
            }
        } else {
            let k = rng.random_range(0..MENU.len());
            let (name, price) = MENU[k];
            SquareLine {
                uid,
                name: name.into(),
                item_type: "ITEM".into(),
                catalog_object_id: Some(format!("SANDBOXVARIATION{k:04}")),
                quantity: [1, 1, 1, 2, 3].choose(rng).copied().unwrap_or(1),
                base_price_cents: price,
                discounts: Vec::new(),
                taxes: Vec::new(),
            }
        };
        lines.push(line);
    }
    let mut discounts = Vec::new();
    if rng.random_bool(0.2) {
        let uid = data::base62_id(rng, 22);
        let items: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].item_type == "ITEM")
            .collect();
        if let Some(&i) = items.choose(rng) {
            let c = rate(lines[i].gross(), 1000);
            lines[i].discounts.push((uid.clone(), c));
            discounts.push(SquareDiscount {
                uid,
                name: "Happy Hour 10%".into(),
                basis_points: Some(1000),
                amount_cents: 0,
                scope: "LINE_ITEM".into(),
            });
        }
    }
    if rng.random_bool(0.1) {
        let uid = data::base62_id(rng, 22);
        let eligible: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].item_type != "GIFT_CARD")
            .collect();
        let bases: Vec<i64> = eligible
            .iter()
            .map(|&i| lines[i].gross() - lines[i].discount())
            .collect();
        let base: i64 = bases.iter().sum();
        let amount = 200.min(base);
        let mut left = amount;
        for (k, &i) in eligible.iter().enumerate() {
            let c = if k + 1 == eligible.len() {
                left
            } else {
                amount * bases[k] / base.max(1)
            };
            left -= c;
            lines[i].discounts.push((uid.clone(), c));
        }
        discounts.push(SquareDiscount {
            uid,
            name: "Loyalty $2".into(),
            basis_points: None,
            amount_cents: 200,
            scope: "ORDER".into(),
        });
    }
    for l in &mut lines {
        if l.item_type == "GIFT_CARD" {
            continue;
        }
        let base = l.gross() - l.discount();
        l.taxes
            .push((taxes[0].uid.clone(), rate(base, STATE_TAX_BP)));
        if l.item_type == "ITEM" {
            l.taxes
                .push((taxes[1].uid.clone(), rate(base, CITY_TAX_BP)));
        }
    }
    let subtotal: i64 = lines
        .iter()
        .filter(|l| l.item_type != "GIFT_CARD")
        .map(|l| l.gross() - l.discount())
        .sum();
    let mut service_charges = Vec::new();
    if rng.random_bool(0.12) {
        service_charges.push(SquareServiceCharge {
            uid: data::base62_id(rng, 22),
            name: "Auto Gratuity 18%".into(),
            kind: "AUTO_GRATUITY".into(),
            basis_points: Some(1800),
            amount_cents: rate(subtotal, 1800),
            taxes: Vec::new(),
        });
    }
    if rng.random_bool(0.1) {
        service_charges.push(SquareServiceCharge {
            uid: data::base62_id(rng, 22),
            name: "Delivery Fee".into(),
            kind: "CUSTOM".into(),
            basis_points: None,
            amount_cents: 299,
            taxes: vec![(taxes[0].uid.clone(), rate(299, STATE_TAX_BP))],
        });
    }
    let mut order = SquareOrder {
        id: order_id.clone(),
        location_id: location_id.to_string(),
        created_at,
        updated_at: created_at,
        state: "COMPLETED".into(),
        currency: currency.to_string(),
        lines,
        taxes,
        discounts,
        service_charges,
        payment_ids: Vec::new(),
        ret: None,
        refund_ids: Vec::new(),
    };
    let total = order.total();
    let mut at = later(created_at, rng.random_range(5..40) * 60_000);
    let mut payments: Vec<SquarePayment> = Vec::new();
    let mut pay = |rng: &mut ChaCha8Rng,
                   source: &str,
                   amount: i64,
                   tip: i64,
                   status: &str,
                   brand: Option<&str>| {
        let card = source == "CARD";
        let p = SquarePayment {
            id: data::base62_id(rng, 29),
            location_id: location_id.to_string(),
            order_id: order_id.clone(),
            created_at: at,
            updated_at: later(at, rng.random_range(100..2_000)),
            amount_cents: amount,
            tip_cents: tip,
            refunded_cents: 0,
            status: status.into(),
            source_type: source.into(),
            card_brand: card.then(|| {
                brand
                    .map(str::to_string)
                    .unwrap_or_else(|| BRANDS.choose(rng).copied().unwrap_or("VISA").to_string())
            }),
            last_4: card.then(|| format!("{:04}", rng.random_range(0..10_000))),
            currency: currency.to_string(),
            fee_cents: 0,
            external_type: None,
            external_source: None,
            captured_at: None,
            refund_ids: Vec::new(),
        };
        at = later(at, rng.random_range(20..90) * 1000);
        p
    };
    if rng.random_bool(0.02) {
        order.state = "CANCELED".into();
        let p = pay(rng, "CARD", total, 0, "CANCELED", None);
        order.updated_at = p.updated_at;
        order.payment_ids.push(p.id.clone());
        return Sale {
            order,
            payments: vec![p],
            refunds: Vec::new(),
        };
    }
    let gratuity = order
        .service_charges
        .iter()
        .any(|s| s.kind == "AUTO_GRATUITY");
    let tip = if gratuity {
        0
    } else {
        subtotal * [0, 15, 18, 20, 20].choose(rng).copied().unwrap_or(0) / 100
    };
    // Declined or voided attempts first, now and then.
    if rng.random_bool(0.05) {
        payments.push(pay(rng, "CARD", total, tip, "FAILED", None));
    }
    if rng.random_bool(0.03) {
        payments.push(pay(rng, "CARD", total, tip, "CANCELED", None));
    }
    let plan: f64 = rng.random();
    if plan < 0.08 {
        let mut p = pay(rng, "EXTERNAL", total, 0, "COMPLETED", None);
        p.external_type = Some("EXTERNAL".into());
        p.external_source = Some(
            ["DoorDash", "Uber Eats", "Grubhub"]
                .choose(rng)
                .copied()
                .unwrap_or("DoorDash")
                .into(),
        );
        payments.push(p);
    } else if plan < 0.20 && total >= 400 {
        let cash = total / 2 / 100 * 100;
        payments.push(pay(rng, "CASH", cash, 0, "COMPLETED", None));
        payments.push(pay(rng, "CARD", total - cash, tip, "COMPLETED", None));
    } else if plan < 0.27 {
        let gift = total.min([1000, 2500, 5000].choose(rng).copied().unwrap_or(1000));
        let rest = total - gift;
        payments.push(pay(
            rng,
            "CARD",
            gift,
            if rest > 0 { 0 } else { tip },
            "COMPLETED",
            Some("SQUARE_GIFT_CARD"),
        ));
        if rest > 0 {
            payments.push(pay(rng, "CARD", rest, tip, "COMPLETED", None));
        }
    } else if plan < 0.42 {
        payments.push(pay(rng, "CASH", total, 0, "COMPLETED", None));
    } else {
        payments.push(pay(rng, "CARD", total, tip, "COMPLETED", None));
    }
    for p in &mut payments {
        if p.source_type != "CARD" || p.is_gift_card() || p.status != "COMPLETED" {
            continue;
        }
        let roll: f64 = rng.random();
        if roll < 0.02 {
            // Approved, not yet captured.
            p.status = "APPROVED".into();
            order.state = "OPEN".into();
        } else {
            if roll < 0.08 {
                // Approved, captured later.
                let captured = later(p.created_at, rng.random_range(10..90) * 60_000);
                p.captured_at = Some(captured);
                p.updated_at = later(captured, rng.random_range(100..2_000));
            }
            p.fee_cents = card_fee(p.amount_cents + p.tip_cents);
        }
    }
    order.payment_ids = payments.iter().map(|p| p.id.clone()).collect();
    order.updated_at = payments
        .iter()
        .map(|p| p.updated_at)
        .max()
        .unwrap_or(created_at);
    let mut refunds = Vec::new();
    let plain =
        order.state == "COMPLETED" && order.lines.iter().all(|l| l.item_type != "GIFT_CARD");
    let roll: f64 = rng.random();
    let refund_at = |rng: &mut ChaCha8Rng, after: Timestamp| {
        if refund_next_day && rng.random_bool(0.5) {
            later(after, 86_400_000 + rng.random_range(0..3_600_000))
        } else {
            later(after, rng.random_range(30..90) * 60_000)
        }
    };
    let completed: Vec<usize> = (0..payments.len())
        .filter(|&i| payments[i].status == "COMPLETED")
        .collect();
    let card = completed
        .iter()
        .copied()
        .find(|&i| payments[i].source_type == "CARD" && !payments[i].is_gift_card());
    let choice: Option<(usize, Vec<String>, bool, i64)> = match card {
        Some(i) if plain && roll < 0.04 && completed.len() == 1 => Some((
            i,
            order.lines.iter().map(|l| l.uid.clone()).collect(),
            true,
            payments[i].tip_cents,
        )),
        Some(i) if plain && roll < 0.09 => {
            let fits: Vec<&SquareLine> = order
                .lines
                .iter()
                .filter(|l| l.total() <= payments[i].amount_cents)
                .collect();
            fits.choose(rng).map(|l| (i, vec![l.uid.clone()], false, 0))
        }
        _ => None,
    };
    if let Some((i, line_uids, with_charges, tip)) = choice {
        let amount = order
            .lines
            .iter()
            .filter(|l| line_uids.contains(&l.uid))
            .map(SquareLine::total)
            .sum::<i64>()
            + if with_charges {
                order
                    .service_charges
                    .iter()
                    .map(SquareServiceCharge::total)
                    .sum()
            } else {
                0
            }
            + tip;
        let created = refund_at(rng, payments[i].updated_at);
        let p = &mut payments[i];
        let return_id = data::base62_id(rng, 28);
        let refund = SquareRefund {
            id: format!("{}_{}", p.id, data::base62_id(rng, 14)),
            payment_id: p.id.clone(),
            order_id: return_id.clone(),
            location_id: location_id.to_string(),
            created_at: created,
            updated_at: later(created, rng.random_range(2_000..10_000)),
            status: "COMPLETED".into(),
            amount_cents: amount,
            currency: currency.to_string(),
            reason: if with_charges {
                "Order canceled by the guest".into()
            } else {
                "Item returned".into()
            },
            destination_type: p.source_type.clone(),
        };
        p.refunded_cents += amount;
        p.refund_ids.push(refund.id.clone());
        p.updated_at = p.updated_at.max(refund.updated_at);
        let ret = SquareOrder {
            id: return_id,
            location_id: location_id.to_string(),
            created_at: created,
            updated_at: later(created, 1_000),
            state: "COMPLETED".into(),
            currency: currency.to_string(),
            lines: Vec::new(),
            taxes: Vec::new(),
            discounts: Vec::new(),
            service_charges: Vec::new(),
            payment_ids: Vec::new(),
            ret: Some(SquareReturn {
                source_order_id: order.id.clone(),
                payment_id: p.id.clone(),
                line_uids,
                service_charges: with_charges,
                tip_cents: tip,
            }),
            refund_ids: vec![refund.id.clone()],
        };
        refunds.push((refund, Some(ret)));
    }
    Sale {
        order,
        payments,
        refunds,
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
        let mut me = Self {
            merchant_id,
            locations: locations.clone(),
            payments: BTreeMap::new(),
            orders: BTreeMap::new(),
            refunds: BTreeMap::new(),
            counts: Vec::new(),
            rng: data::rng(config.seed, 3),
            tz: tz.clone(),
            currency: config.currency.clone(),
        };
        for loc in &locations {
            for day in 0..config.days {
                let date = data::add_days(first, i64::from(day));
                for _ in 0..config.payments_per_day {
                    let secs = 7 * 3600 + rng.random_range(0..14 * 3600);
                    let ms = rng.random_range(0..1000);
                    let created = data::local(date, secs, ms, &tz);
                    let sale = generate_sale(
                        &mut rng,
                        &loc.id,
                        created,
                        &config.currency,
                        day + 1 < config.days,
                    );
                    me.insert(sale);
                }
            }
        }
        let items: Vec<String> = (0..config.catalog_items)
            .map(|_| data::alnum_id(&mut rng, 24))
            .collect();
        let last_day = data::add_days(first, i64::from(config.days));
        for loc in &locations {
            for item in &items {
                let secs = rng.random_range(0..86_400);
                me.counts.push(SquareInventoryCount {
                    catalog_object_id: item.clone(),
                    catalog_object_type: "ITEM_VARIATION".into(),
                    state: "IN_STOCK".into(),
                    location_id: loc.id.clone(),
                    quantity: Decimal::from(rng.random_range(0..200)),
                    calculated_at: data::local(last_day, secs, rng.random_range(0..1000), &tz),
                });
            }
        }
        me
    }

    fn insert(&mut self, sale: Sale) {
        for p in sale.payments {
            self.payments.insert(p.id.clone(), p);
        }
        for (r, ret) in sale.refunds {
            if let Some(o) = ret {
                self.orders.insert(o.id.clone(), o);
            }
            self.refunds.insert(r.id.clone(), r);
        }
        self.orders.insert(sale.order.id.clone(), sale.order);
    }

    fn local_date(&self, at: Timestamp) -> Date {
        self.tz.to_datetime(at).date()
    }

    /// The taxes (by name) and tip a return order returns, cents.
    fn returned(&self, ret: &SquareReturn) -> (BTreeMap<String, i64>, i64) {
        let mut taxes = BTreeMap::new();
        if let Some(src) = self.orders.get(&ret.source_order_id) {
            let lines = src.lines.iter().filter(|l| ret.line_uids.contains(&l.uid));
            let charges = src.service_charges.iter().filter(|_| ret.service_charges);
            for (uid, c) in lines
                .flat_map(|l| &l.taxes)
                .chain(charges.flat_map(|s| &s.taxes))
            {
                *taxes.entry(src.tax_name(uid)).or_default() += c;
            }
        }
        (taxes, ret.tip_cents)
    }

    /// Per location × business date × role, from the sandbox's integers.
    fn truth(&self) -> Truth {
        let mut t = Truth::default();
        for o in self.orders.values() {
            if o.ret.is_some() || o.state != "COMPLETED" {
                continue;
            }
            let paid: Vec<&SquarePayment> = o
                .payment_ids
                .iter()
                .filter_map(|id| self.payments.get(id))
                .filter(|p| p.status == "COMPLETED")
                .collect();
            if paid.iter().map(|p| p.amount_cents).sum::<i64>() != o.total() {
                // Not fully paid by completed payments: held, not booked.
                continue;
            }
            let (loc, day) = (o.location_id.as_str(), self.local_date(o.created_at));
            for l in &o.lines {
                if l.item_type == "GIFT_CARD" {
                    t.add(loc, day, "gift_cards_sold", l.gross());
                } else {
                    let role = format!("sales:{}", l.item_type.to_ascii_lowercase());
                    t.add(loc, day, &role, l.gross());
                }
                t.add(loc, day, "discounts", l.discount());
                for (uid, c) in &l.taxes {
                    t.add(loc, day, &format!("tax:{}", o.tax_name(uid)), *c);
                }
            }
            for s in &o.service_charges {
                let role = if s.kind == "AUTO_GRATUITY" {
                    "gratuity"
                } else {
                    "service_charges"
                };
                t.add(loc, day, role, s.amount_cents);
                for (uid, c) in &s.taxes {
                    t.add(loc, day, &format!("tax:{}", o.tax_name(uid)), *c);
                }
            }
            for p in paid {
                t.add(loc, day, &p.role(), p.amount_cents + p.tip_cents);
                t.add(loc, day, "tips", p.tip_cents);
                t.add(loc, day, "fees", p.fee_cents);
            }
        }
        for r in self.refunds.values() {
            if r.status != "COMPLETED" {
                continue;
            }
            let Some(p) = self.payments.get(&r.payment_id) else {
                continue;
            };
            let (loc, day) = (r.location_id.as_str(), self.local_date(r.created_at));
            // An itemized refund returns its lines' tax and the tip; a refund
            // by amount carries neither. One refund per return order.
            let (taxes, tip) = match self.orders.get(&r.order_id).and_then(|o| o.ret.as_ref()) {
                Some(ret) => self.returned(ret),
                None => (BTreeMap::new(), 0),
            };
            let tax: i64 = taxes.values().sum();
            t.add(loc, day, "refunds", r.amount_cents - tax - tip);
            for (name, c) in &taxes {
                t.add(loc, day, &format!("tax:{name}"), -c);
            }
            t.add(loc, day, "tips", -tip);
            t.add(loc, day, &p.role(), -r.amount_cents);
        }
        t
    }

    fn line_json(&self, l: &SquareLine) -> Value {
        let c = &self.currency;
        let mut v = json!({
            "uid": l.uid,
            "name": l.name,
            "quantity": l.quantity.to_string(),
            "item_type": l.item_type,
            "base_price_money": money(l.base_price_cents, c),
            "variation_total_price_money": money(l.gross(), c),
            "gross_sales_money": money(l.gross(), c),
            "total_tax_money": money(l.tax(), c),
            "total_discount_money": money(l.discount(), c),
            "total_money": money(l.total(), c),
            "total_service_charge_money": money(0, c),
        });
        if let Some(id) = &l.catalog_object_id {
            v["catalog_object_id"] = json!(id);
            v["catalog_version"] = json!(1);
            v["variation_name"] = json!("Regular");
        }
        if !l.taxes.is_empty() {
            v["applied_taxes"] = l
                .taxes
                .iter()
                .map(|(uid, cents)| {
                    json!({"uid": format!("{}-{uid}", l.uid), "tax_uid": uid, "applied_money": money(*cents, c)})
                })
                .collect();
        }
        if !l.discounts.is_empty() {
            v["applied_discounts"] = l
                .discounts
                .iter()
                .map(|(uid, cents)| {
                    json!({"uid": format!("{}-{uid}", l.uid), "discount_uid": uid, "applied_money": money(*cents, c)})
                })
                .collect();
        }
        v
    }

    fn charge_json(&self, s: &SquareServiceCharge) -> Value {
        let c = &self.currency;
        let mut v = json!({
            "uid": s.uid,
            "name": s.name,
            "type": s.kind,
            "applied_money": money(s.amount_cents, c),
            "total_tax_money": money(s.tax(), c),
            "total_money": money(s.total(), c),
            "calculation_phase": "SUBTOTAL_PHASE",
            "taxable": !s.taxes.is_empty(),
            "treatment_type": "LINE_ITEM_TREATMENT",
            "scope": "ORDER",
        });
        match s.basis_points {
            Some(bp) => v["percentage"] = json!(Decimal::new(bp, 2).normalize().to_string()),
            None => v["amount_money"] = money(s.amount_cents, c),
        }
        if !s.taxes.is_empty() {
            v["applied_taxes"] = s
                .taxes
                .iter()
                .map(|(uid, cents)| {
                    json!({"uid": format!("{}-{uid}", s.uid), "tax_uid": uid, "applied_money": money(*cents, c)})
                })
                .collect();
        }
        v
    }

    /// The Order JSON (a sale, or a return with `returns[]`).
    fn order_json(&self, o: &SquareOrder) -> Value {
        let c = &self.currency;
        let mut v = json!({
            "id": o.id,
            "location_id": o.location_id,
            "source": {"name": "Sandbox POS"},
            "created_at": time::rfc3339_ms(o.created_at),
            "updated_at": time::rfc3339_ms(o.updated_at),
            "state": o.state,
            "version": 1 + o.payment_ids.len(),
        });
        if o.state != "OPEN" {
            v["closed_at"] = json!(time::rfc3339_ms(o.updated_at));
        }
        if let Some(ret) = &o.ret {
            return self.return_json(o, ret, v);
        }
        let tips: i64 = o
            .payment_ids
            .iter()
            .filter_map(|id| self.payments.get(id))
            .filter(|p| matches!(p.status.as_str(), "COMPLETED" | "APPROVED"))
            .map(|p| p.tip_cents)
            .sum();
        let tax: i64 = o.lines.iter().map(SquareLine::tax).sum::<i64>()
            + o.service_charges
                .iter()
                .map(SquareServiceCharge::tax)
                .sum::<i64>();
        let discount: i64 = o.lines.iter().map(SquareLine::discount).sum();
        let charges: i64 = o.service_charges.iter().map(|s| s.amount_cents).sum();
        let total = o.total();
        let amounts = json!({
            "total_money": money(total, c),
            "tax_money": money(tax, c),
            "discount_money": money(discount, c),
            "tip_money": money(tips, c),
            "service_charge_money": money(charges, c),
        });
        v["line_items"] = o.lines.iter().map(|l| self.line_json(l)).collect();
        v["taxes"] = o
            .taxes
            .iter()
            .map(|t| {
                let applied: i64 = o
                    .lines
                    .iter()
                    .flat_map(|l| &l.taxes)
                    .chain(o.service_charges.iter().flat_map(|s| &s.taxes))
                    .filter(|(uid, _)| *uid == t.uid)
                    .map(|(_, c)| c)
                    .sum();
                json!({
                    "uid": t.uid,
                    "name": t.name,
                    "percentage": t.percentage(),
                    "type": "ADDITIVE",
                    "scope": "LINE_ITEM",
                    "applied_money": money(applied, c),
                })
            })
            .collect();
        if !o.discounts.is_empty() {
            v["discounts"] = o
                .discounts
                .iter()
                .map(|d| {
                    let applied: i64 = o
                        .lines
                        .iter()
                        .flat_map(|l| &l.discounts)
                        .filter(|(uid, _)| *uid == d.uid)
                        .map(|(_, c)| c)
                        .sum();
                    let mut x = json!({
                        "uid": d.uid,
                        "name": d.name,
                        "applied_money": money(applied, c),
                        "scope": d.scope,
                    });
                    match d.basis_points {
                        Some(bp) => {
                            x["type"] = json!("FIXED_PERCENTAGE");
                            x["percentage"] = json!(Decimal::new(bp, 2).normalize().to_string());
                        }
                        None => {
                            x["type"] = json!("FIXED_AMOUNT");
                            x["amount_money"] = money(d.amount_cents, c);
                        }
                    }
                    x
                })
                .collect();
        }
        if !o.service_charges.is_empty() {
            v["service_charges"] = o
                .service_charges
                .iter()
                .map(|s| self.charge_json(s))
                .collect();
        }
        let tenders: Vec<Value> = o
            .payment_ids
            .iter()
            .filter_map(|id| self.payments.get(id))
            .filter(|p| matches!(p.status.as_str(), "COMPLETED" | "APPROVED"))
            .map(|p| p.tender_json(&o.id))
            .collect();
        let paid: i64 = o
            .payment_ids
            .iter()
            .filter_map(|id| self.payments.get(id))
            .filter(|p| p.status == "COMPLETED")
            .map(|p| p.amount_cents)
            .sum();
        if !tenders.is_empty() {
            v["tenders"] = Value::Array(tenders);
        }
        v["net_amounts"] = amounts;
        v["total_money"] = money(total, c);
        v["total_tax_money"] = money(tax, c);
        v["total_discount_money"] = money(discount, c);
        v["total_tip_money"] = money(tips, c);
        v["total_service_charge_money"] = money(charges, c);
        v["net_amount_due_money"] = money(
            if o.state == "CANCELED" {
                0
            } else {
                (total - paid).max(0)
            },
            c,
        );
        v
    }

    fn return_json(&self, o: &SquareOrder, ret: &SquareReturn, mut v: Value) -> Value {
        let c = &self.currency;
        let Some(src) = self.orders.get(&ret.source_order_id) else {
            return v;
        };
        let return_tax_uid = |uid: &str| format!("r-{uid}");
        let lines: Vec<&SquareLine> = src
            .lines
            .iter()
            .filter(|l| ret.line_uids.contains(&l.uid))
            .collect();
        let charges: Vec<&SquareServiceCharge> = src
            .service_charges
            .iter()
            .filter(|_| ret.service_charges)
            .collect();
        let applied = |taxes: &[(String, i64)], owner: &str| -> Value {
            taxes
                .iter()
                .map(|(uid, cents)| {
                    json!({"uid": format!("r-{owner}-{uid}"), "tax_uid": return_tax_uid(uid), "applied_money": money(*cents, c)})
                })
                .collect()
        };
        let line_items: Vec<Value> = lines
            .iter()
            .map(|l| {
                json!({
                    "uid": format!("r-{}", l.uid),
                    "source_line_item_uid": l.uid,
                    "name": l.name,
                    "quantity": l.quantity.to_string(),
                    "item_type": l.item_type,
                    "catalog_object_id": l.catalog_object_id,
                    "base_price_money": money(l.base_price_cents, c),
                    "variation_total_price_money": money(l.gross(), c),
                    "gross_return_money": money(l.gross(), c),
                    "total_tax_money": money(l.tax(), c),
                    "total_discount_money": money(l.discount(), c),
                    "total_money": money(l.total(), c),
                    "applied_taxes": applied(&l.taxes, &l.uid),
                })
            })
            .collect();
        let return_charges: Vec<Value> = charges
            .iter()
            .map(|s| {
                let mut x = json!({
                    "uid": format!("r-{}", s.uid),
                    "source_service_charge_uid": s.uid,
                    "name": s.name,
                    "applied_money": money(s.amount_cents, c),
                    "total_tax_money": money(s.tax(), c),
                    "total_money": money(s.total(), c),
                    "calculation_phase": "SUBTOTAL_PHASE",
                    "taxable": !s.taxes.is_empty(),
                    "applied_taxes": applied(&s.taxes, &s.uid),
                    "treatment_type": "LINE_ITEM_TREATMENT",
                    "scope": "ORDER",
                });
                match s.basis_points {
                    Some(bp) => {
                        x["percentage"] = json!(Decimal::new(bp, 2).normalize().to_string())
                    }
                    None => x["amount_money"] = money(s.amount_cents, c),
                }
                x
            })
            .collect();
        let mut by_tax: BTreeMap<&str, i64> = BTreeMap::new();
        for (uid, cents) in lines
            .iter()
            .flat_map(|l| &l.taxes)
            .chain(charges.iter().flat_map(|s| &s.taxes))
        {
            *by_tax.entry(uid.as_str()).or_default() += cents;
        }
        let return_taxes: Vec<Value> = src
            .taxes
            .iter()
            .filter_map(|t| {
                let cents = *by_tax.get(t.uid.as_str())?;
                Some(json!({
                    "uid": return_tax_uid(&t.uid),
                    "source_tax_uid": t.uid,
                    "name": t.name,
                    "type": "ADDITIVE",
                    "percentage": t.percentage(),
                    "applied_money": money(cents, c),
                    "scope": "LINE_ITEM",
                }))
            })
            .collect();
        let tax: i64 = by_tax.values().sum();
        let discount: i64 = lines.iter().map(|l| l.discount()).sum();
        let charge_money: i64 = charges.iter().map(|s| s.amount_cents).sum();
        let total: i64 = lines.iter().map(|l| l.total()).sum::<i64>()
            + charges.iter().map(|s| s.total()).sum::<i64>()
            + ret.tip_cents;
        let amounts = |sign: i64| {
            json!({
                "total_money": money(sign * total, c),
                "tax_money": money(sign * tax, c),
                "discount_money": money(sign * discount, c),
                "tip_money": money(sign * ret.tip_cents, c),
                "service_charge_money": money(sign * charge_money, c),
            })
        };
        let mut r = json!({
            "uid": format!("r-{}", o.id),
            "source_order_id": src.id,
            "return_line_items": line_items,
            "return_taxes": return_taxes,
            "return_amounts": amounts(1),
        });
        if !return_charges.is_empty() {
            r["return_service_charges"] = Value::Array(return_charges);
        }
        if ret.tip_cents > 0 {
            r["return_tips"] = json!([{
                "uid": format!("r-tip-{}", ret.payment_id),
                "applied_money": money(ret.tip_cents, c),
                "source_tender_id": ret.payment_id,
            }]);
        }
        v["returns"] = json!([r]);
        v["return_amounts"] = amounts(1);
        v["net_amounts"] = amounts(-1);
        v["total_money"] = money(0, c);
        v["total_tax_money"] = money(0, c);
        v["total_discount_money"] = money(0, c);
        v["total_tip_money"] = money(0, c);
        v["total_service_charge_money"] = money(0, c);
        v["refunds"] = o
            .refund_ids
            .iter()
            .filter_map(|id| self.refunds.get(id))
            .map(|r| {
                json!({
                    "id": r.id,
                    "location_id": r.location_id,
                    "transaction_id": o.id,
                    "tender_id": r.payment_id,
                    "created_at": time::rfc3339_ms(r.created_at),
                    "reason": r.reason,
                    "amount_money": money(r.amount_cents, c),
                    "status": match r.status.as_str() {
                        "COMPLETED" => "APPROVED",
                        s => s,
                    },
                })
            })
            .collect();
        v
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
            "EXPECTED_JSON_BODY",
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
                    "EXPECTED_JSON_BODY",
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

async fn list_locations(State(app): State<Arc<SquareApp>>) -> Response {
    let data = app.data.lock().unwrap();
    let locations: Vec<Value> = data
        .locations
        .iter()
        .map(|l| {
            json!({
                "id": l.id,
                "name": l.name,
                "business_name": "Sandbox Bistro",
                "timezone": app.config.time_zone,
                "capabilities": ["CREDIT_CARD_PROCESSING"],
                "status": "ACTIVE",
                "created_at": "2020-01-01T00:00:00.000Z",
                "merchant_id": data.merchant_id,
                "country": "US",
                "language_code": "en-US",
                "currency": data.currency,
                "type": "PHYSICAL",
                "mcc": "5812",
            })
        })
        .collect();
    json(StatusCode::OK, &json!({ "locations": locations }))
}

async fn get_payment(State(app): State<Arc<SquareApp>>, Path(id): Path<String>) -> Response {
    match app.data.lock().unwrap().payments.get(&id) {
        Some(p) => json(StatusCode::OK, &json!({"payment": p.to_json()})),
        None => error(
            StatusCode::NOT_FOUND,
            "INVALID_REQUEST_ERROR",
            "NOT_FOUND",
            &format!("Could not find payment with id: {id}"),
            None,
        ),
    }
}

async fn get_refund(State(app): State<Arc<SquareApp>>, Path(id): Path<String>) -> Response {
    match app.data.lock().unwrap().refunds.get(&id) {
        Some(r) => json(StatusCode::OK, &json!({"refund": r.to_json()})),
        None => error(
            StatusCode::NOT_FOUND,
            "INVALID_REQUEST_ERROR",
            "NOT_FOUND",
            &format!("Could not find refund with id: {id}"),
            None,
        ),
    }
}

async fn batch_retrieve_orders(State(app): State<Arc<SquareApp>>, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return invalid(
            "EXPECTED_JSON_BODY",
            "The request body is not valid JSON.",
            "body",
        );
    };
    let ids = match string_list(&req, "order_ids") {
        Ok(Some(ids)) => ids,
        Ok(None) => {
            return invalid(
                "MISSING_REQUIRED_PARAMETER",
                "order_ids is required.",
                "order_ids",
            );
        }
        Err(e) => return e,
    };
    if ids.len() > MAX_ORDER_IDS {
        return invalid(
            "ARRAY_LENGTH_TOO_LONG",
            &format!("order_ids may hold at most {MAX_ORDER_IDS} ids."),
            "order_ids",
        );
    }
    let location = req.get("location_id").and_then(Value::as_str);
    let data = app.data.lock().unwrap();
    let orders: Vec<Value> = ids
        .iter()
        .filter_map(|id| data.orders.get(id))
        .filter(|o| location.is_none_or(|l| o.location_id == l))
        .map(|o| data.order_json(o))
        .collect();
    let mut body = json!({});
    if !orders.is_empty() {
        body["orders"] = Value::Array(orders);
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
        .route("/v2/locations", get(list_locations))
        .route("/v2/payments", get(list_payments))
        .route("/v2/payments/{id}", get(get_payment))
        .route("/v2/refunds/{id}", get(get_refund))
        .route("/v2/orders/batch-retrieve", post(batch_retrieve_orders))
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

    /// What the books should hold: per location × business date × role,
    /// from the sandbox's own integers, as the data stands now (edits
    /// included). See the module doc for what counts.
    pub fn truth(&self) -> Truth {
        self.app.data.lock().unwrap().truth()
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

    /// Every order (sales and returns), by created time.
    pub fn orders(&self) -> Vec<SquareOrder> {
        let mut v: Vec<SquareOrder> = self
            .app
            .data
            .lock()
            .unwrap()
            .orders
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        v
    }

    /// One order.
    pub fn order(&self, id: &str) -> Option<SquareOrder> {
        self.app.data.lock().unwrap().orders.get(id).cloned()
    }

    /// One order's JSON, as BatchRetrieveOrders serves it.
    pub fn order_json(&self, id: &str) -> Option<Value> {
        let data = self.app.data.lock().unwrap();
        data.orders.get(id).map(|o| data.order_json(o))
    }

    /// Every refund, by created time.
    pub fn refunds(&self) -> Vec<SquareRefund> {
        let mut v: Vec<SquareRefund> = self
            .app
            .data
            .lock()
            .unwrap()
            .refunds
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        v
    }

    /// Adds (or replaces) a payment. Its money is in the truth only when its
    /// order (`order_id`) exists and is then fully paid.
    pub fn add_payment(&self, payment: SquarePayment) {
        self.app
            .data
            .lock()
            .unwrap()
            .payments
            .insert(payment.id.clone(), payment);
    }

    /// Generates a sale at `location_id` created at `created_at` (an order,
    /// its payments, maybe a same-day refund), adds it and returns the
    /// payment that paid most (or its first payment).
    pub fn generate_payment(&self, location_id: &str, created_at: Timestamp) -> SquarePayment {
        let mut data = self.app.data.lock().unwrap();
        let currency = data.currency.clone();
        let sale = generate_sale(&mut data.rng, location_id, created_at, &currency, false);
        let main = sale
            .payments
            .iter()
            .filter(|p| p.status == "COMPLETED")
            .max_by_key(|p| p.amount_cents)
            .or(sale.payments.first())
            .cloned();
        let main = main.unwrap_or_else(|| sale.payments[0].clone());
        data.insert(sale);
        data.payments.get(&main.id).cloned().unwrap_or(main)
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

    /// Captures an `APPROVED` card payment now (its fee appears); its order
    /// completes once none of its payments is still approved.
    pub fn complete_payment(&self, id: &str) -> Option<SquarePayment> {
        let mut data = self.app.data.lock().unwrap();
        let now = Timestamp::now();
        let p = data.payments.get_mut(id)?;
        if p.status != "APPROVED" {
            return Some(p.clone());
        }
        p.status = "COMPLETED".into();
        p.captured_at = Some(now);
        p.updated_at = now.max(p.updated_at);
        if p.source_type == "CARD" && !p.is_gift_card() {
            p.fee_cents = card_fee(p.amount_cents + p.tip_cents);
        }
        let p = p.clone();
        let still_open = data
            .orders
            .get(&p.order_id)
            .map(|o| {
                o.payment_ids.iter().any(|id| {
                    data.payments
                        .get(id)
                        .is_some_and(|q| q.status == "APPROVED")
                })
            })
            .unwrap_or(true);
        if let Some(o) = data.orders.get_mut(&p.order_id) {
            if !still_open && o.state == "OPEN" {
                o.state = "COMPLETED".into();
            }
            o.updated_at = now.max(o.updated_at);
        }
        Some(p)
    }

    /// A refund by amount (no return order: no tax or tip comes back) of
    /// `amount_cents` of a completed payment at `at` (created and
    /// completed), or `None` when the payment is unknown, not completed, or
    /// the amount exceeds what is left to refund.
    pub fn refund_payment(
        &self,
        id: &str,
        amount_cents: i64,
        at: Timestamp,
    ) -> Option<SquareRefund> {
        let mut data = self.app.data.lock().unwrap();
        let suffix = data::base62_id(&mut data.rng, 14);
        let p = data.payments.get_mut(id)?;
        if p.status != "COMPLETED"
            || amount_cents <= 0
            || p.refunded_cents + amount_cents > p.amount_cents + p.tip_cents
        {
            return None;
        }
        let r = SquareRefund {
            id: format!("{}_{suffix}", p.id),
            payment_id: p.id.clone(),
            order_id: p.order_id.clone(),
            location_id: p.location_id.clone(),
            created_at: at,
            updated_at: at,
            status: "COMPLETED".into(),
            amount_cents,
            currency: p.currency.clone(),
            reason: "Refund by amount".into(),
            destination_type: p.source_type.clone(),
        };
        p.refunded_cents += amount_cents;
        p.refund_ids.push(r.id.clone());
        p.updated_at = Timestamp::now().max(p.updated_at).max(at);
        data.refunds.insert(r.id.clone(), r.clone());
        Some(r)
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
