//! `hub console`: the operator's web console, for whatever backend is
//! configured (the embedded store, or AWS with the operator's own
//! credentials).
//!
//! Server-rendered HTML ([`maud`]), plain forms, one stylesheet inside the
//! binary, no script. Bound to loopback only. Access:
//!
//! - one sign-in URL is printed, carrying a one-time token; opening it
//!   trades the token for a session cookie (`HttpOnly`, `SameSite=Strict`)
//!   and spends it: a second use is refused;
//! - without a session every page sends the browser to `/login`;
//! - every POST carries the session's CSRF token in its form, checked here
//!   before any handler runs (403 without it);
//! - a request whose `Host` is not the loopback address served is refused
//!   (403), so a page elsewhere cannot reach the console through a DNS name
//!   rebound to 127.0.0.1.
//!
//! Pages: connections (health, last pull, success rate and p95 over the last
//! day with an inline SVG chart, token expiry, unposted records, alerts; a
//! check now), books (a calendar of location × business day by state, each
//! day opening to its journal or receipts line by line), dead letters (per
//! queue, with the reason in the provider's words; redrive one or all after
//! a confirmation), mappings (the keys holding days, each with a picker over
//! the chart of accounts and an effective date), alerts (the history of
//! state changes).

use anyhow::{Context, Result, anyhow};
use axum::Router;
use axum::body::Body;
use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use maud::{DOCTYPE, Markup, html};
use rust_decimal::Decimal;
use serde::Deserialize;
use shared::Stores;
use shared::ids::MessageId;
use shared::ids::{ConnectionId, TenantId};
use shared::model::journal::PostingMode;
use shared::model::{Connection, Direction, Provider, Record};
use shared::pipelines::health::{self, ConnectionHealth, State as Health};
use shared::pipelines::reconcile::{Reconciliation, reconcile, reconcile_days};
use shared::ports::{CallOutcome, DestinationStatus, StoreError};
use shared::providers::ProviderClients;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

const COOKIE: &str = "hub_console";
const CSS: &str = include_str!("console.css");
/// The largest form the console takes.
const MAX_FORM: usize = 64 * 1024;
/// The queues whose dead letters the console shows.
const QUEUES: [&str; 3] = [
    shared::stores::WORK_QUEUE,
    shared::stores::PUSH_QUEUE,
    shared::stores::PULL_QUEUE,
];
/// Days the books calendar shows by default, ending today.
const CALENDAR_DAYS: i64 = 35;

/// The console's state, shared by its handlers.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The tokens stay out of any debug output.
        f.debug_struct("Console")
            .field("addr", &self.inner.addr)
            .finish_non_exhaustive()
    }
}

/// Clients of a connection's own, where it has them (the demo's Square
/// merchants are a sandbox each); `None`: the console's clients.
pub type ClientsFor = Arc<dyn Fn(&Connection) -> Option<ProviderClients> + Send + Sync>;

struct Inner {
    stores: Stores,
    clients: ProviderClients,
    clients_for: ClientsFor,
    addr: SocketAddr,
    /// The `Host` values this console answers to.
    hosts: [String; 2],
    /// The one-time sign-in token, until it is spent.
    login: Mutex<Option<String>>,
    /// Session id to its CSRF token.
    sessions: Mutex<HashMap<String, String>>,
    /// Post what a redrive sends back, here (the embedded backend has no
    /// push function consuming the queue).
    work: bool,
}

/// A long random token: two v4 UUIDs, 244 random bits.
fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

impl Console {
    /// A console serving `stores` at `addr` (a loopback address). `work`:
    /// drain the push queue after a redrive (the embedded backend).
    pub fn new(
        stores: Stores,
        clients: ProviderClients,
        clients_for: ClientsFor,
        addr: SocketAddr,
        work: bool,
    ) -> Self {
        let port = addr.port();
        Console {
            inner: Arc::new(Inner {
                stores,
                clients,
                clients_for,
                addr,
                hosts: [format!("127.0.0.1:{port}"), format!("localhost:{port}")],
                login: Mutex::new(Some(random_token())),
                sessions: Mutex::new(HashMap::new()),
                work,
            }),
        }
    }

    /// The sign-in URL, carrying the one-time token (while it is unspent).
    pub fn login_url(&self) -> Option<String> {
        let token = self.inner.login.lock().ok()?.clone()?;
        Some(format!(
            "http://{}/login?token={token}",
            self.inner.hosts[0]
        ))
    }

    /// The console's routes behind its guard.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(connections_page))
            .route("/check", post(check_now))
            .route("/books", get(books_page))
            .route("/books/day", get(day_page))
            .route("/dlq", get(dlq_page))
            .route("/dlq/confirm", get(dlq_confirm))
            .route("/dlq/redrive", post(dlq_redrive))
            .route("/mappings", get(mappings_page).post(mappings_save))
            .route("/alerts", get(alerts_page))
            .route("/login", get(login))
            .route("/assets/console.css", get(stylesheet))
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(self.clone(), guard))
            .with_state(self.clone())
    }
}

/// Serves a console on `listener` (which must be bound to loopback) until
/// `shutdown` resolves; `ready` is given the sign-in URL first.
pub async fn serve(
    listener: TcpListener,
    stores: Stores,
    clients: ProviderClients,
    clients_for: ClientsFor,
    ready: impl FnOnce(&str),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        return Err(anyhow!(
            "the console binds to loopback only ({addr} is not): it is for an operator on this machine"
        ));
    }
    let work = stores.backend == "embedded";
    let console = Console::new(stores, clients, clients_for, addr, work);
    ready(&console.login_url().unwrap_or_default());
    axum::serve(listener, console.router())
        .with_graceful_shutdown(shutdown)
        .await
        .context("serve the console")
}

