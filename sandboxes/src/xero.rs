//! Xero sandbox: OAuth 2.0 token endpoint, connections, Accounts,
//! Organisation (with its lock dates), TrackingCategories,
//! BankTransactions and ManualJournals (create, update, read) with
//! `Idempotency-Key` replay and per-item validation errors, and the books'
//! own per-day, per-account totals ([`XeroSandbox::account_totals`], by
//! tracking option [`XeroSandbox::account_totals_by_tracking`]).
//!
//! Follows providers.md §4:
//! - `POST /connect/token` (§4.4), form-encoded, client authentication by
//!   HTTP Basic or `client_id`/`client_secret` fields; access tokens last
//!   30 minutes; every refresh returns a new refresh token and spends the old
//!   one (reuse → 400 `{"error":"invalid_grant"}`; Xero's documented 30-minute
//!   grace for a lost response is [`XeroConfig::refresh_reuse_grace`], off by
//!   default).
//! - `GET /connections` (§4.4) as in `connections_response.json`.
//! - Base `/api.xro/2.0` (§4.2), header `xero-tenant-id` required:
//!   `GET /Accounts` (`accounts_response.json`, in the usual
//!   `{Id,Status,ProviderName,DateTimeUTC,...}` envelope); `GET /BankTransactions`
//!   (`page`, 100 per page; `If-Modified-Since`); `GET /BankTransactions/{id}`;
//!   `PUT /BankTransactions` creates, `POST /BankTransactions` updates (with
//!   `BankTransactionID`) or creates.
//! - ManualJournals (xero_accounting.yaml `createManualJournals`,
//!   `updateOrCreateManualJournals`, `getManualJournals`, `getManualJournal`):
//!   `PUT /ManualJournals` only creates (an element carrying a
//!   `ManualJournalID` is refused: "ManualJournal {id} already exists. PUT
//!   only creates manual journals; use POST to update one."), `POST` updates
//!   the journal named by `ManualJournalID` (fields left out keep their saved
//!   values) or creates; `GET /ManualJournals` (`where`, `page`,
//!   `If-Modified-Since`) and `GET /ManualJournals/{id}`. Same envelope,
//!   `summarizeErrors`, `Idempotency-Key`, limits and faults as
//!   BankTransactions. Rules: `Narration` required; at least two
//!   `JournalLines`, each with `LineAmount` (debit +, credit −, two places)
//!   and `AccountID` or `AccountCode` of an ACTIVE, non-BANK account ("You
//!   can't post a manual journal to a bank account", help.xero.com); the
//!   lines sum to zero ("The total debits (100.00) must equal total credits
//!   (-10.00)", the spec's published example); `LineAmountTypes` NoTax
//!   (default, as the spec's examples answer), Exclusive or Inclusive;
//!   `Status` DRAFT (default) or POSTED, and on update DELETED (from DRAFT)
//!   or VOIDED (from POSTED); `TaxType` only `NONE`; `Tracking` as below. The answer is the saved journal (`Date` as
//!   `/Date(ms+0000)/`, `UpdatedDateUTC`, `JournalLines` with `AccountID`,
//!   `TaxAmount` 0, `IsBlank`).
//! - `GET /Organisation` (getOrganisations): one organisation, `Organisations`
//!   in the envelope, with `PeriodLockDate` / `EndOfYearLockDate` "Shown if
//!   set" (absent by default; [`XeroSandbox::set_period_lock_date`],
//!   [`XeroSandbox::set_end_of_year_lock_date`]). A ManualJournal or
//!   BankTransaction dated on or before a lock date (or, updating, one
//!   saved with such a date) gets the validation error "The document date
//!   cannot be before the period lock date, currently set at 02-Jun-2025"
//!   (or "... the end of year lock date, ..."; both when both apply): so a
//!   400 `ValidationException`, or under `summarizeErrors=false` an element
//!   with `StatusAttributeString` ERROR. The wording is Xero's as
//!   integrators quote it (SECONDARY; see `Tenant::lock_errors`).
//! - `GET /TrackingCategories` (`where`, `includeArchived`) and
//!   `GET /TrackingCategories/{TrackingCategoryID}`: seeded with one
//!   category, [`TRACKING_CATEGORY`] "Location", whose options are
//!   [`TRACKING_OPTIONS`]; [`XeroSandbox::add_tracking_option`] and friends
//!   change them. A journal line's (and a bank line item's) `Tracking`
//!   holds at most two entries, each naming an ACTIVE category (`Name` or
//!   `TrackingCategoryID`) once and one of its ACTIVE options (`Option` or
//!   `TrackingOptionID`); the saved line carries `Name`, `Option`,
//!   `TrackingCategoryID`, `TrackingOptionID` (the definition's example).
//! - `summarizeErrors=false` (§4.2): HTTP 200 with every element, each with
//!   `StatusAttributeString` `OK` or `ERROR` and `ValidationErrors`; valid ones
//!   are saved (`bank_transactions_response_summarize_errors_false.json`).
//!   Default (`true`): any invalid element → 400 `ValidationException`
//!   (`validation_exception_400.json`) and nothing is saved.
//! - `Idempotency-Key` (§4.2): at most 128 characters; a repeated key replays
//!   the original answer and saves nothing; counted in `requests_per_key` /
//!   `creates_per_key` keyed `(tenantId, key)`. Replays still use rate budget.
//! - Limits (§4.3) per tenant: 60 per minute, 5,000 per day, 5 concurrent;
//!   10,000 per minute for the app across tenants. Every API response carries
//!   `X-MinLimit-Remaining`, `X-DayLimit-Remaining`, `X-AppMinLimit-Remaining`;
//!   a 429 adds `Retry-After` and `X-Rate-Limit-Problem` (`minute`, `day`).
//! - JSON bodies are read case-insensitively (the published request example
//!   spells `Lineitems`).
//!
//! UNVERIFIED, chosen here: `X-Rate-Limit-Problem: concurrent` and
//! `appminute` for the other two limits; the 401/403/429/5xx bodies (problem
//! JSON `{Title,Status,Detail}`); 403 for a missing or unknown tenant; the
//! replay window (6 minutes, SECONDARY) and 400 for a key reused with a
//! different body (SECONDARY); `PostDataInvalidException` (ErrorNumber 14)
//! for unreadable bodies; the validation messages other than the contact one
//! (which is the published example's), "Account code '…' is not a valid
//! code for this document.", "Account code '…' has been archived or has been
//! deleted. Each line item must reference a valid account." and the
//! ManualJournal balance message; the tracking messages ("The
//! TrackingOption 'x' could not be found in TrackingCategory 'Location'."
//! and the like); lock dates refusing DRAFT journals too, and binding an
//! adviser's connection as well; the organisation's fields other than its
//! lock dates (a US company, as the definition's enumerations allow); tax
//! is taken as sent (`TaxAmount`, default 0), not computed from tax rates;
//! a `where` filter supports only `Field=="value"` joined by `AND`.

use crate::common::data;
use crate::common::gate::{self, Gate, Rules, Shape};
use crate::common::http::{get_ci, header, json, query_get, query_get_ci, query_pairs, str_ci};
use crate::common::limits::{LimitPlan, Refused, WindowStatus};
use crate::common::money::{decimal_json, json_decimal, round_cents};
use crate::common::server::{ConnInfo, ServerHandle, StartError};
use crate::common::time;
use crate::common::tokens::{self, IssuedTokens, TokenError, TokenPolicy, TokenStore};
use crate::common::{Limit, OBSERVE_WINDOW, common_handle};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The tenant header.
pub const TENANT_HEADER: &str = "xero-tenant-id";
/// The idempotency header.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;
/// BankTransactions per page of `GET /BankTransactions`.
pub const PAGE_SIZE: usize = 100;
/// Largest request body: Xero caps a POST at 3.5 MB (§4.2); larger → 413.
pub const MAX_POST_BYTES: usize = 3_500_000;
/// The all-zero id Xero gives unsaved elements.
pub const ZERO_ID: &str = "00000000-0000-0000-0000-000000000000";
/// The user every token acts for; it is connected to every tenant.
const USER: &str = "xero-user";

/// How to build a Xero sandbox.
#[derive(Debug, Clone)]
pub struct XeroConfig {
    /// Seed for ids, tokens and faults.
    pub seed: u64,
    /// Organisations (tenants) connected.
    pub tenants: usize,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// Access-token lifetime (30 minutes).
    pub access_ttl: Duration,
    /// Unused refresh tokens expire after 60 days.
    pub refresh_ttl: Duration,
    /// How long a spent refresh token still works (Xero: 30 minutes; default
    /// none, so reuse is always `invalid_grant`).
    pub refresh_reuse_grace: Duration,
    /// Per-tenant limits, named as `X-Rate-Limit-Problem` names them:
    /// `minute` 60 and `day` 5,000.
    pub limits: Vec<Limit>,
    /// Limits across every tenant: `appminute` 10,000.
    pub app_limits: Vec<Limit>,
    /// Concurrent requests per tenant: 5.
    pub concurrency: Option<u64>,
    /// How long an `Idempotency-Key` answer is replayed (6 minutes,
    /// SECONDARY; `None`: forever).
    pub idempotency_ttl: Option<Duration>,
    /// The organisations' base currency.
    pub currency: String,
    /// Window for `Counters::max_calls_per_window`.
    pub observe_window: Duration,
}

impl Default for XeroConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            tenants: 1,
            client_id: "SANDBOXXEROCLIENTID".into(),
            client_secret: "sandbox-xero-secret".into(),
            access_ttl: Duration::from_secs(30 * 60),
            refresh_ttl: Duration::from_secs(60 * 86_400),
            refresh_reuse_grace: Duration::ZERO,
            limits: vec![
                Limit::sliding("minute", 60, Duration::from_secs(60)),
                Limit::sliding("day", 5_000, Duration::from_secs(86_400)),
            ],
            app_limits: vec![Limit::sliding("appminute", 10_000, Duration::from_secs(60))],
            concurrency: Some(5),
            idempotency_ttl: Some(Duration::from_secs(6 * 60)),
            currency: "USD".into(),
            observe_window: OBSERVE_WINDOW,
        }
    }
}

