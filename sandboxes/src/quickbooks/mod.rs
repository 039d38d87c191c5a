//! QuickBooks Online sandbox: OAuth 2.0 token endpoint, query, reads, and
//! SalesReceipt / RefundReceipt / Purchase / JournalEntry writes with
//! `requestid` idempotency, sparse updates, SyncToken checks and batch;
//! seeded TaxRates, Departments and Classes; the company's Preferences and
//! its closing date; and the books' own per-day, per-account totals
//! ([`QuickBooksSandbox::account_totals`], by location
//! [`QuickBooksSandbox::account_totals_by`]).
//!
//! Follows providers.md §3:
//! - Base `/v3/company/{realmId}/` (§3.2): `GET query?query=<select>` (also
//!   `POST query` with the statement as the body) with `STARTPOSITION` /
//!   `MAXRESULTS` (default 100, at most 1,000) answering
//!   `{"QueryResponse":{"<Entity>":[...],"startPosition","maxResults"},"time"}`
//!   as in `account_query_response.json`; `GET <entity>/{id}` as in
//!   `account_read_response.json`; `POST salesreceipt`, `POST refundreceipt`,
//!   `POST purchase` and `POST journalentry` create (no `Id`), update
//!   (`Id` and the current `SyncToken`; `"sparse": true` changes only the
//!   fields sent; a stale token is the 5010 fault of `batch_response.json`) or delete
//!   (`?operation=delete`). `GET preferences` (no Id in the path, as
//!   QuickBooks serves it) and `select * from Preferences` answer the one
//!   Preferences entity; Department and Class are read and queried like
//!   the other lists.
//! - `requestid` (§3.2): unique per realm, at most 50 characters (36 for
//!   batch, with `bId` at most 10); a repeated requestid returns the original
//!   answer and executes nothing. Counted in `requests_per_key` /
//!   `creates_per_key` keyed `(realmId, requestid)`.
//! - `POST batch` (§3.2): `BatchItemRequest` of at most 30 items (the brief's
//!   choice among the conflicting 10/30/50; configurable) → `BatchItemResponse`
//!   matched by `bId`, each with the entity, a `QueryResponse` or a `Fault`
//!   (`batch_request.json` / `batch_response.json`). A batch is one request
//!   against the realm's budget, plus 40 batches per minute.
//! - Limits (§3.2): 500 requests per minute per realm (sliding) and 10
//!   concurrent; over either, 429 with `Retry-After` and the
//!   `ThrottleExceeded` fault (errorCode 003001, SECONDARY).
//! - OAuth (§3.3): `POST /oauth2/v1/tokens/bearer`, form-encoded, client
//!   authentication by HTTP Basic (`client_secret_basic`) or form fields
//!   (`client_secret_post`); access tokens 3,600 s; every refresh returns a
//!   new refresh token and spends the old one (a spent one → 400
//!   `{"error":"invalid_grant"}`, the brief's strict reading of "always store
//!   the latest"); response as `oauth_token_response.json`.
//! - Errors (§3.2): `{"Fault":{"Error":[{Message,Detail,code,element}],"type"},"time"}`.
//!
//! UNVERIFIED, chosen here: the 401 body (type `AUTHENTICATION`, code 3200)
//! and 403 for a token of another realm (`AuthorizationFault`, code 120); the
//! 500/503 body (`SystemFault`, code 10000); query parse errors
//! (`QueryParserError`, code 4000) and unknown entities (4001); codes 2010,
//! 2020, 2170 for malformed input; the batch-size and requestid-length faults;
//! clamping `MAXRESULTS` above 1,000; JSON is answered whatever the `Accept`
//! header (real QuickBooks answers XML unless asked for JSON); the token
//! endpoint lives on the same base URL (Intuit's is on another host).
//!
//! Sales forms (entities.rs has the rules): SalesReceipt and RefundReceipt
//! (Finance.xsd: both extend `SalesTransaction`) take the same lines
//! (`SalesItemLineDetail` with `ItemRef`, `DiscountLineDetail` with an
//! optional `DiscountAccountRef`, default 92) and `TxnTaxDetail.TaxLine[]`
//! naming a seeded `TaxRate`; `TotalAmt` = lines − discounts + `TotalTax`.
//! Negative line amounts and a zero total are accepted (QuickBooks allows
//! negative lines on sales forms); a negative total is refused with
//! `ValidationFault` 6000 (UNVERIFIED). `GlobalTaxCalculation` may be
//! `TaxExcluded` or `NotApplicable`; `TaxInclusive` is refused (not modelled).
//! A RefundReceipt needs `DepositToAccountRef` naming an existing account
//! (2020 when missing, 610 when unknown).
//!
//! JournalEntry (books.md, "Request shapes"; Finance.xsd `JournalEntry`,
//! `JournalEntryLineDetail`): `Line[]` of `DetailType`
//! `JournalEntryLineDetail`, each with a non-negative `Amount` and
//! `PostingType` `Debit` or `Credit`, an `AccountRef`, and optionally a
//! `DepartmentRef` (also on the entry) and `ClassRef`; the debits must
//! equal the credits. Codes from Intuit's error-code table: 2300 "Amount on
//! debits not equal to credits", 2260 MissingPostingType, 2290
//! NegativeAmount, 2170 Invalid Enumeration; 610 for an unknown or inactive
//! account, department or class. `TotalAmt` is the debits. `DocNumber` is
//! at most 21 characters (books.md; 2050 Invalid String Length) on every
//! form. Line `Id`s count from "0" (Intuit's JournalEntry examples).
//!
//! Locations (books.md): Preferences `AccountingInfoPrefs.TrackDepartments`
//! (on by default, with [`DEPARTMENTS`] seeded) or `ClassTrackingPerTxn` /
//! `ClassTrackingPerTxnLine` (off by default, [`CLASSES`] seeded); set with
//! [`QuickBooksSandbox::set_track_departments`] and
//! [`QuickBooksSandbox::set_class_tracking`].
//!
//! Closed period: with `AccountingInfoPrefs.BookCloseDate` set
//! ([`QuickBooksSandbox::set_book_close_date`]; absent by default), a
//! create, update or delete of a SalesReceipt, RefundReceipt, Purchase or
//! JournalEntry dated on or before it, or an update moving one there, is
//! refused with ValidationFault 6210 "Account Period Closed, Cannot Update
//! Through Services API" (sources at `Fault::period_closed` in
//! entities.rs; Intuit's error-code table has 6200 for a closing date
//! without a password).
//!
//! UNVERIFIED, chosen here for journal entries: a `DepartmentRef` when
//! `TrackDepartments` is off, or a `ClassRef` when class tracking is off, is
//! refused (2010) rather than ignored; journal-entry tax (`TxnTaxDetail`,
//! line `TaxCodeRef`, `TaxAmount`, ...: non-US companies) is not modelled and
//! refused (2010); only `JournalEntryLineDetail` lines are taken.

