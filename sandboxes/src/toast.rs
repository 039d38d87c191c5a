//! Toast sandbox: authentication, orders (ordersBulk and single order) and
//! menus, for one or more restaurants.
//!
//! Follows providers.md §1:
//! - `POST /authentication/v1/authentication/login` with
//!   `{"clientId","clientSecret","userAccessType":"TOAST_MACHINE_CLIENT"}`
//!   answers the `auth_login_response.json` shape
//!   (`{"@class",token:{tokenType,scope,expiresIn,accessToken,idToken,refreshToken},status}`),
//!   `expiresIn` 86,400 s by default (§1.2). Logins are counted
//!   (`Counters::token_requests`); Toast asks for no more than one or two a day.
//! - Every other call needs `Authorization: Bearer` and, being
//!   restaurant-scoped, `Toast-Restaurant-External-ID` (§1.2).
//! - `GET /orders/v2/ordersBulk` (§1.3): `startDate` inclusive / `endDate`
//!   exclusive on the order's *modified* time, ISO-8601 with milliseconds
//!   (`2016-01-01T14:13:12.000+0400`, URL-encoded: an unencoded `+` decodes to
//!   a space and is refused), or `businessDate=yyyyMMdd`; windows longer than
//!   one month → 400; `pageSize` ≤ 100 (default 100), `page` 1-based; a JSON
//!   array of Orders shaped like `order_get_response.json`; an RFC 5988 `Link`
//!   header with `rel="first"`, `"self"`, `"prev"` (after page 1) and `"next"`
//!   (only when more orders follow), never `last`; no total-count header.
//! - `GET /orders/v2/orders/{guid}`: one Order, same shape.
//! - `GET /menus/v2/menus` and `GET /menus/v2/metadata` (§1.4): metadata is
//!   `{restaurantGuid,lastUpdated}`.
//! - Limits (§1.5, §1.3, §1.4), per restaurant (per client IP without the
//!   restaurant header), fixed time slices: 20 req/s and 10,000 per 15 min
//!   globally, plus 5 req/s for ordersBulk and 1 req/s for `/menus`. Every
//!   limited response carries `X-Toast-RateLimit-By` / `-Remaining` / `-Reset`
//!   (epoch seconds); a 429 adds `Retry-After`.
//! - Errors (§1.6): 4xx bodies are the `ErrorMessage` object of
//!   `error_message_400.json`.
//!
//! UNVERIFIED (not in providers.md, chosen here): the `code` inside
//! ErrorMessage (the HTTP status is used); 400 for a missing restaurant header
//! and 403 for a restaurant the client cannot see; 400 (not clamping) for
//! `pageSize` > 100; "one month" read as 31 days; result order (modified
//! time, then GUID); one `Link` header with comma-separated entries; the menus
//! V2 body (no complete official example exists) and `lastUpdated` format.

use crate::common::data;
use crate::common::gate::{self, Gate, Rules, Shape};
use crate::common::http::{header, json, query_get, query_pairs};
use crate::common::limits::{LimitPlan, Refused, WindowStatus};
use crate::common::money::cents_json;
use crate::common::server::{ConnInfo, ServerHandle, StartError};
use crate::common::time;
use crate::common::tokens::{IssuedTokens, TokenPolicy, TokenStore};
use crate::common::{Limit, OBSERVE_WINDOW, common_handle};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The restaurant header.
pub const RESTAURANT_HEADER: &str = "Toast-Restaurant-External-ID";
/// Largest `pageSize` for ordersBulk.
pub const MAX_PAGE_SIZE: usize = 100;
/// Longest startDate/endDate window ("one month", read as 31 days).
pub const MAX_WINDOW: Duration = Duration::from_secs(31 * 24 * 3600);
/// Sales tax applied to generated selections, in parts per million (8.875%).
pub const TAX_RATE_PPM: i64 = 88_750;

/// Toast's documented limits, as defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastLimits {
    /// Every restaurant-scoped call: 20/s and 10,000 per 15 min.
    pub global: Vec<Limit>,
    /// `/orders/v2/ordersBulk` in addition: 5/s.
    pub orders_bulk: Vec<Limit>,
    /// `/menus/v2/menus` in addition: 1/s.
    pub menus: Vec<Limit>,
}

impl Default for ToastLimits {
    fn default() -> Self {
        Self {
            global: vec![
                Limit::fixed("second", 20, Duration::from_secs(1)),
                Limit::fixed("15min", 10_000, Duration::from_secs(15 * 60)),
            ],
            orders_bulk: vec![Limit::fixed("second", 5, Duration::from_secs(1))],
            menus: vec![Limit::fixed("second", 1, Duration::from_secs(1))],
        }
    }
}

impl ToastLimits {
    /// No limits at all.
    pub fn unlimited() -> Self {
        Self {
            global: Vec::new(),
            orders_bulk: Vec::new(),
            menus: Vec::new(),
        }
    }
}

/// How to build a Toast sandbox.
#[derive(Debug, Clone)]
pub struct ToastConfig {
    /// Seed for generated data, tokens and faults.
    pub seed: u64,
    /// Restaurants to generate.
    pub restaurants: usize,
    /// First business date with orders (`None`: the `days` days before
    /// today, see [`data::first_date`]).
    pub first_business_date: Option<Date>,
    /// Business days with orders.
    pub days: u32,
    /// Orders per restaurant per business day.
    pub orders_per_day: u32,
    /// Restaurants' IANA time zone.
    pub time_zone: String,
    /// The API client's id.
    pub client_id: String,
    /// The API client's secret.
    pub client_secret: String,
    /// Access-token lifetime (`expiresIn`).
    pub token_ttl: Duration,
    /// Rate limits.
    pub limits: ToastLimits,
    /// Window for `Counters::max_calls_per_window`.
    pub observe_window: Duration,
}

