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
//! ## Generated orders
//!
//! Seeded and deterministic (`orders_per_day` orders per restaurant per
//! business day, shapes of `toast-orders-openapi.yaml`), all money kept in
//! integer cents and sent as numbers with at most two decimals:
//! - One sandbox-wide catalog (seeded GUIDs, shared by every restaurant):
//!   sales categories Food and Beverage; tax rates "Sales Tax" 8.875% (food,
//!   soft drinks) and "Liquor Tax" 10.25% (beer, wine), one rate per item;
//!   discounts; service charges; `OTHER` payment types (DoorDash, Uber
//!   Eats); house accounts.
//! - Selections: `salesCategory` `{guid,entityType:"SalesCategory",externalId:null}`;
//!   `preDiscountPrice` (gross, before tax), `price` (net of the item's
//!   discounts and its share of check discounts), `receiptLinePrice` (unit),
//!   `quantity`, `tax` = the sum of `appliedTaxes[]`
//!   (`{guid,entityType:"AppliedTaxRate",taxRate:{guid,entityType},name,displayName,rate,taxAmount,type:"PERCENT",facilitatorCollectAndRemitTax:false}`),
//!   each half-up on the net price; `deferred` false, `selectionType` NONE.
//!   Some are voided (`voided: true`, counted nowhere).
//! - Discounts (`AppliedDiscount`: `guid,name,discountAmount,nonTaxDiscountAmount,discount,discountType,discountPercent`):
//!   item-level on `selection.appliedDiscounts` ("Happy Hour 15%", "$2 Off
//!   Item", and comps: "Comp", PERCENT 100), check-level on
//!   `check.appliedDiscounts` only ("10% Off Check", "$5 Off Check"),
//!   allocated to the live selections' `price` in proportion, integer cents,
//!   the remainder to the last.
//! - Service charges (`appliedServiceCharges[]`: `chargeAmount, serviceCharge, chargeType, name, gratuity, taxable:false, appliedTaxes:[]`):
//!   an "Event fee" (FIXED 25.00, not gratuity) and, on every check of a
//!   party of [`AUTO_GRATUITY_GUESTS`] or more, "Auto Gratuity 18%"
//!   (PERCENT, gratuity) of the check's amount without gift cards.
//! - Gift cards sold: a selection `deferred: true`,
//!   `selectionType: "TOAST_CARD_SELL"`, `item`/`itemGroup`/`salesCategory`
//!   null, no tax.
//! - Payments: CREDIT (`cardType`, `last4Digits`; `paymentStatus` mostly
//!   CAPTURED, else AUTHORIZED or CAPTURE_IN_PROGRESS; `originalProcessingFee`
//!   2.6% of amount + tip + 10 cents on CAPTURED ones; tips), CASH, GIFTCARD,
//!   HOUSE_ACCOUNT (`houseAccount` ref), OTHER (`otherPayment`
//!   `{guid,entityType:"AlternatePaymentType",externalId:null}`); non-card
//!   statuses CAPTURED or null. Split tenders (CREDIT + CASH); failed card
//!   attempts (DENIED, ERROR, PROCESSING_VOID: not money) after the paying
//!   payment, so `payments[0]` is always the one that paid.
//! - Identities, exact: `amount` = live selections' `price` (deferred
//!   included) + non-gratuity charges; `totalAmount` = `amount` + gratuity +
//!   `taxAmount`; the money payments' `amount` sum to `totalAmount`, tips on
//!   top. `businessDate` and `paidBusinessDate` are the order's day.
//! - Orders with two checks, some with the second voided (`voided: true`,
//!   its payments VOIDED); voided and deleted orders (nothing counted).
//! - Tip adjustments after close (the final tip stands; `modifiedDate` moves
//!   30 min to 3 h past close; [`ToastPayment::tip_adjustment`]).
//! - Refunds on the first check when one card or cash payment paid it:
//!   partial (one selection) or full (every selection, tip too, mostly),
//!   on the order's day or up to two days later (never after the last
//!   generated day): `refundStatus` PARTIAL/FULL and
//!   `refund {refundAmount (tax included, tip excluded), tipRefundAmount, refundDate, refundBusinessDate, refundTransaction}`;
//!   each refunded selection's `refundDetails {refundAmount (tax excluded), taxRefundAmount, refundTransaction}`;
//!   `modifiedDate` moves to the refund.
//! - [`ToastSandbox::truth`]: the money per restaurant × business date ×
//!   role, computed from the current orders ([`ToastOrder::add_truth`]).
//!
//! UNVERIFIED (not in providers.md, chosen here): the `code` inside
//! ErrorMessage (the HTTP status is used); 400 for a missing restaurant header
//! and 403 for a restaurant the client cannot see; 400 (not clamping) for
//! `pageSize` > 100; "one month" read as 31 days; result order (modified
//! time, then GUID); one `Link` header with comma-separated entries; the menus
//! V2 body (no complete official example exists) and `lastUpdated` format.
//! In generated orders: one catalog (GUIDs) shared by all restaurants; the
//! rates (Liquor Tax 10.25% instead of, not on top of, the sales tax), fee
//! formula and probabilities; `entityType` values `AppliedDiscount`,
//! `Discount`, `AppliedServiceCharge`, `ServiceCharge`, `HouseAccount`,
//! `RefundTransaction`; comps as a PERCENT 100 discount named "Comp"; the
//! auto-gratuity's base (the check amount less gift cards,
//! `serviceChargeCalculation` POST_DISCOUNT); gift card selections with
//! null `item`/`itemGroup`; a voided selection or check keeps its prices
//! (only `voided` tells); a voided check's payments are VOIDED and the check
//! has no `closedDate` (`paymentStatus` OPEN); `amountTendered` 0 for
//! non-cash; `cardEntryMode` EMV_CHIP_SIGN; failed attempts `paidDate` a
//! minute before close; a refund's `refundDate` local 11:00–20:00 on a
//! later day; a full refund's tip refunded with it; a tip adjustment keeps
//! the check CLOSED.

use crate::common::data;
use crate::common::gate::{self, Gate, Rules, Shape};
use crate::common::http::{header, json, query_get, query_pairs};
use crate::common::limits::{LimitPlan, Refused, WindowStatus};
use crate::common::money::{cents_json, decimal_json};
use crate::common::server::{ConnInfo, ServerHandle, StartError};
use crate::common::time;
use crate::common::tokens::{IssuedTokens, TokenPolicy, TokenStore};
use crate::common::truth::Truth;
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
use rust_decimal::Decimal;
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
/// "Sales Tax", on food and soft drinks, in parts per million (8.875%).
pub const TAX_RATE_PPM: i64 = 88_750;
/// "Liquor Tax", on beer and wine instead of the sales tax, in parts per
/// million (10.25%).
pub const LIQUOR_TAX_RATE_PPM: i64 = 102_500;

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
    /// The restaurants' ISO-4217 currency (`general.currencyCode` of the
    /// restaurants API; orders carry none).
    pub currency: String,
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
            currency: "USD".into(),
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

/// A tax rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastTaxRate {
    /// GUID (`AppliedTaxRate.taxRate.guid`).
    pub guid: String,
    /// Name (`AppliedTaxRate.name`, the `tax:<name>` role of the truth).
    pub name: String,
    /// Rate in parts per million (88,750 = 8.875%).
    pub rate_ppm: i64,
}