mod entities;
mod query;

pub use entities::{
    ACCOUNTS, CLASSES, ClassTracking, DEPARTMENTS, ITEMS, MAX_DOC_NUMBER, QboEntity, TAX_RATES,
};

use crate::common::data;
use crate::common::gate::{self, Gate, Rules, Shape};
use crate::common::http::{json, query_get, query_pairs};
use crate::common::limits::{LimitPlan, Refused};
use crate::common::server::{ConnInfo, ServerHandle, StartError};
use crate::common::tokens::{self, IssuedTokens, TokenError, TokenPolicy, TokenStore};
use crate::common::{Limit, OBSERVE_WINDOW, common_handle};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use entities::{Fault, Realm};
use http::{HeaderMap, StatusCode};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use rand::Rng;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest `requestid` for a single-entity call.
pub const MAX_REQUEST_ID: usize = 50;
/// The longest `requestid` for a batch.
pub const MAX_BATCH_REQUEST_ID: usize = 36;
/// The longest `bId` in a batch with a `requestid`.
pub const MAX_BATCH_BID: usize = 10;

/// How to build a QuickBooks sandbox.
#[derive(Debug, Clone)]
pub struct QuickBooksConfig {
    /// Seed for realm ids, tokens and faults.
    pub seed: u64,
    /// Realms (companies) to create.
    pub realms: usize,
    /// The companies' time zone (`MetaData` offsets, default `TxnDate`).
    pub time_zone: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// Access-token lifetime (3,600 s).
    pub access_ttl: Duration,
    /// Refresh-token lifetime (100 days).
    pub refresh_ttl: Duration,
    /// How long a spent refresh token is still accepted (none).
    pub refresh_reuse_grace: Duration,
    /// Requests per realm: 500 per minute.
    pub limits: Vec<Limit>,
    /// Batch requests per realm: 40 per minute.
    pub batch_limits: Vec<Limit>,
    /// Concurrent requests per realm: 10.
    pub concurrency: Option<u64>,
    /// Items per batch: 30.
    pub max_batch_items: usize,
    /// `MAXRESULTS` when the query gives none: 100.
    pub default_max_results: usize,
    /// Largest `MAXRESULTS`: 1,000.
    pub max_results: usize,
    /// Window for `Counters::max_calls_per_window`.
    pub observe_window: Duration,
}

impl Default for QuickBooksConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            realms: 1,
            time_zone: "America/Los_Angeles".into(),
            client_id: "ABsandboxQuickBooksClientId".into(),
            client_secret: "sandbox-quickbooks-secret".into(),
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(100 * 86_400),
            refresh_reuse_grace: Duration::ZERO,
            limits: vec![Limit::sliding("minute", 500, Duration::from_secs(60))],
            batch_limits: vec![Limit::sliding("minute", 40, Duration::from_secs(60))],
            concurrency: Some(10),
            max_batch_items: 30,
            default_max_results: 100,
            max_results: 1000,
            observe_window: OBSERVE_WINDOW,
        }
    }
}

impl QuickBooksConfig {
    /// Defaults with `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }
}

#[derive(Debug)]
struct QboApp {
    gate: Gate,
    tokens: TokenStore,
    config: QuickBooksConfig,
    realms: Mutex<BTreeMap<String, Realm>>,
}