impl Default for ToastConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            restaurants: 1,
            first_business_date: None,
            days: 3,
            orders_per_day: 20,
            time_zone: "America/New_York".into(),
            client_id: "sandbox-toast-client".into(),
            client_secret: "sandbox-toast-secret".into(),
            token_ttl: Duration::from_secs(86_400),
            limits: ToastLimits::default(),
            observe_window: OBSERVE_WINDOW,
        }
    }
}

impl ToastConfig {
    /// Defaults with `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }
}

/// A menu item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastMenuItem {
    /// GUID.
    pub guid: String,
    /// Name.
    pub name: String,
    /// Base price in cents.
    pub price_cents: i64,
    /// Sales category GUID.
    pub sales_category_guid: String,
}

/// A menu group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastMenuGroup {
    /// GUID.
    pub guid: String,
    /// Name.
    pub name: String,
    /// Items.
    pub items: Vec<ToastMenuItem>,
}

/// A restaurant and its menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastRestaurant {
    /// The restaurant GUID (`Toast-Restaurant-External-ID`).
    pub guid: String,
    /// Name.
    pub name: String,
    /// IANA time zone.
    pub time_zone: String,
    /// Menu GUID.
    pub menu_guid: String,
    /// Menu groups.
    pub menu_groups: Vec<ToastMenuGroup>,
    /// When the menu was last published.
    pub menu_last_updated: Timestamp,
    /// Tax rate GUID used on selections.
    pub tax_rate_guid: String,
    /// Dining option GUID used on orders.
    pub dining_option_guid: String,
    /// Revenue center GUID.
    pub revenue_center_guid: String,
    /// Server (employee) GUID.
    pub server_guid: String,
}

/// How a payment was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToastTender {
    /// Card.
    Credit {
        /// `VISA`, `MASTERCARD`, ...
        card_type: String,
        /// Last four digits.
        last4: String,
    },
    /// Cash.
    Cash,
}

/// A payment on a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastPayment {
    /// GUID.
    pub guid: String,
    /// Tender.
    pub tender: ToastTender,
    /// Amount excluding tip, cents.
    pub amount_cents: i64,
    /// Tip, cents.
    pub tip_cents: i64,
    /// Refunded amount (excluding tip), cents.
    pub refund_cents: i64,
    /// When paid.
    pub paid: Timestamp,
    /// Voided.
    pub voided: bool,
}

/// A menu item selection on a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastSelection {
    /// GUID.
    pub guid: String,
    /// Menu item GUID.
    pub item_guid: String,
    /// Menu group GUID.
    pub item_group_guid: String,
    /// Sales category GUID.
    pub sales_category_guid: String,
    /// Display name.
    pub display_name: String,
    /// Quantity.
    pub quantity: u32,
    /// Unit price, cents.
    pub unit_price_cents: i64,
    /// Tax on the line, cents.
    pub tax_cents: i64,
    /// Voided.
    pub voided: bool,
}

impl ToastSelection {
    /// Line price before tax, cents.
    pub fn price_cents(&self) -> i64 {
        self.unit_price_cents * i64::from(self.quantity)
    }
}

/// A check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastCheck {
    /// GUID.
    pub guid: String,
    /// Display number.
    pub display_number: String,
    /// Selections.
    pub selections: Vec<ToastSelection>,
    /// Payments.
    pub payments: Vec<ToastPayment>,
    /// Voided.
    pub voided: bool,
}

impl ToastCheck {
    fn live(&self) -> impl Iterator<Item = &ToastSelection> {
        self.selections.iter().filter(|s| !s.voided)
    }

    /// Pre-tax amount (non-voided selections), cents.
    pub fn amount_cents(&self) -> i64 {
        self.live().map(ToastSelection::price_cents).sum()
    }

    /// Tax, cents.
    pub fn tax_cents(&self) -> i64 {
        self.live().map(|s| s.tax_cents).sum()
    }

    /// Amount plus tax, cents.
    pub fn total_cents(&self) -> i64 {
        self.amount_cents() + self.tax_cents()
    }
}

/// An order, the unit ordersBulk returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastOrder {
    /// GUID.
    pub guid: String,
    /// Business date (restaurant-local).
    pub business_date: Date,
    /// Opened.
    pub opened: Timestamp,
    /// Closed (and paid), if it is.
    pub closed: Option<Timestamp>,
    /// Last modified: what startDate/endDate select on.
    pub modified: Timestamp,
    /// Voided.
    pub voided: bool,
    /// Deleted.
    pub deleted: bool,
    /// Guests.
    pub number_of_guests: u32,
    /// Checks.
    pub checks: Vec<ToastCheck>,
}

fn tax_on(price_cents: i64) -> i64 {
    // Half-up on integer cents.
    (price_cents * TAX_RATE_PPM + 500_000).div_euclid(1_000_000)
}

fn entity(guid: &str, entity_type: &str) -> Value {
    json!({"guid": guid, "entityType": entity_type, "externalId": null})
}

fn opt_ts(ts: Option<Timestamp>) -> Value {
    ts.map(|t| Value::String(time::toast(t)))
        .unwrap_or(Value::Null)
}

impl ToastOrder {
    /// Sum of the checks' totals (amount + tax), cents.
    pub fn total_cents(&self) -> i64 {
        self.checks.iter().map(ToastCheck::total_cents).sum()
    }