/// Binds `addr`, refusing any address that is not loopback.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    if !addr.ip().is_loopback() {
        return Err(anyhow!(
            "--addr {addr}: the console binds to loopback only (127.0.0.1 or ::1)"
        ));
    }
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("listen on {addr}"))
}

fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The session's CSRF token, for the page's forms.
#[derive(Clone)]
struct Csrf(String);

/// Host, session and CSRF checks before any handler; security headers on
/// every answer.
async fn guard(State(console): State<Console>, req: Request, next: Next) -> Response {
    let mut response = admit(&console, req, next).await;
    let h = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn admit(console: &Console, req: Request, next: Next) -> Response {
    let inner = &console.inner;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !inner.hosts.iter().any(|h| h == host) {
        return refusal(
            StatusCode::FORBIDDEN,
            "Refused: not this console's address",
            &format!(
                "The request named the host {host:?}; this console answers only at http://{}. A page on another site cannot reach it through a name pointed at this machine.",
                inner.hosts[0]
            ),
            "Open the URL `hub console` printed.",
        );
    }
    let path = req.uri().path();
    if path == "/login" || path == "/assets/console.css" {
        return next.run(req).await;
    }
    let csrf = session_of(req.headers()).and_then(|sid| {
        inner
            .sessions
            .lock()
            .ok()
            .and_then(|s| s.get(&sid).cloned())
    });
    let Some(csrf) = csrf else {
        return Redirect::to("/login").into_response();
    };
    let mut req = req;
    if req.method() == Method::POST {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
            return refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Refused: form too large",
                &format!("A console form is at most {MAX_FORM} bytes."),
                "Go back and send a smaller one.",
            );
        };
        let sent = url::form_urlencoded::parse(&bytes)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned());
        if !sent.is_some_and(|s| same(&s, &csrf)) {
            return refusal(
                StatusCode::FORBIDDEN,
                "Refused: the form's CSRF token is missing or wrong",
                "Every change the console makes comes from one of its own pages, which carry a token for your session. This request did not.",
                "Reload the page and submit it again.",
            );
        }
        req = Request::from_parts(parts, Body::from(bytes));
    }
    req.extensions_mut().insert(Csrf(csrf));
    next.run(req).await
}

fn refusal(status: StatusCode, title: &str, what: &str, todo: &str) -> Response {
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) } link rel="stylesheet" href="/assets/console.css"; }
            body { main {
                h1 { (title) }
                div.error { p { (what) } p { strong { "What to do: " } (todo) } }
            } }
        }
    };
    (status, maud_html(body)).into_response()
}

fn maud_html(m: Markup) -> ([(header::HeaderName, &'static str); 1], String) {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        m.into_string(),
    )
}

async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

async fn not_found() -> Response {
    refusal(
        StatusCode::NOT_FOUND,
        "No such page",
        "The console has no page at this address.",
        "Use the links at the top of any page.",
    )
}

#[derive(Deserialize)]
struct LoginQuery {
    token: Option<String>,
}

async fn login(State(console): State<Console>, Query(q): Query<LoginQuery>) -> Response {
    let inner = &console.inner;
    let Some(token) = q.token else {
        let body = html! {
            (DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; title { "Sign in · Integration Hub" } link rel="stylesheet" href="/assets/console.css"; }
                body { main #login {
                    h1 { "Sign in" }
                    p { "Open the URL " code { "hub console" } " printed when it started. It signs you in once; for another session, start " code { "hub console" } " again." }
                } }
            }
        };
        return (StatusCode::OK, maud_html(body)).into_response();
    };
    let spent = match inner.login.lock() {
        Ok(mut l) => match l.as_deref() {
            Some(expected) if same(expected, &token) => {
                *l = None;
                true
            }
            _ => false,
        },
        Err(_) => false,
    };
    if !spent {
        return refusal(
            StatusCode::FORBIDDEN,
            "Refused: this sign-in link is spent or wrong",
            "Each link `hub console` prints signs in once, and this one has been used already or is not this console's.",
            "Start `hub console` again for a new link.",
        );
    }
    let sid = random_token();
    if let Ok(mut s) = inner.sessions.lock() {
        s.insert(sid.clone(), random_token());
    }
    let cookie = format!("{COOKIE}={sid}; HttpOnly; SameSite=Strict; Path=/");
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// An error shown as a person reads it.
struct PageError {
    what: String,
    detail: String,
    todo: String,
}

impl PageError {
    fn new(what: &str, e: impl std::fmt::Display, todo: &str) -> Self {
        PageError {
            what: what.into(),
            detail: e.to_string(),
            todo: todo.into(),
        }
    }
    fn store(e: impl std::fmt::Display) -> Self {
        Self::new(
            "Reading the hub's state failed",
            e,
            "Check that the configured store is reachable (`hub config`), then reload.",
        )
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = html! {
            (DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; title { "Error · Integration Hub" } link rel="stylesheet" href="/assets/console.css"; }
                body { main {
                    h1 { (self.what) }
                    div.error {
                        p { (self.detail) }
                        p { strong { "What to do: " } (self.todo) }
                    }
                    p { a href="/" { "Back to the connections" } }
                } }
            }
        };
        (StatusCode::INTERNAL_SERVER_ERROR, maud_html(body)).into_response()
    }
}

type Page = Result<Response, PageError>;

