//! MarketMan sandbox: the buyer API (token, inventory items and counts,
//! vendors and catalogs, purchase orders, documents) and the vendor
//! documents call used to record a received delivery.
//!
//! Follows providers.md §5:
//! - Every call is an HTTP `POST` with a JSON body under `/v3/buyers/`
//!   (`/v3/vendors/` for the vendor API); every answer carries `IsSuccess`
//!   and `ErrorMessage` (and `ErrorCode`).
//! - `auth/GetToken` `{APIKey, APIPassword}` → `{Token, ExpireDateUTC,
//!   IsSuccess, ErrorMessage, ErrorCode}`; later calls send `AUTH_TOKEN`.
//!   Dates are `yyyy/mm/dd hh:mm:ss` in UTC.
//! - `partneraccounts/GetAuthorisedAccounts` lists the buyers and their
//!   `BuyerGuid`s.
//! - `inventory/GetInventoryItems` `{BuyerGuid, GetDeleted?, ItemIDs?}` →
//!   `Items[]`; `inventory/GetItems` `{itemIDs, Take, Skip, BuyerGuid}` (Take/Skip
//!   paging); `inventory/GetInventoryCounts` `{DateTimeFromUTC, DateTimeToUTC,
//!   BuyerGUID, GetLineDetails}`.
//! - `items/GetVendors`, `orders/GetCatalogItems` `{BuyerGuid, VendorGuid}`,
//!   `orders/CreateOrder` `{BuyerGuid, VendorGuid, OrderStatus, deliveryDateUTC,
//!   sentDateUTC, BuyerUserGuid, comment, catalogItems:[{CatalogItemCode,
//!   Quantity}]}`, `orders/GetOrdersBySentDate` / `GetOrdersByDeliveryDate`
//!   `{DateTimeFromUTC, DateTimeToUTC, BuyerGuid}`: created orders read back.
//! - Receiving: providers.md lists `docs/GetDocsByDocDate`,
//!   `docs/SetDocsExported` (buyer) and `/v3/vendors/docs/SetDocs` (vendor).
//!   None is documented as "record a delivery received"; the closest is
//!   **`/v3/vendors/docs/SetDocs`** (UNVERIFIED: its body here is
//!   `{VendorGuid, Docs:[{BuyerGuid, DocNumber, DocType, DocDateUTC,
//!   OrderNumber?, Items:[{CatalogItemCode, Quantity, Price?}]}]}`), and the
//!   documents it records come back from `docs/GetDocsByDocDate`.
//! - Limit (OFFICIAL): 500 calls per 24 hours per API consumer (every call,
//!   `GetToken` included); past it the answer is HTTP 200
//!   `{"IsSuccess":false,"ErrorMessage":"Reached max calls"}`.
//!
//! UNVERIFIED, chosen here (no published response examples exist): every
//! response field beyond `IsSuccess`/`ErrorMessage`/`ErrorCode`/`Token`/
//! `ExpireDateUTC`; the key case (`BuyerGuid`/`BuyerGUID` are both read, any
//! case); errors answered with HTTP 200 and `IsSuccess:false` (an unknown or
//! expired token gives `ErrorMessage` "Token is invalid or expired",
//! `ErrorCode` "InvalidToken"); token lifetime 24 h; `Take` clamped to 100; the
//! 24-hour window sliding; injected 5xx bodies.

use crate::common::data;
use crate::common::gate::{self, Gate, Rules, Shape};
use crate::common::http::{get_ci, header, json, str_ci};
use crate::common::limits::{LimitPlan, Refused};
use crate::common::money::{cents_json, decimal_json, json_number};
use crate::common::server::{ConnInfo, ServerHandle, StartError};
use crate::common::time;
use crate::common::tokens::{IssuedTokens, TokenPolicy, TokenStore};
use crate::common::{Limit, OBSERVE_WINDOW, common_handle};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;
use http::StatusCode;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The token header.
pub const TOKEN_HEADER: &str = "AUTH_TOKEN";
/// The answer past the daily limit.
pub const REACHED_MAX_CALLS: &str = "Reached max calls";
/// The answer to an unknown or expired token (UNVERIFIED wording).
pub const INVALID_TOKEN: &str = "Token is invalid or expired";

/// How to build a MarketMan sandbox.
#[derive(Debug, Clone)]
pub struct MarketManConfig {
    /// Seed for generated data, tokens and faults.
    pub seed: u64,
    /// The API consumer's key.
    pub api_key: String,
    /// The API consumer's password.
    pub api_password: String,
    /// Buyers (restaurants) the consumer may act for.
    pub buyers: usize,
    /// Vendors each buyer orders from.
    pub vendors: usize,
    /// Catalog items per vendor.
    pub catalog_items: usize,
    /// Inventory items per buyer.
    pub inventory_items: usize,
    /// First day with an inventory count (`None`: the `days` days before
    /// today, see [`data::first_date`]).
    pub first_date: Option<Date>,
    /// Days with a count.
    pub days: u32,
    /// Token lifetime (`ExpireDateUTC`; not documented, 24 h here).
    pub token_ttl: Duration,
    /// Calls per API consumer: 500 per 24 hours.
    pub limits: Vec<Limit>,
    /// Largest `Take` honoured by `GetItems`.
    pub max_take: usize,
    /// Window for `Counters::max_calls_per_window`.
    pub observe_window: Duration,
}