    /// The Order JSON, shaped like `order_get_response.json`.
    pub fn to_json(&self, r: &ToastRestaurant) -> Value {
        let device = json!({"id": "sandbox-device"});
        let business = time::yyyymmdd(self.business_date);
        let deleted_date = if self.deleted {
            time::toast(self.modified)
        } else {
            "1970-01-01T00:00:00.000+0000".to_string()
        };
        let void_date = self.voided.then_some(self.modified);
        let dining = entity(&r.dining_option_guid, "DiningOption");
        let checks: Vec<Value> = self
            .checks
            .iter()
            .map(|c| {
                let selections: Vec<Value> = c
                    .selections
                    .iter()
                    .map(|s| {
                        json!({
                            "guid": s.guid,
                            "entityType": "MenuItemSelection",
                            "externalId": null,
                            "itemGroup": entity(&s.item_group_guid, "MenuGroup"),
                            "deferred": false,
                            "item": entity(&s.item_guid, "MenuItem"),
                            "quantity": s.quantity,
                            "receiptLinePrice": cents_json(s.unit_price_cents),
                            "preDiscountPrice": cents_json(s.price_cents()),
                            "voidReason": null,
                            "optionGroup": null,
                            "displayName": s.display_name,
                            "appliedDiscounts": [],
                            "tax": cents_json(s.tax_cents),
                            "modifiers": [],
                            "seatNumber": -1,
                            "voidDate": opt_ts(s.voided.then_some(self.modified)),
                            "fulfillmentStatus": "SENT",
                            "optionGroupPricingMode": null,
                            "salesCategory": entity(&s.sales_category_guid, "SalesCategory"),
                            "selectionType": "NONE",
                            "voidBusinessDate": s.voided.then_some(business),
                            "createdDate": time::toast(self.opened),
                            "preModifier": null,
                            "price": cents_json(s.price_cents()),
                            "modifiedDate": time::toast(self.modified),
                            "voided": s.voided,
                            "diningOption": dining,
                            "appliedTaxes": [{
                                "entityType": "AppliedTaxRate",
                                "taxRate": {"guid": r.tax_rate_guid, "entityType": "TaxRate"},
                                "name": "State Tax",
                                "rate": 0.08875,
                                "taxAmount": cents_json(s.tax_cents),
                                "type": "PERCENT"
                            }]
                        })
                    })
                    .collect();
                let payments: Vec<Value> = c
                    .payments
                    .iter()
                    .map(|p| {
                        let (kind, card_type, last4, entry, fee) = match &p.tender {
                            ToastTender::Credit { card_type, last4 } => (
                                "CREDIT",
                                Value::String(card_type.clone()),
                                Value::String(last4.clone()),
                                Value::String("SWIPED".into()),
                                // 2.5% processing fee, half-up in cents.
                                cents_json((p.amount_cents * 25 + 500) / 1000),
                            ),
                            ToastTender::Cash => {
                                ("CASH", Value::Null, Value::Null, Value::Null, Value::Null)
                            }
                        };
                        let refund = (p.refund_cents > 0).then(|| {
                            json!({
                                "refundAmount": cents_json(p.refund_cents),
                                "tipRefundAmount": 0.0,
                                "refundDate": time::toast(self.modified),
                                "refundBusinessDate": time::yyyymmdd(self.business_date),
                            })
                        });
                        let refund_status = match p.refund_cents {
                            0 => "NONE",
                            n if n >= p.amount_cents => "FULL",
                            _ => "PARTIAL",
                        };
                        json!({
                            "guid": p.guid,
                            "entityType": "OrderPayment",
                            "externalId": null,
                            "originalProcessingFee": fee,
                            "amount": cents_json(p.amount_cents),
                            "tipAmount": cents_json(p.tip_cents),
                            "amountTendered": if kind == "CASH" { cents_json(p.amount_cents) } else { cents_json(0) },
                            "cashDrawer": null,
                            "cardType": card_type,
                            "lastModifiedDevice": device,
                            "createdDevice": device,
                            "refundStatus": refund_status,
                            "houseAccount": null,
                            "type": kind,
                            "voidInfo": null,
                            "otherPayment": null,
                            "paidDate": time::toast(p.paid),
                            "cardEntryMode": entry,
                            "paymentStatus": if p.voided { "VOIDED" } else { "CAPTURED" },
                            "paidBusinessDate": business,
                            "last4Digits": last4,
                            "refund": refund,
                        })
                    })
                    .collect();
                let closed = if c.voided { None } else { self.closed };
                json!({
                    "guid": c.guid,
                    "entityType": "Check",
                    "externalId": null,
                    "displayNumber": c.display_number,
                    "amount": cents_json(c.amount_cents()),
                    "tabName": null,
                    "taxExempt": false,
                    "payments": payments,
                    "appliedDiscounts": [],
                    "voidDate": opt_ts(c.voided.then_some(self.modified)),
                    "openedDate": time::toast(self.opened),
                    "totalAmount": cents_json(c.total_cents()),
                    "lastModifiedDevice": device,
                    "createdDevice": device,
                    "selections": selections,
                    "voidBusinessDate": c.voided.then_some(business),
                    "deleted": self.deleted,
                    "paidDate": opt_ts(closed),
                    "closedDate": opt_ts(closed),
                    "deletedDate": deleted_date,
                    "modifiedDate": time::toast(self.modified),
                    "appliedLoyaltyInfo": null,
                    "voided": c.voided,
                    "taxAmount": cents_json(c.tax_cents()),
                    "appliedServiceCharges": [],
                    "paymentStatus": if closed.is_some() { "CLOSED" } else { "OPEN" },
                    "customer": null,
                })
            })
            .collect();
        let duration = self
            .closed
            .map(|c| (c.as_second() - self.opened.as_second()) / 60);
        json!({
            "guid": self.guid,
            "entityType": "Order",
            "externalId": null,
            "revenueCenter": entity(&r.revenue_center_guid, "RevenueCenter"),
            "server": entity(&r.server_guid, "RestaurantUser"),
            "lastModifiedDevice": device,
            "createdDevice": device,
            "deliveryInfo": null,
            "serviceArea": null,
            "curbsidePickupInfo": null,
            "numberOfGuests": self.number_of_guests,
            "diningOption": dining,
            "source": "In Store",
            "voidDate": opt_ts(void_date),
            "openedDate": time::toast(self.opened),
            "createdDate": time::toast(self.opened),
            "duration": duration,
            "businessDate": business,
            "voidBusinessDate": self.voided.then_some(business),
            "checks": checks,
            "deleted": self.deleted,
            "paidDate": opt_ts(self.closed),
            "closedDate": opt_ts(self.closed),
            "deletedDate": deleted_date,
            "restaurantService": null,
            "modifiedDate": time::toast(self.modified),
            "promisedDate": null,
            "voided": self.voided,
            "estimatedFulfillmentDate": null,
            "requiredPrepTime": "PT0S",
            "approvalStatus": "APPROVED",
            "table": null,
        })
    }
}