const NAV: [(&str, &str); 5] = [
    ("/", "Connections"),
    ("/books", "Books"),
    ("/dlq", "Dead letters"),
    ("/mappings", "Mappings"),
    ("/alerts", "Alerts"),
];

fn layout(
    console: &Console,
    title: &str,
    active: &str,
    flash: Option<&str>,
    body: Markup,
) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Integration Hub" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                header {
                    strong { "Integration Hub" }
                    nav {
                        @for (href, name) in NAV {
                            a href=(href) class=[(name == active).then_some("active")] { (name) }
                        }
                    }
                    span.backend { (console.inner.stores.backend) " backend" }
                }
                main {
                    h1 { (title) }
                    @if let Some(f) = flash { div.flash role="status" { (f) } }
                    (body)
                }
            }
        }
    };
    (StatusCode::OK, maud_html(page)).into_response()
}

fn csrf_field(csrf: &Csrf) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf.0); }
}

fn when(t: Option<Timestamp>) -> String {
    t.map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "never".into())
}

fn state_word(s: Health) -> &'static str {
    match s {
        Health::Healthy => "healthy",
        Health::Degraded => "degraded",
        Health::Unhealthy => "unhealthy",
    }
}

#[derive(Deserialize, Default)]
struct Flash {
    done: Option<String>,
}

// ---- Connections ----

/// One hour of a connection's calls.
#[derive(Default, Clone, Copy)]
struct Hour {
    ok: u32,
    failed: u32,
    p95: u64,
}

/// The last 24 hours of calls, hour by hour, oldest first.
async fn hours(stores: &Stores, c: &Connection, now: Timestamp) -> Result<Vec<Hour>, PageError> {
    let key = format!("{}:{}", c.provider, c.account_id);
    let since = now - SignedDuration::from_hours(24);
    let calls = stores
        .calls
        .since(&key, since)
        .await
        .map_err(PageError::store)?;
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); 24];
    let mut out = vec![Hour::default(); 24];
    for call in calls {
        let age = now.duration_since(call.at).as_secs().max(0) / 3600;
        let Some(i) = 23usize.checked_sub(usize::try_from(age).unwrap_or(usize::MAX)) else {
            continue;
        };
        if call.outcome == CallOutcome::Ok {
            out[i].ok += 1;
        } else {
            out[i].failed += 1;
        }
        latencies[i].push(call.latency_ms);
    }
    for (h, mut l) in out.iter_mut().zip(latencies) {
        l.sort_unstable();
        h.p95 = health::percentile(&l, 95).unwrap_or(0);
    }
    Ok(out)
}

/// Calls per hour as stacked bars (succeeded, failed), drawn here.
fn spark(hours: &[Hour]) -> Markup {
    let most = hours
        .iter()
        .map(|h| h.ok + h.failed)
        .max()
        .unwrap_or(0)
        .max(1);
    let (w, gap, height) = (6u32, 1u32, 28u32);
    let width = (w + gap) * u32::try_from(hours.len()).unwrap_or(24);
    let scale = |n: u32| n * height / most;
    html! {
        svg.spark width=(width) height=(height) viewBox=(format!("0 0 {width} {height}")) role="img" aria-label="calls per hour, last 24 hours" xmlns="http://www.w3.org/2000/svg" {
            @for (i, h) in hours.iter().enumerate() {
                @let x = (w + gap) * u32::try_from(i).unwrap_or(0);
                @let ok = scale(h.ok);
                @let bad = scale(h.failed).max(u32::from(h.failed > 0));
                g {
                    title { (format!("{} h ago: {} calls, {} failed, p95 {} ms", 23 - i, h.ok + h.failed, h.failed, h.p95)) }
                    rect x=(x) y=(height - ok - bad) width=(w) height=(ok) fill="#3f9a64" {}
                    rect x=(x) y=(height - bad) width=(w) height=(bad) fill="#c04848" {}
                    @if h.ok + h.failed == 0 { rect x=(x) y=(height - 1) width=(w) height="1" fill="#c9ced6" {} }
                }
            }
        }
    }
}

async fn reports(
    stores: &Stores,
) -> Result<Vec<(Connection, Option<ConnectionHealth>)>, PageError> {
    let mut out = Vec::new();
    for c in stores
        .connections
        .list_all()
        .await
        .map_err(PageError::store)?
    {
        let r = health::last_report(stores, &c)
            .await
            .map_err(PageError::store)?;
        out.push((c, r));
    }
    Ok(out)
}

