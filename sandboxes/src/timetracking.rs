//! Time-tracking sandbox: the hub's own generic REST target for employee
//! time entries. No provider documents it, so this module *is* the contract
//! the hub's client follows:
//!
//! - Every call: `Authorization: Bearer <token>` (see
//!   [`TimeTrackingSandbox::api_token`]); a missing, unknown or expired token
//!   → 401 `{"error":"unauthorized","message":...}`.
//! - `POST /api/timeentries` with `{employeeId, start, end, externalId?, ...}`
//!   (`start`/`end` RFC 3339, `end` not before `start`; other fields are kept)
//!   → 201 with the stored entry (`id`, `version` 1, `createdAt`,
//!   `updatedAt`, `durationMinutes`) and a `Location` header. An
//!   `externalId` already used → 409 `{"error":"conflict","id":<existing>}`.
//!   An `Idempotency-Key` header replays the first answer for the same key
//!   (counted in `requests_per_key` / `creates_per_key` keyed
//!   `("timetracking", key)`).
//! - `PUT /api/timeentries/{id}`: replaces the entry's fields (same rules),
//!   bumps `version`; `If-Match: <version>` → 412 when stale; unknown id → 404.
//! - `GET /api/timeentries/{id}`; `GET /api/timeentries?employeeId&externalId&from&to&page&pageSize`
//!   → `{"items":[...],"page","pageSize","total"}` (entries whose `start` is
//!   in `[from, to)`, by `start`; `pageSize` at most 500, default 100).
//! - Errors are `{"error":<code>,"message":<text>}` with 400/401/404/409/412;
//!   a 429 (only if [`TimeTrackingConfig::limits`] are set) adds `Retry-After`.

use crate::common::gate::{self, Gate, Rules, Shape};
use crate::common::http::{header, json, query_get, query_pairs};
use crate::common::limits::{LimitPlan, Refused};
use crate::common::server::{ConnInfo, ServerHandle, StartError};
use crate::common::time;
use crate::common::tokens::{TokenPolicy, TokenStore};
use crate::common::{Limit, OBSERVE_WINDOW, common_handle};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::response::Response;
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode};
use jiff::Timestamp;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The account every call is charged to.
const ACCOUNT: &str = "timetracking";

/// How to build a time-tracking sandbox.
#[derive(Debug, Clone)]
pub struct TimeTrackingConfig {
    /// Seed for the token and faults.
    pub seed: u64,
    /// Lifetime of the API token issued at start.
    pub token_ttl: Duration,
    /// Rate limits (none by default).
    pub limits: Vec<Limit>,
    /// Window for `Counters::max_calls_per_window`.
    pub observe_window: Duration,
}

impl Default for TimeTrackingConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            token_ttl: Duration::from_secs(365 * 86_400),
            limits: Vec::new(),
            observe_window: OBSERVE_WINDOW,
        }
    }
}

impl TimeTrackingConfig {
    /// Defaults with `seed`.
    pub fn seeded(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }
}

#[derive(Debug, Default)]
struct Entries {
    by_id: BTreeMap<u64, Value>,
    next_id: u64,
    replays: HashMap<String, (StatusCode, Value)>,
}

#[derive(Debug)]
struct TimeApp {
    gate: Gate,
    tokens: TokenStore,
    config: TimeTrackingConfig,
    token: String,
    entries: Mutex<Entries>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json(status, &json!({"error": code, "message": message}))
}

impl Shape for TimeApp {
    fn rate_limited(&self, refused: &Refused) -> Response {
        error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            &format!("Too many requests ({} limit)", refused.name),
        )
    }

    fn server_error(&self, status: StatusCode) -> Response {
        error(status, "server_error", "Injected by the sandbox")
    }
}

impl Rules for TimeApp {
    fn gate(&self) -> &Gate {
        &self.gate
    }

    fn plan(&self, _request: &Request, _conn: &ConnInfo) -> (Option<String>, LimitPlan) {
        (
            Some(ACCOUNT.into()),
            LimitPlan {
                scopes: vec![("api".into(), self.config.limits.clone())],
                ..LimitPlan::default()
            },
        )
    }

    fn authenticate(&self, request: &mut Request) -> Result<(), Response> {
        let expired = self.gate.faults().expire_tokens;
        self.tokens
            .check(request.headers(), expired)
            .map(|_| ())
            .map_err(|_| {
                error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "Missing, unknown or expired bearer token",
                )
            })
    }
}