/// Menu items every generated restaurant offers: (group, item, price cents).
const MENU: &[(&str, &str, i64)] = &[
    ("Food", "Burger", 1450),
    ("Food", "Fries", 495),
    ("Food", "Caesar Salad", 1195),
    ("Food", "Margherita Pizza", 1695),
    ("Food", "Fish Tacos", 1395),
    ("Food", "Chicken Wings", 1295),
    ("Drinks", "Soda", 295),
    ("Drinks", "Iced Tea", 325),
    ("Drinks", "Draft Beer", 750),
    ("Drinks", "House Wine", 900),
    ("Drinks", "Espresso", 375),
    ("Desserts", "Cheesecake", 850),
    ("Desserts", "Brownie", 695),
];

const CARD_TYPES: &[&str] = &["VISA", "MASTERCARD", "AMEX", "DISCOVER"];
const TIP_PERCENT: &[i64] = &[0, 15, 18, 20, 22];

fn generate_restaurant(rng: &mut ChaCha8Rng, name: &str, tz: &str) -> ToastRestaurant {
    let mut groups: Vec<ToastMenuGroup> = Vec::new();
    let food_category = data::guid(rng);
    let drink_category = data::guid(rng);
    for (group, item, price) in MENU {
        if groups.last().is_none_or(|g| g.name != *group) {
            groups.push(ToastMenuGroup {
                guid: data::guid(rng),
                name: (*group).to_string(),
                items: Vec::new(),
            });
        }
        // Prices vary a little per restaurant, in whole nickels.
        let price = price + 5 * rng.random_range(0..=10);
        let category = if *group == "Drinks" {
            &drink_category
        } else {
            &food_category
        };
        if let Some(g) = groups.last_mut() {
            g.items.push(ToastMenuItem {
                guid: data::guid(rng),
                name: (*item).to_string(),
                price_cents: price,
                sales_category_guid: category.clone(),
            });
        }
    }
    ToastRestaurant {
        guid: data::guid(rng),
        name: name.to_string(),
        time_zone: tz.to_string(),
        menu_guid: data::guid(rng),
        menu_groups: groups,
        menu_last_updated: Timestamp::UNIX_EPOCH,
        tax_rate_guid: data::guid(rng),
        dining_option_guid: data::guid(rng),
        revenue_center_guid: data::guid(rng),
        server_guid: data::guid(rng),
    }
}

fn generate_order(
    rng: &mut ChaCha8Rng,
    r: &ToastRestaurant,
    business_date: Date,
    opened: Timestamp,
    number: u32,
) -> ToastOrder {
    let items: Vec<(&ToastMenuGroup, &ToastMenuItem)> = r
        .menu_groups
        .iter()
        .flat_map(|g| g.items.iter().map(move |i| (g, i)))
        .collect();
    let lines = rng.random_range(1..=4);
    let selections: Vec<ToastSelection> = (0..lines)
        .filter_map(|_| {
            let (g, i) = items.choose(rng)?;
            let quantity = rng.random_range(1..=2u32);
            let price = i.price_cents * i64::from(quantity);
            Some(ToastSelection {
                guid: data::guid(rng),
                item_guid: i.guid.clone(),
                item_group_guid: g.guid.clone(),
                sales_category_guid: i.sales_category_guid.clone(),
                display_name: i.name.clone(),
                quantity,
                unit_price_cents: i.price_cents,
                tax_cents: tax_on(price),
                voided: false,
            })
        })
        .collect();
    let minutes = rng.random_range(15..=90i64);
    let closed = Timestamp::from_second(opened.as_second() + minutes * 60).unwrap_or(opened);
    let modified =
        Timestamp::from_millisecond(closed.as_millisecond() + rng.random_range(0..5_000))
            .unwrap_or(closed);
    let mut check = ToastCheck {
        guid: data::guid(rng),
        display_number: number.to_string(),
        selections,
        payments: Vec::new(),
        voided: false,
    };
    let total = check.total_cents();
    let tender = if rng.random_bool(0.7) {
        ToastTender::Credit {
            card_type: (*CARD_TYPES.choose(rng).unwrap_or(&"VISA")).to_string(),
            last4: format!("{:04}", rng.random_range(0..10_000)),
        }
    } else {
        ToastTender::Cash
    };
    let tip = match tender {
        ToastTender::Credit { .. } => {
            let pct = *TIP_PERCENT.choose(rng).unwrap_or(&0);
            (total * pct + 50) / 100
        }
        ToastTender::Cash => 0,
    };
    let voided = rng.random_bool(0.02);
    let deleted = !voided && rng.random_bool(0.01);
    check.voided = voided;
    check.payments.push(ToastPayment {
        guid: data::guid(rng),
        tender,
        amount_cents: total,
        tip_cents: tip,
        refund_cents: 0,
        paid: closed,
        voided,
    });
    ToastOrder {
        guid: data::guid(rng),
        business_date,
        opened,
        closed: Some(closed),
        modified,
        voided,
        deleted,
        number_of_guests: rng.random_range(1..=6),
        checks: vec![check],
    }
}

