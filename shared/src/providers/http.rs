//! The HTTP foundation every provider client uses.
//!
//! One call = take a token from the provider account's shared budget (and a
//! concurrency slot where the provider limits those), send, classify the
//! answer, record its outcome and latency, and retry what is worth retrying:
//! 429, 5xx, timeouts and connection errors, with exponential backoff and full
//! jitter, waiting out `Retry-After` (and making every other worker wait it out
//! too, through the budget's "blocked until"). Other 4xx are not retried. The
//! number of attempts and the time spent waiting for budget are bounded; past
//! them the caller gets a typed error and decides (a queue consumer delays the
//! message by the `retry_after` it carries).
//!
//! Backoff and the shared budget are written here rather than taken from
//! `backon`/`reqwest-retry`/`governor`: the wait must come from the store shared
//! by every invocation and from the provider's `Retry-After`, which those crates
//! keep per process or do not read.

use crate::model::Provider;
use crate::ports::{Acquire, CallLog, CallOutcome, CallRecord, Limit, RateLimitStore};
use bytes::Bytes;
use http::HeaderMap;
use jiff::{SignedDuration, Timestamp};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A message a provider gave with a refusal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProviderMessage {
    /// The provider's code (QuickBooks `5010`, Square `INVALID_VALUE`), if any.
    pub code: Option<String>,
    /// The text.
    pub message: String,
}

impl std::fmt::Display for ProviderMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.code {
            Some(c) => write!(f, "{} ({c})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

fn join(messages: &[ProviderMessage]) -> String {
    messages
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider's limit: try again after `retry_after`.
    #[error("rate limited{}", .retry_after.map(|d| format!(", retry after {d:?}")).unwrap_or_default())]
    RateLimited {
        /// How long to wait, where known.
        retry_after: Option<Duration>,
    },
    /// Credentials refused (401/403), or no usable credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The resource does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The provider refused the request as invalid, with its own messages.
    #[error("refused as invalid: {}", join(.0))]
    Validation(Vec<ProviderMessage>),
    /// The request lost to a concurrent change (409, a stale SyncToken).
    #[error("conflict: {}", join(.0))]
    Conflict(Vec<ProviderMessage>),
    /// Worth retrying later (5xx, timeout, connection error).
    #[error("transient failure: {0}")]
    Transient(String),
    /// Not worth retrying (an answer the hub cannot use).
    #[error("failed: {0}")]
    Permanent(String),
}

impl ProviderError {
    /// Whether retrying later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. } | ProviderError::Transient(_)
        )
    }

    fn outcome(&self) -> CallOutcome {
        match self {
            ProviderError::RateLimited { .. } => CallOutcome::RateLimited,
            ProviderError::Unauthorized(_) => CallOutcome::Unauthorized,
            ProviderError::NotFound(_) => CallOutcome::NotFound,
            ProviderError::Validation(_) | ProviderError::Conflict(_) => CallOutcome::Validation,
            ProviderError::Transient(_) => CallOutcome::Transient,
            ProviderError::Permanent(_) => CallOutcome::Permanent,
        }
    }
}

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// First backoff ceiling; doubled each attempt.
    pub base_delay: Duration,
    /// Largest backoff ceiling.
    pub max_delay: Duration,
    /// The longest one call waits for budget or a `Retry-After` in process;
    /// past it the call returns `RateLimited` for the caller to reschedule.
    pub max_rate_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
            max_rate_wait: Duration::from_secs(60),
        }
    }
}

/// Whose budget a call spends, and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateScope {
    /// `<provider>:<account>`: the budget key, and the call log's account.
    pub key: String,
    /// Windows to respect.
    pub limits: Vec<Limit>,
    /// At most this many calls in flight at once, across every worker.
    pub max_concurrent: Option<u32>,
}

impl RateScope {
    /// A scope for `account` at `provider`.
    pub fn new(
        provider: Provider,
        account: &str,
        limits: Vec<Limit>,
        max_concurrent: Option<u32>,
    ) -> Self {
        RateScope {
            key: format!("{provider}:{account}"),
            limits,
            max_concurrent,
        }
    }
}