/// Checks and normalizes an entry body; returns the fields to store.
fn validate(body: &[u8]) -> Result<Map<String, Value>, Response> {
    let bad = |m: &str| error(StatusCode::BAD_REQUEST, "invalid", m);
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad(&format!("body is not JSON: {e}")))?;
    let mut obj = value
        .as_object()
        .cloned()
        .ok_or_else(|| bad("body must be a JSON object"))?;
    for k in ["id", "version", "createdAt", "updatedAt", "durationMinutes"] {
        obj.remove(k);
    }
    if obj
        .get("employeeId")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(bad("employeeId (string) is required"));
    }
    let time_of = |k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .and_then(time::parse_rfc3339)
            .ok_or_else(|| bad(&format!("{k} must be an RFC 3339 date-time")))
    };
    let (start, end) = (time_of("start")?, time_of("end")?);
    if end < start {
        return Err(bad("end must not be before start"));
    }
    obj.insert(
        "durationMinutes".into(),
        json!((end.as_second() - start.as_second()) / 60),
    );
    Ok(obj)
}

fn external_id(entry: &Map<String, Value>) -> Option<&str> {
    entry.get("externalId").and_then(Value::as_str)
}

async fn create(State(app): State<Arc<TimeApp>>, headers: HeaderMap, body: Bytes) -> Response {
    let key = header(&headers, "Idempotency-Key").map(str::to_string);
    if let Some(k) = &key {
        app.gate.stats().keyed_request(ACCOUNT, k);
        if let Some((status, body)) = app.entries.lock().unwrap().replays.get(k) {
            return with_location(json(*status, body), body);
        }
    }
    let fields = match validate(&body) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let mut entries = app.entries.lock().unwrap();
    if let Some(ext) = external_id(&fields)
        && let Some(existing) = entries
            .by_id
            .values()
            .find(|e| e.get("externalId").and_then(Value::as_str) == Some(ext))
    {
        return json(
            StatusCode::CONFLICT,
            &json!({"error": "conflict", "message": format!("externalId {ext} already exists"), "id": existing["id"]}),
        );
    }
    entries.next_id += 1;
    let id = entries.next_id;
    let now = time::rfc3339_ms(Timestamp::now());
    let mut entry = fields;
    entry.insert("id".into(), json!(id.to_string()));
    entry.insert("version".into(), json!(1));
    entry.insert("createdAt".into(), json!(now));
    entry.insert("updatedAt".into(), json!(now));
    let entry = Value::Object(entry);
    entries.by_id.insert(id, entry.clone());
    if let Some(k) = &key {
        entries
            .replays
            .insert(k.clone(), (StatusCode::CREATED, entry.clone()));
        app.gate.stats().keyed_creates(ACCOUNT, k, 1);
    }
    with_location(json(StatusCode::CREATED, &entry), &entry)
}

fn with_location(mut response: Response, entry: &Value) -> Response {
    if let Some(id) = entry.get("id").and_then(Value::as_str)
        && let Ok(v) = HeaderValue::from_str(&format!("/api/timeentries/{id}"))
    {
        response.headers_mut().insert(http::header::LOCATION, v);
    }
    response
}

async fn update(
    State(app): State<Arc<TimeApp>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match validate(&body) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let mut entries = app.entries.lock().unwrap();
    let Some(n) = id
        .parse::<u64>()
        .ok()
        .filter(|n| entries.by_id.contains_key(n))
    else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no time entry {id}"),
        );
    };
    if let Some(ext) = external_id(&fields)
        && entries
            .by_id
            .iter()
            .any(|(k, e)| *k != n && e.get("externalId").and_then(Value::as_str) == Some(ext))
    {
        return error(
            StatusCode::CONFLICT,
            "conflict",
            &format!("externalId {ext} belongs to another entry"),
        );
    }
    let current = entries.by_id[&n].clone();
    let version = current["version"].as_u64().unwrap_or(1);
    if let Some(expected) = header(&headers, "If-Match")
        && expected.trim_matches('"') != version.to_string()
    {
        return error(
            StatusCode::PRECONDITION_FAILED,
            "version_mismatch",
            &format!("the entry is at version {version}"),
        );
    }
    let mut entry = fields;
    entry.insert("id".into(), current["id"].clone());
    entry.insert("version".into(), json!(version + 1));
    entry.insert("createdAt".into(), current["createdAt"].clone());
    entry.insert(
        "updatedAt".into(),
        json!(time::rfc3339_ms(Timestamp::now())),
    );
    let entry = Value::Object(entry);
    entries.by_id.insert(n, entry.clone());
    json(StatusCode::OK, &entry)
}