#[derive(Debug)]
struct ToastData {
    restaurants: BTreeMap<String, ToastRestaurant>,
    orders: BTreeMap<String, BTreeMap<String, ToastOrder>>,
    rng: ChaCha8Rng,
    next_number: u32,
}

impl ToastData {
    fn generate(config: &ToastConfig) -> Self {
        let mut data = Self {
            restaurants: BTreeMap::new(),
            orders: BTreeMap::new(),
            rng: data::rng(config.seed, 1),
            next_number: 1,
        };
        for n in 0..config.restaurants {
            data.add_restaurant(config, &format!("Sandbox Bistro {}", n + 1));
        }
        data
    }

    fn add_restaurant(&mut self, config: &ToastConfig, name: &str) -> String {
        let tz = TimeZone::get(&config.time_zone).unwrap_or(TimeZone::UTC);
        let mut r = generate_restaurant(&mut self.rng, name, &config.time_zone);
        let first = data::first_date(config.first_business_date, config.days);
        r.menu_last_updated = data::local(first, 6 * 3600, 0, &tz);
        let mut orders = BTreeMap::new();
        for day in 0..config.days {
            let date = data::add_days(first, i64::from(day));
            let mut opens: Vec<(i64, i64)> = (0..config.orders_per_day)
                .map(|_| {
                    (
                        11 * 3600 + self.rng.random_range(0..10 * 3600),
                        self.rng.random_range(0..1000),
                    )
                })
                .collect();
            opens.sort_unstable();
            for (secs, ms) in opens {
                let opened = data::local(date, secs, ms, &tz);
                let number = self.next_number;
                self.next_number += 1;
                let order = generate_order(&mut self.rng, &r, date, opened, number);
                orders.insert(order.guid.clone(), order);
            }
        }
        let guid = r.guid.clone();
        self.restaurants.insert(guid.clone(), r);
        self.orders.insert(guid.clone(), orders);
        guid
    }
}

#[derive(Debug)]
struct ToastApp {
    gate: Gate,
    tokens: TokenStore,
    config: ToastConfig,
    data: Mutex<ToastData>,
}

/// Who a token acts for (the API client).
#[derive(Debug, Clone)]
struct Client;

/// A Toast `ErrorMessage` response.
fn error(status: StatusCode, message: &str) -> Response {
    json(
        status,
        &json!({
            "status": status.as_u16(),
            "code": status.as_u16(),
            "message": message,
            "messageKey": null,
            "fieldName": null,
            "link": null,
            "requestId": uuid::Uuid::new_v4().to_string(),
            "developerMessage": null,
            "errors": [],
            "canRetry": null,
        }),
    )
}

impl Shape for ToastApp {
    fn rate_limited(&self, refused: &Refused) -> Response {
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
        add_rate_headers(&mut response, &refused.windows);
        response
    }

    fn server_error(&self, status: StatusCode) -> Response {
        error(status, "Internal error (injected by the sandbox)")
    }

    fn decorate(&self, response: &mut Response, windows: &[WindowStatus]) {
        add_rate_headers(response, windows);
    }
}

fn add_rate_headers(response: &mut Response, windows: &[WindowStatus]) {
    let Some(binding) = windows.iter().min_by_key(|w| (w.remaining, w.reset_in)) else {
        return;
    };
    let by = if binding.scope == "global" {
        "GLOBAL"
    } else {
        "ENDPOINT"
    };
    let reset = Timestamp::now().as_second()
        + i64::try_from(binding.reset_in.as_secs()).unwrap_or(i64::MAX / 2)
        + i64::from(binding.reset_in.subsec_nanos() > 0);
    let h = response.headers_mut();
    h.insert("X-Toast-RateLimit-By", HeaderValue::from_static(by));
    h.insert(
        "X-Toast-RateLimit-Remaining",
        HeaderValue::from(binding.remaining),
    );
    h.insert("X-Toast-RateLimit-Reset", HeaderValue::from(reset));
}

impl Rules for ToastApp {
    fn gate(&self) -> &Gate {
        &self.gate
    }

    fn plan(&self, request: &Request, conn: &ConnInfo) -> (Option<String>, LimitPlan) {
        let path = request.uri().path();
        if path.starts_with("/authentication/") {
            return (None, LimitPlan::default());
        }
        let account = header(request.headers(), RESTAURANT_HEADER)
            .map(str::to_string)
            .unwrap_or_else(|| format!("ip:{}", conn.remote.ip()));
        let limits = &self.config.limits;
        let mut scopes = vec![("global".to_string(), limits.global.clone())];
        if path == "/orders/v2/ordersBulk" {
            scopes.push(("ordersBulk".into(), limits.orders_bulk.clone()));
        }
        if path == "/menus/v2/menus" {
            scopes.push(("menus".into(), limits.menus.clone()));
        }
        (
            Some(account),
            LimitPlan {
                scopes,
                ..LimitPlan::default()
            },
        )
    }