impl XeroConfig {
    /// Defaults with `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }
}

/// The seeded chart of accounts: (Code, Name, Type, Class). Codes 088, 091,
/// 200 and 400 match the published examples.
///
/// The restaurant roles (books.md, "The day's journal"), one account each:
/// 200 sales (food), 201 beverage sales, 202 service charge income (not
/// gratuity), 203 refunds, 204 discounts and comps, 820 sales tax payable
/// (the existing "Sales Tax"; also where the sandbox books bank-transaction
/// tax), 821 liquor tax payable, 825 tips payable (the existing account; no
/// 822), 823 gratuity payable, 824 gift card liability, 610 card clearing,
/// 611 cash clearing, 612 house account clearing, 613 delivery app clearing,
/// 404 bank (merchant processing) fees. The BANK accounts 088, 090, 091 take
/// no manual journal lines.
pub const ACCOUNTS: &[(&str, &str, &str, &str)] = &[
    ("088", "Business Wells Fargo", "BANK", "ASSET"),
    ("090", "Business Bank Account", "BANK", "ASSET"),
    ("091", "Business Savings Account", "BANK", "ASSET"),
    ("200", "Sales", "REVENUE", "REVENUE"),
    ("201", "Beverage Sales", "REVENUE", "REVENUE"),
    ("202", "Service Charge Income", "REVENUE", "REVENUE"),
    ("203", "Refunds", "REVENUE", "REVENUE"),
    ("204", "Discounts", "REVENUE", "REVENUE"),
    ("260", "Other Revenue", "REVENUE", "REVENUE"),
    ("310", "Cost of Goods Sold", "DIRECTCOSTS", "EXPENSE"),
    ("400", "Advertising", "EXPENSE", "EXPENSE"),
    ("404", "Bank Fees", "EXPENSE", "EXPENSE"),
    ("429", "General Expenses", "EXPENSE", "EXPENSE"),
    ("610", "Card Clearing", "CURRENT", "ASSET"),
    ("611", "Cash Clearing", "CURRENT", "ASSET"),
    ("612", "House Account Clearing", "CURRENT", "ASSET"),
    ("613", "Delivery App Clearing", "CURRENT", "ASSET"),
    ("820", "Sales Tax", "CURRLIAB", "LIABILITY"),
    ("821", "Liquor Tax Payable", "CURRLIAB", "LIABILITY"),
    ("823", "Gratuity Payable", "CURRLIAB", "LIABILITY"),
    ("824", "Gift Card Liability", "CURRLIAB", "LIABILITY"),
    ("825", "Tips Payable", "CURRLIAB", "LIABILITY"),
];

/// The seeded tracking category.
pub const TRACKING_CATEGORY: &str = "Location";

/// The seeded options of [`TRACKING_CATEGORY`]: the restaurants of the
/// seeded group (the same names as the QuickBooks sandbox's departments).
pub const TRACKING_OPTIONS: &[&str] = &["Downtown", "Uptown", "Airport"];

fn new_tracking_category(rng: &mut ChaCha8Rng, name: &str) -> Value {
    json!({"Name": name, "Status": "ACTIVE", "TrackingCategoryID": data::guid(rng), "Options": []})
}

/// The account bank-transaction tax is booked to in
/// [`XeroSandbox::account_totals`].
pub const TAX_ACCOUNT: &str = "820";

const TYPES: &[&str] = &[
    "RECEIVE",
    "SPEND",
    "RECEIVE-OVERPAYMENT",
    "SPEND-OVERPAYMENT",
    "RECEIVE-PREPAYMENT",
    "SPEND-PREPAYMENT",
];

/// The collections written with `PUT` / `POST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collection {
    BankTransactions,
    ManualJournals,
}

impl Collection {
    fn name(self) -> &'static str {
        match self {
            Collection::BankTransactions => "BankTransactions",
            Collection::ManualJournals => "ManualJournals",
        }
    }

    fn id_field(self) -> &'static str {
        match self {
            Collection::BankTransactions => "BankTransactionID",
            Collection::ManualJournals => "ManualJournalID",
        }
    }

    /// The singular, for messages.
    fn singular(self) -> &'static str {
        match self {
            Collection::BankTransactions => "BankTransaction",
            Collection::ManualJournals => "ManualJournal",
        }
    }
}

/// Saved documents of one collection, by id, and their creation order.
#[derive(Debug, Default)]
struct Store {
    items: BTreeMap<String, Value>,
    order: Vec<String>,
}

impl Store {
    fn in_order(&self) -> impl Iterator<Item = &Value> {
        self.order.iter().filter_map(|id| self.items.get(id))
    }
}

#[derive(Debug)]
struct Replay {
    status: StatusCode,
    body: Value,
    request: Value,
    at: Instant,
}

#[derive(Debug)]
struct Tenant {
    id: String,
    name: String,
    connection_id: String,
    connected: Timestamp,
    accounts: Vec<Value>,
    contacts: Vec<Value>,
    transactions: Store,
    journals: Store,
    replays: HashMap<String, Replay>,
    /// `OrganisationID`, `ShortCode`, `CreatedDateUTC` of `GET /Organisation`.
    organisation_id: String,
    short_code: String,
    /// `PeriodLockDate` (absent by default).
    period_lock: Option<Date>,
    /// `EndOfYearLockDate` (absent by default).
    end_of_year_lock: Option<Date>,
    /// TrackingCategories, each with its `Options`, as `GET
    /// /TrackingCategories?includeArchived=true` answers them.
    tracking: Vec<Value>,
}

impl Tenant {
    fn new(rng: &mut ChaCha8Rng, n: usize, currency: &str) -> Self {
        let now = Timestamp::now();
        let accounts = ACCOUNTS
            .iter()
            .map(|(code, name, kind, class)| {
                let mut a = json!({
                    "AccountID": data::guid(rng),
                    "Code": code,
                    "Name": name,
                    "Type": kind,
                    "Status": "ACTIVE",
                    "Class": class,
                    "TaxType": "NONE",
                    "EnablePaymentsToAccount": false,
                    "ShowInExpenseClaims": false,
                    "UpdatedDateUTC": time::xero(now),
                });
                if *kind == "BANK" {
                    a["BankAccountNumber"] = json!(format!("02090876543210{code}"));
                    a["BankAccountType"] = json!("BANK");
                    a["CurrencyCode"] = json!(currency);
                }
                a
            })
            .collect();
        let contacts = ["Sysco", "Walk-in Customers", "Restaurant Depot"]
            .iter()
            .map(|name| json!({"ContactID": data::guid(rng), "Name": name, "ContactStatus": "ACTIVE"}))
            .collect();
        Self {
            id: data::guid(rng),
            name: if n == 0 {
                "Demo Company (US)".into()
            } else {
                format!("Demo Company {}", n + 1)
            },
            connection_id: data::guid(rng),
            connected: now,
            accounts,
            contacts,
            transactions: Store::default(),
            journals: Store::default(),
            replays: HashMap::new(),
            organisation_id: String::new(),
            short_code: String::new(),
            period_lock: None,
            end_of_year_lock: None,
            tracking: Vec::new(),
        }
    }

    /// Seeds the organisation's ids and its tracking: one category,
    /// "Location", with the seeded restaurants ([`TRACKING_OPTIONS`]). From
    /// its own generator (`settings`), so the ids drawn before settings
    /// existed stay what they were for a seed.
    fn seed_settings(&mut self, settings: &mut ChaCha8Rng) {
        self.organisation_id = data::guid(settings);
        self.short_code = format!("!{}", data::base62_id(settings, 5));
        let category = new_tracking_category(settings, TRACKING_CATEGORY);
        self.tracking.push(category);
        for option in TRACKING_OPTIONS {
            let id = data::guid(settings);
            self.tracking[0]["Options"]
                .as_array_mut()
                .expect("a seeded category has Options")
                .push(json!({"TrackingOptionID": id, "Name": option, "Status": "ACTIVE"}));
        }
    }

    /// The lock-date errors of a document dated `date` (Organisation
    /// `PeriodLockDate` / `EndOfYearLockDate`): one for each lock date it
    /// falls on or before. Xero's lock dates stop changes "on and before"
    /// the date; the messages are Xero's as its API answers them, quoted by
    /// integrators (xeroizer issue #92, "The document date cannot be before
    /// the end of year lock date, currently set at 31-Jul-2013"; Emersion's
    /// knowledge base, both messages in one answer; Chargebee, Pleo: the
    /// period one) and by books.md ("The document date cannot be before the
    /// period lock date"): SECONDARY; xero_accounting.yaml has none. Both
    /// dates bind the API: the hub acts as a user, not an adviser exempt
    /// from the period lock (UNVERIFIED for an adviser's connection).
    fn lock_errors(&self, date: Date) -> Vec<String> {
        let mut out = Vec::new();
        for (lock, which) in [
            (self.period_lock, "period lock date"),
            (self.end_of_year_lock, "end of year lock date"),
        ] {
            if let Some(lock) = lock.filter(|l| date <= *l) {
                out.push(format!(
                    "The document date cannot be before the {which}, currently set at {}",
                    lock.strftime("%d-%b-%Y")
                ));
            }
        }
        out
    }

    /// A category by `TrackingCategoryID` or `Name` (any case).
    fn tracking_category(&self, id: Option<&str>, name: Option<&str>) -> Option<&Value> {
        self.tracking.iter().find(|c| match (id, name) {
            (Some(id), _) => {
                str_ci(c, "TrackingCategoryID").is_some_and(|x| x.eq_ignore_ascii_case(id))
            }
            (None, Some(name)) => {
                str_ci(c, "Name").is_some_and(|x| x.eq_ignore_ascii_case(name.trim()))
            }
            (None, None) => false,
        })
    }