impl Default for MarketManConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            api_key: "sandbox-marketman-key".into(),
            api_password: "sandbox-marketman-password".into(),
            buyers: 1,
            vendors: 2,
            catalog_items: 8,
            inventory_items: 25,
            first_date: None,
            days: 3,
            token_ttl: Duration::from_secs(24 * 3600),
            limits: vec![Limit::sliding("day", 500, Duration::from_secs(86_400))],
            max_take: 100,
            observe_window: OBSERVE_WINDOW,
        }
    }
}

impl MarketManConfig {
    /// Defaults with `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }
}

/// An inventory item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketManItem {
    /// Item id.
    pub id: String,
    /// Name.
    pub name: String,
    /// SKU.
    pub sku: String,
    /// Category.
    pub category: String,
    /// Unit of measure.
    pub uom: String,
    /// Price per unit, cents.
    pub price_cents: i64,
    /// Deleted.
    pub deleted: bool,
}

impl MarketManItem {
    fn to_json(&self) -> Value {
        json!({
            "ID": self.id, "Name": self.name, "SKU": self.sku, "Category": self.category,
            "UOMName": self.uom, "Price": cents_json(self.price_cents), "IsDeleted": self.deleted,
        })
    }
}

/// A vendor's catalog item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketManCatalogItem {
    /// Catalog item code (what orders name).
    pub code: String,
    /// Name.
    pub name: String,
    /// Unit of measure.
    pub uom: String,
    /// Price per unit, cents.
    pub price_cents: i64,
}

/// A vendor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketManVendor {
    /// Vendor GUID.
    pub guid: String,
    /// Name.
    pub name: String,
    /// Catalog.
    pub catalog: Vec<MarketManCatalogItem>,
}

/// A line of an order or document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketManLine {
    /// Catalog item code.
    pub code: String,
    /// Quantity.
    pub quantity: Decimal,
    /// Unit price, cents.
    pub price_cents: i64,
}

/// A purchase order created through `orders/CreateOrder`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketManOrder {
    /// Order number assigned.
    pub order_number: String,
    /// Buyer.
    pub buyer_guid: String,
    /// Vendor.
    pub vendor_guid: String,
    /// `OrderStatus` as sent.
    pub status: String,
    /// `sentDateUTC`.
    pub sent: Timestamp,
    /// `deliveryDateUTC`.
    pub delivery: Timestamp,
    /// `comment`.
    pub comment: String,
    /// `BuyerUserGuid`.
    pub buyer_user_guid: Option<String>,
    /// Lines.
    pub lines: Vec<MarketManLine>,
}

/// A document (delivery note or invoice) recorded through
/// `/v3/vendors/docs/SetDocs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketManDoc {
    /// Document id assigned.
    pub id: String,
    /// Vendor.
    pub vendor_guid: String,
    /// Buyer.
    pub buyer_guid: String,
    /// Document number as sent.
    pub number: String,
    /// `DeliveryNote`, `Invoice`, ...
    pub doc_type: String,
    /// Document date.
    pub date: Timestamp,
    /// The order it receives, if given.
    pub order_number: Option<String>,
    /// Lines.
    pub lines: Vec<MarketManLine>,
    /// Marked exported by `docs/SetDocsExported`.
    pub exported: bool,
}

/// One line of an inventory count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketManCountLine {
    /// Item id.
    pub item_id: String,
    /// Counted quantity.
    pub quantity: Decimal,
}

/// An inventory count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketManCount {
    /// Count id.
    pub id: String,
    /// Buyer.
    pub buyer_guid: String,
    /// When counted.
    pub date: Timestamp,
    /// Lines.
    pub lines: Vec<MarketManCountLine>,
}

fn line_json(l: &MarketManLine) -> Value {
    json!({
        "CatalogItemCode": l.code,
        "Quantity": decimal_json(l.quantity),
        "Price": cents_json(l.price_cents),
        "TotalPrice": decimal_json(crate::common::money::round_cents(
            l.quantity * crate::common::money::cents_decimal(l.price_cents)
        )),
    })
}

fn lines_total(lines: &[MarketManLine]) -> Value {
    let total: Decimal = lines
        .iter()
        .map(|l| {
            crate::common::money::round_cents(
                l.quantity * crate::common::money::cents_decimal(l.price_cents),
            )
        })
        .sum();
    decimal_json(total)
}

