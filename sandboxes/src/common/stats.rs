//! What a sandbox saw, for tests to read: calls per endpoint, token traffic,
//! idempotent creates, rate-limit refusals, and the peak call rate and peak
//! concurrency per account.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A snapshot of a sandbox's counters (`counters()` on every handle).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests per endpoint, keyed `"<METHOD> <route template>"`, e.g.
    /// `"GET /orders/v2/ordersBulk"` or `"POST /v3/company/{realmId}/salesreceipt"`.
    /// Every request that reached a route counts, refused or not.
    pub calls: BTreeMap<String, u64>,
    /// Token requests of any kind: Toast logins, MarketMan `GetToken`, OAuth
    /// token-endpoint calls (every grant type, successful or not).
    pub token_requests: u64,
    /// OAuth `refresh_token` grants asked for (successful or not).
    pub refreshes: u64,
    /// Refresh or code grants refused with `invalid_grant` (or the
    /// provider's equivalent).
    pub invalid_grants: u64,
    /// Requests answered 401 because the bearer token was unknown or expired.
    pub unauthorized: u64,
    /// Requests carrying each idempotency key, keyed `(account, key)`
    /// (QuickBooks `requestid` per realm, Xero `Idempotency-Key` per tenant).
    pub requests_per_key: BTreeMap<(String, String), u64>,
    /// Entities actually created under each idempotency key (a replayed
    /// request creates nothing), keyed `(account, key)`.
    pub creates_per_key: BTreeMap<(String, String), u64>,
    /// Requests refused by a rate or concurrency limit: HTTP 429s, and
    /// MarketMan's HTTP 200 "Reached max calls".
    pub rate_limited: u64,
    /// Per account, the largest number of admitted (non-429) requests seen in
    /// any sliding observation window (60 s unless configured otherwise).
    pub max_calls_per_window: BTreeMap<String, u64>,
    /// Per account, the largest number of requests in flight at once.
    pub max_in_flight: BTreeMap<String, u64>,
    /// Per account, the requests admitted and not yet answered, now: what a
    /// test waits on to know its slow calls are inside, rather than sleeping.
    pub in_flight: BTreeMap<String, u64>,
    /// Requests answered with an injected 500/503.
    pub injected_errors: u64,
    /// Connections dropped on purpose.
    pub dropped_connections: u64,
}

impl Counters {
    /// Calls to one endpoint, e.g. `calls_to("GET", "/orders/v2/ordersBulk")`.
    pub fn calls_to(&self, method: &str, route: &str) -> u64 {
        self.calls
            .get(&format!("{method} {route}"))
            .copied()
            .unwrap_or(0)
    }

    /// Calls to every endpoint.
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }

    /// Entities created under `key`, summed over accounts.
    pub fn creates_for(&self, key: &str) -> u64 {
        self.creates_per_key
            .iter()
            .filter(|((_, k), _)| k == key)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests that carried `key`, summed over accounts.
    pub fn requests_for(&self, key: &str) -> u64 {
        self.requests_per_key
            .iter()
            .filter(|((_, k), _)| k == key)
            .map(|(_, n)| n)
            .sum()
    }
}

/// The live counters behind [`Counters`].
#[derive(Debug)]
pub(crate) struct Stats {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    counters: Counters,
    window: Duration,
    recent: HashMap<String, VecDeque<Instant>>,
}

impl Stats {
    pub(crate) fn new(observe_window: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner {
                counters: Counters::default(),
                window: observe_window,
                recent: HashMap::new(),
            }),
        }
    }

    pub(crate) fn snapshot(&self) -> Counters {
        self.inner.lock().unwrap().counters.clone()
    }

    pub(crate) fn reset(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.counters = Counters::default();
        inner.recent.clear();
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut self.inner.lock().unwrap().counters);
    }

    pub(crate) fn call(&self, route: &str) {
        self.update(|c| *c.calls.entry(route.to_string()).or_default() += 1);
    }

    /// An admitted request for `account`, `in_flight` now running.
    pub(crate) fn admitted(&self, account: &str, in_flight: u64, now: Instant) {
        let mut inner = self.inner.lock().unwrap();
        let window = inner.window;
        let recent = inner.recent.entry(account.to_string()).or_default();
        recent.push_back(now);
        while let Some(&first) = recent.front() {
            if now.saturating_duration_since(first) >= window {
                recent.pop_front();
            } else {
                break;
            }
        }
        let in_window = recent.len() as u64;
        let c = &mut inner.counters;
        let peak = c
            .max_calls_per_window
            .entry(account.to_string())
            .or_default();
        *peak = (*peak).max(in_window);
        let peak = c.max_in_flight.entry(account.to_string()).or_default();
        *peak = (*peak).max(in_flight);
        c.in_flight.insert(account.to_string(), in_flight);
    }

    /// An admitted request for `account` answered.
    pub(crate) fn finished(&self, account: &str) {
        self.update(|c| {
            if let Some(n) = c.in_flight.get_mut(account) {
                *n = n.saturating_sub(1);
            }
        });
    }

    pub(crate) fn keyed_request(&self, account: &str, key: &str) {
        self.update(|c| {
            *c.requests_per_key
                .entry((account.to_string(), key.to_string()))
                .or_default() += 1;
        });
    }

    pub(crate) fn keyed_creates(&self, account: &str, key: &str, created: u64) {
        self.update(|c| {
            *c.creates_per_key
                .entry((account.to_string(), key.to_string()))
                .or_default() += created;
        });
    }
}