    /// Validates a line's `Tracking` (ManualJournal line or BankTransaction
    /// line item): at most two entries, each naming an ACTIVE category (by
    /// `TrackingCategoryID` or `Name`) and one of its ACTIVE options (by
    /// `TrackingOptionID` or `Option`), no category twice. Returns the
    /// tracking as saved (`Name`, `Option`, `TrackingCategoryID`,
    /// `TrackingOptionID`, as the definition's example answers), pushing
    /// the errors (their wording UNVERIFIED).
    fn line_tracking(&self, line: &Value, what: &str, errors: &mut Vec<String>) -> Value {
        let sent = match get_ci(line, "Tracking") {
            None | Some(Value::Null) => return json!([]),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => {
                errors.push("Tracking must be a list of tracking categories.".into());
                return json!([]);
            }
        };
        if sent.len() > 2 {
            errors.push(format!("A {what} can have at most 2 tracking categories."));
        }
        let mut out: Vec<Value> = Vec::new();
        for t in &sent {
            let cat_id = str_ci(t, "TrackingCategoryID").filter(|s| !s.is_empty());
            let cat_name = str_ci(t, "Name").filter(|s| !s.trim().is_empty());
            let Some(category) = self.tracking_category(cat_id, cat_name) else {
                errors.push(match (cat_id, cat_name) {
                    (None, None) => {
                        "Each tracking entry needs a Name or TrackingCategoryID.".into()
                    }
                    _ => format!(
                        "The TrackingCategory '{}' could not be found.",
                        cat_name.or(cat_id).unwrap_or_default()
                    ),
                });
                continue;
            };
            let name = category["Name"].as_str().unwrap_or_default();
            if category["Status"] != "ACTIVE" {
                errors.push(format!("The TrackingCategory '{name}' is archived."));
                continue;
            }
            if out
                .iter()
                .any(|o| o["TrackingCategoryID"] == category["TrackingCategoryID"])
            {
                errors.push(format!(
                    "The TrackingCategory '{name}' can be used once per line."
                ));
                continue;
            }
            let opt_id = str_ci(t, "TrackingOptionID").filter(|s| !s.is_empty());
            let opt_name = str_ci(t, "Option").filter(|s| !s.trim().is_empty());
            let option = category["Options"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|o| match (opt_id, opt_name) {
                    (Some(id), _) => {
                        str_ci(o, "TrackingOptionID").is_some_and(|x| x.eq_ignore_ascii_case(id))
                    }
                    (None, Some(n)) => {
                        str_ci(o, "Name").is_some_and(|x| x.eq_ignore_ascii_case(n.trim()))
                    }
                    (None, None) => false,
                });
            match option {
                None => errors.push(format!(
                    "The TrackingOption '{}' could not be found in TrackingCategory '{name}'.",
                    opt_name.or(opt_id).unwrap_or_default()
                )),
                Some(o) if o["Status"] != "ACTIVE" => errors.push(format!(
                    "The TrackingOption '{}' of TrackingCategory '{name}' is archived.",
                    o["Name"].as_str().unwrap_or_default()
                )),
                Some(o) => out.push(json!({
                    "Name": name,
                    "Option": o["Name"],
                    "TrackingCategoryID": category["TrackingCategoryID"],
                    "TrackingOptionID": o["TrackingOptionID"],
                })),
            }
        }
        Value::Array(out)
    }

    fn store(&self, c: Collection) -> &Store {
        match c {
            Collection::BankTransactions => &self.transactions,
            Collection::ManualJournals => &self.journals,
        }
    }

    fn store_mut(&mut self, c: Collection) -> &mut Store {
        match c {
            Collection::BankTransactions => &mut self.transactions,
            Collection::ManualJournals => &mut self.journals,
        }
    }

    fn account_by(&self, field: &str, value: &str) -> Option<&Value> {
        self.accounts.iter().find(|a| {
            a.get(field)
                .and_then(Value::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case(value))
        })
    }
}

#[derive(Debug)]
struct XeroApp {
    gate: Gate,
    tokens: TokenStore,
    config: XeroConfig,
    tenants: Mutex<BTreeMap<String, Tenant>>,
    rng: Mutex<ChaCha8Rng>,
    /// Ids of organisation settings (tracking categories and options).
    settings_rng: Mutex<ChaCha8Rng>,
}

fn problem(status: StatusCode, detail: &str) -> Response {
    json(
        status,
        &json!({
            "Type": null,
            "Title": status.canonical_reason().unwrap_or_default(),
            "Status": status.as_u16(),
            "Detail": detail,
            "Instance": uuid::Uuid::new_v4().to_string(),
            "Extensions": {},
        }),
    )
}

/// A 400 in the definition's `Error` shape (`ErrorNumber`, `Type`,
/// `Message`), as Xero answers a request it refuses; the problem shape
/// above is for authentication and missing resources.
fn bad_request(message: &str) -> Response {
    json(
        StatusCode::BAD_REQUEST,
        &json!({"ErrorNumber": 10, "Type": "ValidationException", "Message": message}),
    )
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    json(status, &json!({"error": error}))
}

fn envelope(key: &str, items: Vec<Value>) -> Value {
    let mut m = Map::new();
    m.insert("Id".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("Status".into(), json!("OK"));
    m.insert("ProviderName".into(), json!("Integration Hub Sandbox"));
    m.insert(
        "DateTimeUTC".into(),
        json!(format!("/Date({})/", Timestamp::now().as_millisecond())),
    );
    m.insert(key.into(), Value::Array(items));
    Value::Object(m)
}

fn rate_headers(response: &mut Response, windows: &[WindowStatus]) {
    for (name, header) in [
        ("minute", "X-MinLimit-Remaining"),
        ("day", "X-DayLimit-Remaining"),
        ("appminute", "X-AppMinLimit-Remaining"),
    ] {
        if let Some(w) = windows.iter().find(|w| w.name == name) {
            response
                .headers_mut()
                .insert(header, HeaderValue::from(w.remaining));
        }
    }
}

impl Shape for XeroApp {
    fn rate_limited(&self, refused: &Refused) -> Response {
        let mut response = problem(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Rate limit exceeded: {}", refused.name),
        );
        if let Ok(v) = HeaderValue::from_str(&refused.name) {
            response.headers_mut().insert("X-Rate-Limit-Problem", v);
        }
        rate_headers(&mut response, &refused.windows);
        response
    }

    fn server_error(&self, status: StatusCode) -> Response {
        problem(status, "Injected by the sandbox")
    }

    fn decorate(&self, response: &mut Response, windows: &[WindowStatus]) {
        rate_headers(response, windows);
    }
}

impl Rules for XeroApp {
    fn gate(&self) -> &Gate {
        &self.gate
    }

    fn plan(&self, request: &Request, _conn: &ConnInfo) -> (Option<String>, LimitPlan) {
        if !request.uri().path().starts_with("/api.xro/") {
            return (None, LimitPlan::default());
        }
        let tenant = header(request.headers(), TENANT_HEADER)
            .unwrap_or("no-tenant")
            .to_lowercase();
        (
            Some(tenant),
            LimitPlan {
                scopes: vec![("tenant".into(), self.config.limits.clone())],
                shared: vec![("app".into(), self.config.app_limits.clone())],
                concurrency: self.config.concurrency,
            },
        )
    }

    fn authenticate(&self, request: &mut Request) -> Result<(), Response> {
        let path = request.uri().path().to_string();
        if path == "/connect/token" {
            return Ok(());
        }
        let expired = self.gate.faults().expire_tokens;
        if let Err(e) = self.tokens.check(request.headers(), expired) {
            let detail = match e {
                TokenError::Expired => "TokenExpired: token expired",
                TokenError::Missing => "AuthenticationUnsuccessful: no bearer token",
                TokenError::Unknown => "AuthenticationUnsuccessful: token invalid",
            };
            let mut r = problem(StatusCode::UNAUTHORIZED, detail);
            r.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            return Err(r);
        }
        if path.starts_with("/api.xro/") {
            let known = header(request.headers(), TENANT_HEADER)
                .is_some_and(|t| self.tenants.lock().unwrap().contains_key(&t.to_lowercase()));
            if !known {
                return Err(problem(
                    StatusCode::FORBIDDEN,
                    "AuthenticationUnsuccessful: missing or unknown xero-tenant-id",
                ));
            }
        }
        Ok(())
    }
}

async fn token(State(app): State<Arc<XeroApp>>, headers: HeaderMap, body: Bytes) -> Response {
    app.gate.stats().update(|c| c.token_requests += 1);
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let client = tokens::basic(&headers).or_else(|| {
        Some((
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        ))
    });
    if client
        != Some((
            app.config.client_id.clone(),
            app.config.client_secret.clone(),
        ))
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client");
    }
    let issued = match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            app.gate.stats().update(|c| c.refreshes += 1);
            match form.get("refresh_token") {
                Some(rt) => app.tokens.refresh(rt),
                None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
            }
        }
        Some("authorization_code") => match form.get("code") {
            Some(code) => app.tokens.redeem_code(code),
            None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
        },
        Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request"),
    };
    let Some(issued) = issued else {
        app.gate.stats().update(|c| c.invalid_grants += 1);
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    json(
        StatusCode::OK,
        &json!({
            "access_token": issued.access_token,
            "expires_in": issued.expires_in.as_secs(),
            "token_type": "Bearer",
            "refresh_token": issued.refresh_token,
            "scope": "offline_access accounting.transactions accounting.settings",
        }),
    )
}

async fn connections(State(app): State<Arc<XeroApp>>) -> Response {
    let tenants = app.tenants.lock().unwrap();
    let list: Vec<Value> = tenants
        .values()
        .map(|t| {
            let when = t
                .connected
                .to_zoned_datetime(TimeZone::UTC)
                .strftime("%Y-%m-%dT%H:%M:%S%.7f")
                .to_string();
            json!({
                "id": t.connection_id,
                "tenantId": t.id,
                "tenantName": t.name,
                "tenantType": "ORGANISATION",
                "createdDateUtc": when,
                "updatedDateUtc": when,
            })
        })
        .collect();
    json(StatusCode::OK, &Value::Array(list))
}