impl MarketManOrder {
    fn to_json(&self, vendor_name: &str) -> Value {
        json!({
            "OrderNumber": self.order_number, "BuyerGuid": self.buyer_guid, "VendorGuid": self.vendor_guid,
            "VendorName": vendor_name, "OrderStatus": self.status,
            "SentDateUTC": time::marketman(self.sent), "DeliveryDateUTC": time::marketman(self.delivery),
            "Comment": self.comment, "BuyerUserGuid": self.buyer_user_guid,
            "Items": self.lines.iter().map(line_json).collect::<Vec<_>>(),
            "TotalPrice": lines_total(&self.lines),
        })
    }
}

impl MarketManDoc {
    fn to_json(&self) -> Value {
        json!({
            "DocID": self.id, "DocNumber": self.number, "DocType": self.doc_type,
            "VendorGuid": self.vendor_guid, "BuyerGuid": self.buyer_guid,
            "DocDateUTC": time::marketman(self.date), "OrderNumber": self.order_number,
            "Items": self.lines.iter().map(line_json).collect::<Vec<_>>(),
            "TotalAmount": lines_total(&self.lines), "IsExported": self.exported,
        })
    }
}

const ITEM_NAMES: &[(&str, &str, &str)] = &[
    ("Ground Beef", "Meat", "lb"),
    ("Chicken Wings", "Meat", "lb"),
    ("Burger Buns", "Bakery", "each"),
    ("Romaine Lettuce", "Produce", "case"),
    ("Tomatoes", "Produce", "lb"),
    ("Russet Potatoes", "Produce", "lb"),
    ("Fryer Oil", "Dry Goods", "gal"),
    ("Mozzarella", "Dairy", "lb"),
    ("Pizza Flour", "Dry Goods", "lb"),
    ("Cola Syrup", "Beverage", "box"),
    ("Draft Beer Keg", "Beverage", "keg"),
    ("House Red Wine", "Beverage", "bottle"),
    ("Espresso Beans", "Beverage", "lb"),
    ("Cream Cheese", "Dairy", "lb"),
    ("Cod Fillet", "Seafood", "lb"),
];

#[derive(Debug)]
struct Buyer {
    guid: String,
    name: String,
    items: Vec<MarketManItem>,
    counts: Vec<MarketManCount>,
}

#[derive(Debug)]
struct MarketManData {
    buyers: Vec<Buyer>,
    vendors: Vec<MarketManVendor>,
    orders: Vec<MarketManOrder>,
    docs: Vec<MarketManDoc>,
    rng: ChaCha8Rng,
    next_order: u64,
}

fn simple_guid(rng: &mut ChaCha8Rng) -> String {
    data::guid(rng).replace('-', "")
}

impl MarketManData {
    fn generate(config: &MarketManConfig) -> Self {
        let mut rng = data::rng(config.seed, 3);
        let vendors: Vec<MarketManVendor> = (0..config.vendors)
            .map(|v| MarketManVendor {
                guid: simple_guid(&mut rng),
                name: ["Sysco", "Restaurant Depot", "US Foods", "Local Farms"][v % 4].to_string(),
                catalog: (0..config.catalog_items)
                    .map(|i| {
                        let (name, _, uom) = ITEM_NAMES[(v * 5 + i) % ITEM_NAMES.len()];
                        MarketManCatalogItem {
                            code: format!("{}", 3_500_000 + v * 1000 + i),
                            name: name.to_string(),
                            uom: uom.to_string(),
                            price_cents: rng.random_range(150..9_000),
                        }
                    })
                    .collect(),
            })
            .collect();
        let buyers = (0..config.buyers.max(1))
            .map(|b| {
                let guid = simple_guid(&mut rng);
                let items: Vec<MarketManItem> = (0..config.inventory_items)
                    .map(|i| {
                        let (name, category, uom) = ITEM_NAMES[i % ITEM_NAMES.len()];
                        let suffix = i / ITEM_NAMES.len();
                        MarketManItem {
                            id: format!("{}", 100_000 + b * 10_000 + i),
                            name: if suffix == 0 {
                                name.to_string()
                            } else {
                                format!("{name} #{}", suffix + 1)
                            },
                            sku: format!("SKU-{:05}", rng.random_range(0..100_000)),
                            category: category.to_string(),
                            uom: uom.to_string(),
                            price_cents: rng.random_range(100..5_000),
                            deleted: false,
                        }
                    })
                    .collect();
                let first = data::first_date(config.first_date, config.days);
                let counts = (0..config.days)
                    .map(|d| {
                        let date = data::add_days(first, i64::from(d));
                        MarketManCount {
                            id: simple_guid(&mut rng),
                            buyer_guid: guid.clone(),
                            date: data::local(date, 23 * 3600, 0, &TimeZone::UTC),
                            lines: items
                                .iter()
                                .map(|it| MarketManCountLine {
                                    item_id: it.id.clone(),
                                    quantity: Decimal::new(rng.random_range(0..500), 1),
                                })
                                .collect(),
                        }
                    })
                    .collect();
                Buyer {
                    guid,
                    name: format!("Sandbox Kitchen {}", b + 1),
                    items,
                    counts,
                }
            })
            .collect();
        Self {
            buyers,
            vendors,
            orders: Vec::new(),
            docs: Vec::new(),
            rng,
            next_order: 1,
        }
    }
}