/// What every generated restaurant of one sandbox shares (one restaurant
/// group's configuration): sales categories, tax rates, alternate payment
/// types, house accounts, discounts and service charges, with seeded GUIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastCatalog {
    /// (GUID, name): Food, Beverage.
    pub sales_categories: Vec<(String, String)>,
    /// Sales Tax (8.875%) and Liquor Tax (10.25%).
    pub tax_rates: Vec<ToastTaxRate>,
    /// (GUID, name) of the `OTHER` payment types (delivery apps).
    pub other_payment_types: Vec<(String, String)>,
    /// (GUID, name) of the house accounts.
    pub house_accounts: Vec<(String, String)>,
    /// Discount GUIDs, one per entry of the discounts table.
    pub discount_guids: Vec<String>,
    /// Service charge GUIDs, one per entry of the service charges table.
    pub service_charge_guids: Vec<String>,
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
    /// The one tax rate on the item (GUID).
    pub tax_rate_guid: String,
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
    /// The group's configuration (categories, tax rates, ...).
    pub catalog: ToastCatalog,
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
    /// Card (`CREDIT`).
    Credit {
        /// `VISA`, `MASTERCARD`, ...
        card_type: String,
        /// Last four digits.
        last4: String,
    },
    /// Cash.
    Cash,
    /// A gift card redeemed (`GIFTCARD`).
    GiftCard,
    /// Charged to a house account (`HOUSE_ACCOUNT`).
    HouseAccount {
        /// The house account's GUID.
        account_guid: String,
    },
    /// A restaurant-configured alternate payment type (`OTHER`).
    Other {
        /// The `AlternatePaymentType` GUID (`otherPayment.guid`).
        other_payment_guid: String,
    },
}

impl ToastTender {
    /// `Payment.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Credit { .. } => "CREDIT",
            Self::Cash => "CASH",
            Self::GiftCard => "GIFTCARD",
            Self::HouseAccount { .. } => "HOUSE_ACCOUNT",
            Self::Other { .. } => "OTHER",
        }
    }

    /// The truth's role for money taken with this tender.
    pub fn role(&self) -> String {
        match self {
            Self::Credit { .. } => "tender:card".into(),
            Self::Cash => "tender:cash".into(),
            Self::GiftCard => "gift_cards_redeemed".into(),
            Self::HouseAccount { .. } => "tender:house_account".into(),
            Self::Other { other_payment_guid } => format!("tender:other:{other_payment_guid}"),
        }
    }
}

/// A refund of (part of) a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastRefund {
    /// The refund transaction's GUID (`refund.refundTransaction.guid`, also
    /// on the refunded selections' `refundDetails`).
    pub transaction_guid: String,
    /// Refunded, excluding the tip and including the refunded tax, cents.
    pub amount_cents: i64,
    /// Tip refunded, cents.
    pub tip_cents: i64,
    /// When refunded.
    pub date: Timestamp,
    /// The refund's business date.
    pub business_date: Date,
}

/// A tip changed after the check first closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastTipAdjustment {
    /// The tip when the check first closed, cents.
    pub original_tip_cents: i64,
    /// When the tip was adjusted.
    pub at: Timestamp,
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
    /// Tip (the final one), cents.
    pub tip_cents: i64,
    /// `originalProcessingFee` (captured card payments), cents.
    pub fee_cents: Option<i64>,
    /// `paymentStatus` (`None`: null); `VOIDED` is sent whenever `voided`.
    pub status: Option<String>,
    /// The refund, if any.
    pub refund: Option<ToastRefund>,
    /// A tip adjustment after close, if any.
    pub tip_adjustment: Option<ToastTipAdjustment>,
    /// When paid.
    pub paid: Timestamp,
    /// Voided.
    pub voided: bool,
}

/// `CREDIT` payment statuses that are money (books.md).
const MONEY_CREDIT_STATUSES: &[&str] = &["AUTHORIZED", "CAPTURE_IN_PROGRESS", "CAPTURED"];

impl ToastPayment {
    /// Whether the payment is money: not voided, and for `CREDIT` one of
    /// AUTHORIZED, CAPTURE_IN_PROGRESS, CAPTURED; for the other tenders
    /// CAPTURED or no status.
    pub fn is_money(&self) -> bool {
        if self.voided {
            return false;
        }
        let status = self.status.as_deref();
        match self.tender {
            ToastTender::Credit { .. } => {
                status.is_some_and(|s| MONEY_CREDIT_STATUSES.contains(&s))
            }
            _ => status.is_none_or(|s| s == "CAPTURED"),
        }
    }

    /// Refunded (excluding tip), cents.
    pub fn refund_cents(&self) -> i64 {
        self.refund.as_ref().map_or(0, |r| r.amount_cents)
    }
}

/// A discount applied to a selection or a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastDiscount {
    /// The applied discount's GUID.
    pub guid: String,
    /// The configured discount's GUID (`discount.guid`).
    pub discount_guid: String,
    /// Name.
    pub name: String,
    /// `PERCENT` or `FIXED`.
    pub discount_type: String,
    /// Percent in parts per million, for `PERCENT`.
    pub percent_ppm: Option<i64>,
    /// Amount, cents.
    pub amount_cents: i64,
}

/// A service charge on a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastServiceCharge {
    /// The applied service charge's GUID.
    pub guid: String,
    /// The configured service charge's GUID (`serviceCharge.guid`).
    pub service_charge_guid: String,
    /// Name.
    pub name: String,
    /// `FIXED` or `PERCENT`.
    pub charge_type: String,
    /// Percent in parts per million, for `PERCENT`.
    pub percent_ppm: Option<i64>,
    /// `chargeAmount`, cents.
    pub amount_cents: i64,
    /// A gratuity (auto-gratuity).
    pub gratuity: bool,
    /// Taxable (never, here: `appliedTaxes` is empty).
    pub taxable: bool,
}

/// One tax rate applied to a selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastAppliedTax {
    /// The applied tax's GUID.
    pub guid: String,
    /// The tax rate's GUID.
    pub tax_rate_guid: String,
    /// The rate's name.
    pub name: String,
    /// Rate, parts per million.
    pub rate_ppm: i64,
    /// `taxAmount`, cents.
    pub amount_cents: i64,
}

/// What a refund took back from one selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastSelectionRefund {
    /// Refunded, excluding tax, cents.
    pub amount_cents: i64,
    /// Tax refunded, cents (all of it on the selection's one tax rate).
    pub tax_cents: i64,
    /// The refund transaction (see [`ToastRefund::transaction_guid`]).
    pub transaction_guid: String,
}

/// A menu item selection on a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToastSelection {
    /// GUID.
    pub guid: String,
    /// Menu item GUID (`None` for a gift card).
    pub item_guid: Option<String>,
    /// Menu group GUID (`None` for a gift card).
    pub item_group_guid: Option<String>,
    /// Sales category GUID (`None` for a gift card).
    pub sales_category_guid: Option<String>,
    /// Display name.
    pub display_name: String,
    /// Quantity.
    pub quantity: u32,
    /// Unit price (`receiptLinePrice`), cents.
    pub unit_price_cents: i64,
    /// Deferred revenue (a gift card sold).
    pub deferred: bool,
    /// `selectionType`: `NONE` or `TOAST_CARD_SELL`.
    pub selection_type: String,
    /// Item-level discounts (`appliedDiscounts`).
    pub discounts: Vec<ToastDiscount>,
    /// This selection's share of the check-level discounts, cents.
    pub check_discount_cents: i64,
    /// Taxes, computed on the net price.
    pub taxes: Vec<ToastAppliedTax>,
    /// Voided.
    pub voided: bool,
    /// Refunded part, if any.
    pub refund: Option<ToastSelectionRefund>,
}