/// `Field=="value" AND ...` → the (field, value) pairs, or `None` if the
/// filter uses anything else.
fn parse_where(filter: &str) -> Option<Vec<(String, String)>> {
    filter
        .split(" AND ")
        .map(|clause| {
            let (field, value) = clause.split_once("==").or_else(|| clause.split_once('='))?;
            let value = value.trim().strip_prefix('"')?.strip_suffix('"')?;
            Some((field.trim().to_string(), value.to_string()))
        })
        .collect()
}

fn matches(item: &Value, filter: &[(String, String)]) -> bool {
    filter
        .iter()
        .all(|(field, value)| str_ci(item, field).is_some_and(|v| v.eq_ignore_ascii_case(value)))
}

fn tenant_id(headers: &HeaderMap) -> String {
    header(headers, TENANT_HEADER)
        .unwrap_or_default()
        .to_lowercase()
}

fn where_filter(pairs: &[(String, String)]) -> Result<Vec<(String, String)>, Response> {
    match query_get_ci(pairs, "where") {
        None => Ok(Vec::new()),
        Some(w) => parse_where(w).ok_or_else(|| {
            bad_request(
                "The sandbox supports only where filters of the form Field==\"value\" AND ...",
            )
        }),
    }
}

async fn accounts(
    State(app): State<Arc<XeroApp>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let pairs = query_pairs(raw.as_deref());
    let filter = match where_filter(&pairs) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let tenants = app.tenants.lock().unwrap();
    let Some(t) = tenants.get(&tenant_id(&headers)) else {
        return problem(StatusCode::FORBIDDEN, "AuthenticationUnsuccessful");
    };
    let list = t
        .accounts
        .iter()
        .filter(|a| matches(a, &filter))
        .cloned()
        .collect();
    json(StatusCode::OK, &envelope("Accounts", list))
}

/// A date as Xero writes a date-only field: `/Date(<midnight UTC ms>+0000)/`.
fn xero_day(d: Date) -> String {
    let midnight = d
        .to_zoned_datetime(TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::UNIX_EPOCH);
    time::xero(midnight)
}

impl Tenant {
    /// The organisation as `GET /Organisation` answers it (fields of the
    /// definition's `Organisation`, values as its example shows them for a
    /// US company); `PeriodLockDate` and `EndOfYearLockDate` only when set
    /// ("Shown if set").
    fn organisation(&self, currency: &str) -> Value {
        let mut o = json!({
            "OrganisationID": self.organisation_id,
            "Name": self.name,
            "LegalName": self.name,
            "PaysTax": true,
            "Version": "US",
            "OrganisationType": "COMPANY",
            "BaseCurrency": currency,
            "CountryCode": "US",
            "IsDemoCompany": false,
            "OrganisationStatus": "ACTIVE",
            "FinancialYearEndDay": 31,
            "FinancialYearEndMonth": 12,
            "SalesTaxBasis": "ACCRUALS",
            "SalesTaxPeriod": "MONTHLY",
            "DefaultSalesTax": "Tax Exclusive",
            "DefaultPurchasesTax": "Tax Exclusive",
            "CreatedDateUTC": format!("/Date({})/", self.connected.as_millisecond()),
            "OrganisationEntityType": "COMPANY",
            "Timezone": "PACIFICSTANDARDTIME",
            "ShortCode": self.short_code,
            "Edition": "BUSINESS",
            "Class": "STANDARD",
            "Addresses": [],
            "Phones": [],
            "ExternalLinks": [],
            "PaymentTerms": {},
        });
        if let Some(d) = self.period_lock {
            o["PeriodLockDate"] = json!(xero_day(d));
        }
        if let Some(d) = self.end_of_year_lock {
            o["EndOfYearLockDate"] = json!(xero_day(d));
        }
        o
    }

    /// The tracking categories a read shows: DELETED ones never; ARCHIVED
    /// categories and options only with `include_archived`.
    fn visible_tracking(&self, include_archived: bool) -> Vec<Value> {
        let shown = |v: &Value| match v["Status"].as_str() {
            Some("ACTIVE") => true,
            Some("ARCHIVED") => include_archived,
            _ => false,
        };
        self.tracking
            .iter()
            .filter(|c| shown(c))
            .map(|c| {
                let mut c = c.clone();
                let options: Vec<Value> = c["Options"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|o| shown(o))
                    .cloned()
                    .collect();
                c["Options"] = Value::Array(options);
                c
            })
            .collect()
    }
}

/// `GET /Organisation` (getOrganisations).
async fn organisation(State(app): State<Arc<XeroApp>>, headers: HeaderMap) -> Response {
    let tenants = app.tenants.lock().unwrap();
    let Some(t) = tenants.get(&tenant_id(&headers)) else {
        return problem(StatusCode::FORBIDDEN, "AuthenticationUnsuccessful");
    };
    json(
        StatusCode::OK,
        &envelope("Organisations", vec![t.organisation(&app.config.currency)]),
    )
}

/// `GET /TrackingCategories` (getTrackingCategories): `where`,
/// `includeArchived`.
async fn tracking_categories(
    State(app): State<Arc<XeroApp>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let pairs = query_pairs(raw.as_deref());
    let filter = match where_filter(&pairs) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let include_archived =
        query_get_ci(&pairs, "includeArchived").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let tenants = app.tenants.lock().unwrap();
    let Some(t) = tenants.get(&tenant_id(&headers)) else {
        return problem(StatusCode::FORBIDDEN, "AuthenticationUnsuccessful");
    };
    let list = t
        .visible_tracking(include_archived)
        .into_iter()
        .filter(|c| matches(c, &filter))
        .collect();
    json(StatusCode::OK, &envelope("TrackingCategories", list))
}

/// `GET /TrackingCategories/{TrackingCategoryID}` (getTrackingCategory).
async fn tracking_category(
    State(app): State<Arc<XeroApp>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let tenants = app.tenants.lock().unwrap();
    let Some(t) = tenants.get(&tenant_id(&headers)) else {
        return problem(StatusCode::FORBIDDEN, "AuthenticationUnsuccessful");
    };
    match t
        .visible_tracking(true)
        .into_iter()
        .find(|c| str_ci(c, "TrackingCategoryID").is_some_and(|x| x.eq_ignore_ascii_case(&id)))
    {
        Some(c) => json(StatusCode::OK, &envelope("TrackingCategories", vec![c])),
        None => problem(
            StatusCode::NOT_FOUND,
            &format!("TrackingCategory {id} not found"),
        ),
    }
}

async fn list_bank_transactions(
    State(app): State<Arc<XeroApp>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    list(&app, Collection::BankTransactions, &headers, raw.as_deref())
}

async fn list_manual_journals(
    State(app): State<Arc<XeroApp>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    list(&app, Collection::ManualJournals, &headers, raw.as_deref())
}

/// `GET /<Collection>`: creation order, `where`, `page` (100 per page) and
/// `If-Modified-Since`.
fn list(app: &XeroApp, c: Collection, headers: &HeaderMap, raw: Option<&str>) -> Response {
    let pairs = query_pairs(raw);
    let filter = match where_filter(&pairs) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let page = match query_get_ci(&pairs, "page").map(str::parse::<usize>) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => return bad_request("page must be a positive integer"),
    };
    let since = match header(headers, "If-Modified-Since") {
        None => None,
        Some(s) => match time::parse_rfc3339(s).or_else(|| time::parse_rfc3339(&format!("{s}Z"))) {
            Some(t) => Some(t.as_millisecond()),
            None => {
                return bad_request("If-Modified-Since must be an ISO-8601 date-time");
            }
        },
    };
    let tenants = app.tenants.lock().unwrap();
    let Some(t) = tenants.get(&tenant_id(headers)) else {
        return problem(StatusCode::FORBIDDEN, "AuthenticationUnsuccessful");
    };
    let list: Vec<Value> = t
        .store(c)
        .in_order()
        .filter(|b| matches(b, &filter))
        .filter(|b| {
            since.is_none_or(|s| {
                b.get("UpdatedDateUTC")
                    .and_then(Value::as_str)
                    .and_then(xero_ms)
                    .is_some_and(|u| u > s)
            })
        })
        .skip((page - 1).saturating_mul(PAGE_SIZE))
        .take(PAGE_SIZE)
        .cloned()
        .collect();
    json(StatusCode::OK, &envelope(c.name(), list))
}