#[derive(Debug)]
struct MarketManApp {
    gate: Gate,
    tokens: TokenStore,
    config: MarketManConfig,
    data: Mutex<MarketManData>,
}

fn answer(fields: Value) -> Response {
    let mut body = json!({"IsSuccess": true, "ErrorMessage": null, "ErrorCode": null});
    if let (Some(b), Some(f)) = (body.as_object_mut(), fields.as_object()) {
        for (k, v) in f {
            b.insert(k.clone(), v.clone());
        }
    }
    json(StatusCode::OK, &body)
}

fn failure(message: &str, code: Option<&str>) -> Response {
    json(
        StatusCode::OK,
        &json!({"IsSuccess": false, "ErrorMessage": message, "ErrorCode": code}),
    )
}

impl Shape for MarketManApp {
    fn rate_limited(&self, _refused: &Refused) -> Response {
        json(
            StatusCode::OK,
            &json!({"IsSuccess": false, "ErrorMessage": REACHED_MAX_CALLS}),
        )
    }

    fn server_error(&self, status: StatusCode) -> Response {
        json(
            status,
            &json!({"IsSuccess": false, "ErrorMessage": "An error has occurred (injected by the sandbox)", "ErrorCode": null}),
        )
    }
}

impl Rules for MarketManApp {
    fn gate(&self) -> &Gate {
        &self.gate
    }

    fn plan(&self, _request: &Request, _conn: &ConnInfo) -> (Option<String>, LimitPlan) {
        // One API consumer per sandbox: every call is charged to it.
        (
            Some(self.config.api_key.clone()),
            LimitPlan {
                scopes: vec![("consumer".into(), self.config.limits.clone())],
                ..LimitPlan::default()
            },
        )
    }

    fn authenticate(&self, request: &mut Request) -> Result<(), Response> {
        if request.uri().path() == "/v3/buyers/auth/GetToken" {
            return Ok(());
        }
        let expired = self.gate.faults().expire_tokens;
        let token = header(request.headers(), TOKEN_HEADER).unwrap_or_default();
        match self.tokens.check_token(token, expired) {
            Ok(_) => Ok(()),
            Err(_) => {
                self.gate.stats().update(|c| c.unauthorized += 1);
                Err(failure(INVALID_TOKEN, Some("InvalidToken")))
            }
        }
    }
}

fn body_json(body: &[u8]) -> Result<Value, Response> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| {
        failure(
            &format!("The request body is not valid JSON: {e}"),
            Some("InvalidRequest"),
        )
    })
}

fn date_field(req: &Value, name: &str) -> Result<Timestamp, Response> {
    let s = str_ci(req, name)
        .ok_or_else(|| failure(&format!("{name} is required"), Some("InvalidRequest")))?;
    time::parse_marketman(s).ok_or_else(|| {
        failure(
            &format!("{name} must be yyyy/mm/dd hh:mm:ss (UTC)"),
            Some("InvalidRequest"),
        )
    })
}

fn string_list(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array().map(|a| {
        a.iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect()
    })
}

impl MarketManApp {
    fn buyer_index(&self, req: &Value) -> Result<usize, Response> {
        let guid = str_ci(req, "BuyerGuid").unwrap_or_default();
        self.data
            .lock()
            .unwrap()
            .buyers
            .iter()
            .position(|b| b.guid.eq_ignore_ascii_case(guid))
            .ok_or_else(|| {
                failure(
                    &format!("Buyer '{guid}' was not found or is not authorised"),
                    Some("BuyerNotFound"),
                )
            })
    }
}

async fn get_token(State(app): State<Arc<MarketManApp>>, body: Bytes) -> Response {
    app.gate.stats().update(|c| c.token_requests += 1);
    let req = match body_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if str_ci(&req, "APIKey") != Some(app.config.api_key.as_str())
        || str_ci(&req, "APIPassword") != Some(app.config.api_password.as_str())
    {
        return json(
            StatusCode::OK,
            &json!({"Token": null, "ExpireDateUTC": null, "IsSuccess": false,
                "ErrorMessage": "Invalid APIKey or APIPassword", "ErrorCode": "InvalidCredentials"}),
        );
    }
    let issued = app.tokens.issue(&app.config.api_key, false);
    answer(
        json!({"Token": issued.access_token, "ExpireDateUTC": time::marketman(issued.expires_at)}),
    )
}