    fn authenticate(&self, request: &mut Request) -> Result<(), Response> {
        if request.uri().path().starts_with("/authentication/") {
            return Ok(());
        }
        let expired = self.gate.faults().expire_tokens;
        match self.tokens.check(request.headers(), expired) {
            Ok(_) => {
                request.extensions_mut().insert(Client);
                Ok(())
            }
            Err(_) => Err(error(
                StatusCode::UNAUTHORIZED,
                "Authentication failed: the access token is missing, invalid or expired",
            )),
        }
    }
}

impl ToastApp {
    /// The restaurant named by the header, or the refusal.
    fn restaurant(&self, headers: &HeaderMap) -> Result<ToastRestaurant, Response> {
        let guid = header(headers, RESTAURANT_HEADER).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "Missing required header Toast-Restaurant-External-ID",
            )
        })?;
        self.data
            .lock()
            .unwrap()
            .restaurants
            .get(guid)
            .cloned()
            .ok_or_else(|| {
                error(
                    StatusCode::FORBIDDEN,
                    &format!("The API client does not have access to restaurant {guid}"),
                )
            })
    }
}

async fn login(State(app): State<Arc<ToastApp>>, body: Bytes) -> Response {
    app.gate.stats().update(|c| c.token_requests += 1);
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "Request body is not valid JSON");
    };
    let field = |k: &str| req.get(k).and_then(Value::as_str).unwrap_or_default();
    if field("userAccessType") != "TOAST_MACHINE_CLIENT" {
        return error(
            StatusCode::BAD_REQUEST,
            "userAccessType must be TOAST_MACHINE_CLIENT",
        );
    }
    if field("clientId") != app.config.client_id
        || field("clientSecret") != app.config.client_secret
    {
        return error(StatusCode::UNAUTHORIZED, "Invalid client credentials");
    }
    let issued = app.tokens.issue(&app.config.client_id, false);
    json(
        StatusCode::OK,
        &json!({
            "@class": ".SuccessfulResponse",
            "token": {
                "tokenType": "Bearer",
                "scope": null,
                "expiresIn": issued.expires_in.as_secs(),
                "accessToken": issued.access_token,
                "idToken": null,
                "refreshToken": null,
            },
            "status": "SUCCESS",
        }),
    )
}

/// ordersBulk's selection.
enum Selection {
    Modified { start: Timestamp, end: Timestamp },
    BusinessDate(Date),
}

async fn orders_bulk(
    State(app): State<Arc<ToastApp>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let restaurant = match app.restaurant(&headers) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let pairs = query_pairs(raw.as_deref());
    let bad = |m: &str| error(StatusCode::BAD_REQUEST, m);
    let page_size = match query_get(&pairs, "pageSize").map(str::parse::<usize>) {
        None => MAX_PAGE_SIZE,
        Some(Ok(n)) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
        Some(_) => return bad("pageSize must be an integer from 1 to 100"),
    };
    let page = match query_get(&pairs, "page").map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return bad("page must be an integer of at least 1"),
    };
    let selection = match (
        query_get(&pairs, "startDate"),
        query_get(&pairs, "endDate"),
        query_get(&pairs, "businessDate"),
    ) {
        (Some(s), Some(e), None) => {
            let (Some(start), Some(end)) = (time::parse_toast(s), time::parse_toast(e)) else {
                return bad(
                    "startDate and endDate must be ISO-8601 dates like 2016-01-01T14:13:12.000+0400, URL-encoded",
                );
            };
            if end < start {
                return bad("endDate must not be before startDate");
            }
            let span_ms = end.as_millisecond() - start.as_millisecond();
            if span_ms > i64::try_from(MAX_WINDOW.as_millis()).unwrap_or(i64::MAX) {
                return bad(
                    "The time interval between startDate and endDate must not exceed one month",
                );
            }
            Selection::Modified { start, end }
        }
        (None, None, Some(d)) => match time::parse_yyyymmdd(d) {
            Some(d) => Selection::BusinessDate(d),
            None => return bad("businessDate must be yyyyMMdd"),
        },
        _ => {
            return bad("Give startDate and endDate, or businessDate");
        }
    };
    // Select and sort by reference; only the page's orders are copied out.
    let (total, page_orders): (usize, Vec<ToastOrder>) = {
        let data = app.data.lock().unwrap();
        let mut selected: Vec<&ToastOrder> = data
            .orders
            .get(&restaurant.guid)
            .map(|o| {
                o.values()
                    .filter(|o| match &selection {
                        Selection::Modified { start, end } => {
                            o.modified >= *start && o.modified < *end
                        }
                        Selection::BusinessDate(d) => o.business_date == *d,
                    })
                    .collect()
            })
            .unwrap_or_default();
        selected.sort_by(|a, b| (a.modified, &a.guid).cmp(&(b.modified, &b.guid)));
        let total = selected.len();
        let from = (page - 1).saturating_mul(page_size).min(total);
        let to = from.saturating_add(page_size).min(total);
        (
            total,
            selected[from..to].iter().map(|o| (*o).clone()).collect(),
        )
    };
    let from = (page - 1).saturating_mul(page_size).min(total);
    let to = from.saturating_add(page_size).min(total);
    let body: Vec<Value> = page_orders.iter().map(|o| o.to_json(&restaurant)).collect();
    let host = header(&headers, "host").unwrap_or("127.0.0.1");
    let link = |p: usize| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for name in ["startDate", "endDate", "businessDate"] {
            if let Some(v) = query_get(&pairs, name) {
                q.append_pair(name, v);
            }
        }
        q.append_pair("page", &p.to_string());
        q.append_pair("pageSize", &page_size.to_string());
        format!("<http://{host}/orders/v2/ordersBulk?{}>", q.finish())
    };
    let mut links = vec![
        format!("{}; rel=\"first\"", link(1)),
        format!("{}; rel=\"self\"", link(page)),
    ];
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", link(page - 1)));
    }
    if to < total {
        links.push(format!("{}; rel=\"next\"", link(page + 1)));
    }
    let mut response = json(StatusCode::OK, &Value::Array(body));
    if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
        response.headers_mut().insert(http::header::LINK, v);
    }
    response
}