async fn read(State(app): State<Arc<TimeApp>>, Path(id): Path<String>) -> Response {
    let entries = app.entries.lock().unwrap();
    match id.parse::<u64>().ok().and_then(|n| entries.by_id.get(&n)) {
        Some(e) => json(StatusCode::OK, e),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no time entry {id}"),
        ),
    }
}

async fn list(State(app): State<Arc<TimeApp>>, RawQuery(raw): RawQuery) -> Response {
    let pairs = query_pairs(raw.as_deref());
    let bound = |k: &str| -> Result<Option<Timestamp>, Response> {
        match query_get(&pairs, k) {
            None => Ok(None),
            Some(s) => time::parse_rfc3339(s).map(Some).ok_or_else(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    &format!("{k} must be RFC 3339"),
                )
            }),
        }
    };
    let (from, to) = match (bound("from"), bound("to")) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let number = |k: &str, default: usize| {
        query_get(&pairs, k).map_or(Some(default), |v| v.parse::<usize>().ok())
    };
    let (Some(page), Some(page_size)) = (number("page", 1), number("pageSize", 100)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "page and pageSize must be positive integers",
        );
    };
    if page == 0 || page_size == 0 || page_size > 500 {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "page ≥ 1 and 1 ≤ pageSize ≤ 500",
        );
    }
    let employee = query_get(&pairs, "employeeId");
    let external = query_get(&pairs, "externalId");
    let entries = app.entries.lock().unwrap();
    let mut items: Vec<(Timestamp, Value)> = entries
        .by_id
        .values()
        .filter(|e| employee.is_none_or(|x| e["employeeId"].as_str() == Some(x)))
        .filter(|e| external.is_none_or(|x| e.get("externalId").and_then(Value::as_str) == Some(x)))
        .filter_map(|e| {
            Some((
                e["start"].as_str().and_then(time::parse_rfc3339)?,
                e.clone(),
            ))
        })
        .filter(|(s, _)| from.is_none_or(|f| *s >= f) && to.is_none_or(|t| *s < t))
        .collect();
    items.sort_by_key(|a| a.0);
    let total = items.len();
    let page_items: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(page_size))
        .take(page_size)
        .map(|(_, e)| e)
        .collect();
    json(
        StatusCode::OK,
        &json!({"items": page_items, "page": page, "pageSize": page_size, "total": total}),
    )
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

fn router(app: Arc<TimeApp>) -> Router {
    Router::new()
        .route("/api/timeentries", get(list).post(create))
        .route("/api/timeentries/{id}", get(read).put(update))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            gate::middleware::<TimeApp>,
        ))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::common::MAX_BODY_BYTES,
        ))
        .with_state(app)
}

/// A running time-tracking sandbox.
#[derive(Debug)]
pub struct TimeTrackingSandbox {
    server: ServerHandle,
    app: Arc<TimeApp>,
}

common_handle!(TimeTrackingSandbox);

impl TimeTrackingSandbox {
    /// Starts serving, with one API token issued.
    pub async fn start(config: TimeTrackingConfig) -> Result<Self, StartError> {
        let tokens = TokenStore::new(
            TokenPolicy {
                access_ttl: config.token_ttl,
                refresh_ttl: Duration::ZERO,
                rotate_refresh: false,
                reuse_grace: Duration::ZERO,
                prefix: "tt_",
            },
            config.seed,
        );
        let token = tokens.issue(ACCOUNT, false).access_token;
        let app = Arc::new(TimeApp {
            gate: Gate::new(config.seed, config.observe_window),
            tokens,
            token,
            entries: Mutex::new(Entries::default()),
            config,
        });
        let server = ServerHandle::start("timetracking", router(app.clone())).await?;
        Ok(Self { server, app })
    }

    /// The bearer token the hub uses.
    pub fn api_token(&self) -> String {
        self.app.token.clone()
    }

    /// Issues a new token (for example after [`Self::expire_access_tokens`]).
    pub fn issue_token(&self) -> String {
        self.app.tokens.issue(ACCOUNT, false).access_token
    }

    /// Expires every token issued so far.
    pub fn expire_access_tokens(&self) {
        self.app.tokens.expire_access(None);
    }

    /// Every stored entry, by id.
    pub fn entries(&self) -> Vec<Value> {
        self.app
            .entries
            .lock()
            .unwrap()
            .by_id
            .values()
            .cloned()
            .collect()
    }

    /// One entry.
    pub fn entry(&self, id: &str) -> Option<Value> {
        let n = id.parse::<u64>().ok()?;
        self.app.entries.lock().unwrap().by_id.get(&n).cloned()
    }
}