async fn get_token_details(
    State(app): State<Arc<MarketManApp>>,
    request: axum::http::HeaderMap,
) -> Response {
    let token = header(&request, TOKEN_HEADER)
        .unwrap_or_default()
        .to_string();
    answer(json!({"Token": token, "APIKey": app.config.api_key}))
}

async fn authorised_accounts(State(app): State<Arc<MarketManApp>>) -> Response {
    let data = app.data.lock().unwrap();
    let buyers: Vec<Value> = data
        .buyers
        .iter()
        .map(|b| json!({"BuyerGuid": b.guid, "BuyerName": b.name}))
        .collect();
    answer(json!({"Buyers": buyers, "Chains": []}))
}

async fn inventory_items(State(app): State<Arc<MarketManApp>>, body: Bytes) -> Response {
    let req = match body_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let b = match app.buyer_index(&req) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let deleted = get_ci(&req, "GetDeleted")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let ids = string_list(get_ci(&req, "ItemIDs"));
    let data = app.data.lock().unwrap();
    let items: Vec<Value> = data.buyers[b]
        .items
        .iter()
        .filter(|i| deleted || !i.deleted)
        .filter(|i| ids.as_ref().is_none_or(|ids| ids.contains(&i.id)))
        .map(MarketManItem::to_json)
        .collect();
    answer(json!({"Items": items}))
}

async fn items_paged(State(app): State<Arc<MarketManApp>>, body: Bytes) -> Response {
    let req = match body_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let b = match app.buyer_index(&req) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let number = |name: &str, default: usize| -> Result<usize, Response> {
        match get_ci(&req, name) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    failure(
                        &format!("{name} must be a non-negative integer"),
                        Some("InvalidRequest"),
                    )
                }),
        }
    };
    let take = match number("Take", app.config.max_take) {
        Ok(t) => t.min(app.config.max_take),
        Err(e) => return e,
    };
    let skip = match number("Skip", 0) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let ids = string_list(get_ci(&req, "itemIDs"));
    let data = app.data.lock().unwrap();
    let items: Vec<Value> = data.buyers[b]
        .items
        .iter()
        .filter(|i| !i.deleted)
        .filter(|i| ids.as_ref().is_none_or(|ids| ids.contains(&i.id)))
        .skip(skip)
        .take(take)
        .map(MarketManItem::to_json)
        .collect();
    answer(json!({"Items": items}))
}

async fn inventory_counts(State(app): State<Arc<MarketManApp>>, body: Bytes) -> Response {
    let req = match body_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let b = match app.buyer_index(&req) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let (from, to) = match (
        date_field(&req, "DateTimeFromUTC"),
        date_field(&req, "DateTimeToUTC"),
    ) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let details = get_ci(&req, "GetLineDetails")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let data = app.data.lock().unwrap();
    let buyer = &data.buyers[b];
    let counts: Vec<Value> = buyer
        .counts
        .iter()
        .filter(|c| c.date >= from && c.date <= to)
        .map(|c| {
            let mut v = json!({"ID": c.id, "CountDateUTC": time::marketman(c.date), "BuyerGuid": c.buyer_guid});
            if details {
                v["Lines"] = Value::Array(
                    c.lines
                        .iter()
                        .map(|l| {
                            let item = buyer.items.iter().find(|i| i.id == l.item_id);
                            json!({
                                "ItemID": l.item_id,
                                "ItemName": item.map(|i| i.name.clone()),
                                "UOMName": item.map(|i| i.uom.clone()),
                                "Quantity": decimal_json(l.quantity),
                            })
                        })
                        .collect(),
                );
            }
            v
        })
        .collect();
    answer(json!({"InventoryCounts": counts}))
}

async fn vendors(State(app): State<Arc<MarketManApp>>, body: Bytes) -> Response {
    let req = match body_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if let Err(e) = app.buyer_index(&req) {
        return e;
    }
    let data = app.data.lock().unwrap();
    let list: Vec<Value> = data
        .vendors
        .iter()
        .map(|v| json!({"VendorGuid": v.guid, "VendorName": v.name}))
        .collect();
    answer(json!({"Vendors": list}))
}

async fn catalog_items(State(app): State<Arc<MarketManApp>>, body: Bytes) -> Response {
    let req = match body_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if let Err(e) = app.buyer_index(&req) {
        return e;
    }
    let vendor = str_ci(&req, "VendorGuid").unwrap_or_default();
    let data = app.data.lock().unwrap();
    let Some(v) = data
        .vendors
        .iter()
        .find(|v| v.guid.eq_ignore_ascii_case(vendor))
    else {
        return failure(
            &format!("Vendor '{vendor}' was not found"),
            Some("VendorNotFound"),
        );
    };
    let items: Vec<Value> = v
        .catalog
        .iter()
        .map(|c| json!({"CatalogItemCode": c.code, "Name": c.name, "UOMName": c.uom, "Price": cents_json(c.price_cents)}))
        .collect();
    answer(json!({"CatalogItems": items}))
}