fn xero_ms(s: &str) -> Option<i64> {
    let inner = s.strip_prefix("/Date(")?;
    let digits: String = inner.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

async fn get_bank_transaction(
    State(app): State<Arc<XeroApp>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    get_one(&app, Collection::BankTransactions, &headers, &id)
}

async fn get_manual_journal(
    State(app): State<Arc<XeroApp>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    get_one(&app, Collection::ManualJournals, &headers, &id)
}

fn get_one(app: &XeroApp, c: Collection, headers: &HeaderMap, id: &str) -> Response {
    let tenants = app.tenants.lock().unwrap();
    let Some(t) = tenants.get(&tenant_id(headers)) else {
        return problem(StatusCode::FORBIDDEN, "AuthenticationUnsuccessful");
    };
    match t.store(c).items.get(&id.to_lowercase()) {
        Some(b) => json(StatusCode::OK, &envelope(c.name(), vec![b.clone()])),
        None => problem(
            StatusCode::NOT_FOUND,
            &format!("{} {id} not found", c.singular()),
        ),
    }
}

/// Adds the lock-date errors of each date (the document's new date and,
/// updating, its saved one), each message once.
fn push_lock_errors(t: &Tenant, dates: [Option<Date>; 2], errors: &mut Vec<String>) {
    for date in dates.into_iter().flatten() {
        for e in t.lock_errors(date) {
            if !errors.contains(&e) {
                errors.push(e);
            }
        }
    }
}

/// Money with at most `places` decimal places.
fn amount(v: &Value, field: &str, places: u32, errors: &mut Vec<String>) -> Option<Decimal> {
    match json_decimal(v) {
        None => {
            errors.push(format!("{field} must be a number."));
            None
        }
        Some(d) if d.normalize().scale() > places => {
            errors.push(format!(
                "{field} {d} has more than {places} decimal places."
            ));
            None
        }
        Some(d) => Some(d),
    }
}

impl XeroApp {
    /// Validates one element and builds the saved BankTransaction, or lists
    /// its validation errors.
    /// `create_only` is `PUT` (createBankTransactions): an element naming
    /// a saved `BankTransactionID` is refused, since PUT never updates.
    fn build(
        &self,
        t: &mut Tenant,
        input: &Value,
        unit_places: u32,
        create_only: bool,
    ) -> Result<(Value, bool), Vec<String>> {
        let mut errors = Vec::new();
        let mut rng = self.rng.lock().unwrap();
        let now = Timestamp::now();
        let existing = str_ci(input, "BankTransactionID")
            .filter(|id| *id != ZERO_ID)
            .map(str::to_lowercase);
        match &existing {
            Some(id) if !t.transactions.items.contains_key(id) => {
                errors.push(format!("BankTransaction {id} could not be found."));
            }
            Some(id) if create_only => errors.push(format!(
                "BankTransaction {id} already exists. PUT only creates bank transactions; use POST to update one."
            )),
            _ => {}
        }
        let kind = str_ci(input, "Type").map(str::to_uppercase);
        if !kind.as_deref().is_some_and(|k| TYPES.contains(&k)) {
            errors.push("Type must be one of RECEIVE, SPEND, RECEIVE-OVERPAYMENT, SPEND-OVERPAYMENT, RECEIVE-PREPAYMENT, SPEND-PREPAYMENT.".into());
        }
        // Contact: ContactID (existing) or Name (matched or created).
        let contact = get_ci(input, "Contact").cloned().unwrap_or(Value::Null);
        let contact_id = str_ci(&contact, "ContactID").filter(|s| !s.is_empty());
        let contact_name = str_ci(&contact, "Name").filter(|s| !s.is_empty());
        let contact_number = str_ci(&contact, "ContactNumber").filter(|s| !s.is_empty());
        let contact = match (contact_id, contact_name, contact_number) {
            (Some(id), _, _) => match t
                .contacts
                .iter()
                .find(|c| str_ci(c, "ContactID").is_some_and(|x| x.eq_ignore_ascii_case(id)))
            {
                Some(c) => Some(c.clone()),
                None => {
                    errors.push(format!(
                        "The contact with ContactID {id} could not be found."
                    ));
                    None
                }
            },
            (None, Some(name), _) => Some(
                match t
                    .contacts
                    .iter()
                    .find(|c| str_ci(c, "Name").is_some_and(|x| x.eq_ignore_ascii_case(name)))
                {
                    Some(c) => c.clone(),
                    None => {
                        json!({"ContactID": data::guid(&mut rng), "Name": name, "ContactStatus": "ACTIVE"})
                    }
                },
            ),
            (None, None, Some(_)) => Some(contact.clone()),
            (None, None, None) => {
                errors.push("The Contact must contain at least 1 of the following elements to identify the contact: Name, ContactID, ContactNumber".into());
                None
            }
        };
        // Bank account: Code or AccountID of a BANK account.
        let bank = get_ci(input, "BankAccount").cloned().unwrap_or(Value::Null);
        let bank = match (str_ci(&bank, "AccountID"), str_ci(&bank, "Code")) {
            (Some(id), _) => t.account_by("AccountID", id),
            (None, Some(code)) => t.account_by("Code", code),
            (None, None) => None,
        }
        .filter(|a| a["Type"] == "BANK")
        .cloned();
        if bank.is_none() {
            errors.push(
                "A valid BankAccount (Code or AccountID of a BANK account) is required.".into(),
            );
        }
        let line_types = str_ci(input, "LineAmountTypes")
            .unwrap_or("Exclusive")
            .to_string();
        if !["Exclusive", "Inclusive", "NoTax"]
            .iter()
            .any(|l| l.eq_ignore_ascii_case(&line_types))
        {
            errors.push("LineAmountTypes must be Exclusive, Inclusive or NoTax.".into());
        }
        let no_tax = line_types.eq_ignore_ascii_case("NoTax");
        let lines = get_ci(input, "LineItems")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if lines.is_empty() {
            errors.push("At least one line item is required.".into());
        }
        let mut out_lines = Vec::new();
        let (mut line_sum, mut tax_sum) = (Decimal::ZERO, Decimal::ZERO);
        for line in &lines {
            let code = str_ci(line, "AccountCode").unwrap_or_default();
            let account = t
                .account_by("Code", code)
                .filter(|a| a["Type"] != "BANK" && a["Status"] == "ACTIVE");
            if account.is_none() {
                errors.push(format!(
                    "Account code '{code}' is not a valid code for this document."
                ));
            }
            let quantity = match get_ci(line, "Quantity") {
                None | Some(Value::Null) => Some(Decimal::ONE),
                Some(v) => amount(v, "Quantity", 4, &mut errors),
            };
            let unit = get_ci(line, "UnitAmount").filter(|v| !v.is_null());
            let given_line = get_ci(line, "LineAmount").filter(|v| !v.is_null());
            let unit = match (unit, given_line) {
                (Some(u), _) => amount(u, "UnitAmount", unit_places, &mut errors),
                (None, Some(l)) => amount(l, "LineAmount", 2, &mut errors),
                (None, None) => {
                    errors
                        .push("Either UnitAmount or LineAmount is required on a line item.".into());
                    None
                }
            };
            let (Some(q), Some(u)) = (quantity, unit) else {
                continue;
            };
            let computed = round_cents(q * u);
            let line_amount = match given_line.map(|l| amount(l, "LineAmount", 2, &mut errors)) {
                Some(Some(l)) if l != computed => {
                    errors.push(format!(
                        "The line total {l} does not match the expected line total {computed}"
                    ));
                    l
                }
                Some(Some(l)) => l,
                _ => computed,
            };
            let tax = if no_tax {
                Decimal::ZERO
            } else {
                match get_ci(line, "TaxAmount").filter(|v| !v.is_null()) {
                    Some(v) => amount(v, "TaxAmount", 2, &mut errors).unwrap_or_default(),
                    None => Decimal::ZERO,
                }
            };
            line_sum += line_amount;
            tax_sum += tax;
            out_lines.push(json!({
                "Description": str_ci(line, "Description").unwrap_or_default(),
                "UnitAmount": decimal_json(u),
                "TaxType": str_ci(line, "TaxType").unwrap_or("NONE"),
                "TaxAmount": decimal_json(tax),
                "LineAmount": decimal_json(line_amount),
                "AccountCode": code,
                "AccountID": account.and_then(|a| a.get("AccountID")).cloned().unwrap_or(Value::Null),
                "Tracking": t.line_tracking(line, "line item", &mut errors),
                "Quantity": decimal_json(q),
                "LineItemID": data::guid(&mut rng),
                "ValidationErrors": [],
            }));
        }
        let date = match str_ci(input, "Date") {
            None => Some(TimeZone::UTC.to_datetime(now).date()),
            Some(d) => {
                let parsed = time::parse_xero_date(d);
                if parsed.is_none() {
                    errors.push(format!("Date {d} is not a valid date."));
                }
                parsed
            }
        };
        // Neither a document in a locked period may change, nor may one be
        // dated into it.
        let saved_date = existing
            .as_ref()
            .and_then(|id| t.transactions.items.get(id))
            .and_then(|b| b["Date"].as_str())
            .and_then(time::parse_xero_date);
        push_lock_errors(t, [date, saved_date], &mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        let (Some(contact), Some(bank), Some(date), Some(kind)) = (contact, bank, date, kind)
        else {
            return Err(vec!["The element could not be read.".into()]);
        };
        if !t
            .contacts
            .iter()
            .any(|c| c["ContactID"] == contact["ContactID"])
        {
            t.contacts.push(contact.clone());
        }
        let (sub_total, total) = if line_types.eq_ignore_ascii_case("Inclusive") {
            (line_sum - tax_sum, line_sum)
        } else {
            (line_sum, line_sum + tax_sum)
        };
        let created = existing.is_none();
        let id = existing.unwrap_or_else(|| data::guid(&mut rng));
        let midnight = date
            .to_zoned_datetime(TimeZone::UTC)
            .map(|z| z.timestamp())
            .unwrap_or(now);
        Ok((
            json!({
                "BankTransactionID": id,
                "BankAccount": {"AccountID": bank["AccountID"], "Code": bank["Code"], "Name": bank["Name"]},
                "Type": kind,
                "Reference": str_ci(input, "Reference").unwrap_or_default(),
                "IsReconciled": get_ci(input, "IsReconciled").and_then(Value::as_bool).unwrap_or(false),
                "CurrencyRate": 1.0,
                "Contact": contact,
                "DateString": time::xero_date_string(date),
                "Date": time::xero(midnight),
                "Status": str_ci(input, "Status").unwrap_or("AUTHORISED"),
                "LineAmountTypes": line_types,
                "LineItems": out_lines,
                "SubTotal": decimal_json(sub_total),
                "TotalTax": decimal_json(tax_sum),
                "Total": decimal_json(total),
                "UpdatedDateUTC": time::xero(now),
                "CurrencyCode": str_ci(input, "CurrencyCode").unwrap_or(&self.config.currency),
            }),
            created,
        ))
    }
}

impl XeroApp {
    /// Validates one ManualJournal element and builds the saved journal, or
    /// lists its validation errors. `create_only` is `PUT`: an element naming
    /// a `ManualJournalID` is refused. On a `POST` update, fields left out
    /// keep their saved values.
    fn build_journal(
        &self,
        t: &Tenant,
        input: &Value,
        create_only: bool,
    ) -> Result<(Value, bool), Vec<String>> {
        let mut errors = Vec::new();
        let now = Timestamp::now();
        let sent_id = str_ci(input, "ManualJournalID")
            .map(str::trim)
            .filter(|id| !id.is_empty() && *id != ZERO_ID)
            .map(str::to_lowercase);
        let current = sent_id.as_ref().and_then(|id| t.journals.items.get(id));
        match (&sent_id, current) {
            (Some(id), Some(_)) if create_only => errors.push(format!(
                "ManualJournal {id} already exists. PUT only creates manual journals; use POST to update one."
            )),
            (Some(id), None) => errors.push(format!("ManualJournal {id} could not be found.")),
            _ => {}
        }
        let current = current.filter(|_| !create_only);
        let current_status = current.and_then(|c| c["Status"].as_str());
        if let Some(s @ ("DELETED" | "VOIDED")) = current_status {
            errors.push(format!("A {s} manual journal cannot be modified."));
        }
        // A field as sent, else (updating) as saved.
        let field = |name: &str| {
            get_ci(input, name)
                .filter(|v| !v.is_null())
                .or_else(|| current.and_then(|c| c.get(name)))
        };
        let narration = field("Narration")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|n| !n.is_empty());
        if narration.is_none() {
            errors.push("Narration is required.".into());
        }
        let status = field("Status")
            .and_then(Value::as_str)
            .unwrap_or("DRAFT")
            .to_uppercase();
        match (status.as_str(), current_status) {
            ("DRAFT" | "POSTED", _) | ("DELETED", Some("DRAFT")) | ("VOIDED", Some("POSTED")) => {}
            ("DELETED" | "VOIDED", _) => errors.push(
                "Only a saved DRAFT manual journal can be DELETED and only a saved POSTED one VOIDED."
                    .into(),
            ),
            (other, _) => errors.push(format!(
                "Status {other} is not valid for a manual journal; use DRAFT or POSTED."
            )),
        }
        let line_types = field("LineAmountTypes")
            .and_then(Value::as_str)
            .unwrap_or("NoTax");
        let line_types = match ["Exclusive", "Inclusive", "NoTax"]
            .into_iter()
            .find(|l| l.eq_ignore_ascii_case(line_types))
        {
            Some(l) => l,
            None => {
                errors.push("LineAmountTypes must be Exclusive, Inclusive or NoTax.".into());
                "NoTax"
            }
        };
        let date = match field("Date") {
            None => Some(TimeZone::UTC.to_datetime(now).date()),
            Some(d) => {
                let parsed = d.as_str().and_then(time::parse_xero_date);
                if parsed.is_none() {
                    errors.push(format!(
                        "Date {} is not a valid date.",
                        d.as_str().map_or_else(|| d.to_string(), str::to_string)
                    ));
                }
                parsed
            }
        };
        let lines = field("JournalLines")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if lines.len() < 2 {
            errors.push("A manual journal must have at least two journal lines.".into());
        }
        let mut out_lines = Vec::new();
        let (mut debits, mut credits, mut all_read) = (Decimal::ZERO, Decimal::ZERO, true);
        for line in &lines {
            let line_amount = match get_ci(line, "LineAmount").filter(|v| !v.is_null()) {
                Some(v) => amount(v, "LineAmount", 2, &mut errors),
                None => {
                    errors.push("LineAmount is required on every journal line.".into());
                    None
                }
            };
            let by_id = str_ci(line, "AccountID").filter(|s| !s.is_empty());
            let by_code = str_ci(line, "AccountCode").filter(|s| !s.is_empty());
            let account = match (by_id, by_code) {
                (Some(id), _) => {
                    let a = t.account_by("AccountID", id);
                    if a.is_none() {
                        errors.push(format!("AccountID {id} does not match an account."));
                    }
                    a
                }
                (None, Some(code)) => {
                    let a = t.account_by("Code", code);
                    if a.is_none() {
                        errors.push(format!(
                            "Account code '{code}' is not a valid code for this document."
                        ));
                    }
                    a
                }
                (None, None) => {
                    errors.push("Each journal line needs an AccountCode or AccountID.".into());
                    None
                }
            };
            let code = account.and_then(|a| a["Code"].as_str()).unwrap_or_default();
            let account = account.filter(|a| {
                if a["Status"] != "ACTIVE" {
                    errors.push(format!(
                        "Account code '{code}' has been archived or has been deleted. Each line item must reference a valid account."
                    ));
                    false
                } else if a["Type"] == "BANK" {
                    errors.push(format!(
                        "You can't post a manual journal to a bank account (account code '{code}')."
                    ));
                    false
                } else {
                    true
                }
            });
            let tax_type = str_ci(line, "TaxType").unwrap_or("NONE");
            if !tax_type.eq_ignore_ascii_case("NONE") {
                errors.push(format!(
                    "The TaxType code '{tax_type}' is not a valid tax type; the sandbox has only NONE."
                ));
            }
            let tracking = t.line_tracking(line, "journal line", &mut errors);
            let Some(l) = line_amount else {
                all_read = false;
                continue;
            };
            if l > Decimal::ZERO {
                debits += l;
            } else {
                credits += l;
            }
            let Some(account) = account else {
                continue;
            };
            out_lines.push(json!({
                "Description": str_ci(line, "Description").unwrap_or_default(),
                "TaxType": "NONE",
                "TaxAmount": 0.0,
                "LineAmount": decimal_json(l),
                "AccountCode": account["Code"],
                "AccountID": account["AccountID"],
                "Tracking": tracking,
                "IsBlank": false,
            }));
        }
        let saved_date = current
            .and_then(|c| c["Date"].as_str())
            .and_then(time::parse_xero_date);
        push_lock_errors(t, [date, saved_date], &mut errors);
        if all_read && debits + credits != Decimal::ZERO {
            errors.push(format!(
                "The total debits ({debits:.2}) must equal total credits ({credits:.2})"
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let (Some(narration), Some(date)) = (narration, date) else {
            return Err(vec!["The element could not be read.".into()]);
        };
        let created = current.is_none();
        let id = sent_id.unwrap_or_else(|| data::guid(&mut self.rng.lock().unwrap()));
        let midnight = date
            .to_zoned_datetime(TimeZone::UTC)
            .map(|z| z.timestamp())
            .unwrap_or(now);
        let mut journal = json!({
            "Date": time::xero(midnight),
            "Status": status,
            "LineAmountTypes": line_types,
            "UpdatedDateUTC": time::xero(now),
            "ManualJournalID": id,
            "Narration": narration,
            "JournalLines": out_lines,
            "ShowOnCashBasisReports": field("ShowOnCashBasisReports").and_then(Value::as_bool).unwrap_or(true),
            "HasAttachments": false,
        });
        if let Some(url) = field("Url").and_then(Value::as_str) {
            journal["Url"] = json!(url);
        }
        Ok((journal, created))
    }
}

/// The elements of a `<Collection>` body (a list, or one object).
fn elements(body: &Value, c: Collection) -> Option<Vec<Value>> {
    match get_ci(body, c.name()) {
        Some(Value::Array(a)) => Some(a.clone()),
        Some(_) => None,
        None if body.is_object() => Some(vec![body.clone()]),
        None => None,
    }
}

/// `PUT /BankTransactions` (createBankTransactions): creates only.
async fn put_bank_transactions(
    State(app): State<Arc<XeroApp>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    write(
        &app,
        Collection::BankTransactions,
        true,
        &headers,
        raw.as_deref(),
        &body,
    )
}

/// The body of a `POST /<Collection>/{id}` (updateBankTransaction,
/// updateManualJournal) with the path's id on its element, then handled as
/// the collection's `POST`.
fn with_path_id(c: Collection, id: &str, body: &Bytes) -> Bytes {
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        return body.clone();
    };
    if let Some(first) = v
        .get_mut(c.name())
        .and_then(Value::as_array_mut)
        .and_then(|a| a.first_mut())
        .and_then(Value::as_object_mut)
    {
        first.insert(c.id_field().to_string(), Value::String(id.to_string()));
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// `POST /BankTransactions/{BankTransactionID}` (updateBankTransaction).
async fn post_bank_transaction(
    State(app): State<Arc<XeroApp>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let body = with_path_id(Collection::BankTransactions, &id, &body);
    write(
        &app,
        Collection::BankTransactions,
        false,
        &headers,
        raw.as_deref(),
        &body,
    )
}

/// `POST /ManualJournals/{ManualJournalID}` (updateManualJournal).
async fn post_manual_journal(
    State(app): State<Arc<XeroApp>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let body = with_path_id(Collection::ManualJournals, &id, &body);
    write(
        &app,
        Collection::ManualJournals,
        false,
        &headers,
        raw.as_deref(),
        &body,
    )
}

/// `POST /BankTransactions` (updateOrCreateBankTransactions).
async fn write_bank_transactions(
    State(app): State<Arc<XeroApp>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    write(
        &app,
        Collection::BankTransactions,
        false,
        &headers,
        raw.as_deref(),
        &body,
    )
}

/// `PUT /ManualJournals` (createManualJournals): creates only.
async fn put_manual_journals(
    State(app): State<Arc<XeroApp>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    write(
        &app,
        Collection::ManualJournals,
        true,
        &headers,
        raw.as_deref(),
        &body,
    )
}

/// `POST /ManualJournals` (updateOrCreateManualJournals).
async fn post_manual_journals(
    State(app): State<Arc<XeroApp>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    write(
        &app,
        Collection::ManualJournals,
        false,
        &headers,
        raw.as_deref(),
        &body,
    )
}

/// One write of a collection: `summarizeErrors`, `Idempotency-Key` replay,
/// per-element validation, and saving the valid elements.
fn write(
    app: &XeroApp,
    c: Collection,
    create_only: bool,
    headers: &HeaderMap,
    raw: Option<&str>,
    body: &[u8],
) -> Response {
    let pairs = query_pairs(raw);
    let summarize =
        !query_get_ci(&pairs, "summarizeErrors").is_some_and(|v| v.eq_ignore_ascii_case("false"));
    let unit_places = match query_get(&pairs, "unitdp") {
        Some("4") => 4,
        _ => 2,
    };
    let tenant = tenant_id(headers);
    let key = header(headers, IDEMPOTENCY_HEADER).map(str::to_string);
    let request: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return json(
                StatusCode::BAD_REQUEST,
                &json!({"ErrorNumber": 14, "Type": "PostDataInvalidException", "Message": format!("The request body could not be read: {e}")}),
            );
        }
    };
    if let Some(k) = &key {
        if k.len() > MAX_IDEMPOTENCY_KEY {
            return bad_request("Idempotency-Key is longer than 128 characters");
        }
        app.gate.stats().keyed_request(&tenant, k);
    }
    let mut tenants = app.tenants.lock().unwrap();
    let Some(t) = tenants.get_mut(&tenant) else {
        return problem(StatusCode::FORBIDDEN, "AuthenticationUnsuccessful");
    };
    if let Some(k) = &key {
        let live = |r: &Replay| {
            app.config
                .idempotency_ttl
                .is_none_or(|ttl| r.at.elapsed() < ttl)
        };
        if let Some(r) = t.replays.get(k).filter(|r| live(r)) {
            if r.request != request {
                return bad_request("The Idempotency-Key was already used for a different request");
            }
            return json(r.status, &r.body);
        }
    }
    let Some(items) = elements(&request, c) else {
        return json(
            StatusCode::BAD_REQUEST,
            &json!({"ErrorNumber": 14, "Type": "PostDataInvalidException", "Message": format!("Expected {}", c.name())}),
        );
    };
    let results: Vec<Result<(Value, bool), Vec<String>>> = items
        .iter()
        .map(|i| match c {
            Collection::BankTransactions => app.build(t, i, unit_places, create_only),
            Collection::ManualJournals => app.build_journal(t, i, create_only),
        })
        .collect();
    let failed = results.iter().any(Result::is_err);
    let echo = |input: &Value, errors: &[String]| {
        let mut e = input.as_object().cloned().unwrap_or_default();
        e.insert(c.id_field().into(), json!(ZERO_ID));
        e.insert("StatusAttributeString".into(), json!("ERROR"));
        e.insert(
            "ValidationErrors".into(),
            Value::Array(errors.iter().map(|m| json!({"Message": m})).collect()),
        );
        Value::Object(e)
    };
    let (status, answer, created) = if summarize && failed {
        let elements: Vec<Value> = items
            .iter()
            .zip(&results)
            .map(|(input, r)| match r {
                Ok(_) => {
                    let mut e = input.clone();
                    e["ValidationErrors"] = json!([]);
                    e
                }
                Err(errors) => echo(input, errors),
            })
            .collect();
        (
            StatusCode::BAD_REQUEST,
            json!({"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred", "Elements": elements}),
            0,
        )
    } else {
        let mut created = 0u64;
        let store = t.store_mut(c);
        let out: Vec<Value> = items
            .iter()
            .zip(results)
            .map(|(input, r)| match r {
                Ok((mut saved, new)) => {
                    let id = saved[c.id_field()].as_str().unwrap_or_default().to_string();
                    if new {
                        created += 1;
                        store.order.push(id.clone());
                    }
                    store.items.insert(id, saved.clone());
                    if !summarize {
                        saved["StatusAttributeString"] = json!("OK");
                    }
                    saved
                }
                Err(errors) => echo(input, &errors),
            })
            .collect();
        (StatusCode::OK, envelope(c.name(), out), created)
    };
    if let Some(k) = &key {
        t.replays.insert(
            k.clone(),
            Replay {
                status,
                body: answer.clone(),
                request,
                at: Instant::now(),
            },
        );
        app.gate.stats().keyed_creates(&tenant, k, created);
    }
    json(status, &answer)
}

async fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "The resource you're looking for cannot be found",
    )
}

fn router(app: Arc<XeroApp>) -> Router {
    Router::new()
        .route("/connect/token", post(token))
        // Xero's paths ignore case; the official SDK asks for `/Connections`.
        .route("/connections", get(connections))
        .route("/Connections", get(connections))
        .route("/api.xro/2.0/Accounts", get(accounts))
        .route("/api.xro/2.0/Organisation", get(organisation))
        .route("/api.xro/2.0/TrackingCategories", get(tracking_categories))
        .route(
            "/api.xro/2.0/TrackingCategories/{id}",
            get(tracking_category),
        )
        .route(
            "/api.xro/2.0/BankTransactions",
            get(list_bank_transactions)
                .put(put_bank_transactions)
                .post(write_bank_transactions),
        )
        .route(
            "/api.xro/2.0/BankTransactions/{id}",
            get(get_bank_transaction).post(post_bank_transaction),
        )
        .route(
            "/api.xro/2.0/ManualJournals",
            get(list_manual_journals)
                .put(put_manual_journals)
                .post(post_manual_journals),
        )
        .route(
            "/api.xro/2.0/ManualJournals/{id}",
            get(get_manual_journal).post(post_manual_journal),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            gate::middleware::<XeroApp>,
        ))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_POST_BYTES))
        .with_state(app)
}