fn qbo_time() -> String {
    crate::common::time::qbo_ms(Timestamp::now(), &TimeZone::UTC)
}

fn fault(f: &Fault) -> Response {
    json(f.status, &f.response(qbo_time()))
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    json(status, &json!({"error": error}))
}

fn realm_of_path(path: &str) -> Option<&str> {
    path.strip_prefix("/v3/company/")?
        .split('/')
        .next()
        .filter(|s| !s.is_empty())
}

impl Shape for QboApp {
    fn rate_limited(&self, _refused: &Refused) -> Response {
        fault(&Fault::new(
            StatusCode::TOO_MANY_REQUESTS,
            "SERVICE",
            "003001",
            "message=ThrottleExceeded; errorCode=003001; statusCode=429",
            "ThrottleExceeded: The request limit was reached.",
        ))
    }

    fn server_error(&self, status: StatusCode) -> Response {
        fault(&Fault::new(
            status,
            "SystemFault",
            "10000",
            "An application error has occurred while processing your request",
            "System Failure Error: injected by the sandbox",
        ))
    }
}

impl Rules for QboApp {
    fn gate(&self) -> &Gate {
        &self.gate
    }

    fn plan(&self, request: &Request, _conn: &ConnInfo) -> (Option<String>, LimitPlan) {
        let path = request.uri().path();
        let Some(realm) = realm_of_path(path) else {
            return (None, LimitPlan::default());
        };
        let mut scopes = vec![("realm".to_string(), self.config.limits.clone())];
        if path.ends_with("/batch") {
            scopes.push(("batch".into(), self.config.batch_limits.clone()));
        }
        (
            Some(realm.to_string()),
            LimitPlan {
                scopes,
                concurrency: self.config.concurrency,
                ..LimitPlan::default()
            },
        )
    }

    fn authenticate(&self, request: &mut Request) -> Result<(), Response> {
        let Some(realm) = realm_of_path(request.uri().path()).map(str::to_string) else {
            return Ok(());
        };
        let expired = self.gate.faults().expire_tokens;
        match self.tokens.check(request.headers(), expired) {
            Ok(account) if account == realm => Ok(()),
            Ok(_) => Err(fault(&Fault::new(
                StatusCode::FORBIDDEN,
                "AuthorizationFault",
                "120",
                "message=AuthorizationFailure; errorCode=120; statusCode=403",
                &format!("Authorization Failure: the token is not authorized for realm {realm}"),
            ))),
            Err(e) => {
                let detail = match e {
                    TokenError::Expired => "Token expired",
                    TokenError::Missing => "Authorization header missing",
                    TokenError::Unknown => "Token invalid",
                };
                Err(fault(&Fault::new(
                    StatusCode::UNAUTHORIZED,
                    "AUTHENTICATION",
                    "3200",
                    "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                    detail,
                )))
            }
        }
    }
}

async fn token(State(app): State<Arc<QboApp>>, headers: HeaderMap, body: Bytes) -> Response {
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
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
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
            "token_type": "bearer",
            "expires_in": issued.expires_in.as_secs(),
            "refresh_token": issued.refresh_token,
            "x_refresh_token_expires_in": app.config.refresh_ttl.as_secs(),
            "access_token": issued.access_token,
        }),
    )
}

impl QboApp {
    fn run_query(&self, realm: &Realm, text: &str) -> Result<Value, Fault> {
        let q = query::parse(text).map_err(|e| {
            Fault::validation(
                "4000",
                "Error parsing query",
                &format!("QueryParserError: {e}"),
            )
        })?;
        let kind = QboEntity::from_name(&q.entity).ok_or_else(|| {
            Fault::validation(
                "4001",
                "Invalid query",
                &format!("QueryValidationError: Entity {} is not supported", q.entity),
            )
        })?;
        let mut rows: Vec<Value> = realm
            .all(kind)
            .into_iter()
            .filter(|e| q.conditions.iter().all(|c| c.holds(e)))
            .collect();
        if q.count {
            return Ok(json!({"totalCount": rows.len()}));
        }
        for (field, desc) in q.order.iter().rev() {
            rows.sort_by(|a, b| {
                let o = query::order_by(a, b, field);
                if *desc { o.reverse() } else { o }
            });
        }
        let max = q
            .max_results
            .unwrap_or(self.config.default_max_results)
            .min(self.config.max_results);
        let page: Vec<Value> = rows
            .into_iter()
            .skip(q.start_position - 1)
            .take(max)
            .collect();
        if page.is_empty() {
            return Ok(json!({}));
        }
        let mut out = Map::new();
        out.insert("startPosition".into(), json!(q.start_position));
        out.insert("maxResults".into(), json!(page.len()));
        out.insert(kind.name().into(), Value::Array(page));
        Ok(Value::Object(out))
    }
}

fn realm_missing(realm: &str) -> Response {
    fault(&Fault::new(
        StatusCode::FORBIDDEN,
        "AuthorizationFault",
        "120",
        "message=AuthorizationFailure; errorCode=120; statusCode=403",
        &format!("Unknown realm {realm}"),
    ))
}