/// Reads `[{CatalogItemCode, Quantity, Price?}]` against a vendor catalog.
fn read_lines(
    vendor: &MarketManVendor,
    lines: Option<&Value>,
    allow_price: bool,
) -> Result<Vec<MarketManLine>, Response> {
    let lines = lines
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            failure(
                "At least one catalog item is required",
                Some("InvalidRequest"),
            )
        })?;
    lines
        .iter()
        .map(|l| {
            let code = match get_ci(l, "CatalogItemCode") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => {
                    return Err(failure(
                        "CatalogItemCode is required",
                        Some("InvalidRequest"),
                    ));
                }
            };
            let item = vendor
                .catalog
                .iter()
                .find(|c| c.code == code)
                .ok_or_else(|| {
                    failure(
                        &format!(
                            "Catalog item '{code}' was not found for vendor {}",
                            vendor.guid
                        ),
                        Some("CatalogItemNotFound"),
                    )
                })?;
            let quantity = get_ci(l, "Quantity")
                .and_then(json_number)
                .filter(|q| *q > Decimal::ZERO)
                .ok_or_else(|| {
                    failure(
                        &format!("Quantity of '{code}' must be a positive number"),
                        Some("InvalidRequest"),
                    )
                })?;
            let price_cents = match get_ci(l, "Price")
                .filter(|_| allow_price)
                .map(|p| {
                    json_number(p).ok_or_else(|| {
                        failure(
                            &format!("Price of '{code}' must be a number"),
                            Some("InvalidRequest"),
                        )
                    })
                })
                .transpose()?
            {
                Some(p) => crate::common::money::decimal_cents(p).ok_or_else(|| {
                    failure(
                        &format!("Price of '{code}' has more than two decimals"),
                        Some("InvalidRequest"),
                    )
                })?,
                None => item.price_cents,
            };
            Ok(MarketManLine {
                code,
                quantity,
                price_cents,
            })
        })
        .collect()
}