/// Whether a request may be sent twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotence {
    /// Reads, and writes carrying an idempotency key: retry any transient failure.
    Safe,
    /// Writes with no idempotency key: retry only when the request surely did
    /// not take effect (a connection never made, 429, 503).
    Unsafe,
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Its status.
    pub status: u16,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ProviderError::Permanent(format!("unexpected response body: {e}")))
    }
}

/// Extracts a provider's messages from an error body.
pub type ErrorParser = fn(&[u8]) -> Vec<ProviderMessage>;

/// The windows to grant by so that calls *arriving* at the provider stay
/// within `limits` (see `ProviderHttp::admit`): with at most `concurrent`
/// calls travelling at once, each window grants `max - concurrent`. A limit
/// no larger than the cap is left as it is: such small limits (a few logins
/// an hour) have windows that no call's travel time comes near.
pub fn arrival_safe(limits: &[Limit], concurrent: Option<u32>) -> Vec<Limit> {
    limits
        .iter()
        .map(|l| match concurrent {
            Some(c) if l.max > c => Limit::new(l.name, l.max - c, l.per),
            _ => *l,
        })
        .collect()
}

/// Extracts the `Retry-After`-like wait from a 429's headers, per provider.
pub fn retry_after(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(v) = header("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(v) {
            return Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO));
        }
    }
    // Toast: the window's reset, in epoch seconds.
    if let Some(reset) = header("x-toast-ratelimit-reset").and_then(|v| v.parse::<i64>().ok()) {
        let wait = reset - now.as_second();
        return Some(Duration::from_secs(u64::try_from(wait.max(1)).unwrap_or(1)));
    }
    None
}

/// A reqwest client built on first use and shared by every clone.
///
/// Building one loads the TLS roots and configuration, the largest part of a
/// function's start-up after the AWS SDK: a function that never calls out on
/// a path (a webhook redelivery, a health check with no alert to send) does
/// not pay for it, and the provider clients and the alerter of one process
/// share one client, one TLS configuration and one connection pool. It is not
/// a process-wide static on purpose: a reqwest pool belongs to the tokio
/// runtime it was first used on, and tests run many runtimes in one process.
#[derive(Debug, Clone, Default)]
pub struct LazyClient(Arc<OnceLock<reqwest::Client>>);

impl LazyClient {
    /// The client, built now if this is its first use.
    pub fn get(&self) -> &reqwest::Client {
        self.0.get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                .user_agent(concat!("integration-hub/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default()
        })
    }

    /// Whether the client has been built yet.
    pub fn is_built(&self) -> bool {
        self.0.get().is_some()
    }
}

/// The HTTP client of every provider client.
#[derive(Debug, Clone)]
pub struct ProviderHttp {
    client: LazyClient,
    rate_limits: Arc<dyn RateLimitStore>,
    calls: Arc<dyn CallLog>,
    policy: RetryPolicy,
    /// Per budget key with a concurrency cap, a first-come-first-served
    /// queue for this process's workers (shared by every clone). Only the
    /// workers at its head ask the store for a slot, so fifty local workers
    /// on one budget neither starve one another nor crowd the shared item.
    gates: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

/// The default timeouts.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default timeouts.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl ProviderHttp {
    /// A client with the default timeouts and retry policy.
    /// The reqwest client is built at the first call, not here.
    pub fn new(rate_limits: Arc<dyn RateLimitStore>, calls: Arc<dyn CallLog>) -> Self {
        ProviderHttp {
            client: LazyClient::default(),
            rate_limits,
            calls,
            policy: RetryPolicy::default(),
            gates: Arc::default(),
        }
    }

    /// The same client with another retry policy.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The underlying reqwest client, to build requests with.
    pub fn client(&self) -> &reqwest::Client {
        self.client.get()
    }