async fn connections_page(
    State(console): State<Console>,
    axum::Extension(csrf): axum::Extension<Csrf>,
    Query(flash): Query<Flash>,
) -> Page {
    let stores = &console.inner.stores;
    let now = Timestamp::now();
    let mut rows = Vec::new();
    for (c, r) in reports(stores).await? {
        let h = hours(stores, &c, now).await?;
        rows.push((c, r, h));
    }
    let body = html! {
        p.lead { "Every tenant's connections, as the last health check found them. The chart is calls per hour over the last day (green succeeded, red failed)." }
        form.inline method="post" action="/check" {
            (csrf_field(&csrf))
            button type="submit" { "Check every connection now" }
        }
        table #connections {
            thead { tr {
                th { "Tenant" } th { "Connection" } th { "Provider" } th { "State" }
                th { "Last pull" } th.num { "Success (1 h)" } th.num { "p95 (1 h)" }
                th { "Calls, last 24 h" } th.num { "Token days left" } th.num { "Unposted" } th { "Alerts" } th {}
            } }
            tbody {
                @for (c, r, h) in &rows {
                    tr data-tenant=(c.tenant) data-connection=(c.id) {
                        td { (c.tenant) } td { (c.id) } td { (c.provider) }
                        @match r {
                            Some(r) => {
                                td { span class=(format!("badge {}", state_word(r.state))) data-field="state" { (state_word(r.state)) } br; span.muted { "checked " (when(Some(r.checked_at))) } }
                                td data-field="last_pull" { (if c.provider.is_accounting() { "-".to_string() } else { when(r.last_pull) }) }
                                td.num { (r.success_permille.map(|p| format!("{}.{}%", p / 10, p % 10)).unwrap_or_else(|| "-".into())) }
                                td.num { (r.p95_ms.map(|p| format!("{p} ms")).unwrap_or_else(|| "-".into())) }
                                td { (spark(h)) }
                                td.num { (r.refresh_token_days_left.map(|d| d.to_string()).unwrap_or_else(|| "-".into())) }
                                td.num data-field="unposted" { (r.unposted) }
                                td.reasons { @if r.reasons.is_empty() { "none" } @else { (r.reasons.join("; ")) } }
                            }
                            None => {
                                td { span.badge.pending data-field="state" { "not checked yet" } }
                                td data-field="last_pull" { "-" } td.num { "-" } td.num { "-" }
                                td { (spark(h)) } td.num { "-" } td.num data-field="unposted" { "-" }
                                td.reasons { "No health check has run: press Check now, or wait for the health monitor." }
                            }
                        }
                        td {
                            form.inline method="post" action="/check" {
                                (csrf_field(&csrf))
                                input type="hidden" name="tenant" value=(c.tenant);
                                input type="hidden" name="connection" value=(c.id);
                                button type="submit" data-check=(format!("{}/{}", c.tenant, c.id)) { "Check now" }
                            }
                        }
                    }
                }
            }
        }
        @if rows.is_empty() { p { "No connections yet: add one with " code { "hub connection add" } "." } }
    };
    Ok(layout(
        &console,
        "Connections",
        "Connections",
        flash.done.as_deref(),
        body,
    ))
}

#[derive(Deserialize)]
struct CheckForm {
    /// With `connection`: check that one; without: every connection.
    tenant: Option<TenantId>,
    connection: Option<ConnectionId>,
}

async fn check_now(State(console): State<Console>, Form(f): Form<CheckForm>) -> Page {
    let inner = &console.inner;
    let alerter = health::Alerter::new(None);
    let thresholds = health::Thresholds::default();
    let failed = |e: StoreError| {
        PageError::new(
            "The health check failed",
            e,
            "Check the store and try again.",
        )
    };
    let reports = match (&f.tenant, &f.connection) {
        (Some(tenant), Some(id)) => {
            let one = health::monitor_one(
                &inner.stores,
                &inner.clients,
                inner.clients_for.as_ref(),
                tenant,
                id,
                &alerter,
                &thresholds,
            )
            .await
            .map_err(failed)?;
            let Some(report) = one else {
                return Err(PageError::new(
                    "No such connection",
                    format!("{tenant}/{id}"),
                    "It may have been removed: reload the page.",
                ));
            };
            let done = format!(
                "Checked {tenant}/{id}: {}{}.",
                state_word(report.state),
                if report.reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", report.reasons.join("; "))
                }
            );
            return Ok(Redirect::to(&format!("/?done={}", urlencode(&done))).into_response());
        }
        _ => health::monitor_with(
            &inner.stores,
            &inner.clients,
            inner.clients_for.as_ref(),
            &alerter,
            &thresholds,
        )
        .await
        .map_err(failed)?,
    };
    let healthy = reports
        .iter()
        .filter(|r| r.state == Health::Healthy)
        .count();
    let done = format!(
        "Checked {} connection(s): {healthy} healthy, {} need attention.",
        reports.len(),
        reports.len() - healthy
    );
    Ok(Redirect::to(&format!("/?done={}", urlencode(&done))).into_response())
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---- Books ----

/// A location-day's state in one destination, for the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum DayState {
    Reconciled,
    Adjusted,
    Pending,
    Held,
    Failed,
}

impl DayState {
    fn word(self) -> &'static str {
        match self {
            DayState::Reconciled => "reconciled",
            DayState::Adjusted => "adjusted",
            DayState::Pending => "pending",
            DayState::Held => "held",
            DayState::Failed => "failed",
        }
    }
    fn explain(self) -> &'static str {
        match self {
            DayState::Reconciled => "the books hold the day to the cent",
            DayState::Adjusted => "reconciled, with an adjustment posted after the books closed",
            DayState::Pending => "not (all) posted yet",
            DayState::Held => "held: a key has no account (Mappings)",
            DayState::Failed => "the books refused a posting (Dead letters)",
        }
    }
}

/// Each location's state on the day (the worst of its destinations).
fn day_states(r: &Reconciliation) -> BTreeMap<String, DayState> {
    let mut out = BTreeMap::new();
    for l in &r.locations {
        let mut worst = DayState::Reconciled;
        for d in &l.destinations {
            let mine = r.issues.iter().filter(|i| {
                i.destination == d.destination && i.location.as_deref() == Some(&l.location)
            });
            let mut s = if d.adjustments > 0 {
                DayState::Adjusted
            } else {
                DayState::Reconciled
            };
            for i in mine {
                let this = match i.problem.as_str() {
                    "needs mapping" | "no mapping" => DayState::Held,
                    "failed" | "unreadable" => DayState::Failed,
                    _ => DayState::Pending,
                };
                s = s.max(this);
            }
            if !d.difference.is_zero() {
                s = s.max(DayState::Pending);
            }
            worst = worst.max(s);
        }
        if l.destinations.is_empty() {
            worst = DayState::Pending;
        }
        out.insert(l.location.clone(), worst);
    }
    // A row the hub cannot read belongs to no location: the whole day failed.
    if r.issues.iter().any(|i| i.location.is_none()) {
        for s in out.values_mut() {
            *s = DayState::Failed;
        }
    }
    out
}