async fn query_get_handler(
    State(app): State<Arc<QboApp>>,
    Path(realm_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let pairs = query_pairs(raw.as_deref());
    let Some(text) = query_get(&pairs, "query") else {
        return fault(&Fault::missing("query"));
    };
    run_query_response(&app, &realm_id, text)
}

async fn query_post_handler(
    State(app): State<Arc<QboApp>>,
    Path(realm_id): Path<String>,
    body: Bytes,
) -> Response {
    let text = String::from_utf8_lossy(&body).to_string();
    run_query_response(&app, &realm_id, &text)
}

fn run_query_response(app: &QboApp, realm_id: &str, text: &str) -> Response {
    let realms = app.realms.lock().unwrap();
    let Some(realm) = realms.get(realm_id) else {
        return realm_missing(realm_id);
    };
    match app.run_query(realm, text) {
        Ok(q) => json(
            StatusCode::OK,
            &json!({"QueryResponse": q, "time": realm.now_time()}),
        ),
        Err(f) => fault(&f),
    }
}

async fn read(app: Arc<QboApp>, realm_id: String, id: String, kind: QboEntity) -> Response {
    let realms = app.realms.lock().unwrap();
    let Some(realm) = realms.get(&realm_id) else {
        return realm_missing(&realm_id);
    };
    match realm.get(kind, &id) {
        Some(e) => json(
            StatusCode::OK,
            &json!({kind.name(): e, "time": realm.now_time()}),
        ),
        None => fault(&Fault::not_found(&format!("{} Id {id}", kind.name()))),
    }
}

/// `GET preferences`: the company's one Preferences entity.
async fn preferences(State(app): State<Arc<QboApp>>, Path(realm_id): Path<String>) -> Response {
    let realms = app.realms.lock().unwrap();
    let Some(realm) = realms.get(&realm_id) else {
        return realm_missing(&realm_id);
    };
    match realm.get(QboEntity::Preferences, "1") {
        Some(p) => json(
            StatusCode::OK,
            &json!({"Preferences": p, "time": realm.now_time()}),
        ),
        None => fault(&Fault::not_found("Preferences")),
    }
}

/// Handles one write and stores / replays it under `requestid`.
fn write(
    app: &QboApp,
    realm_id: &str,
    kind: QboEntity,
    raw: Option<&str>,
    body: &[u8],
) -> Response {
    let pairs = query_pairs(raw);
    let request_id = query_get(&pairs, "requestid").map(str::to_string);
    let operation = query_get(&pairs, "operation");
    if let Some(rid) = &request_id {
        if rid.len() > MAX_REQUEST_ID {
            return fault(&Fault::validation(
                "2010",
                "Request has invalid or unsupported property",
                &format!("requestid is longer than {MAX_REQUEST_ID} characters"),
            ));
        }
        app.gate.stats().keyed_request(realm_id, rid);
    }
    let mut realms = app.realms.lock().unwrap();
    let Some(realm) = realms.get_mut(realm_id) else {
        return realm_missing(realm_id);
    };
    if let Some(rid) = &request_id
        && let Some((status, body)) = realm.replays.get(rid)
    {
        return json(*status, body);
    }
    let (status, answer, created) = match serde_json::from_slice::<Value>(body) {
        Err(e) => {
            let f = Fault::validation(
                "2010",
                "Request has invalid or unsupported property",
                &format!("The request body is not valid JSON: {e}"),
            );
            (f.status, f.response(realm.now_time()), false)
        }
        Ok(input) => match realm.write(kind, &input, operation) {
            Ok((entity, created)) => (
                StatusCode::OK,
                json!({kind.name(): entity, "time": realm.now_time()}),
                created,
            ),
            Err(f) => (f.status, f.response(realm.now_time()), false),
        },
    };
    if let Some(rid) = &request_id {
        realm.replays.insert(rid.clone(), (status, answer.clone()));
        app.gate
            .stats()
            .keyed_creates(realm_id, rid, u64::from(created));
    }
    json(status, &answer)
}

async fn batch(
    State(app): State<Arc<QboApp>>,
    Path(realm_id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let pairs = query_pairs(raw.as_deref());
    let request_id = query_get(&pairs, "requestid").map(str::to_string);
    if let Some(rid) = &request_id {
        if rid.len() > MAX_BATCH_REQUEST_ID {
            return fault(&Fault::validation(
                "2010",
                "Request has invalid or unsupported property",
                &format!("requestid is longer than {MAX_BATCH_REQUEST_ID} characters for a batch"),
            ));
        }
        app.gate.stats().keyed_request(&realm_id, rid);
    }
    let mut realms = app.realms.lock().unwrap();
    let Some(realm) = realms.get_mut(&realm_id) else {
        return realm_missing(&realm_id);
    };
    if let Some(rid) = &request_id
        && let Some((status, body)) = realm.replays.get(rid)
    {
        return json(*status, body);
    }
    let items = match serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("BatchItemRequest").and_then(Value::as_array).cloned())
    {
        Some(items) => items,
        None => return fault(&Fault::missing("BatchItemRequest")),
    };
    if items.is_empty() || items.len() > app.config.max_batch_items {
        return fault(&Fault::validation(
            "2010",
            "Request has invalid or unsupported property",
            &format!(
                "A batch holds 1 to {} BatchItemRequest items; got {}",
                app.config.max_batch_items,
                items.len()
            ),
        ));
    }
    let mut created = 0u64;
    let mut responses = Vec::new();
    for item in &items {
        let bid = item
            .get("bId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut out = Map::new();
        out.insert("bId".into(), json!(bid));
        let result: Result<(String, Value), Fault> = (|| {
            if bid.is_empty() {
                return Err(Fault::missing("bId"));
            }
            if request_id.is_some() && bid.len() > MAX_BATCH_BID {
                return Err(Fault::validation(
                    "2010",
                    "Request has invalid or unsupported property",
                    &format!(
                        "bId is longer than {MAX_BATCH_BID} characters in a batch with requestid"
                    ),
                ));
            }
            if let Some(q) = item.get("Query").and_then(Value::as_str) {
                return app
                    .run_query(realm, q)
                    .map(|r| ("QueryResponse".to_string(), r));
            }
            let operation = item.get("operation").and_then(Value::as_str);
            let Some((name, entity)) = item
                .as_object()
                .into_iter()
                .flatten()
                .find(|(k, _)| !matches!(k.as_str(), "bId" | "operation" | "optionsData"))
            else {
                return Err(Fault::missing("entity"));
            };
            let kind = QboEntity::from_name(name)
                .filter(|k| k.writable())
                .ok_or_else(|| {
                    Fault::validation(
                        "2010",
                        "Request has invalid or unsupported property",
                        &format!("{name} cannot be written in the sandbox"),
                    )
                })?;
            let (entity, was_created) = realm.write(kind, entity, operation)?;
            created += u64::from(was_created);
            Ok((kind.name().to_string(), entity))
        })();
        match result {
            Ok((key, value)) => {
                out.insert(key, value);
            }
            Err(f) => {
                out.insert("Fault".into(), f.body());
            }
        }
        responses.push(Value::Object(out));
    }
    let answer = json!({"BatchItemResponse": responses, "time": realm.now_time()});
    if let Some(rid) = &request_id {
        realm
            .replays
            .insert(rid.clone(), (StatusCode::OK, answer.clone()));
        app.gate.stats().keyed_creates(&realm_id, rid, created);
    }
    json(StatusCode::OK, &answer)
}

async fn not_found() -> Response {
    fault(&Fault::new(
        StatusCode::NOT_FOUND,
        "ValidationFault",
        "4000",
        "Unsupported Operation",
        "No such resource in the sandbox",
    ))
}

fn router(app: Arc<QboApp>) -> Router {
    let mut r = Router::new()
        .route("/oauth2/v1/tokens/bearer", post(token))
        .route(
            "/v3/company/{realmId}/query",
            get(query_get_handler).post(query_post_handler),
        )
        .route("/v3/company/{realmId}/batch", post(batch))
        .route("/v3/company/{realmId}/preferences", get(preferences));
    for kind in QboEntity::ALL.into_iter().filter(|k| k.read_by_id()) {
        let path = format!(
            "/v3/company/{{realmId}}/{}/{{id}}",
            kind.name().to_lowercase()
        );
        r = r.route(
            &path,
            get(
                move |State(app): State<Arc<QboApp>>, Path((realm, id)): Path<(String, String)>| {
                    read(app, realm, id, kind)
                },
            ),
        );
        if kind.writable() {
            let path = format!("/v3/company/{{realmId}}/{}", kind.name().to_lowercase());
            r = r.route(
                &path,
                post(
                    move |State(app): State<Arc<QboApp>>,
                          Path(realm): Path<String>,
                          RawQuery(raw): RawQuery,
                          body: Bytes| async move {
                        write(&app, &realm, kind, raw.as_deref(), &body)
                    },
                ),
            );
        }
    }
    r.route_layer(axum::middleware::from_fn_with_state(
        app.clone(),
        gate::middleware::<QboApp>,
    ))
    .fallback(not_found)
    .layer(axum::extract::DefaultBodyLimit::max(
        crate::common::MAX_BODY_BYTES,
    ))
    .with_state(app)
}

/// A running QuickBooks Online sandbox.
#[derive(Debug)]
pub struct QuickBooksSandbox {
    server: ServerHandle,
    app: Arc<QboApp>,
}

common_handle!(QuickBooksSandbox);

impl QuickBooksSandbox {
    /// Creates the realms and starts serving.
    pub async fn start(config: QuickBooksConfig) -> Result<Self, StartError> {
        let tz = TimeZone::get(&config.time_zone).map_err(|_| StartError::Config {
            sandbox: "quickbooks",
            message: format!("unknown time zone {:?}", config.time_zone),
        })?;
        let mut rng = data::rng(config.seed, 4);
        let now = Timestamp::now();
        let realms: BTreeMap<String, Realm> = (0..config.realms.max(1))
            .map(|_| {
                let id = format!("9130{:012}", rng.random_range(0..1_000_000_000_000u64));
                (id, Realm::seeded(tz.clone(), now))
            })
            .collect();
        let app = Arc::new(QboApp {
            gate: Gate::new(config.seed, config.observe_window),
            tokens: TokenStore::new(
                TokenPolicy {
                    access_ttl: config.access_ttl,
                    refresh_ttl: config.refresh_ttl,
                    rotate_refresh: true,
                    reuse_grace: config.refresh_reuse_grace,
                    prefix: "eyJqbo.",
                },
                config.seed,
            ),
            realms: Mutex::new(realms),
            config,
        });
        let server = ServerHandle::start("quickbooks", router(app.clone())).await?;
        Ok(Self { server, app })
    }

    /// Every realm id.
    pub fn realm_ids(&self) -> Vec<String> {
        self.app.realms.lock().unwrap().keys().cloned().collect()
    }

    /// The first realm id.
    pub fn realm_id(&self) -> String {
        self.realm_ids().into_iter().next().unwrap_or_default()
    }

    /// The OAuth client id.
    pub fn client_id(&self) -> &str {
        &self.app.config.client_id
    }

    /// The OAuth client secret.
    pub fn client_secret(&self) -> &str {
        &self.app.config.client_secret
    }

    /// Issues an access and a refresh token for `realm`, as a completed
    /// connection would.
    pub fn grant(&self, realm: &str) -> IssuedTokens {
        self.app.tokens.issue(realm, true)
    }

    /// A valid refresh token for `realm` (a fresh grant's).
    pub fn valid_refresh_token(&self, realm: &str) -> String {
        self.grant(realm).refresh_token.unwrap_or_default()
    }

    /// Whether a refresh token would be accepted now.
    pub fn refresh_token_is_valid(&self, refresh_token: &str) -> bool {
        self.app.tokens.refresh_is_valid(refresh_token)
    }

    /// An authorization code for `realm`.
    pub fn authorization_code(&self, realm: &str) -> String {
        self.app.tokens.issue_code(realm)
    }

    /// Expires every access token issued so far.
    pub fn expire_access_tokens(&self) {
        self.app.tokens.expire_access(None);
    }

    fn with_realm<T>(&self, realm: &str, f: impl FnOnce(&mut Realm) -> T) -> Option<T> {
        self.app.realms.lock().unwrap().get_mut(realm).map(f)
    }

    /// Every entity of one kind in `realm`.
    pub fn entities(&self, realm: &str, kind: QboEntity) -> Vec<Value> {
        self.with_realm(realm, |r| r.all(kind)).unwrap_or_default()
    }

    /// One entity.
    pub fn entity(&self, realm: &str, kind: QboEntity, id: &str) -> Option<Value> {
        self.with_realm(realm, |r| r.get(kind, id).cloned())
            .flatten()
    }

    /// Sales receipts the hub created, in creation order, as they are now.
    pub fn created_sales_receipts(&self, realm: &str) -> Vec<Value> {
        self.created(realm, QboEntity::SalesReceipt)
    }

    /// Refund receipts the hub created, in creation order, as they are now.
    pub fn created_refund_receipts(&self, realm: &str) -> Vec<Value> {
        self.created(realm, QboEntity::RefundReceipt)
    }

    /// The books' own net per business day (`TxnDate`) and account `Id`,
    /// debit positive, over every stored (not deleted) SalesReceipt,
    /// RefundReceipt and Purchase; nets of zero are left out. A SalesReceipt
    /// credits each item line's item's income account by its `Amount` (a
    /// negative amount is a debit), debits each discount line's account,
    /// credits each tax line's rate's liability account (`TotalTax` to 91
    /// when it has no tax lines) and debits `DepositToAccountRef` by
    /// `TotalAmt`; a RefundReceipt is the mirror, crediting
    /// `DepositToAccountRef`; a Purchase debits its lines' accounts (an item
    /// line: the item's expense account, else its income account) and its tax
    /// and credits `AccountRef` (mirrored when `Credit` is true); a
    /// JournalEntry debits each `Debit` line's `AccountRef` by its `Amount`
    /// and credits each `Credit` line's. Every transaction's entries sum to
    /// zero over accounts.
    pub fn account_totals(&self, realm: &str) -> BTreeMap<(jiff::civil::Date, String), Decimal> {
        self.with_realm(realm, |r| r.account_totals())
            .unwrap_or_default()
    }

    /// [`Self::account_totals`] split by location: per business day
    /// (`TxnDate`), Department or Class `Id` (`None`: the posting names
    /// none) and account `Id`, debit positive, nets of zero left out. A
    /// JournalEntry line is placed by its own `DepartmentRef` / `ClassRef`
    /// (a line without a `DepartmentRef` by the entry's); a sales form's or
    /// purchase's postings by the transaction's `DepartmentRef` and their
    /// line's `ClassRef`, which the sandbox stores as sent.
    pub fn account_totals_by(
        &self,
        realm: &str,
        dimension: Dimension,
    ) -> BTreeMap<(jiff::civil::Date, Option<String>, String), Decimal> {
        self.with_realm(realm, |r| {
            let mut totals: BTreeMap<(jiff::civil::Date, Option<String>, String), Decimal> =
                BTreeMap::new();
            for p in r.postings() {
                let tag = match dimension {
                    Dimension::Department => p.department,
                    Dimension::Class => p.class,
                };
                *totals.entry((p.date, tag, p.account)).or_default() += p.debit;
            }
            totals.retain(|_, v| !v.is_zero());
            totals
        })
        .unwrap_or_default()
    }

    /// Journal entries the hub created, in creation order, as they are now
    /// (the stored JSON, as a read answers it).
    pub fn created_journal_entries(&self, realm: &str) -> Vec<Value> {
        self.created(realm, QboEntity::JournalEntry)
    }

    /// Every journal entry of `realm` (none are seeded), in creation order,
    /// read into [`JournalEntryRecord`]s: the count is the length.
    pub fn journal_entries(&self, realm: &str) -> Vec<JournalEntryRecord> {
        self.created_journal_entries(realm)
            .iter()
            .map(|e| {
                // The sandbox stored it after validating it: one it cannot
                // read back is a broken sandbox, never a skipped entry.
                JournalEntryRecord::from_json(e).unwrap_or_else(|| {
                    panic!("the QuickBooks sandbox holds an unreadable JournalEntry: {e}")
                })
            })
            .collect()
    }

    /// Closes the books through `date`: `Preferences.AccountingInfoPrefs.BookCloseDate`
    /// is set, and a create, update or delete of a transaction (SalesReceipt,
    /// RefundReceipt, Purchase, JournalEntry) dated on or before it is
    /// refused with the closed-period fault (6210). False if there is no
    /// such realm.
    pub fn set_book_close_date(&self, realm: &str, date: jiff::civil::Date) -> bool {
        self.with_realm(realm, |r| {
            r.edit_accounting_prefs(|p| {
                p.insert("BookCloseDate".into(), json!(date.to_string()));
            });
        })
        .is_some()
    }

    /// Opens the books again: `BookCloseDate` is removed (its default).
    pub fn clear_book_close_date(&self, realm: &str) -> bool {
        self.with_realm(realm, |r| {
            r.edit_accounting_prefs(|p| {
                p.remove("BookCloseDate");
            });
        })
        .is_some()
    }

    /// The closing date now in force, if the books are closed.
    pub fn book_close_date(&self, realm: &str) -> Option<jiff::civil::Date> {
        self.with_realm(realm, |r| r.book_close_date()).flatten()
    }

    /// Turns location tracking by Department (`TrackDepartments`, on by
    /// default) on or off. Off, a `DepartmentRef` on a journal entry is
    /// refused.
    pub fn set_track_departments(&self, realm: &str, on: bool) -> bool {
        self.with_realm(realm, |r| {
            r.edit_accounting_prefs(|p| {
                p.insert("TrackDepartments".into(), json!(on));
            });
        })
        .is_some()
    }

    /// Sets class tracking (`ClassTrackingPerTxn` / `ClassTrackingPerTxnLine`,
    /// both off by default). Off, a `ClassRef` on a journal entry line is
    /// refused.
    pub fn set_class_tracking(&self, realm: &str, tracking: ClassTracking) -> bool {
        self.with_realm(realm, |r| {
            r.edit_accounting_prefs(|p| {
                p.insert(
                    "ClassTrackingPerTxn".into(),
                    json!(tracking == ClassTracking::PerTransaction),
                );
                p.insert(
                    "ClassTrackingPerTxnLine".into(),
                    json!(tracking == ClassTracking::PerLine),
                );
            });
        })
        .is_some()
    }

    /// Adds a Department (location); returns its Id.
    pub fn add_department(&self, realm: &str, name: &str) -> Option<String> {
        self.with_realm(realm, |r| r.add_tag(QboEntity::Department, name))
    }

    /// Adds a Class; returns its Id.
    pub fn add_class(&self, realm: &str, name: &str) -> Option<String> {
        self.with_realm(realm, |r| r.add_tag(QboEntity::Class, name))
    }

    /// Purchases the hub created, in creation order, as they are now.
    pub fn created_purchases(&self, realm: &str) -> Vec<Value> {
        self.created(realm, QboEntity::Purchase)
    }

    fn created(&self, realm: &str, kind: QboEntity) -> Vec<Value> {
        self.with_realm(realm, |r| {
            r.created
                .iter()
                .filter(|(k, _)| *k == kind)
                .filter_map(|(k, id)| r.entities.get(k)?.get(id).cloned())
                .collect()
        })
        .unwrap_or_default()
    }

    /// Someone else edits an entity in QuickBooks: its `SyncToken` moves on,
    /// so the hub's copy goes stale. Returns the new SyncToken.
    pub fn touch(&self, realm: &str, kind: QboEntity, id: &str) -> Option<String> {
        self.with_realm(realm, |r| {
            let e = r
                .entities
                .get_mut(&kind)?
                .get_mut(&id.parse::<u64>().ok()?)?;
            let next = e
                .get("SyncToken")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
                + 1;
            e["SyncToken"] = json!(next.to_string());
            Some(next.to_string())
        })
        .flatten()
    }

    /// Adds an account to the chart of accounts; returns its Id.
    pub fn add_account(
        &self,
        realm: &str,
        name: &str,
        account_type: &str,
        sub_type: &str,
    ) -> Option<String> {
        self.with_realm(realm, |r| {
            let id = r.next_id;
            r.next_id += 1;
            let t = crate::common::time::qbo(Timestamp::now(), &r.tz);
            r.entities.entry(QboEntity::Account).or_default().insert(
                id,
                json!({
                    "FullyQualifiedName": name, "domain": "QBO", "Name": name,
                    "Classification": "Asset", "AccountSubType": sub_type, "AccountType": account_type,
                    "CurrencyRef": {"name": "United States Dollar", "value": "USD"},
                    "CurrentBalance": 0, "CurrentBalanceWithSubAccounts": 0, "sparse": false,
                    "MetaData": {"CreateTime": t, "LastUpdatedTime": t}, "Active": true,
                    "SyncToken": "0", "Id": id.to_string(), "SubAccount": false,
                }),
            );
            id.to_string()
        })
    }
}

/// Which location dimension [`QuickBooksSandbox::account_totals_by`] splits by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// `DepartmentRef` (QuickBooks' "Location").
    Department,
    /// `ClassRef`.
    Class,
}

/// A journal line's side (`JournalEntryLineDetail.PostingType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostingType {
    /// `Debit`.
    Debit,
    /// `Credit`.
    Credit,
}