/// A running Xero sandbox.
#[derive(Debug)]
pub struct XeroSandbox {
    server: ServerHandle,
    app: Arc<XeroApp>,
}

common_handle!(XeroSandbox);

impl XeroSandbox {
    /// Creates the organisations and starts serving.
    pub async fn start(config: XeroConfig) -> Result<Self, StartError> {
        let mut rng = data::rng(config.seed, 5);
        let mut tenants: BTreeMap<String, Tenant> = (0..config.tenants.max(1))
            .map(|n| {
                let t = Tenant::new(&mut rng, n, &config.currency);
                (t.id.clone(), t)
            })
            .collect();
        let mut settings = data::rng(config.seed, 6);
        for t in tenants.values_mut() {
            t.seed_settings(&mut settings);
        }
        let app = Arc::new(XeroApp {
            gate: Gate::new(config.seed, config.observe_window),
            tokens: TokenStore::new(
                TokenPolicy {
                    access_ttl: config.access_ttl,
                    refresh_ttl: config.refresh_ttl,
                    rotate_refresh: true,
                    reuse_grace: config.refresh_reuse_grace,
                    prefix: "xero_",
                },
                config.seed,
            ),
            tenants: Mutex::new(tenants),
            rng: Mutex::new(rng),
            settings_rng: Mutex::new(settings),
            config,
        });
        let server = ServerHandle::start("xero", router(app.clone())).await?;
        Ok(Self { server, app })
    }