#[derive(Deserialize, Default)]
struct Range {
    from: Option<Date>,
    to: Option<Date>,
}

async fn books_page(State(console): State<Console>, Query(range): Query<Range>) -> Page {
    let stores = &console.inner.stores;
    let today = jiff::tz::TimeZone::UTC.to_datetime(Timestamp::now()).date();
    let to = range.to.unwrap_or(today);
    let from = range.from.unwrap_or_else(|| {
        to.checked_sub(jiff::Span::new().days(CALENDAR_DAYS - 1))
            .unwrap_or(to)
    });
    let mut dates = Vec::new();
    let mut d = from;
    while d <= to && dates.len() < 92 {
        dates.push(d);
        d = d
            .tomorrow()
            .map_err(|e| PageError::new("Bad date range", e, "Pick an earlier date."))?;
    }
    // (tenant, location) -> date -> state
    let mut grid: BTreeMap<(TenantId, String), BTreeMap<Date, DayState>> = BTreeMap::new();
    let mut shown: Vec<Date> = Vec::new();
    for t in stores
        .connections
        .list_tenants()
        .await
        .map_err(PageError::store)?
    {
        for r in reconcile_days(stores, &t.id, &dates)
            .await
            .map_err(PageError::store)?
        {
            for (loc, s) in day_states(&r) {
                grid.entry((t.id.clone(), loc))
                    .or_default()
                    .insert(r.date, s);
                if !shown.contains(&r.date) {
                    shown.push(r.date);
                }
            }
        }
    }
    shown.sort();
    let body = html! {
        p.lead {
            "Each location's business days from " (from) " to " (to) ", coloured by where they stand in the books. A day opens to its journal or receipts."
        }
        p.legend {
            @for s in [DayState::Reconciled, DayState::Adjusted, DayState::Pending, DayState::Held, DayState::Failed] {
                span class=(format!("badge {}", s.word())) title=(s.explain()) { (s.word()) }
            }
        }
        @if grid.is_empty() {
            p { "No business day in this range has records. Pick another range: " code { "/books?from=YYYY-MM-DD&to=YYYY-MM-DD" } "." }
        } @else {
            table.calendar #calendar {
                thead { tr {
                    th { "Tenant" } th { "Location" }
                    @for d in &shown { th.day { (d.strftime("%a")) br; (d.strftime("%b %d")) } }
                } }
                tbody {
                    @for ((tenant, loc), days) in &grid {
                        tr {
                            td { (tenant) } td { (loc) }
                            @for d in &shown {
                                @match days.get(d) {
                                    Some(s) => td class=(s.word()) data-tenant=(tenant) data-location=(loc) data-date=(d) data-state=(s.word()) {
                                        a href=(format!("/books/day?tenant={}&date={d}", urlencode(tenant.as_str()))) title=(format!("{tenant} {loc} {d}: {}", s.explain())) { (s.word()) }
                                    },
                                    None => td.empty {},
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(&console, "Books", "Books", None, body))
}

#[derive(Deserialize)]
struct DayQuery {
    tenant: TenantId,
    date: Date,
}

fn money(d: Decimal) -> String {
    d.round_dp(2).to_string()
}

async fn day_page(State(console): State<Console>, Query(q): Query<DayQuery>) -> Page {
    let stores = &console.inner.stores;
    let r = reconcile(stores, &q.tenant, q.date)
        .await
        .map_err(PageError::store)?;
    let states = day_states(&r);
    let conns = stores
        .connections
        .list_for_tenant(&q.tenant)
        .await
        .map_err(PageError::store)?;
    let rows = stores
        .ledger
        .list_for_business_date(&q.tenant, q.date)
        .await
        .map_err(PageError::store)?;
    // Daily journals, line by line, per (destination, location).
    let mut journals = Vec::new();
    for dest in conns
        .iter()
        .filter(|c| c.provider.is_accounting() && c.books.mode == PostingMode::DailySummary)
    {
        for l in &r.locations {
            let Some(source) = conns.iter().find(|c| c.id.as_str() == l.location) else {
                continue;
            };
            let location = shared::pipelines::days::day_location(dest, source);
            let detail =
                shared::pipelines::journal::day_detail(stores, dest, source, &location, q.date)
                    .await
                    .map_err(PageError::store)?;
            journals.push((dest.clone(), l.location.clone(), detail));
        }
    }
    let title = format!("{} · {}", q.tenant, q.date);
    let body = html! {
        p.lead {
            (if r.reconciled { "Reconciled: the books hold this day to the cent." } else { "Not reconciled: see the issues below." })
            " Amounts are signed as " code { "hub reconcile" } " gives them (sales positive)."
        }
        h2 { "Per location and destination" }
        table #summary {
            thead { tr {
                th { "Location" } th { "Destination" } th { "State" } th.num { "Records" }
                th.num { "POS total" } th.num { "Posted" } th.num { "Difference" } th.num { "Issues" }
            } }
            tbody {
                @for l in &r.locations {
                    @for d in &l.destinations {
                        tr data-location=(l.location) data-destination=(d.destination) {
                            td { (l.location) } td { (d.destination) }
                            td { @if let Some(s) = states.get(&l.location) { span class=(format!("badge {}", s.word())) { (s.word()) } } }
                            td.num data-field="records" { (l.records) }
                            td.num data-field="pos_total" { (money(l.pos_total)) }
                            td.num data-field="posted_total" { (money(d.posted_total)) }
                            td.num data-field="difference" { (money(d.difference)) }
                            td.num data-field="issues" { (d.issues) }
                        }
                    }
                }
            }
        }
        @if !r.issues.is_empty() {
            h2 { "Issues" }
            table #issues {
                thead { tr { th { "Problem" } th { "Destination" } th { "Record or day" } th.num { "Amount" } th { "Why (the provider's words, where it answered)" } } }
                tbody {
                    @for i in &r.issues {
                        tr { td { (i.problem) } td { (i.destination) } td.mono { (i.key) } td.num { (money(i.amount)) } td.reasons { (i.reason.clone().unwrap_or_default()) } }
                    }
                }
            }
        }
        @for (dest, loc, d) in &journals {
            h2 { "Journal for " (loc) " in " (dest.provider) " (" (dest.id) ")" }
            dl.facts {
                dt { "Number" } dd.mono { (d.doc_number) }
                dt { "Entry id in the books" } dd.mono data-field="entry_id" { (d.entry_id.clone().unwrap_or_else(|| "not posted".into())) }
                dt { "Records" } dd { (d.records) }
                @if !d.adjustments.is_empty() {
                    dt { "Adjustments" }
                    dd { @for a in &d.adjustments { span.mono { (a.id) } " on " (a.date) "; " } }
                }
                @if !d.unmapped.is_empty() {
                    dt { "Held" }
                    dd { "No account for " (d.unmapped.join(", ")) ": " a href="/mappings" { "map them" } }
                }
                @if !d.held_records.is_empty() {
                    dt { "Left out" }
                    dd { (d.held_records.join("; ")) }
                }
            }
            table.journal data-destination=(dest.provider) data-location=(loc) {
                thead { tr { th { "Account" } th { "Roles" } th.num { "Expected (debit +)" } th.num { "Posted" } th.num { "Difference" } } }
                tbody {
                    @for line in &d.lines {
                        tr data-account=(line.account) {
                            td.mono { (line.account) } td { (line.roles.join(", ")) }
                            td.num { (money(line.expected)) } td.num { (money(line.posted)) } td.num { (money(line.difference)) }
                        }
                    }
                }
            }
        }
        h2 { "Records behind the day" }
        table #records {
            thead { tr { th { "Record" } th { "Location" } th.num { "Amount" } th.num { "Version" } th { "Per destination: status, id in the books, last error" } } }
            tbody {
                @for row in &rows {
                    @let (loc, amount) = match serde_json::from_value::<Record>(row.payload.clone()) {
                        Ok(Record::Transaction(t)) => (t.connection.to_string(), Some(match t.direction { Direction::Credit => t.amount, Direction::Debit => -t.amount })),
                        _ => (String::new(), None),
                    };
                    tr {
                        td.mono { (row.key.kind.as_str()) " " (row.key.source_id) }
                        td { (loc) }
                        td.num { (amount.map(money).unwrap_or_default()) }
                        td.num { (row.version) }
                        td {
                            @if row.destinations.is_empty() { span.muted { "booked in the daily journal" } }
                            @for (p, s) in &row.destinations {
                                div {
                                    strong { (p) } ": "
                                    (match s.status { DestinationStatus::Posted => "posted", DestinationStatus::Pending => "pending", DestinationStatus::Failed => "failed" })
                                    @if let Some(id) = &s.remote_id { " · " span.mono { (id) } }
                                    @if let Some(e) = &s.last_error { " · " span.muted { (e) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(&console, &title, "Books", None, body))
}

// ---- Dead letters ----

async fn dlq_page(State(console): State<Console>, Query(flash): Query<Flash>) -> Page {
    let stores = &console.inner.stores;
    let mut queues = Vec::new();
    for name in QUEUES {
        let Some(q) = stores.queue(name) else {
            continue;
        };
        let dead = q.dead_letters(1000).await.map_err(PageError::store)?;
        let mut items = Vec::new();
        for d in dead {
            let why = shared::ops::dlq::explain(stores, name, &d)
                .await
                .map_err(PageError::store)?;
            items.push((d, why));
        }
        queues.push((name, items));
    }
    let body = html! {
        p.lead { "Messages each queue gave up on after its retries, with why. A redrive sends a message back to its queue; the console asks first." }
        @for (name, items) in &queues {
            h2 { "The " (name) " queue: " (items.len()) " parked" }
            @if items.is_empty() {
                p.muted { "Nothing parked." }
            } @else {
                p { a href=(format!("/dlq/confirm?queue={name}&all=true")) { "Redrive all " (items.len()) "…" } }
                table.dlq data-queue=(name) {
                    thead { tr { th { "Message" } th.num { "Receives" } th { "Sent" } th { "Why" } th { "The provider's words" } th { "" } } }
                    tbody {
                        @for (d, why) in items {
                            tr data-id=(d.id.as_str()) {
                                td.mono { (d.id.as_str()) }
                                td.num { (d.receive_count) }
                                td { (when(d.sent_at)) }
                                td { (why.summary) @if !why.still_needed { br; span.muted { "(a redrive would post nothing: done since)" } } }
                                td.reasons { (why.last_error.clone().unwrap_or_default()) }
                                td { a href=(format!("/dlq/confirm?queue={name}&id={}", urlencode(d.id.as_str()))) { "Redrive…" } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(
        &console,
        "Dead letters",
        "Dead letters",
        flash.done.as_deref(),
        body,
    ))
}

#[derive(Deserialize)]
struct Redrive {
    queue: String,
    id: Option<String>,
    #[serde(default)]
    all: bool,
}

async fn dlq_confirm(
    State(console): State<Console>,
    axum::Extension(csrf): axum::Extension<Csrf>,
    Query(q): Query<Redrive>,
) -> Page {
    let what = if q.all {
        format!("every message parked in the {} queue", q.queue)
    } else {
        format!(
            "message {} of the {} queue",
            q.id.clone().unwrap_or_default(),
            q.queue
        )
    };
    let body = html! {
        p { "Send " (what) " back to be processed again?" }
        form method="post" action="/dlq/redrive" {
            (csrf_field(&csrf))
            input type="hidden" name="queue" value=(q.queue);
            @if let Some(id) = &q.id { input type="hidden" name="id" value=(id); }
            @if q.all { input type="hidden" name="all" value="true"; }
            button type="submit" #confirm { "Yes, redrive" } " "
            a href="/dlq" { "Cancel" }
        }
    };
    Ok(layout(&console, "Redrive?", "Dead letters", None, body))
}

async fn dlq_redrive(State(console): State<Console>, Form(f): Form<Redrive>) -> Page {
    let inner = &console.inner;
    let q = inner
        .stores
        .queue(&f.queue)
        .filter(|_| QUEUES.contains(&f.queue.as_str()))
        .ok_or_else(|| {
            PageError::new(
                "No such queue",
                &f.queue,
                "Go back to the dead letters and pick one there.",
            )
        })?;
    let ids: Vec<MessageId> =
        f.id.iter()
            .map(|i| MessageId::new(i.clone()))
            .collect::<Result<_, _>>()
            .map_err(|e| {
                PageError::new(
                    "Not a message id",
                    e,
                    "Go back to the dead letters and pick one there.",
                )
            })?;
    let moved = q
        .redrive(if f.all { None } else { Some(&ids) })
        .await
        .map_err(|e| {
            PageError::new(
                "The redrive failed",
                e,
                "Try again; the message stays parked.",
            )
        })?;
    let mut done = format!("{moved} message(s) sent back to the {} queue.", f.queue);
    if inner.work && f.queue == shared::stores::PUSH_QUEUE && moved > 0 {
        let pusher =
            shared::pipelines::push::Pusher::new(inner.stores.clone(), inner.clients.clone());
        let outcomes = pusher
            .drain(inner.stores.push_queue.as_ref(), 100)
            .await
            .map_err(PageError::store)?;
        use shared::pipelines::push::PushOutcome;
        let count = |f: fn(&PushOutcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
        done.push_str(&format!(
            " Pushed: {} posted, {} already done, {} to retry, {} parked again.",
            count(|o| matches!(o, PushOutcome::Posted(_))),
            count(|o| matches!(o, PushOutcome::Skipped(_))),
            count(|o| matches!(o, PushOutcome::Retry(..))),
            count(|o| matches!(o, PushOutcome::Park(_))),
        ));
    }
    Ok(Redirect::to(&format!("/dlq?done={}", urlencode(&done))).into_response())
}

// ---- Mappings ----

async fn mappings_page(
    State(console): State<Console>,
    axum::Extension(csrf): axum::Extension<Csrf>,
) -> Page {
    let inner = &console.inner;
    let stores = &inner.stores;
    let mut sections = Vec::new();
    for t in stores
        .connections
        .list_tenants()
        .await
        .map_err(PageError::store)?
    {
        let books: Vec<Connection> = stores
            .connections
            .list_for_tenant(&t.id)
            .await
            .map_err(PageError::store)?
            .into_iter()
            .filter(|c| c.provider.is_accounting() && c.books.mode == PostingMode::DailySummary)
            .collect();
        if books.is_empty() {
            continue;
        }
        // The chart, from the cache where it is fresh.
        let charts = shared::ops::accounts::charts(stores, &inner.clients, &t.id, false).await;
        for dest in books {
            let held = shared::ops::mappings::held_keys(stores, &dest)
                .await
                .map_err(PageError::store)?;
            let chart = match &charts {
                Ok(list) => Ok(list
                    .iter()
                    .find(|ch| ch.connection == dest.id)
                    .map(|ch| ch.accounts.clone())
                    .unwrap_or_default()),
                Err(e) => Err(e.to_string()),
            };
            let suggestions = match &chart {
                Ok(accounts) => {
                    shared::ops::mappings::suggest(&held.keys().cloned().collect(), accounts)
                }
                Err(_) => Vec::new(),
            };
            sections.push((t.id.clone(), dest, held, chart, suggestions));
        }
    }
    let body = html! {
        p.lead { "The keys that hold days: each needs an account, from a date on. Saving one posts the days it holds and says which changed." }
        @if sections.is_empty() { p { "No books connection posts daily summaries." } }
        @for (tenant, dest, held, chart, suggestions) in &sections {
            h2 { (tenant) " · " (dest.id) " (" (dest.provider) ")" }
            @if let Err(e) = chart {
                div.error { p { "The chart of accounts could not be read from " (dest.provider) ": " (e) } p { strong { "What to do: " } "check the connection on the Connections page; meanwhile type the account below." } }
            }
            @if held.is_empty() {
                p.muted data-tenant=(tenant) { "No day is held for mapping." }
            } @else {
                table.held data-tenant=(tenant) data-connection=(dest.id) {
                    thead { tr { th { "Key" } th { "Days held" } th { "Account" } th { "From" } th { "" } } }
                    tbody {
                        @for (key, days) in held {
                            @let first = days.iter().next().copied();
                            @let proposed = suggestions.iter().find(|s| &s.key == key).map(|s| s.account.clone());
                            tr data-key=(key) {
                                td.mono { (key) }
                                td { (days.iter().map(Date::to_string).collect::<Vec<_>>().join(", ")) }
                                td colspan="3" {
                                    form.inline method="post" action="/mappings" {
                                        (csrf_field(&csrf))
                                        input type="hidden" name="tenant" value=(tenant);
                                        input type="hidden" name="connection" value=(dest.id);
                                        input type="hidden" name="key" value=(key);
                                        @match chart {
                                            Ok(accounts) if !accounts.is_empty() => {
                                                select name="account" aria-label=(format!("account for {key}")) {
                                                    @for a in accounts.iter().filter(|a| a.active) {
                                                        @let value = if dest.provider == Provider::Xero { a.code.clone().unwrap_or_else(|| format!("id:{}", a.id)) } else { a.id.clone() };
                                                        option value=(value) selected[proposed.as_deref() == Some(value.as_str())] {
                                                            (a.name) " (" (a.kind) ", " (value) ")"
                                                        }
                                                    }
                                                }
                                            }
                                            _ => { input type="text" name="account" required placeholder="account id or code" aria-label=(format!("account for {key}")); }
                                        }
                                        " from "
                                        input type="date" name="from" required value=[first.map(|d| d.to_string())];
                                        " "
                                        button type="submit" { "Save and post" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(v) = dest.books.journal.versions().last() {
                details {
                    summary { "The latest version, from " (v.effective_from) " (" (v.accounts.len()) " keys)" }
                    table { tbody { @for (k, a) in &v.accounts { tr { td.mono { (k) } td.mono { (a) } } } } }
                }
            }
        }
    };
    Ok(layout(&console, "Mappings", "Mappings", None, body))
}

#[derive(Deserialize)]
struct SaveMapping {
    tenant: TenantId,
    connection: ConnectionId,
    key: String,
    account: String,
    from: Date,
}

async fn mappings_save(State(console): State<Console>, Form(f): Form<SaveMapping>) -> Page {
    let inner = &console.inner;
    let dest = inner
        .stores
        .connections
        .get(&f.tenant, &f.connection)
        .await
        .map_err(PageError::store)?
        .ok_or_else(|| {
            PageError::new(
                "No such connection",
                format!("{}/{}", f.tenant, f.connection),
                "Go back to the mappings and pick one there.",
            )
        })?;
    let pair = format!("{}={}", f.key, f.account.trim());
    let changes = shared::ops::mappings::set_version(
        &inner.stores,
        &inner.clients,
        &dest,
        f.from,
        &[pair],
    )
    .await
    .map_err(|e| {
        PageError::new(
            "The mapping was not saved or its days not posted",
            e,
            "Check the account exists in the books (their chart of accounts), then save again.",
        )
    })?;
    let body = html! {
        div.flash role="status" { "Saved: " code { (f.key) } " → " code { (f.account) } " from " (f.from) " for " (f.tenant) "/" (f.connection) "." }
        @if changes.is_empty() {
            p { "No held or posted day is on this version: nothing was posted again." }
        } @else {
            h2 { "Days posted again" }
            table #changes {
                thead { tr { th { "Location" } th { "Day" } th { "What happened" } th { "Entry" } } }
                tbody {
                    @for c in &changes {
                        tr data-day=(c.day) {
                            td { (c.source) }
                            td { a href=(format!("/books/day?tenant={}&date={}", urlencode(f.tenant.as_str()), c.day)) { (c.day) } }
                            td data-field="outcome" { (c.outcome) }
                            td.mono { (c.id.clone().unwrap_or_default()) }
                        }
                    }
                }
            }
        }
        p { a href="/mappings" { "Back to the mappings" } }
    };
    Ok(layout(&console, "Mapping saved", "Mappings", None, body))
}

// ---- Alerts ----

async fn alerts_page(State(console): State<Console>) -> Page {
    let stores = &console.inner.stores;
    let mut all = Vec::new();
    for c in stores
        .connections
        .list_all()
        .await
        .map_err(PageError::store)?
    {
        all.extend(
            health::alert_history(stores, &c)
                .await
                .map_err(PageError::store)?,
        );
    }
    all.sort_by_key(|a| std::cmp::Reverse(a.at));
    let body = html! {
        p.lead { "Every change of a connection's state the health checks saw, newest first: what was alerted, and each recovery." }
        @if all.is_empty() {
            p { "No change of state yet." }
        } @else {
            table #alerts {
                thead { tr { th { "When" } th { "Connection" } th { "Provider" } th { "Change" } th { "Alert" } } }
                tbody {
                    @for a in &all {
                        tr {
                            td { (when(Some(a.at))) }
                            td { (a.tenant) "/" (a.connection) }
                            td { (a.provider) }
                            td { span class=(format!("badge {}", state_word(a.from))) { (state_word(a.from)) } " → " span class=(format!("badge {}", state_word(a.to))) { (state_word(a.to)) } }
                            td.reasons { (a.text) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(&console, "Alerts", "Alerts", None, body))
}