async fn create_order(State(app): State<Arc<MarketManApp>>, body: Bytes) -> Response {
    let req = match body_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let b = match app.buyer_index(&req) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let (sent, delivery) = match (
        date_field(&req, "sentDateUTC"),
        date_field(&req, "deliveryDateUTC"),
    ) {
        (Ok(s), Ok(d)) => (s, d),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let vendor_guid = str_ci(&req, "VendorGuid").unwrap_or_default();
    let mut data = app.data.lock().unwrap();
    let Some(vendor) = data
        .vendors
        .iter()
        .find(|v| v.guid.eq_ignore_ascii_case(vendor_guid))
        .cloned()
    else {
        return failure(
            &format!("Vendor '{vendor_guid}' was not found"),
            Some("VendorNotFound"),
        );
    };
    let lines = match read_lines(&vendor, get_ci(&req, "catalogItems"), false) {
        Ok(l) => l,
        Err(e) => return e,
    };
    let number = format!("PO-{:06}", data.next_order);
    data.next_order += 1;
    let order = MarketManOrder {
        order_number: number.clone(),
        buyer_guid: data.buyers[b].guid.clone(),
        vendor_guid: vendor.guid.clone(),
        status: str_ci(&req, "OrderStatus").unwrap_or("Sent").to_string(),
        sent,
        delivery,
        comment: str_ci(&req, "comment").unwrap_or_default().to_string(),
        buyer_user_guid: str_ci(&req, "BuyerUserGuid").map(str::to_string),
        lines,
    };
    let total = lines_total(&order.lines);
    data.orders.push(order);
    answer(json!({"OrderNumber": number, "TotalPrice": total}))
}

async fn orders_by(app: Arc<MarketManApp>, body: Bytes, by_sent: bool) -> Response {
    let req = match body_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let b = match app.buyer_index(&req) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let (from, to) = match (
        date_field(&req, "DateTimeFromUTC"),
        date_field(&req, "DateTimeToUTC"),
    ) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let data = app.data.lock().unwrap();
    let buyer = &data.buyers[b].guid;
    let orders: Vec<Value> = data
        .orders
        .iter()
        .filter(|o| &o.buyer_guid == buyer)
        .filter(|o| {
            let at = if by_sent { o.sent } else { o.delivery };
            at >= from && at <= to
        })
        .map(|o| {
            let name = data
                .vendors
                .iter()
                .find(|v| v.guid == o.vendor_guid)
                .map(|v| v.name.as_str())
                .unwrap_or_default();
            o.to_json(name)
        })
        .collect();
    answer(json!({"Orders": orders}))
}

async fn set_docs(State(app): State<Arc<MarketManApp>>, body: Bytes) -> Response {
    let req = match body_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let vendor_guid = str_ci(&req, "VendorGuid").unwrap_or_default().to_string();
    let docs = match get_ci(&req, "Docs").and_then(Value::as_array) {
        Some(d) if !d.is_empty() => d.clone(),
        _ => return failure("Docs is required", Some("InvalidRequest")),
    };
    let mut data = app.data.lock().unwrap();
    let Some(vendor) = data
        .vendors
        .iter()
        .find(|v| v.guid.eq_ignore_ascii_case(&vendor_guid))
        .cloned()
    else {
        return failure(
            &format!("Vendor '{vendor_guid}' was not found"),
            Some("VendorNotFound"),
        );
    };
    // Validate every document before recording any.
    let mut parsed = Vec::new();
    for d in &docs {
        let buyer = str_ci(d, "BuyerGuid").unwrap_or_default();
        let Some(buyer) = data
            .buyers
            .iter()
            .find(|b| b.guid.eq_ignore_ascii_case(buyer))
            .map(|b| b.guid.clone())
        else {
            return failure(
                &format!("Buyer '{buyer}' was not found or is not authorised"),
                Some("BuyerNotFound"),
            );
        };
        let date = match date_field(d, "DocDateUTC") {
            Ok(t) => t,
            Err(e) => return e,
        };
        let Some(number) = str_ci(d, "DocNumber").filter(|s| !s.is_empty()) else {
            return failure("DocNumber is required", Some("InvalidRequest"));
        };
        let lines = match read_lines(&vendor, get_ci(d, "Items"), true) {
            Ok(l) => l,
            Err(e) => return e,
        };
        parsed.push((buyer, date, number.to_string(), d.clone(), lines));
    }
    let mut out = Vec::new();
    for (buyer, date, number, d, lines) in parsed {
        let id = simple_guid(&mut data.rng);
        out.push(json!({"DocNumber": number, "DocID": id}));
        data.docs.push(MarketManDoc {
            id,
            vendor_guid: vendor.guid.clone(),
            buyer_guid: buyer,
            number,
            doc_type: str_ci(&d, "DocType").unwrap_or("DeliveryNote").to_string(),
            date,
            order_number: str_ci(&d, "OrderNumber").map(str::to_string),
            lines,
            exported: false,
        });
    }
    answer(json!({"Docs": out}))
}

async fn docs_by_date(State(app): State<Arc<MarketManApp>>, body: Bytes) -> Response {
    let req = match body_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let b = match app.buyer_index(&req) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let (from, to) = match (
        date_field(&req, "DateTimeFromUTC"),
        date_field(&req, "DateTimeToUTC"),
    ) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let data = app.data.lock().unwrap();
    let buyer = &data.buyers[b].guid;
    let docs: Vec<Value> = data
        .docs
        .iter()
        .filter(|d| &d.buyer_guid == buyer && d.date >= from && d.date <= to)
        .map(MarketManDoc::to_json)
        .collect();
    answer(json!({"Docs": docs}))
}

async fn docs_exported(State(app): State<Arc<MarketManApp>>, body: Bytes) -> Response {
    let req = match body_json(&body) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let b = match app.buyer_index(&req) {
        Ok(b) => b,
        Err(e) => return e,
    };
    let ids = string_list(get_ci(&req, "DocIDs")).unwrap_or_default();
    let mut data = app.data.lock().unwrap();
    let buyer = data.buyers[b].guid.clone();
    let mut marked = 0;
    for d in data
        .docs
        .iter_mut()
        .filter(|d| d.buyer_guid == buyer && ids.contains(&d.id))
    {
        d.exported = true;
        marked += 1;
    }
    answer(json!({"UpdatedDocs": marked}))
}

async fn not_found() -> Response {
    json(
        StatusCode::NOT_FOUND,
        &json!({"IsSuccess": false, "ErrorMessage": "No such API method", "ErrorCode": null}),
    )
}

fn router(app: Arc<MarketManApp>) -> Router {
    Router::new()
        .route("/v3/buyers/auth/GetToken", post(get_token))
        .route("/v3/buyers/auth/GetTokenDetails", post(get_token_details))
        .route(
            "/v3/buyers/partneraccounts/GetAuthorisedAccounts",
            post(authorised_accounts),
        )
        .route(
            "/v3/buyers/inventory/GetInventoryItems",
            post(inventory_items),
        )
        .route("/v3/buyers/inventory/GetItems", post(items_paged))
        .route(
            "/v3/buyers/inventory/GetInventoryCounts",
            post(inventory_counts),
        )
        .route("/v3/buyers/items/GetVendors", post(vendors))
        .route("/v3/buyers/orders/GetCatalogItems", post(catalog_items))
        .route("/v3/buyers/orders/CreateOrder", post(create_order))
        .route(
            "/v3/buyers/orders/GetOrdersBySentDate",
            post(|State(app): State<Arc<MarketManApp>>, body: Bytes| orders_by(app, body, true)),
        )
        .route(
            "/v3/buyers/orders/GetOrdersByDeliveryDate",
            post(|State(app): State<Arc<MarketManApp>>, body: Bytes| orders_by(app, body, false)),
        )
        .route("/v3/buyers/docs/GetDocsByDocDate", post(docs_by_date))
        .route("/v3/buyers/docs/SetDocsExported", post(docs_exported))
        .route("/v3/vendors/docs/SetDocs", post(set_docs))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            gate::middleware::<MarketManApp>,
        ))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::common::MAX_BODY_BYTES,
        ))
        .with_state(app)
}