async fn order_by_guid(
    State(app): State<Arc<ToastApp>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> Response {
    let restaurant = match app.restaurant(&headers) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let order = app
        .data
        .lock()
        .unwrap()
        .orders
        .get(&restaurant.guid)
        .and_then(|o| o.get(&guid))
        .cloned();
    match order {
        Some(o) => json(StatusCode::OK, &o.to_json(&restaurant)),
        None => error(StatusCode::NOT_FOUND, &format!("Order {guid} not found")),
    }
}

fn menus_json(r: &ToastRestaurant) -> Value {
    let groups: Vec<Value> = r
        .menu_groups
        .iter()
        .map(|g| {
            let items: Vec<Value> = g
                .items
                .iter()
                .map(|i| {
                    json!({
                        "name": i.name,
                        "guid": i.guid,
                        "description": "",
                        "price": cents_json(i.price_cents),
                        "pricingStrategy": "BASE_PRICE",
                        "salesCategory": {"guid": i.sales_category_guid, "name": g.name},
                        "taxInfo": [r.tax_rate_guid],
                        "visibility": ["POS", "TOAST_ONLINE_ORDERING"],
                        "modifierGroupReferences": [],
                    })
                })
                .collect();
            json!({
                "name": g.name,
                "guid": g.guid,
                "description": "",
                "menuItems": items,
                "menuGroups": [],
            })
        })
        .collect();
    json!({
        "restaurantGuid": r.guid,
        "lastUpdated": time::rfc3339_ms(r.menu_last_updated),
        "restaurantTimeZone": r.time_zone,
        "menus": [{
            "name": "All Day",
            "guid": r.menu_guid,
            "description": "",
            "menuGroups": groups,
        }],
        "modifierGroupReferences": {},
        "modifierOptionReferences": {},
        "preModifierGroupReferences": {},
    })
}

async fn menus(State(app): State<Arc<ToastApp>>, headers: HeaderMap) -> Response {
    match app.restaurant(&headers) {
        Ok(r) => json(StatusCode::OK, &menus_json(&r)),
        Err(e) => e,
    }
}

async fn metadata(State(app): State<Arc<ToastApp>>, headers: HeaderMap) -> Response {
    match app.restaurant(&headers) {
        Ok(r) => json(
            StatusCode::OK,
            &json!({
                "restaurantGuid": r.guid,
                "lastUpdated": time::rfc3339_ms(r.menu_last_updated),
            }),
        ),
        Err(e) => e,
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "No such endpoint").into_response()
}

fn router(app: Arc<ToastApp>) -> Router {
    Router::new()
        .route("/authentication/v1/authentication/login", post(login))
        .route("/orders/v2/ordersBulk", get(orders_bulk))
        .route("/orders/v2/orders/{guid}", get(order_by_guid))
        .route("/menus/v2/menus", get(menus))
        .route("/menus/v2/metadata", get(metadata))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            gate::middleware::<ToastApp>,
        ))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::common::MAX_BODY_BYTES,
        ))
        .with_state(app)
}

/// A running Toast sandbox.
#[derive(Debug)]
pub struct ToastSandbox {
    server: ServerHandle,
    app: Arc<ToastApp>,
}

common_handle!(ToastSandbox);

impl ToastSandbox {
    /// Generates the data and starts serving.
    pub async fn start(config: ToastConfig) -> Result<Self, StartError> {
        if TimeZone::get(&config.time_zone).is_err() {
            return Err(StartError::Config {
                sandbox: "toast",
                message: format!("unknown time zone {:?}", config.time_zone),
            });
        }
        let app = Arc::new(ToastApp {
            gate: Gate::new(config.seed, config.observe_window),
            tokens: TokenStore::new(
                TokenPolicy {
                    access_ttl: config.token_ttl,
                    refresh_ttl: Duration::ZERO,
                    rotate_refresh: false,
                    reuse_grace: Duration::ZERO,
                    prefix: "toast_",
                },
                config.seed,
            ),
            data: Mutex::new(ToastData::generate(&config)),
            config,
        });
        let server = ServerHandle::start("toast", router(app.clone())).await?;
        Ok(Self { server, app })
    }

    /// The API client id that logs in.
    pub fn client_id(&self) -> &str {
        &self.app.config.client_id
    }

    /// The API client secret.
    pub fn client_secret(&self) -> &str {
        &self.app.config.client_secret
    }

    /// Every restaurant GUID, sorted.
    pub fn restaurant_guids(&self) -> Vec<String> {
        self.app
            .data
            .lock()
            .unwrap()
            .restaurants
            .keys()
            .cloned()
            .collect()
    }

    /// One restaurant.
    pub fn restaurant(&self, guid: &str) -> Option<ToastRestaurant> {
        self.app.data.lock().unwrap().restaurants.get(guid).cloned()
    }