impl ToastSelection {
    /// Gross line price (`preDiscountPrice`), cents.
    pub fn pre_discount_cents(&self) -> i64 {
        self.unit_price_cents * i64::from(self.quantity)
    }

    /// Item-level discounts, cents.
    pub fn item_discount_cents(&self) -> i64 {
        self.discounts.iter().map(|d| d.amount_cents).sum()
    }

    /// Net line price before tax (`price`): gross less item discounts and
    /// the share of check discounts, cents.
    pub fn price_cents(&self) -> i64 {
        self.pre_discount_cents() - self.item_discount_cents() - self.check_discount_cents
    }

    /// Tax on the line, cents.
    pub fn tax_cents(&self) -> i64 {
        self.taxes.iter().map(|t| t.amount_cents).sum()
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
    /// Check-level discounts (allocated to the selections' `price`).
    pub discounts: Vec<ToastDiscount>,
    /// Service charges.
    pub service_charges: Vec<ToastServiceCharge>,
    /// Payments.
    pub payments: Vec<ToastPayment>,
    /// Voided.
    pub voided: bool,
}

impl ToastCheck {
    /// Selections that are not voided.
    pub fn live(&self) -> impl Iterator<Item = &ToastSelection> {
        self.selections.iter().filter(|s| !s.voided)
    }

    /// Non-gratuity service charges, cents.
    pub fn service_charge_cents(&self) -> i64 {
        self.service_charges
            .iter()
            .filter(|c| !c.gratuity)
            .map(|c| c.amount_cents)
            .sum()
    }

    /// Gratuity service charges, cents.
    pub fn gratuity_cents(&self) -> i64 {
        self.service_charges
            .iter()
            .filter(|c| c.gratuity)
            .map(|c| c.amount_cents)
            .sum()
    }

    /// `amount`: live selections' net price (deferred included) plus
    /// non-gratuity service charges, cents.
    pub fn amount_cents(&self) -> i64 {
        self.live().map(ToastSelection::price_cents).sum::<i64>() + self.service_charge_cents()
    }

    /// `taxAmount`: live selections' tax (service charges are untaxed), cents.
    pub fn tax_cents(&self) -> i64 {
        self.live().map(ToastSelection::tax_cents).sum()
    }

    /// `totalAmount`: amount + gratuity + tax, cents.
    pub fn total_cents(&self) -> i64 {
        self.amount_cents() + self.gratuity_cents() + self.tax_cents()
    }