/// A running MarketMan sandbox.
#[derive(Debug)]
pub struct MarketManSandbox {
    server: ServerHandle,
    app: Arc<MarketManApp>,
}

common_handle!(MarketManSandbox);

impl MarketManSandbox {
    /// Generates the data and starts serving.
    pub async fn start(config: MarketManConfig) -> Result<Self, StartError> {
        let app = Arc::new(MarketManApp {
            gate: Gate::new(config.seed, config.observe_window),
            tokens: TokenStore::new(
                TokenPolicy {
                    access_ttl: config.token_ttl,
                    refresh_ttl: Duration::ZERO,
                    rotate_refresh: false,
                    reuse_grace: Duration::ZERO,
                    prefix: "mm_",
                },
                config.seed,
            ),
            data: Mutex::new(MarketManData::generate(&config)),
            config,
        });
        let server = ServerHandle::start("marketman", router(app.clone())).await?;
        Ok(Self { server, app })
    }

    /// The API consumer's key.
    pub fn api_key(&self) -> &str {
        &self.app.config.api_key
    }

    /// The API consumer's password.
    pub fn api_password(&self) -> &str {
        &self.app.config.api_password
    }

    /// Every buyer GUID.
    pub fn buyer_guids(&self) -> Vec<String> {
        self.app
            .data
            .lock()
            .unwrap()
            .buyers
            .iter()
            .map(|b| b.guid.clone())
            .collect()
    }

    /// The first buyer GUID.
    pub fn buyer_guid(&self) -> String {
        self.buyer_guids().into_iter().next().unwrap_or_default()
    }

    /// The vendors and their catalogs.
    pub fn vendors(&self) -> Vec<MarketManVendor> {
        self.app.data.lock().unwrap().vendors.clone()
    }

    /// A buyer's inventory items.
    pub fn items(&self, buyer: &str) -> Vec<MarketManItem> {
        self.app
            .data
            .lock()
            .unwrap()
            .buyers
            .iter()
            .find(|b| b.guid == buyer)
            .map(|b| b.items.clone())
            .unwrap_or_default()
    }

    /// Adds (or replaces, by id) an inventory item.
    pub fn add_item(&self, buyer: &str, item: MarketManItem) -> bool {
        let mut data = self.app.data.lock().unwrap();
        let Some(b) = data.buyers.iter_mut().find(|b| b.guid == buyer) else {
            return false;
        };
        b.items.retain(|i| i.id != item.id);
        b.items.push(item);
        true
    }

    /// A buyer's inventory counts.
    pub fn inventory_counts(&self, buyer: &str) -> Vec<MarketManCount> {
        self.app
            .data
            .lock()
            .unwrap()
            .buyers
            .iter()
            .find(|b| b.guid == buyer)
            .map(|b| b.counts.clone())
            .unwrap_or_default()
    }

    /// Adds an inventory count.
    pub fn add_count(&self, count: MarketManCount) -> bool {
        let mut data = self.app.data.lock().unwrap();
        let Some(b) = data.buyers.iter_mut().find(|b| b.guid == count.buyer_guid) else {
            return false;
        };
        b.counts.push(count);
        true
    }

    /// Orders created through `orders/CreateOrder`, in order.
    pub fn created_orders(&self) -> Vec<MarketManOrder> {
        self.app.data.lock().unwrap().orders.clone()
    }

    /// Documents (deliveries received) recorded through `SetDocs`, in order.
    pub fn received_docs(&self) -> Vec<MarketManDoc> {
        self.app.data.lock().unwrap().docs.clone()
    }

    /// Issues a token directly (as `GetToken` would, without counting).
    pub fn token(&self) -> IssuedTokens {
        self.app.tokens.issue(&self.app.config.api_key, false)
    }

    /// Expires every token issued so far.
    pub fn expire_access_tokens(&self) {
        self.app.tokens.expire_access(None);
    }
}