    /// Adds a restaurant with a generated menu and the configured days of
    /// orders; returns its GUID.
    pub fn seed_restaurant(&self, name: &str) -> String {
        self.app
            .data
            .lock()
            .unwrap()
            .add_restaurant(&self.app.config, name)
    }

    /// A restaurant's orders, in (modified, GUID) order.
    pub fn orders(&self, restaurant: &str) -> Vec<ToastOrder> {
        let mut orders: Vec<ToastOrder> = self
            .app
            .data
            .lock()
            .unwrap()
            .orders
            .get(restaurant)
            .map(|o| o.values().cloned().collect())
            .unwrap_or_default();
        orders.sort_by(|a, b| (a.modified, &a.guid).cmp(&(b.modified, &b.guid)));
        orders
    }

    /// One order.
    pub fn order(&self, restaurant: &str, guid: &str) -> Option<ToastOrder> {
        self.app
            .data
            .lock()
            .unwrap()
            .orders
            .get(restaurant)?
            .get(guid)
            .cloned()
    }

    /// One order as the API returns it.
    pub fn order_json(&self, restaurant: &str, guid: &str) -> Option<Value> {
        let r = self.restaurant(restaurant)?;
        Some(self.order(restaurant, guid)?.to_json(&r))
    }

    /// Adds (or replaces) an order. Returns false if the restaurant is unknown.
    pub fn add_order(&self, restaurant: &str, order: ToastOrder) -> bool {
        let mut data = self.app.data.lock().unwrap();
        match data.orders.get_mut(restaurant) {
            Some(orders) => {
                orders.insert(order.guid.clone(), order);
                true
            }
            None => false,
        }
    }

    /// Generates an order opened at `opened` (business date: its local date),
    /// adds it and returns it.
    pub fn generate_order(&self, restaurant: &str, opened: Timestamp) -> Option<ToastOrder> {
        let mut data = self.app.data.lock().unwrap();
        let r = data.restaurants.get(restaurant)?.clone();
        let tz = TimeZone::get(&r.time_zone).unwrap_or(TimeZone::UTC);
        let business_date = tz.to_datetime(opened).date();
        let number = data.next_number;
        data.next_number += 1;
        let order = generate_order(&mut data.rng, &r, business_date, opened, number);
        data.orders
            .get_mut(restaurant)?
            .insert(order.guid.clone(), order.clone());
        Some(order)
    }

    /// A late edit: applies `edit`, then moves the order's modified time to
    /// now (at least 1 ms after its previous value). Returns the edited order.
    pub fn edit_order(
        &self,
        restaurant: &str,
        guid: &str,
        edit: impl FnOnce(&mut ToastOrder),
    ) -> Option<ToastOrder> {
        let mut data = self.app.data.lock().unwrap();
        let order = data.orders.get_mut(restaurant)?.get_mut(guid)?;
        let before = order.modified;
        edit(order);
        let floor = Timestamp::from_millisecond(before.as_millisecond() + 1).unwrap_or(before);
        order.modified = Timestamp::now().max(floor);
        Some(order.clone())
    }

    /// Applies `edit` and sets the modified time to `modified`.
    pub fn edit_order_at(
        &self,
        restaurant: &str,
        guid: &str,
        modified: Timestamp,
        edit: impl FnOnce(&mut ToastOrder),
    ) -> Option<ToastOrder> {
        let mut data = self.app.data.lock().unwrap();
        let order = data.orders.get_mut(restaurant)?.get_mut(guid)?;
        edit(order);
        order.modified = modified;
        Some(order.clone())
    }

    /// Marks the menu as republished now.
    pub fn touch_menu(&self, restaurant: &str) {
        if let Some(r) = self
            .app
            .data
            .lock()
            .unwrap()
            .restaurants
            .get_mut(restaurant)
        {
            r.menu_last_updated = Timestamp::now();
        }
    }

    /// The body of an `order_updated` webhook for one order (envelope of
    /// providers.md §1.1; sign it with [`crate::webhook::send_webhook`]).
    pub fn order_updated_event(&self, restaurant: &str, guid: &str) -> Option<Vec<u8>> {
        let order = self.order_json(restaurant, guid)?;
        let body = json!({
            "timestamp": time::rfc3339_ms(Timestamp::now()),
            "eventCategory": "order_updated",
            "eventType": "order_updated",
            "guid": uuid::Uuid::new_v4().to_string(),
            "details": {"restaurantGuid": restaurant, "order": order},
        });
        serde_json::to_vec(&body).ok()
    }

    /// The body of a `menus_updated` webhook.
    pub fn menus_updated_event(&self, restaurant: &str) -> Option<Vec<u8>> {
        let r = self.restaurant(restaurant)?;
        let body = json!({
            "timestamp": time::rfc3339_ms(Timestamp::now()),
            "eventCategory": "menus",
            "eventType": "menus_updated",
            "guid": uuid::Uuid::new_v4().to_string(),
            "details": {
                "restaurantGuid": restaurant,
                "publishedDate": time::rfc3339_ms(r.menu_last_updated),
            },
        });
        serde_json::to_vec(&body).ok()
    }

    /// Issues an access token directly (as a login would, without counting).
    pub fn access_token(&self) -> IssuedTokens {
        self.app.tokens.issue(&self.app.config.client_id, false)
    }

    /// Expires every access token issued so far.
    pub fn expire_access_tokens(&self) {
        self.app.tokens.expire_access(None);
    }

    /// Changes the lifetime of tokens issued from now on.
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.app.tokens.set_access_ttl(ttl);
    }
}