    /// Every tenant id.
    pub fn tenant_ids(&self) -> Vec<String> {
        self.app.tenants.lock().unwrap().keys().cloned().collect()
    }

    /// The first tenant id.
    pub fn tenant_id(&self) -> String {
        self.tenant_ids().into_iter().next().unwrap_or_default()
    }

    /// The OAuth client id.
    pub fn client_id(&self) -> &str {
        &self.app.config.client_id
    }

    /// The OAuth client secret.
    pub fn client_secret(&self) -> &str {
        &self.app.config.client_secret
    }

    /// Issues an access and a refresh token, as a completed connection would.
    pub fn grant(&self) -> IssuedTokens {
        self.app.tokens.issue(USER, true)
    }

    /// A valid refresh token (a fresh grant's).
    pub fn valid_refresh_token(&self) -> String {
        self.grant().refresh_token.unwrap_or_default()
    }

    /// Whether a refresh token would be accepted now.
    pub fn refresh_token_is_valid(&self, refresh_token: &str) -> bool {
        self.app.tokens.refresh_is_valid(refresh_token)
    }

    /// An authorization code.
    pub fn authorization_code(&self) -> String {
        self.app.tokens.issue_code(USER)
    }

    /// Expires every access token issued so far.
    pub fn expire_access_tokens(&self) {
        self.app.tokens.expire_access(None);
    }

    /// The chart of accounts of a tenant.
    pub fn accounts(&self, tenant: &str) -> Vec<Value> {
        self.app
            .tenants
            .lock()
            .unwrap()
            .get(tenant)
            .map(|t| t.accounts.clone())
            .unwrap_or_default()
    }

    /// BankTransactions created by the hub, in creation order, as they are now.
    pub fn bank_transactions(&self, tenant: &str) -> Vec<Value> {
        self.saved(tenant, Collection::BankTransactions)
    }

    /// ManualJournals created by the hub, in creation order, as they are now
    /// (every status).
    pub fn manual_journals(&self, tenant: &str) -> Vec<Value> {
        self.saved(tenant, Collection::ManualJournals)
    }

    fn saved(&self, tenant: &str, c: Collection) -> Vec<Value> {
        self.app
            .tenants
            .lock()
            .unwrap()
            .get(tenant)
            .map(|t| t.store(c).in_order().cloned().collect())
            .unwrap_or_default()
    }

    /// The books' own net per date and account `Code`, debit positive, from
    /// POSTED manual journals (each line's `LineAmount` to its account) and
    /// AUTHORISED bank transactions: a RECEIVE (and its overpayment and
    /// prepayment kinds) debits the bank account `Total` and credits each
    /// line's account; a SPEND is the mirror. Tax, kept simple: with
    /// `Exclusive` a line's account takes `LineAmount` and its `TaxAmount`
    /// goes to [`TAX_ACCOUNT`] (820); with `Inclusive` the account takes
    /// `LineAmount − TaxAmount` and 820 the tax; with `NoTax` there is none
    /// (Xero books tax to its tax rate's account; the sandbox has no tax
    /// rates, and SPEND tax lands on 820 too). DRAFT, DELETED and VOIDED
    /// documents count for nothing; nets of zero are left out.
    pub fn account_totals(&self, tenant: &str) -> BTreeMap<(jiff::civil::Date, String), Decimal> {
        let tenants = self.app.tenants.lock().unwrap();
        let mut totals: BTreeMap<(jiff::civil::Date, String), Decimal> = BTreeMap::new();
        for p in tenants.get(tenant).map(postings).unwrap_or_default() {
            *totals.entry((p.date, p.code)).or_default() += p.debit;
        }
        totals.retain(|_, v| !v.is_zero());
        totals
    }