    /// The shared lazy client, for another part of the process that calls
    /// out (the alerter) to use the same client and connection pool.
    pub fn lazy_client(&self) -> LazyClient {
        self.client.clone()
    }

    /// Sends the request `build` makes (called again for each attempt),
    /// within `scope`'s budget, retrying as the policy says.
    pub async fn send(
        &self,
        scope: &RateScope,
        endpoint: &str,
        idempotence: Idempotence,
        errors: ErrorParser,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Reply, ProviderError> {
        let started = Instant::now();
        let mut last = ProviderError::Transient("no attempt made".into());
        for attempt in 0..self.policy.max_attempts {
            let turn = self.queue_turn(scope, started).await?;
            let slot = self.admit(scope, started).await?;
            let at = Timestamp::now();
            let t0 = Instant::now();
            let result = build().send().await;
            let outcome = match result {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(body) if (200..300).contains(&status) => Ok(Reply {
                            status,
                            headers,
                            body,
                        }),
                        Ok(body) => Err((Some(status), classify(status, &headers, &body, errors))),
                        Err(e) => Err((
                            Some(status),
                            ProviderError::Transient(format!("reading the response: {e}")),
                        )),
                    }
                }
                Err(e) => Err((None, ProviderError::Transient(describe(&e)))),
            };
            if let Some(slot) = slot {
                self.release(scope, &slot).await;
            }
            drop(turn);
            let latency_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
            let (status, call_outcome) = match &outcome {
                Ok(r) => (Some(r.status), CallOutcome::Ok),
                Err((s, e)) => (*s, e.outcome()),
            };
            self.record(scope, endpoint, at, latency_ms, call_outcome, status)
                .await;
            let (status, err) = match outcome {
                Ok(reply) => return Ok(reply),
                Err(e) => e,
            };
            tracing::warn!(endpoint, attempt = attempt + 1, status, error = %err, "provider call failed");
            if let ProviderError::RateLimited { retry_after } = &err {
                let wait = retry_after.unwrap_or(Duration::from_secs(5));
                let until = Timestamp::now()
                    + SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX);
                if let Err(e) = self.rate_limits.block_until(&scope.key, until).await {
                    tracing::warn!(error = %e, "could not share a 429's Retry-After");
                }
                if started.elapsed() + wait > self.policy.max_rate_wait {
                    return Err(err);
                }
                last = err;
                continue; // the budget's block makes the next attempt wait
            }
            let retry = match (&err, idempotence) {
                (ProviderError::Transient(_), Idempotence::Safe) => true,
                // Unsafe writes: only when the request surely had no effect.
                (ProviderError::Transient(m), Idempotence::Unsafe) => {
                    status == Some(503) || m.starts_with("connection failed")
                }
                _ => false,
            };
            if !retry {
                return Err(err);
            }
            last = err;
            if attempt + 1 < self.policy.max_attempts {
                tokio::time::sleep(self.backoff(attempt)).await;
            }
        }
        Err(last)
    }

    /// Full jitter: a uniform wait between zero and the attempt's ceiling.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .policy
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.policy.max_delay);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::random_range(0..=ms))
    }

    /// Takes one call from `limits` under `scope`'s key if it is there now;
    /// `Ok(false)` if the budget is spent (nothing taken).
    pub async fn try_budget(
        &self,
        scope: &RateScope,
        limits: &[Limit],
    ) -> Result<bool, ProviderError> {
        match self.rate_limits.acquire(&scope.key, limits).await {
            Ok(Acquire::Granted) => Ok(true),
            Ok(Acquire::Wait(_)) => Ok(false),
            Err(e) => Err(ProviderError::Transient(format!(
                "rate budget unavailable: {e}"
            ))),
        }
    }

    /// Waits (at most the policy's rate wait) for one call from `limits`
    /// under `scope`'s key.
    pub async fn wait_budget(
        &self,
        scope: &RateScope,
        limits: &[Limit],
    ) -> Result<(), ProviderError> {
        self.wait_loop(scope, limits, Instant::now()).await
    }

    /// A concurrency slot (if the scope caps concurrency), then one call
    /// from the budget while holding it; the slot is given back while the
    /// budget makes us wait. Taken in this order, every call granted and not
    /// yet answered holds a slot, so at most `max_concurrent` granted calls
    /// are on their way at any moment. The provider counts calls as they
    /// *arrive*: in any window, those are the calls granted in it plus at
    /// most that many granted before it and still travelling. Granting
    /// `max - max_concurrent` per window ([`arrival_safe`]) then keeps the
    /// provider's count within `max` however slow the network or the
    /// machine, with no margin guessed.
    async fn admit(
        &self,
        scope: &RateScope,
        started: Instant,
    ) -> Result<Option<String>, ProviderError> {
        let limits = arrival_safe(&scope.limits, scope.max_concurrent);
        loop {
            let slot = self.take_slot(scope, started).await?;
            // An empty list still honours a block a 429 set.
            match self.rate_limits.acquire(&scope.key, &limits).await {
                Ok(Acquire::Granted) => return Ok(slot),
                Ok(Acquire::Wait(d)) => {
                    if let Some(slot) = &slot {
                        self.release(scope, slot).await;
                    }
                    if started.elapsed() + d > self.policy.max_rate_wait {
                        return Err(ProviderError::RateLimited {
                            retry_after: Some(d),
                        });
                    }
                    tokio::time::sleep(d).await;
                }
                Err(e) => {
                    if let Some(slot) = &slot {
                        self.release(scope, slot).await;
                    }
                    return Err(ProviderError::Transient(format!(
                        "rate budget unavailable: {e}"
                    )));
                }
            }
        }
    }

    async fn wait_loop(
        &self,
        scope: &RateScope,
        limits: &[Limit],
        started: Instant,
    ) -> Result<(), ProviderError> {
        loop {
            match self.rate_limits.acquire(&scope.key, limits).await {
                Ok(Acquire::Granted) => return Ok(()),
                Ok(Acquire::Wait(d)) => {
                    if started.elapsed() + d > self.policy.max_rate_wait {
                        return Err(ProviderError::RateLimited {
                            retry_after: Some(d),
                        });
                    }
                    tokio::time::sleep(d).await;
                }
                Err(e) => {
                    return Err(ProviderError::Transient(format!(
                        "rate budget unavailable: {e}"
                    )));
                }
            }
        }
    }

    /// This process's turn at `scope`'s concurrency cap: waits, first come
    /// first served, for one of its `max_concurrent` places.
    async fn queue_turn(
        &self,
        scope: &RateScope,
        started: Instant,
    ) -> Result<Option<OwnedSemaphorePermit>, ProviderError> {
        let Some(max) = scope.max_concurrent else {
            return Ok(None);
        };
        let gate = {
            let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
            gates
                .entry(scope.key.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(max as usize)))
                .clone()
        };
        let left = self.policy.max_rate_wait.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, gate.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            // The semaphore is never closed; a timeout is the policy's wait.
            _ => Err(ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(1)),
            }),
        }
    }

    /// Gives a concurrency slot back. A slot not given back blocks a place
    /// until its lease ends, so a lost race is retried, and a failure logged.
    async fn release(&self, scope: &RateScope, slot: &str) {
        for attempt in 0..3u64 {
            match self.rate_limits.release_slot(&scope.key, slot).await {
                Ok(()) => return,
                Err(e) if attempt == 2 => {
                    tracing::warn!(key = %scope.key, error = %e, "could not give a concurrency slot back; it frees when its lease ends");
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await,
            }
        }
    }

    async fn take_slot(
        &self,
        scope: &RateScope,
        started: Instant,
    ) -> Result<Option<String>, ProviderError> {
        let Some(max) = scope.max_concurrent else {
            return Ok(None);
        };
        let slot = uuid::Uuid::new_v4().simple().to_string();
        let lease = REQUEST_TIMEOUT + Duration::from_secs(5);
        loop {
            match self
                .rate_limits
                .take_slot(&scope.key, &slot, max, lease)
                .await
            {
                Ok(true) => return Ok(Some(slot)),
                Ok(false) => {
                    if started.elapsed() > self.policy.max_rate_wait {
                        return Err(ProviderError::RateLimited {
                            retry_after: Some(Duration::from_secs(1)),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(20 + rand::random_range(0..30))).await;
                }
                Err(e) => {
                    return Err(ProviderError::Transient(format!(
                        "concurrency slots unavailable: {e}"
                    )));
                }
            }
        }
    }

    async fn record(
        &self,
        scope: &RateScope,
        endpoint: &str,
        at: Timestamp,
        latency_ms: u64,
        outcome: CallOutcome,
        status: Option<u16>,
    ) {
        let call = CallRecord {
            account: scope.key.clone(),
            endpoint: endpoint.to_string(),
            at,
            latency_ms,
            outcome,
            status,
        };
        if let Err(e) = self.calls.record(&call).await {
            tracing::warn!(error = %e, "could not record a provider call");
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_connect() {
        format!("connection failed: {e}")
    } else if e.is_timeout() {
        format!("timed out: {e}")
    } else {
        format!("request failed: {e}")
    }
}

fn classify(status: u16, headers: &HeaderMap, body: &[u8], errors: ErrorParser) -> ProviderError {
    let messages = || {
        let m = errors(body);
        if m.is_empty() {
            vec![ProviderMessage {
                code: None,
                message: format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ),
            }]
        } else {
            m
        }
    };
    match status {
        429 => ProviderError::RateLimited {
            retry_after: retry_after(headers, Timestamp::now()),
        },
        401 | 403 => ProviderError::Unauthorized(join(&messages())),
        404 => ProviderError::NotFound(join(&messages())),
        409 => ProviderError::Conflict(messages()),
        408 | 500..=599 => {
            ProviderError::Transient(format!("HTTP {status}: {}", join(&messages())))
        }
        400..=499 => ProviderError::Validation(messages()),
        _ => ProviderError::Permanent(format!("unexpected HTTP {status}")),
    }
}

/// The `{"errors":[{"code","detail","field","category"}]}` error shape
/// (Square's API and its OAuth endpoint).
pub fn errors_array(body: &[u8]) -> Vec<ProviderMessage> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["errors"]
        .as_array()
        .map(|errs| {
            errs.iter()
                .map(|e| ProviderMessage {
                    code: e["code"].as_str().map(str::to_string),
                    message: match (e["detail"].as_str(), e["field"].as_str()) {
                        (Some(d), Some(f)) => format!("{d} (field {f})"),
                        (Some(d), None) => d.to_string(),
                        (None, _) => e["category"].as_str().unwrap_or("error").to_string(),
                    },
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_safe_windows_leave_room_for_every_call_still_travelling() {
        let limits = [
            Limit::new("minute", 500, Duration::from_secs(60)),
            Limit::new("hour", 2, Duration::from_secs(3600)),
        ];
        assert_eq!(
            arrival_safe(&limits, Some(10)),
            [
                Limit::new("minute", 490, Duration::from_secs(60)),
                Limit::new("hour", 2, Duration::from_secs(3600)),
            ]
        );
        assert_eq!(arrival_safe(&limits, None), limits);
    }

    #[test]
    fn the_client_is_built_at_first_use_and_shared_by_every_clone() {
        let lazy = LazyClient::default();
        let clone = lazy.clone();
        assert!(!lazy.is_built(), "nothing is built before a first use");
        let first: *const reqwest::Client = lazy.get();
        assert!(
            clone.is_built(),
            "a clone sees the client its original built"
        );
        assert!(
            std::ptr::eq(first, clone.get()),
            "every clone uses the one client (one TLS configuration, one pool)"
        );
        assert!(
            !LazyClient::default().is_built(),
            "a new lazy client is a client of its own"
        );
    }
}