    /// Payments that are money (see [`ToastPayment::is_money`]).
    pub fn money_payments(&self) -> impl Iterator<Item = &ToastPayment> {
        self.payments.iter().filter(|p| p.is_money())
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

/// `cents × ppm / 1,000,000`, half-up on integer cents (non-negative).
fn ppm_of(cents: i64, ppm: i64) -> i64 {
    (cents * ppm + 500_000).div_euclid(1_000_000)
}

/// Parts per million as the JSON number of a fraction (`88750` → `0.08875`).
fn ppm_fraction_json(ppm: i64) -> Value {
    decimal_json(Decimal::new(ppm, 6))
}

/// Parts per million as a JSON percent (`150000` → `15`).
fn ppm_percent_json(ppm: i64) -> Value {
    decimal_json(Decimal::new(ppm, 4))
}

fn entity(guid: &str, entity_type: &str) -> Value {
    json!({"guid": guid, "entityType": entity_type, "externalId": null})
}

fn opt_entity(guid: Option<&String>, entity_type: &str) -> Value {
    guid.map_or(Value::Null, |g| entity(g, entity_type))
}

fn opt_ts(ts: Option<Timestamp>) -> Value {
    ts.map(|t| Value::String(time::toast(t)))
        .unwrap_or(Value::Null)
}

fn discount_json(d: &ToastDiscount) -> Value {
    json!({
        "guid": d.guid,
        "entityType": "AppliedDiscount",
        "externalId": null,
        "name": d.name,
        "discountAmount": cents_json(d.amount_cents),
        "nonTaxDiscountAmount": cents_json(d.amount_cents),
        "discount": {"guid": d.discount_guid, "entityType": "Discount"},
        "discountType": d.discount_type,
        "discountPercent": d.percent_ppm.map_or(Value::Null, ppm_percent_json),
        "triggers": [],
        "approver": null,
        "processingState": null,
        "appliedDiscountReason": null,
        "loyaltyDetails": null,
        "comboItems": [],
        "appliedPromoCode": null,
    })
}

fn service_charge_json(c: &ToastServiceCharge) -> Value {
    json!({
        "guid": c.guid,
        "entityType": "AppliedServiceCharge",
        "externalId": null,
        "chargeAmount": cents_json(c.amount_cents),
        "serviceCharge": entity(&c.service_charge_guid, "ServiceCharge"),
        "chargeType": c.charge_type,
        "name": c.name,
        "delivery": false,
        "takeout": false,
        "dineIn": true,
        "gratuity": c.gratuity,
        "taxable": c.taxable,
        "appliedTaxes": [],
        "serviceChargeCalculation": if c.charge_type == "PERCENT" { json!("POST_DISCOUNT") } else { Value::Null },
        "refundDetails": null,
        "serviceChargeCategory": "SERVICE_CHARGE",
        "paymentGuid": null,
    })
}

fn refund_transaction_json(guid: &str) -> Value {
    json!({"guid": guid, "entityType": "RefundTransaction"})
}

impl ToastOrder {
    /// Payments of the order's live checks that are money and were refunded
    /// (a refund is booked on its own, on its own day).
    pub fn refunded_payments(&self) -> usize {
        if self.voided || self.deleted {
            return 0;
        }
        self.checks
            .iter()
            .filter(|c| !c.voided)
            .flat_map(|c| c.payments.iter())
            .filter(|p| p.is_money() && p.refund.is_some())
            .count()
    }

    /// Sum of the checks' totals (amount + gratuity + tax), cents.
    pub fn total_cents(&self) -> i64 {
        self.checks.iter().map(ToastCheck::total_cents).sum()
    }

    fn selection_json(&self, s: &ToastSelection, dining: &Value) -> Value {
        let business = time::yyyymmdd(self.business_date);
        let taxes: Vec<Value> = s
            .taxes
            .iter()
            .map(|t| {
                json!({
                    "guid": t.guid,
                    "entityType": "AppliedTaxRate",
                    "taxRate": {"guid": t.tax_rate_guid, "entityType": "TaxRate"},
                    "name": t.name,
                    "displayName": t.name,
                    "rate": ppm_fraction_json(t.rate_ppm),
                    "taxAmount": cents_json(t.amount_cents),
                    "type": "PERCENT",
                    "facilitatorCollectAndRemitTax": false,
                })
            })
            .collect();
        let refund = s.refund.as_ref().map_or(Value::Null, |r| {
            json!({
                "refundAmount": cents_json(r.amount_cents),
                "taxRefundAmount": cents_json(r.tax_cents),
                "refundTransaction": refund_transaction_json(&r.transaction_guid),
            })
        });
        json!({
            "guid": s.guid,
            "entityType": "MenuItemSelection",
            "externalId": null,
            "itemGroup": opt_entity(s.item_group_guid.as_ref(), "MenuGroup"),
            "deferred": s.deferred,
            "item": opt_entity(s.item_guid.as_ref(), "MenuItem"),
            "quantity": s.quantity,
            "receiptLinePrice": cents_json(s.unit_price_cents),
            "preDiscountPrice": cents_json(s.pre_discount_cents()),
            "voidReason": null,
            "optionGroup": null,
            "displayName": s.display_name,
            "appliedDiscounts": s.discounts.iter().map(discount_json).collect::<Vec<_>>(),
            "tax": cents_json(s.tax_cents()),
            "modifiers": [],
            "seatNumber": -1,
            "voidDate": opt_ts(s.voided.then_some(self.modified)),
            "fulfillmentStatus": "SENT",
            "optionGroupPricingMode": null,
            "salesCategory": opt_entity(s.sales_category_guid.as_ref(), "SalesCategory"),
            "selectionType": s.selection_type,
            "voidBusinessDate": s.voided.then_some(business),
            "createdDate": time::toast(self.opened),
            "preModifier": null,
            "price": cents_json(s.price_cents()),
            "modifiedDate": time::toast(self.modified),
            "voided": s.voided,
            "diningOption": dining,
            "taxInclusion": "NOT_INCLUDED",
            "appliedTaxes": taxes,
            "refundDetails": refund,
        })
    }

    fn payment_json(&self, c: &ToastCheck, p: &ToastPayment) -> Value {
        let device = json!({"id": "sandbox-device"});
        let (card_type, last4, entry) = match &p.tender {
            ToastTender::Credit { card_type, last4 } => (
                Value::String(card_type.clone()),
                Value::String(last4.clone()),
                Value::String("EMV_CHIP_SIGN".into()),
            ),
            _ => (Value::Null, Value::Null, Value::Null),
        };
        let house_account = match &p.tender {
            ToastTender::HouseAccount { account_guid } => entity(account_guid, "HouseAccount"),
            _ => Value::Null,
        };
        let other = match &p.tender {
            ToastTender::Other { other_payment_guid } => {
                entity(other_payment_guid, "AlternatePaymentType")
            }
            _ => Value::Null,
        };
        let refund = p.refund.as_ref().map_or(Value::Null, |r| {
            json!({
                "refundAmount": cents_json(r.amount_cents),
                "tipRefundAmount": cents_json(r.tip_cents),
                "refundDate": time::toast(r.date),
                "refundBusinessDate": time::yyyymmdd(r.business_date),
                "refundTransaction": refund_transaction_json(&r.transaction_guid),
            })
        });
        let refund_status = match p.refund_cents() {
            0 => "NONE",
            n if n >= p.amount_cents => "FULL",
            _ => "PARTIAL",
        };
        let status = if p.voided {
            Value::String("VOIDED".into())
        } else {
            p.status.clone().map_or(Value::Null, Value::String)
        };
        let cash = matches!(p.tender, ToastTender::Cash);
        json!({
            "guid": p.guid,
            "entityType": "OrderPayment",
            "externalId": null,
            "originalProcessingFee": p.fee_cents.map_or(Value::Null, cents_json),
            "amount": cents_json(p.amount_cents),
            "tipAmount": cents_json(p.tip_cents),
            "amountTendered": if cash { cents_json(p.amount_cents) } else { cents_json(0) },
            "cashDrawer": null,
            "cardType": card_type,
            "lastModifiedDevice": device,
            "createdDevice": device,
            "refundStatus": refund_status,
            "houseAccount": house_account,
            "type": p.tender.kind(),
            "voidInfo": null,
            "otherPayment": other,
            "paidDate": time::toast(p.paid),
            "cardEntryMode": entry,
            "paymentStatus": status,
            "paidBusinessDate": time::yyyymmdd(self.business_date),
            "last4Digits": last4,
            "refund": refund,
            "orderGuid": self.guid,
            "checkGuid": c.guid,
        })
    }

    fn check_json(&self, c: &ToastCheck, dining: &Value) -> Value {
        let device = json!({"id": "sandbox-device"});
        let business = time::yyyymmdd(self.business_date);
        let deleted_date = if self.deleted {
            time::toast(self.modified)
        } else {
            "1970-01-01T00:00:00.000+0000".to_string()
        };
        let closed = if c.voided { None } else { self.closed };
        json!({
            "guid": c.guid,
            "entityType": "Check",
            "externalId": null,
            "displayNumber": c.display_number,
            "amount": cents_json(c.amount_cents()),
            "tabName": null,
            "taxExempt": false,
            "payments": c.payments.iter().map(|p| self.payment_json(c, p)).collect::<Vec<_>>(),
            "appliedDiscounts": c.discounts.iter().map(discount_json).collect::<Vec<_>>(),
            "voidDate": opt_ts(c.voided.then_some(self.modified)),
            "openedDate": time::toast(self.opened),
            "createdDate": time::toast(self.opened),
            "totalAmount": cents_json(c.total_cents()),
            "lastModifiedDevice": device,
            "createdDevice": device,
            "selections": c.selections.iter().map(|s| self.selection_json(s, dining)).collect::<Vec<_>>(),
            "voidBusinessDate": c.voided.then_some(business),
            "deleted": self.deleted,
            "paidDate": opt_ts(closed),
            "closedDate": opt_ts(closed),
            "deletedDate": deleted_date,
            "modifiedDate": time::toast(self.modified),
            "appliedLoyaltyInfo": null,
            "voided": c.voided,
            "taxAmount": cents_json(c.tax_cents()),
            "appliedServiceCharges": c.service_charges.iter().map(service_charge_json).collect::<Vec<_>>(),
            "paymentStatus": if closed.is_some() { "CLOSED" } else { "OPEN" },
            "customer": null,
        })
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
            .map(|c| self.check_json(c, &dining))
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

    /// Adds this order's money to `truth` under `location`: nothing for a
    /// voided or deleted order, a voided check, a voided selection or a
    /// payment that is not money; refunds on their own business date.
    pub fn add_truth(&self, location: &str, truth: &mut Truth) {
        if self.voided || self.deleted {
            return;
        }
        let day = self.business_date;
        for c in self.checks.iter().filter(|c| !c.voided) {
            for s in c.live() {
                if s.deferred {
                    truth.add(location, day, "gift_cards_sold", s.price_cents());
                } else {
                    let category = s.sales_category_guid.as_deref().unwrap_or("uncategorized");
                    truth.add(
                        location,
                        day,
                        &format!("sales:{category}"),
                        s.pre_discount_cents(),
                    );
                }
                truth.add(location, day, "discounts", s.item_discount_cents());
                for t in &s.taxes {
                    truth.add(location, day, &format!("tax:{}", t.name), t.amount_cents);
                }
            }
            let check_discounts: i64 = c.discounts.iter().map(|d| d.amount_cents).sum();
            truth.add(location, day, "discounts", check_discounts);
            truth.add(location, day, "service_charges", c.service_charge_cents());
            truth.add(location, day, "gratuity", c.gratuity_cents());
            for p in c.money_payments() {
                let role = p.tender.role();
                truth.add(location, day, "tips", p.tip_cents);
                truth.add(location, day, &role, p.amount_cents + p.tip_cents);
                truth.add(location, day, "fees", p.fee_cents.unwrap_or(0));
                let Some(r) = &p.refund else { continue };
                let on = r.business_date;
                let mut tax_refunded = 0;
                for s in c.live() {
                    let Some(sr) = s
                        .refund
                        .as_ref()
                        .filter(|sr| sr.transaction_guid == r.transaction_guid)
                    else {
                        continue;
                    };
                    let rate = s.taxes.first().map_or("none", |t| t.name.as_str());
                    truth.add(location, on, &format!("tax:{rate}"), -sr.tax_cents);
                    tax_refunded += sr.tax_cents;
                }
                truth.add(location, on, "refunds", r.amount_cents - tax_refunded);
                truth.add(location, on, "tips", -r.tip_cents);
                truth.add(location, on, &role, -(r.amount_cents + r.tip_cents));
            }
        }
    }
}

/// Menu items every generated restaurant offers: (group, item, price cents,
/// beverage, liquor).
const MENU: &[(&str, &str, i64, bool, bool)] = &[
    ("Food", "Burger", 1450, false, false),
    ("Food", "Fries", 495, false, false),
    ("Food", "Caesar Salad", 1195, false, false),
    ("Food", "Margherita Pizza", 1695, false, false),
    ("Food", "Fish Tacos", 1395, false, false),
    ("Food", "Chicken Wings", 1295, false, false),
    ("Drinks", "Soda", 295, true, false),
    ("Drinks", "Iced Tea", 325, true, false),
    ("Drinks", "Draft Beer", 750, true, true),
    ("Drinks", "House Wine", 900, true, true),
    ("Drinks", "Espresso", 375, true, false),
    ("Desserts", "Cheesecake", 850, false, false),
    ("Desserts", "Brownie", 695, false, false),
];

/// Sales categories: (name); index 0 food, 1 beverage.
const SALES_CATEGORIES: &[&str] = &["Food", "Beverage"];
/// Tax rates: (name, ppm); index 0 on food and soft drinks, 1 on liquor.
const TAX_RATES: &[(&str, i64)] = &[
    ("Sales Tax", TAX_RATE_PPM),
    ("Liquor Tax", LIQUOR_TAX_RATE_PPM),
];
/// `OTHER` payment types (delivery apps).
const OTHER_PAYMENT_TYPES: &[&str] = &["DoorDash", "Uber Eats"];
/// House accounts.
const HOUSE_ACCOUNTS: &[&str] = &["Acme Corp", "City Events Ltd"];

/// How a configured discount takes its amount.
#[derive(Debug, Clone, Copy)]
enum Amount {
    /// Parts per million of the base.
    Percent(i64),
    /// Cents.
    Fixed(i64),
}

/// Configured discounts, by index: item 15%, item $2, comp (100%), check
/// 10%, check $5.
const DISCOUNTS: &[(&str, Amount)] = &[
    ("Happy Hour 15%", Amount::Percent(150_000)),
    ("$2 Off Item", Amount::Fixed(200)),
    ("Comp", Amount::Percent(1_000_000)),
    ("10% Off Check", Amount::Percent(100_000)),
    ("$5 Off Check", Amount::Fixed(500)),
];
const ITEM_PERCENT: usize = 0;
const ITEM_FIXED: usize = 1;
const COMP: usize = 2;
const CHECK_PERCENT: usize = 3;
const CHECK_FIXED: usize = 4;

/// Configured service charges, by index: a fixed event fee, and the 18%
/// auto-gratuity for parties of [`AUTO_GRATUITY_GUESTS`] or more.
const SERVICE_CHARGES: &[(&str, Amount, bool)] = &[
    ("Event fee", Amount::Fixed(2_500), false),
    ("Auto Gratuity 18%", Amount::Percent(180_000), true),
];
const EVENT_FEE: usize = 0;
const AUTO_GRATUITY: usize = 1;
/// Parties at least this large get the auto-gratuity.
pub const AUTO_GRATUITY_GUESTS: u32 = 6;

const CARD_TYPES: &[&str] = &["VISA", "MASTERCARD", "AMEX", "DISCOVER"];
const TIP_PERCENT: &[i64] = &[0, 15, 18, 20, 22];
const GUESTS: &[u32] = &[1, 2, 2, 2, 2, 3, 3, 4, 4, 5, 6, 8];
const GIFT_CARD_CENTS: &[i64] = &[2_500, 5_000, 10_000];
const FAILED_STATUSES: &[&str] = &["DENIED", "ERROR", "PROCESSING_VOID"];

fn generate_catalog(rng: &mut ChaCha8Rng) -> ToastCatalog {
    let named = |rng: &mut ChaCha8Rng, names: &[&str]| -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (data::guid(rng), (*n).to_string()))
            .collect()
    };
    let sales_categories = named(rng, SALES_CATEGORIES);
    let tax_rates = TAX_RATES
        .iter()
        .map(|(name, ppm)| ToastTaxRate {
            guid: data::guid(rng),
            name: (*name).to_string(),
            rate_ppm: *ppm,
        })
        .collect();
    let other_payment_types = named(rng, OTHER_PAYMENT_TYPES);
    let house_accounts = named(rng, HOUSE_ACCOUNTS);
    let discount_guids = DISCOUNTS.iter().map(|_| data::guid(rng)).collect();
    let service_charge_guids = SERVICE_CHARGES.iter().map(|_| data::guid(rng)).collect();
    ToastCatalog {
        sales_categories,
        tax_rates,
        other_payment_types,
        house_accounts,
        discount_guids,
        service_charge_guids,
    }
}

fn generate_restaurant(
    rng: &mut ChaCha8Rng,
    catalog: &ToastCatalog,
    name: &str,
    tz: &str,
) -> ToastRestaurant {
    let mut groups: Vec<ToastMenuGroup> = Vec::new();
    for (group, item, price, beverage, liquor) in MENU {
        if groups.last().is_none_or(|g| g.name != *group) {
            groups.push(ToastMenuGroup {
                guid: data::guid(rng),
                name: (*group).to_string(),
                items: Vec::new(),
            });
        }
        // Prices vary a little per restaurant, in whole nickels.
        let price = price + 5 * rng.random_range(0..=10);
        let category = &catalog.sales_categories[usize::from(*beverage)].0;
        let tax = &catalog.tax_rates[usize::from(*liquor)].guid;
        if let Some(g) = groups.last_mut() {
            g.items.push(ToastMenuItem {
                guid: data::guid(rng),
                name: (*item).to_string(),
                price_cents: price,
                sales_category_guid: category.clone(),
                tax_rate_guid: tax.clone(),
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
        catalog: catalog.clone(),
        dining_option_guid: data::guid(rng),
        revenue_center_guid: data::guid(rng),
        server_guid: data::guid(rng),
    }
}

fn discount(
    rng: &mut ChaCha8Rng,
    catalog: &ToastCatalog,
    which: usize,
    base: i64,
) -> ToastDiscount {
    let (name, how) = DISCOUNTS[which];
    let (discount_type, percent_ppm, amount_cents) = match how {
        Amount::Percent(ppm) => ("PERCENT", Some(ppm), ppm_of(base, ppm)),
        Amount::Fixed(cents) => ("FIXED", None, cents.min(base)),
    };
    ToastDiscount {
        guid: data::guid(rng),
        discount_guid: catalog.discount_guids[which].clone(),
        name: name.to_string(),
        discount_type: discount_type.to_string(),
        percent_ppm,
        amount_cents,
    }
}

fn service_charge(
    rng: &mut ChaCha8Rng,
    catalog: &ToastCatalog,
    which: usize,
    base: i64,
) -> ToastServiceCharge {
    let (name, how, gratuity) = SERVICE_CHARGES[which];
    let (charge_type, percent_ppm, amount_cents) = match how {
        Amount::Percent(ppm) => ("PERCENT", Some(ppm), ppm_of(base, ppm)),
        Amount::Fixed(cents) => ("FIXED", None, cents),
    };
    ToastServiceCharge {
        guid: data::guid(rng),
        service_charge_guid: catalog.service_charge_guids[which].clone(),
        name: name.to_string(),
        charge_type: charge_type.to_string(),
        percent_ppm,
        amount_cents,
        gratuity,
        taxable: false,
    }
}

fn card(rng: &mut ChaCha8Rng) -> ToastTender {
    ToastTender::Credit {
        card_type: (*CARD_TYPES.choose(rng).unwrap_or(&"VISA")).to_string(),
        last4: format!("{:04}", rng.random_range(0..10_000)),
    }
}

/// Toast's card processing fee, as generated: 2.6% of amount + tip, plus
/// 10 cents, half-up in cents.
fn card_fee(charged_cents: i64) -> i64 {
    ppm_of(charged_cents, 26_000) + 10
}

fn payment(
    rng: &mut ChaCha8Rng,
    tender: ToastTender,
    amount_cents: i64,
    tip_cents: i64,
    paid: Timestamp,
) -> ToastPayment {
    let status = match tender {
        ToastTender::Credit { .. } => {
            let roll: f64 = rng.random();
            Some(if roll < 0.85 {
                "CAPTURED"
            } else if roll < 0.925 {
                "AUTHORIZED"
            } else {
                "CAPTURE_IN_PROGRESS"
            })
        }
        // Non-card payments: CAPTURED or no status at all.
        _ => rng.random_bool(0.5).then_some("CAPTURED"),
    };
    let mut p = ToastPayment {
        guid: data::guid(rng),
        tender,
        amount_cents,
        tip_cents,
        fee_cents: None,
        status: status.map(str::to_string),
        refund: None,
        tip_adjustment: None,
        paid,
        voided: false,
    };
    set_fee(&mut p);
    p
}

/// `originalProcessingFee`: on captured card payments only.
fn set_fee(p: &mut ToastPayment) {
    p.fee_cents = (matches!(p.tender, ToastTender::Credit { .. })
        && p.status.as_deref() == Some("CAPTURED"))
    .then(|| card_fee(p.amount_cents + p.tip_cents));
}

/// A check's selections, discounts, service charges and payments.
fn generate_check(
    rng: &mut ChaCha8Rng,
    r: &ToastRestaurant,
    display_number: String,
    guests: u32,
    closed: Timestamp,
) -> ToastCheck {
    let catalog = &r.catalog;
    let items: Vec<(&ToastMenuGroup, &ToastMenuItem)> = r
        .menu_groups
        .iter()
        .flat_map(|g| g.items.iter().map(move |i| (g, i)))
        .collect();
    let lines = rng.random_range(1..=4);
    let mut selections: Vec<ToastSelection> = Vec::new();
    for _ in 0..lines {
        let Some((g, i)) = items.choose(rng) else {
            continue;
        };
        let quantity = rng.random_range(1..=2u32);
        let gross = i.price_cents * i64::from(quantity);
        let voided = rng.random_bool(0.05);
        let mut discounts = Vec::new();
        if !voided {
            let roll: f64 = rng.random();
            if roll < 0.05 {
                discounts.push(discount(rng, catalog, COMP, gross));
            } else if roll < 0.10 {
                discounts.push(discount(rng, catalog, ITEM_PERCENT, gross));
            } else if roll < 0.14 && gross >= 400 {
                discounts.push(discount(rng, catalog, ITEM_FIXED, gross));
            }
        }
        let rate = catalog
            .tax_rates
            .iter()
            .find(|t| t.guid == i.tax_rate_guid)
            .cloned()
            .unwrap_or_else(|| catalog.tax_rates[0].clone());
        selections.push(ToastSelection {
            guid: data::guid(rng),
            item_guid: Some(i.guid.clone()),
            item_group_guid: Some(g.guid.clone()),
            sales_category_guid: Some(i.sales_category_guid.clone()),
            display_name: i.name.clone(),
            quantity,
            unit_price_cents: i.price_cents,
            deferred: false,
            selection_type: "NONE".into(),
            discounts,
            check_discount_cents: 0,
            taxes: vec![ToastAppliedTax {
                guid: data::guid(rng),
                tax_rate_guid: rate.guid,
                name: rate.name,
                rate_ppm: rate.rate_ppm,
                amount_cents: 0,
            }],
            voided,
            refund: None,
        });
    }
    // A gift card sold: deferred, no category, no tax.
    if rng.random_bool(0.10) {
        let cents = *GIFT_CARD_CENTS.choose(rng).unwrap_or(&2_500);
        selections.push(ToastSelection {
            guid: data::guid(rng),
            // The definition requires `item`: the restaurant's gift card
            // item (no sales category: deferred revenue).
            item_guid: Some(reference_guid(&r.menu_guid, GIFT_CARD_ITEM_ID)),
            item_group_guid: None,
            sales_category_guid: None,
            display_name: "Gift Card".into(),
            quantity: 1,
            unit_price_cents: cents,
            deferred: true,
            selection_type: "TOAST_CARD_SELL".into(),
            discounts: Vec::new(),
            check_discount_cents: 0,
            taxes: Vec::new(),
            voided: false,
            refund: None,
        });
    }
    // A check-level discount, allocated over the live, non-deferred
    // selections with a price left, in proportion (integer cents, floor;
    // the remainder to the last).
    let mut check_discounts = Vec::new();
    let eligible: Vec<usize> = selections
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.voided && !s.deferred && s.price_cents() > 0)
        .map(|(n, _)| n)
        .collect();
    let base: i64 = eligible.iter().map(|n| selections[*n].price_cents()).sum();
    if !eligible.is_empty() && rng.random_bool(0.12) {
        let which = if base >= 2_000 && rng.random_bool(0.5) {
            CHECK_FIXED
        } else {
            CHECK_PERCENT
        };
        let d = discount(rng, catalog, which, base);
        let mut left = d.amount_cents;
        for (k, n) in eligible.iter().enumerate() {
            let share = if k + 1 == eligible.len() {
                left
            } else {
                d.amount_cents * selections[*n].price_cents() / base
            };
            selections[*n].check_discount_cents = share;
            left -= share;
        }
        if d.amount_cents > 0 {
            check_discounts.push(d);
        }
    }
    // Tax on the net price, half-up per rate.
    for s in &mut selections {
        let net = s.price_cents();
        for t in &mut s.taxes {
            t.amount_cents = ppm_of(net, t.rate_ppm);
        }
    }
    let mut check = ToastCheck {
        guid: data::guid(rng),
        display_number,
        selections,
        discounts: check_discounts,
        service_charges: Vec::new(),
        payments: Vec::new(),
        voided: false,
    };
    if rng.random_bool(0.10) {
        let fee = service_charge(rng, catalog, EVENT_FEE, 0);
        check.service_charges.push(fee);
    }
    if guests >= AUTO_GRATUITY_GUESTS {
        // 18% of the check amount, gift cards aside.
        let gift_cards: i64 = check
            .live()
            .filter(|s| s.deferred)
            .map(ToastSelection::price_cents)
            .sum();
        let base = check.amount_cents() - gift_cards;
        let gratuity = service_charge(rng, catalog, AUTO_GRATUITY, base);
        check.service_charges.push(gratuity);
    }
    // Payments: the money first, then any failed card attempt.
    let total = check.total_cents();
    let roll: f64 = rng.random();
    let tip_on = |rng: &mut ChaCha8Rng, amount: i64| {
        let pct = *TIP_PERCENT.choose(rng).unwrap_or(&0);
        (amount * pct + 50) / 100
    };
    if roll < 0.55 {
        let split = total >= 1_000 && rng.random_bool(0.2);
        let cash = if split { total / 200 * 100 } else { 0 };
        let tender = card(rng);
        let tip = tip_on(rng, total - cash);
        let p = payment(rng, tender, total - cash, tip, closed);
        check.payments.push(p);
        if split {
            let p = payment(rng, ToastTender::Cash, cash, 0, closed);
            check.payments.push(p);
        }
    } else {
        let tender = if roll < 0.72 {
            ToastTender::Cash
        } else if roll < 0.84 {
            let (guid, _) = catalog
                .other_payment_types
                .choose(rng)
                .cloned()
                .unwrap_or_default();
            ToastTender::Other {
                other_payment_guid: guid,
            }
        } else if roll < 0.92 {
            ToastTender::GiftCard
        } else {
            let (guid, _) = catalog
                .house_accounts
                .choose(rng)
                .cloned()
                .unwrap_or_default();
            ToastTender::HouseAccount { account_guid: guid }
        };
        let p = payment(rng, tender, total, 0, closed);
        check.payments.push(p);
    }
    if rng.random_bool(0.08) {
        let status = *FAILED_STATUSES.choose(rng).unwrap_or(&"DENIED");
        let tender = card(rng);
        let attempted = Timestamp::from_second(closed.as_second() - 60).unwrap_or(closed);
        check.payments.push(ToastPayment {
            guid: data::guid(rng),
            tender,
            amount_cents: total,
            tip_cents: 0,
            fee_cents: None,
            status: Some(status.to_string()),
            refund: None,
            tip_adjustment: None,
            paid: attempted,
            voided: false,
        });
    }
    check
}

fn void_check(c: &mut ToastCheck) {
    c.voided = true;
    for p in &mut c.payments {
        p.voided = true;
        p.fee_cents = None;
    }
}

fn plus_minutes(t: Timestamp, minutes: i64) -> Timestamp {
    Timestamp::from_second(t.as_second() + minutes * 60).unwrap_or(t)
}

/// Generates one order of `business_date`, opened at `opened`; checks take
/// display numbers from `next_number`; refunds fall on `business_date` up
/// to `last_date`.
fn generate_order(
    rng: &mut ChaCha8Rng,
    r: &ToastRestaurant,
    business_date: Date,
    opened: Timestamp,
    next_number: &mut u32,
    last_date: Date,
) -> ToastOrder {
    let tz = TimeZone::get(&r.time_zone).unwrap_or(TimeZone::UTC);
    let minutes = rng.random_range(15..=90i64);
    let closed = plus_minutes(opened, minutes);
    let mut modified =
        Timestamp::from_millisecond(closed.as_millisecond() + rng.random_range(0..5_000))
            .unwrap_or(closed);
    let guests = *GUESTS.choose(rng).unwrap_or(&2);
    let checks_count = if rng.random_bool(0.2) { 2 } else { 1 };
    let mut checks: Vec<ToastCheck> = (0..checks_count)
        .map(|_| {
            let number = *next_number;
            *next_number += 1;
            generate_check(rng, r, number.to_string(), guests, closed)
        })
        .collect();
    if checks.len() > 1
        && rng.random_bool(0.5)
        && let Some(c) = checks.last_mut()
    {
        void_check(c);
    }
    let voided = rng.random_bool(0.06);
    let deleted = !voided && rng.random_bool(0.05);
    if voided {
        checks.iter_mut().for_each(void_check);
    }
    if !voided && !deleted {
        let check = &mut checks[0];
        // A tip adjusted after close (the final tip stands).
        if let Some(p) = check
            .payments
            .first_mut()
            .filter(|p| matches!(p.tender, ToastTender::Credit { .. }) && p.is_money())
            && rng.random_bool(0.3)
        {
            let original = p.tip_cents;
            let pct = *[18i64, 20, 25].choose(rng).unwrap_or(&20);
            let mut tip = (p.amount_cents * pct + 50) / 100;
            if tip == original {
                tip += 100;
            }
            let at = plus_minutes(closed, rng.random_range(30..=180));
            p.tip_cents = tip;
            p.tip_adjustment = Some(ToastTipAdjustment {
                original_tip_cents: original,
                at,
            });
            set_fee(p);
            modified = modified.max(at);
        }
        // A refund, partial (one selection) or full (every selection), of a
        // check with one money payment by card or cash.
        let single = check.money_payments().count() == 1
            && check.payments.first().is_some_and(|p| {
                p.is_money() && matches!(p.tender, ToastTender::Credit { .. } | ToastTender::Cash)
            });
        let roll: f64 = rng.random();
        let full_ok = check.service_charges.is_empty() && check.live().all(|s| !s.deferred);
        let refunded: Vec<usize> = if !single {
            Vec::new()
        } else if roll < 0.10 && full_ok {
            (0..check.selections.len())
                .filter(|n| !check.selections[*n].voided && check.selections[*n].price_cents() > 0)
                .collect()
        } else if roll < 0.24 {
            let candidates: Vec<usize> = (0..check.selections.len())
                .filter(|n| {
                    let s = &check.selections[*n];
                    !s.voided && !s.deferred && s.price_cents() > 0 && s.taxes.len() <= 1
                })
                .collect();
            candidates.choose(rng).into_iter().copied().collect()
        } else {
            Vec::new()
        };
        if !refunded.is_empty() {
            let transaction_guid = data::guid(rng);
            let later_days = (last_date - business_date).get_days().clamp(0, 2);
            let (at, on) = if later_days > 0 && rng.random_bool(0.5) {
                let on = data::add_days(business_date, rng.random_range(1..=i64::from(later_days)));
                let at = data::local(
                    on,
                    11 * 3600 + rng.random_range(0..9 * 3600),
                    rng.random_range(0..1000),
                    &tz,
                );
                (at, on)
            } else {
                (
                    plus_minutes(closed, rng.random_range(10..=120)),
                    business_date,
                )
            };
            let mut amount = 0;
            for n in &refunded {
                let s = &mut check.selections[*n];
                let sr = ToastSelectionRefund {
                    amount_cents: s.price_cents(),
                    tax_cents: s.tax_cents(),
                    transaction_guid: transaction_guid.clone(),
                };
                amount += sr.amount_cents + sr.tax_cents;
                s.refund = Some(sr);
            }
            if let Some(p) = check.payments.first_mut() {
                let full = amount >= p.amount_cents;
                let tip = if full && rng.random_bool(0.8) {
                    p.tip_cents
                } else {
                    0
                };
                p.refund = Some(ToastRefund {
                    transaction_guid,
                    amount_cents: amount,
                    tip_cents: tip,
                    date: at,
                    business_date: on,
                });
            }
            modified = modified.max(at);
        }
    }
    ToastOrder {
        guid: data::guid(rng),
        business_date,
        opened,
        closed: Some(closed),
        modified,
        voided,
        deleted,
        number_of_guests: guests,
        checks,
    }
}

#[derive(Debug)]
struct ToastData {
    catalog: ToastCatalog,
    restaurants: BTreeMap<String, ToastRestaurant>,
    orders: BTreeMap<String, BTreeMap<String, ToastOrder>>,
    rng: ChaCha8Rng,
    next_number: u32,
}

impl ToastData {
    fn generate(config: &ToastConfig) -> Self {
        let mut data = Self {
            catalog: generate_catalog(&mut data::rng(config.seed, 2)),
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
        let mut r = generate_restaurant(&mut self.rng, &self.catalog, name, &config.time_zone);
        let first = data::first_date(config.first_business_date, config.days);
        let last = data::add_days(first, i64::from(config.days.max(1)) - 1);
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
                let order =
                    generate_order(&mut self.rng, &r, date, opened, &mut self.next_number, last);
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

/// A modifier group: (`referenceId`, name, its options' (`referenceId`, name)).
type ModifierGroup = (u64, &'static str, &'static [(u64, &'static str)]);

/// The modifier groups every restaurant's menu has, as the definition
/// shapes them: top-level maps keyed by `referenceId`, menu items and groups
/// naming them by that integer. (group id, name, [(option id, name)]).
const MODIFIER_GROUPS: &[ModifierGroup] = &[
    (1, "Sides", &[(10, "Fries"), (11, "Side Salad")]),
    (2, "Sauces", &[(20, "Aioli"), (21, "Hot Sauce")]),
];

/// The `referenceId` the gift card item's GUID is derived from.
const GIFT_CARD_ITEM_ID: u64 = 900;

/// A GUID for a menu entity, derived from the restaurant's menu GUID and
/// the entity's `referenceId` (stable for a seed).
fn reference_guid(menu_guid: &str, id: u64) -> String {
    format!("{}-{id:012x}", menu_guid.get(..23).unwrap_or(menu_guid))
}

fn menus_json(r: &ToastRestaurant) -> Value {
    let mut group_refs = serde_json::Map::new();
    let mut option_refs = serde_json::Map::new();
    for (gid, gname, options) in MODIFIER_GROUPS {
        group_refs.insert(
            gid.to_string(),
            json!({
                "referenceId": gid, "name": gname, "guid": reference_guid(&r.menu_guid, *gid),
                "minSelections": 0, "maxSelections": 1, "isMultiSelect": false, "requiredMode": "OPTIONAL",
                "pricingStrategy": "NONE", "visibility": ["POS"],
                "modifierOptionReferences": options.iter().map(|(oid, _)| *oid).collect::<Vec<_>>(),
            }),
        );
        for (oid, oname) in *options {
            option_refs.insert(
                oid.to_string(),
                json!({
                    "referenceId": oid, "name": oname, "guid": reference_guid(&r.menu_guid, *oid),
                    "price": 0.0, "pricingStrategy": "BASE_PRICE", "isDefault": false,
                    "allowsDuplicates": false, "visibility": ["POS"], "modifierGroupReferences": [],
                }),
            );
        }
    }
    let groups: Vec<Value> = r
        .menu_groups
        .iter()
        .map(|g| {
            let items: Vec<Value> = g
                .items
                .iter()
                .enumerate()
                .map(|(n, i)| {
                    // Every item offers sides; every other one sauces too.
                    let refs: Vec<u64> = if n % 2 == 0 { vec![1] } else { vec![1, 2] };
                    json!({
                        "name": i.name,
                        "guid": i.guid,
                        "description": "",
                        "price": cents_json(i.price_cents),
                        "pricingStrategy": "BASE_PRICE",
                        "salesCategory": {
                            "guid": i.sales_category_guid,
                            "name": r.catalog.sales_categories.iter()
                                .find(|(guid, _)| *guid == i.sales_category_guid)
                                .map(|(_, name)| name.clone()),
                        },
                        "taxInfo": [i.tax_rate_guid],
                        "visibility": ["POS", "TOAST_ONLINE_ORDERING"],
                        "modifierGroupReferences": refs,
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
        "modifierGroupReferences": group_refs,
        "modifierOptionReferences": option_refs,
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

/// `GET /restaurants/v1/restaurants/{restaurantGUID}`: the restaurant's
/// `RestaurantInfo` (toast-restaurants-openapi.yaml), its `general` part.
async fn restaurant_info(
    State(app): State<Arc<ToastApp>>,
    headers: HeaderMap,
    axum::extract::Path(guid): axum::extract::Path<String>,
) -> Response {
    match app.restaurant(&headers) {
        Ok(r) if r.guid == guid => json(
            StatusCode::OK,
            &json!({
                "guid": r.guid,
                "general": {
                    "name": r.name,
                    "locationName": r.name,
                    "description": "",
                    "timeZone": r.time_zone,
                    "closeoutHour": 4,
                    "currencyCode": app.config.currency,
                    "archived": false,
                },
            }),
        ),
        Ok(_) => error(
            StatusCode::FORBIDDEN,
            "The restaurant in the path is not the one in Toast-Restaurant-External-ID",
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
        .route("/restaurants/v1/restaurants/{guid}", get(restaurant_info))
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
        let ToastData {
            rng, next_number, ..
        } = &mut *data;
        let order = generate_order(rng, &r, business_date, opened, next_number, business_date);
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

    /// What the generated orders hold, per restaurant GUID (the location) ×
    /// business date × role, in cents, worked out from the sandbox's
    /// current orders (so edits are reflected). See [`ToastOrder::add_truth`].
    pub fn truth(&self) -> Truth {
        let data = self.app.data.lock().unwrap();
        let mut truth = Truth::default();
        for (restaurant, orders) in &data.orders {
            for order in orders.values() {
                order.add_truth(restaurant, &mut truth);
            }
        }
        truth
    }

    /// The sales categories (GUID, name) every restaurant uses.
    pub fn sales_categories(&self) -> Vec<(String, String)> {
        self.app
            .data
            .lock()
            .unwrap()
            .catalog
            .sales_categories
            .clone()
    }

    /// The tax rates' names (`tax:<name>` roles).
    pub fn tax_rate_names(&self) -> Vec<String> {
        let data = self.app.data.lock().unwrap();
        data.catalog
            .tax_rates
            .iter()
            .map(|t| t.name.clone())
            .collect()
    }

    /// The `OTHER` payment types (GUID, name): delivery apps.
    pub fn other_payment_types(&self) -> Vec<(String, String)> {
        self.app
            .data
            .lock()
            .unwrap()
            .catalog
            .other_payment_types
            .clone()
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