    /// [`Self::account_totals`] split by the option of tracking category
    /// `category` (by name, any case): per date, option name (`None`: the
    /// posting has none of that category) and account `Code`, debit
    /// positive, nets of zero left out. A journal line, and a bank line
    /// item with its tax, is placed by its own `Tracking`; a bank
    /// transaction's bank-account side has none.
    pub fn account_totals_by_tracking(
        &self,
        tenant: &str,
        category: &str,
    ) -> BTreeMap<(jiff::civil::Date, Option<String>, String), Decimal> {
        let tenants = self.app.tenants.lock().unwrap();
        let mut totals: BTreeMap<(jiff::civil::Date, Option<String>, String), Decimal> =
            BTreeMap::new();
        for p in tenants.get(tenant).map(postings).unwrap_or_default() {
            let option = p
                .tracking
                .iter()
                .find(|(c, _)| c.eq_ignore_ascii_case(category))
                .map(|(_, o)| o.clone());
            *totals.entry((p.date, option, p.code)).or_default() += p.debit;
        }
        totals.retain(|_, v| !v.is_zero());
        totals
    }

    /// Sets (`Some`) or clears (`None`) the organisation's `PeriodLockDate`:
    /// a ManualJournal or BankTransaction dated on or before it is then
    /// refused (a validation error, 400 `ValidationException` unless
    /// `summarizeErrors=false`). False if there is no such tenant.
    pub fn set_period_lock_date(&self, tenant: &str, date: Option<jiff::civil::Date>) -> bool {
        self.with_tenant(tenant, |t| t.period_lock = date).is_some()
    }

    /// Sets (`Some`) or clears (`None`) the organisation's
    /// `EndOfYearLockDate`, which refuses documents as the period lock does.
    pub fn set_end_of_year_lock_date(&self, tenant: &str, date: Option<jiff::civil::Date>) -> bool {
        self.with_tenant(tenant, |t| t.end_of_year_lock = date)
            .is_some()
    }

    /// The organisation as `GET /Organisation` answers it.
    pub fn organisation(&self, tenant: &str) -> Option<Value> {
        let currency = self.app.config.currency.clone();
        self.with_tenant(tenant, |t| t.organisation(&currency))
    }

    /// Every tracking category of a tenant with its options, archived ones
    /// included (as `GET /TrackingCategories?includeArchived=true`).
    pub fn tracking_categories(&self, tenant: &str) -> Vec<Value> {
        self.with_tenant(tenant, |t| t.visible_tracking(true))
            .unwrap_or_default()
    }

    /// Adds an ACTIVE tracking category; returns its `TrackingCategoryID`.
    /// `None` if there is no such tenant, the name is taken, or the tenant
    /// already has two active categories (Xero's limit).
    pub fn add_tracking_category(&self, tenant: &str, name: &str) -> Option<String> {
        let mut rng = self.app.settings_rng.lock().unwrap();
        self.with_tenant(tenant, |t| {
            let active = t
                .tracking
                .iter()
                .filter(|c| c["Status"] == "ACTIVE")
                .count();
            if active >= 2 || t.tracking_category(None, Some(name)).is_some() {
                return None;
            }
            let c = new_tracking_category(&mut rng, name.trim());
            let id = c["TrackingCategoryID"].as_str().map(str::to_string);
            t.tracking.push(c);
            id
        })
        .flatten()
    }

    /// Adds an ACTIVE option to the tracking category named `category`;
    /// returns its `TrackingOptionID`. `None` if there is no such tenant or
    /// category, or the option name is taken in it.
    pub fn add_tracking_option(
        &self,
        tenant: &str,
        category: &str,
        option: &str,
    ) -> Option<String> {
        let mut rng = self.app.settings_rng.lock().unwrap();
        self.with_tenant(tenant, |t| {
            let c = t.tracking.iter_mut().find(|c| {
                str_ci(c, "Name").is_some_and(|n| n.eq_ignore_ascii_case(category.trim()))
            })?;
            let options = c["Options"].as_array_mut()?;
            if options
                .iter()
                .any(|o| str_ci(o, "Name").is_some_and(|n| n.eq_ignore_ascii_case(option.trim())))
            {
                return None;
            }
            let id = data::guid(&mut rng);
            options
                .push(json!({"TrackingOptionID": id, "Name": option.trim(), "Status": "ACTIVE"}));
            Some(id)
        })
        .flatten()
    }

    /// Archives an option of a tracking category: new documents cannot use
    /// it. False if there is no such tenant, category or option.
    pub fn archive_tracking_option(&self, tenant: &str, category: &str, option: &str) -> bool {
        self.with_tenant(tenant, |t| {
            let o = t
                .tracking
                .iter_mut()
                .find(|c| str_ci(c, "Name").is_some_and(|n| n.eq_ignore_ascii_case(category)))?
                .get_mut("Options")?
                .as_array_mut()?
                .iter_mut()
                .find(|o| str_ci(o, "Name").is_some_and(|n| n.eq_ignore_ascii_case(option)))?;
            o["Status"] = json!("ARCHIVED");
            Some(())
        })
        .flatten()
        .is_some()
    }

    fn with_tenant<T>(&self, tenant: &str, f: impl FnOnce(&mut Tenant) -> T) -> Option<T> {
        self.app.tenants.lock().unwrap().get_mut(tenant).map(f)
    }

    /// Archives an account (it stops being valid on new documents).
    pub fn archive_account(&self, tenant: &str, code: &str) -> bool {
        let mut tenants = self.app.tenants.lock().unwrap();
        let Some(t) = tenants.get_mut(tenant) else {
            return false;
        };
        match t
            .accounts
            .iter_mut()
            .find(|a| a["Code"].as_str() == Some(code))
        {
            Some(a) => {
                a["Status"] = json!("ARCHIVED");
                true
            }
            None => false,
        }
    }
}

/// One posting of a tenant's books: a document's effect on one account.
#[derive(Debug)]
struct Posting {
    date: Date,
    code: String,
    /// Debit positive.
    debit: Decimal,
    /// (category name, option name) of the line's `Tracking`.
    tracking: Vec<(String, String)>,
}

/// The postings of a tenant's books (see [`XeroSandbox::account_totals`]).
fn postings(t: &Tenant) -> Vec<Posting> {
    // What the sandbox stored, it stored readable: a date or amount it
    // cannot read is a broken sandbox, never a zero or a skipped row.
    let date_of = |v: &Value| {
        v["Date"]
            .as_str()
            .and_then(time::parse_xero_date)
            .unwrap_or_else(|| panic!("the Xero sandbox holds an undated document: {v}"))
    };
    let money = |v: &Value| {
        json_decimal(v)
            .unwrap_or_else(|| panic!("the Xero sandbox holds an unreadable amount: {v}"))
    };
    let tracking_of = |l: &Value| -> Vec<(String, String)> {
        l["Tracking"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some((
                    t["Name"].as_str()?.to_string(),
                    t["Option"].as_str()?.to_string(),
                ))
            })
            .collect()
    };
    let mut out = Vec::new();
    let mut post = |date, code: &Value, debit: Decimal, tracking: Vec<(String, String)>| {
        if let Some(code) = code.as_str() {
            out.push(Posting {
                date,
                code: code.to_string(),
                debit,
                tracking,
            });
        }
    };
    for j in t.journals.in_order().filter(|j| j["Status"] == "POSTED") {
        let date = date_of(j);
        for l in j["JournalLines"].as_array().into_iter().flatten() {
            post(
                date,
                &l["AccountCode"],
                money(&l["LineAmount"]),
                tracking_of(l),
            );
        }
    }
    for b in t
        .transactions
        .in_order()
        .filter(|b| b["Status"] == "AUTHORISED")
    {
        let date = date_of(b);
        let kind = b["Type"].as_str().unwrap_or_default();
        let s = if kind.starts_with("RECEIVE") {
            Decimal::ONE
        } else if kind.starts_with("SPEND") {
            Decimal::NEGATIVE_ONE
        } else {
            continue;
        };
        let line_types = b["LineAmountTypes"].as_str().unwrap_or("Exclusive");
        post(
            date,
            &b["BankAccount"]["Code"],
            s * money(&b["Total"]),
            Vec::new(),
        );
        for l in b["LineItems"].as_array().into_iter().flatten() {
            let (amount, tax) = (
                money(&l["LineAmount"]),
                // A line without tax has no TaxAmount.
                if l["TaxAmount"].is_null() {
                    Decimal::ZERO
                } else {
                    money(&l["TaxAmount"])
                },
            );
            let net = if line_types.eq_ignore_ascii_case("Inclusive") {
                amount - tax
            } else {
                amount
            };
            post(date, &l["AccountCode"], -s * net, tracking_of(l));
            if !line_types.eq_ignore_ascii_case("NoTax") {
                post(date, &json!(TAX_ACCOUNT), -s * tax, tracking_of(l));
            }
        }
    }
    out
}

/// Each part's role on the seeded accounts (role → account code), with
/// families for what a test does not name: a mapping a hub connection can
/// use as is.
pub fn role_accounts() -> std::collections::BTreeMap<String, String> {
    [
        ("sales:*", "200"),
        ("discounts", "204"),
        ("service_charges", "202"),
        ("gratuity", "823"),
        ("tax:*", "820"),
        ("tips", "825"),
        ("gift_cards_sold", "824"),
        ("gift_cards_redeemed", "824"),
        ("refunds", "203"),
        ("tender:card", "610"),
        ("tender:cash", "611"),
        ("tender:house_account", "612"),
        ("tender:other:*", "613"),
        ("fees", "404"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
