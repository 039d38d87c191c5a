//! The path every sandbox request takes before its handler:
//!
//! 1. count the call (method + route template);
//! 2. admit it against the account's rate windows and concurrency cap, or
//!    answer the provider's 429 (with `Retry-After`);
//! 3. wait the injected latency (still counted as in flight);
//! 4. roll the fault dice: drop the connection, or answer 500/503 in the
//!    provider's error shape;
//! 5. authenticate (provider-specific; 401 in the provider's shape);
//! 6. run the handler, then add the provider's rate-limit headers.

use super::faults::{FaultInjector, Faults, Verdict};
use super::limits::{LimitPlan, Limiter, Refused, WindowStatus};
use super::server::ConnInfo;
use super::stats::{Counters, Stats};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a provider words its refusals.
pub(crate) trait Shape: Send + Sync {
    /// The answer to a request over a rate or concurrency limit. The gate
    /// adds `Retry-After` to any 429.
    fn rate_limited(&self, refused: &Refused) -> Response;
    /// An injected 500 or 503.
    fn server_error(&self, status: StatusCode) -> Response;
    /// Adds rate-limit headers to an answered request.
    fn decorate(&self, _response: &mut Response, _windows: &[WindowStatus]) {}
}

/// A provider's request rules, for [`middleware`].
pub(crate) trait Rules: Shape + Sized + Send + Sync + 'static {
    /// The sandbox's gate.
    fn gate(&self) -> &Gate;
    /// The account a request is charged to and the limits that apply
    /// (`None`: not rate limited, e.g. token endpoints).
    fn plan(&self, request: &Request, conn: &ConnInfo) -> (Option<String>, LimitPlan);
    /// Checks credentials; may put the caller into the request extensions.
    fn authenticate(&self, request: &mut Request) -> Result<(), Response>;
}

/// Faults, limits and counters of one sandbox.
#[derive(Debug)]
pub(crate) struct Gate {
    faults: FaultInjector,
    limiter: Mutex<Limiter>,
    stats: Stats,
}

/// Releases an account's in-flight slot when the request ends (or is
/// cancelled).
struct InFlight<'a> {
    gate: &'a Gate,
    account: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.gate.limiter.lock().unwrap().finish(&self.account);
        self.gate.stats.finished(&self.account);
    }
}

impl Gate {
    pub(crate) fn new(seed: u64, observe_window: Duration) -> Self {
        Self {
            faults: FaultInjector::new(seed),
            limiter: Mutex::new(Limiter::new()),
            stats: Stats::new(observe_window),
        }
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        self.faults.set(faults);
    }

    pub(crate) fn faults(&self) -> Faults {
        self.faults.get()
    }

    pub(crate) fn counters(&self) -> Counters {
        self.stats.snapshot()
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Zeroes the counters and forgets every rate window.
    pub(crate) fn reset(&self) {
        self.stats.reset();
        self.limiter.lock().unwrap().reset();
    }

    async fn run<F, Fut>(
        &self,
        conn: &ConnInfo,
        route: &str,
        account: Option<&str>,
        plan: &LimitPlan,
        shape: &dyn Shape,
        inner: F,
    ) -> Response
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Response>,
    {
        self.stats.call(route);
        let mut admitted: Option<(InFlight<'_>, Vec<WindowStatus>)> = None;
        if let Some(account) = account {
            let now = Instant::now();
            let result = self.limiter.lock().unwrap().admit(account, plan, now);
            match result {
                Ok((windows, in_flight)) => {
                    self.stats.admitted(account, in_flight, now);
                    admitted = Some((
                        InFlight {
                            gate: self,
                            account: account.to_string(),
                        },
                        windows,
                    ));
                }
                Err(refused) => {
                    self.stats.update(|c| c.rate_limited += 1);
                    let mut response = shape.rate_limited(&refused);
                    if response.status() == StatusCode::TOO_MANY_REQUESTS {
                        response.headers_mut().insert(
                            http::header::RETRY_AFTER,
                            HeaderValue::from(refused.retry_after_secs()),
                        );
                    }
                    return response;
                }
            }
        }
        let latency = self.faults.get().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let verdict = self.faults.roll();
        let mut response = match verdict {
            Verdict::DropBefore => {
                conn.kill();
                self.stats.update(|c| c.dropped_connections += 1);
                // Never written: the connection is dead.
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            Verdict::ServerError(status) => {
                self.stats.update(|c| c.injected_errors += 1);
                shape.server_error(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                )
            }
            Verdict::Pass | Verdict::DropAfter => inner().await,
        };
        if verdict == Verdict::DropAfter {
            conn.kill();
            self.stats.update(|c| c.dropped_connections += 1);
        }
        if let Some((_, windows)) = &admitted {
            shape.decorate(&mut response, windows);
        }
        drop(admitted);
        response
    }
}

/// `"<METHOD> <route template>"` of a routed request.
pub(crate) fn route_key(request: &Request) -> String {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| request.uri().path().to_string());
    format!("{} {}", request.method(), path)
}

/// The middleware every sandbox router runs its routes through
/// (`route_layer(from_fn_with_state(app, middleware::<App>))`).
pub(crate) async fn middleware<P: Rules>(
    State(app): State<Arc<P>>,
    ConnectInfo(conn): ConnectInfo<ConnInfo>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = route_key(&request);
    let (account, plan) = app.plan(&request, &conn);
    let inner_app = app.clone();
    let inner = move || async move {
        if let Err(refused) = inner_app.authenticate(&mut request) {
            inner_app.gate().stats.update(|c| {
                c.unauthorized += u64::from(refused.status() == StatusCode::UNAUTHORIZED)
            });
            return refused;
        }
        next.run(request).await
    };
    app.gate()
        .run(&conn, &route, account.as_deref(), &plan, &*app, inner)
        .await
}