/// One stored JournalEntry, as tests read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntryRecord {
    /// `Id`.
    pub id: String,
    /// `SyncToken`.
    pub sync_token: String,
    /// `DocNumber`, if sent.
    pub doc_number: Option<String>,
    /// `TxnDate`.
    pub txn_date: jiff::civil::Date,
    /// `PrivateNote`, if sent.
    pub private_note: Option<String>,
    /// The entry's own `DepartmentRef` value, if sent.
    pub department: Option<String>,
    /// `TotalAmt` (the total of the debits).
    pub total: Decimal,
    /// The lines, in order.
    pub lines: Vec<JournalLineRecord>,
}

/// One line of a [`JournalEntryRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalLineRecord {
    /// Debit or credit.
    pub posting: PostingType,
    /// `AccountRef` value (account Id).
    pub account: String,
    /// `Amount` (never negative).
    pub amount: Decimal,
    /// `DepartmentRef` value, if any.
    pub department: Option<String>,
    /// `ClassRef` value, if any.
    pub class: Option<String>,
    /// `Description`, if any.
    pub description: Option<String>,
}

impl JournalEntryRecord {
    fn from_json(e: &Value) -> Option<Self> {
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let ref_of = |v: Option<&Value>, k: &str| {
            v.and_then(|d| d.get(k))
                .and_then(|r| r.get("value"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let lines = e
            .get("Line")?
            .as_array()?
            .iter()
            .map(|l| {
                let d = l.get("JournalEntryLineDetail");
                Some(JournalLineRecord {
                    posting: match d?.get("PostingType")?.as_str()? {
                        "Debit" => PostingType::Debit,
                        "Credit" => PostingType::Credit,
                        _ => return None,
                    },
                    account: ref_of(d, "AccountRef")?,
                    amount: crate::common::money::json_decimal(l.get("Amount")?)?,
                    department: ref_of(d, "DepartmentRef"),
                    class: ref_of(d, "ClassRef"),
                    description: text(l, "Description"),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            id: text(e, "Id")?,
            sync_token: text(e, "SyncToken")?,
            doc_number: text(e, "DocNumber"),
            txn_date: text(e, "TxnDate")?.parse().ok()?,
            private_note: text(e, "PrivateNote"),
            department: ref_of(Some(e), "DepartmentRef"),
            total: crate::common::money::json_decimal(e.get("TotalAmt")?)?,
            lines,
        })
    }
}

/// Each part's role on the seeded items (role → item Id), with families
/// (`sales:*`, `tax:*`, `tender:other:*`) for what a test does not name:
/// a mapping a hub connection can use as is.
pub fn role_items() -> std::collections::BTreeMap<String, String> {
    [
        ("sales:*", "20"),
        ("discounts", "35"),
        ("service_charges", "31"),
        ("gratuity", "22"),
        ("tax:*", "23"),
        ("tips", "33"),
        ("gift_cards_sold", "34"),
        ("gift_cards_redeemed", "34"),
        ("refunds", "36"),
        ("tender:card", "37"),
        ("tender:cash", "38"),
        ("tender:house_account", "39"),
        ("tender:other:*", "40"),
        ("fees", "41"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The account a seeded item books to.
pub fn item_account(item: &str) -> Option<String> {
    ITEMS
        .iter()
        .find(|(id, _, _)| id.to_string() == item)
        .map(|(_, _, account)| account.to_string())
}
