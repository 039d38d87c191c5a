//! Rate limits per provider account: request windows (fixed slices or
//! sliding), plus a cap on concurrent requests.
//!
//! A limit is a count over a period, named the way the provider names it in
//! its headers ("minute", "day", ...). Windows are kept per account (restaurant
//! GUID, merchant, API consumer, realm, tenant) and per scope (the global
//! budget, or one endpoint's own budget). Only admitted requests use budget;
//! a refused request does not.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How a window counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Fixed time slices starting at the sandbox's start (Toast documents
    /// "fixed time slices").
    Fixed,
    /// The last `period`, sliding: the strictest reading, used where a
    /// provider does not say.
    Sliding,
}

/// At most `limit` requests per `period`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// The provider's name for it, e.g. `minute` or `day` (Xero's
    /// `X-Rate-Limit-Problem` values).
    pub name: String,
    /// Requests allowed per period.
    pub limit: u64,
    /// The period.
    pub period: Duration,
    /// Fixed or sliding.
    pub kind: WindowKind,
}

impl Limit {
    /// A sliding window.
    pub fn sliding(name: &str, limit: u64, period: Duration) -> Self {
        Self {
            name: name.to_string(),
            limit,
            period,
            kind: WindowKind::Sliding,
        }
    }

    /// A fixed window.
    pub fn fixed(name: &str, limit: u64, period: Duration) -> Self {
        Self {
            name: name.to_string(),
            limit,
            period,
            kind: WindowKind::Fixed,
        }
    }
}

/// The state of one window after a request was admitted (for the
/// providers' `...-Remaining` / `...-Reset` headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WindowStatus {
    /// The scope, e.g. `global` or `ordersBulk`.
    pub scope: String,
    /// The limit's name.
    pub name: String,
    /// Requests left in the window.
    pub remaining: u64,
    /// When the window next frees budget.
    pub reset_in: Duration,
}

/// A request refused by a window or by the concurrency cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// The scope whose limit was hit (`concurrent` for the concurrency cap).
    pub scope: String,
    /// The limit's name (`concurrent` for the concurrency cap).
    pub name: String,
    /// How long until a retry can succeed (at least 1 s when rounded).
    pub retry_after: Duration,
    /// The state of every window of the account at refusal.
    pub windows: Vec<WindowStatus>,
}

impl Refused {
    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }

    /// Whether this was the concurrency cap.
    #[cfg(test)]
    pub fn is_concurrency(&self) -> bool {
        self.name == CONCURRENT
    }
}

/// The scope and name used for the concurrency cap.
pub(crate) const CONCURRENT: &str = "concurrent";

#[derive(Debug)]
struct Window {
    limit: Limit,
    slice: u64,
    count: u64,
    log: VecDeque<Instant>,
}

impl Window {
    fn new(limit: Limit) -> Self {
        Self {
            limit,
            slice: 0,
            count: 0,
            log: VecDeque::new(),
        }
    }

    fn slice_of(&self, base: Instant, now: Instant) -> u64 {
        let period = self.limit.period.as_nanos().max(1);
        let since = now.saturating_duration_since(base).as_nanos();
        u64::try_from(since / period).unwrap_or(u64::MAX)
    }

    fn refresh(&mut self, base: Instant, now: Instant) {
        match self.limit.kind {
            WindowKind::Fixed => {
                let slice = self.slice_of(base, now);
                if slice != self.slice {
                    self.slice = slice;
                    self.count = 0;
                }
            }
            WindowKind::Sliding => {
                while let Some(&first) = self.log.front() {
                    if now.saturating_duration_since(first) >= self.limit.period {
                        self.log.pop_front();
                    } else {
                        break;
                    }
                }
            }
        }
    }

    fn used(&self) -> u64 {
        match self.limit.kind {
            WindowKind::Fixed => self.count,
            WindowKind::Sliding => self.log.len() as u64,
        }
    }

    /// Time until the window frees one request of budget.
    fn reset_in(&self, base: Instant, now: Instant) -> Duration {
        match self.limit.kind {
            WindowKind::Fixed => {
                let period = self.limit.period;
                let next = base + period * u32::try_from(self.slice + 1).unwrap_or(u32::MAX);
                next.saturating_duration_since(now)
            }
            WindowKind::Sliding => self
                .log
                .front()
                .map(|&first| (first + self.limit.period).saturating_duration_since(now))
                .unwrap_or(Duration::ZERO),
        }
    }

    fn record(&mut self, now: Instant) {
        match self.limit.kind {
            WindowKind::Fixed => self.count += 1,
            WindowKind::Sliding => self.log.push_back(now),
        }
    }

    fn status(&self, scope: &str, base: Instant, now: Instant) -> WindowStatus {
        WindowStatus {
            scope: scope.to_string(),
            name: self.limit.name.clone(),
            remaining: self.limit.limit.saturating_sub(self.used()),
            reset_in: self.reset_in(base, now),
        }
    }
}

/// Limits to apply to one request: per scope, the windows of that scope.
#[derive(Debug, Clone, Default)]
pub(crate) struct LimitPlan {
    /// `(scope, limits)`, counted per account.
    pub scopes: Vec<(String, Vec<Limit>)>,
    /// `(scope, limits)` shared by every account (e.g. Xero's per-app limit).
    pub shared: Vec<(String, Vec<Limit>)>,
    /// Maximum concurrent requests for the account, if capped.
    pub concurrency: Option<u64>,
}

/// The account key of windows shared by every account.
const SHARED: &str = "*";

impl LimitPlan {
    /// `((account key, scope), limits)` of every window set that applies.
    fn keyed<'a>(&'a self, account: &str) -> Vec<((String, String), &'a Vec<Limit>)> {
        self.scopes
            .iter()
            .map(|(scope, limits)| ((account.to_string(), scope.clone()), limits))
            .chain(
                self.shared
                    .iter()
                    .map(|(scope, limits)| ((SHARED.to_string(), scope.clone()), limits)),
            )
            .collect()
    }
}

/// Window state for every account.
#[derive(Debug)]
pub(crate) struct Limiter {
    base: Instant,
    windows: HashMap<(String, String), Vec<Window>>,
    in_flight: HashMap<String, u64>,
}

impl Limiter {
    pub(crate) fn new() -> Self {
        Self {
            base: Instant::now(),
            windows: HashMap::new(),
            in_flight: HashMap::new(),
        }
    }

    /// Admits one request for `account` or says which limit refused it.
    /// On success the request is counted in every window and in flight
    /// (call [`Limiter::finish`] when it is done); returns the in-flight count.
    pub(crate) fn admit(
        &mut self,
        account: &str,
        plan: &LimitPlan,
        now: Instant,
    ) -> Result<(Vec<WindowStatus>, u64), Refused> {
        let base = self.base;
        let keyed = plan.keyed(account);
        // Make sure every window exists and is current.
        for (key, limits) in &keyed {
            let windows = self
                .windows
                .entry(key.clone())
                .or_insert_with(|| limits.iter().cloned().map(Window::new).collect::<Vec<_>>());
            for w in windows.iter_mut() {
                w.refresh(base, now);
            }
        }
        let statuses = |this: &Self| -> Vec<WindowStatus> {
            keyed
                .iter()
                .flat_map(|(key, _)| {
                    this.windows
                        .get(key)
                        .into_iter()
                        .flatten()
                        .map(move |w| w.status(&key.1, base, now))
                })
                .collect()
        };
        // Refuse on the window with the longest wait.
        let mut refusal: Option<Refused> = None;
        for (key, _) in &keyed {
            for w in self.windows.get(key).into_iter().flatten() {
                if w.used() >= w.limit.limit {
                    let wait = w.reset_in(base, now);
                    if refusal.as_ref().is_none_or(|r| wait > r.retry_after) {
                        refusal = Some(Refused {
                            scope: key.1.clone(),
                            name: w.limit.name.clone(),
                            retry_after: wait,
                            windows: Vec::new(),
                        });
                    }
                }
            }
        }
        if let Some(mut r) = refusal {
            r.windows = statuses(self);
            return Err(r);
        }
        let in_flight = self.in_flight.get(account).copied().unwrap_or(0);
        if let Some(cap) = plan.concurrency
            && in_flight >= cap
        {
            return Err(Refused {
                scope: CONCURRENT.to_string(),
                name: CONCURRENT.to_string(),
                retry_after: Duration::from_secs(1),
                windows: statuses(self),
            });
        }
        for (key, _) in &keyed {
            if let Some(windows) = self.windows.get_mut(key) {
                for w in windows.iter_mut() {
                    w.record(now);
                }
            }
        }
        let now_in_flight = in_flight + 1;
        self.in_flight.insert(account.to_string(), now_in_flight);
        Ok((statuses(self), now_in_flight))
    }

    /// A request admitted for `account` is done.
    pub(crate) fn finish(&mut self, account: &str) {
        if let Some(n) = self.in_flight.get_mut(account) {
            *n = n.saturating_sub(1);
        }
    }

    /// Forgets every window (budgets start over).
    pub(crate) fn reset(&mut self) {
        self.windows.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(limits: Vec<Limit>) -> LimitPlan {
        LimitPlan {
            scopes: vec![("global".into(), limits)],
            ..LimitPlan::default()
        }
    }

    #[test]
    fn sliding_window_refuses_past_the_limit_and_frees_after_the_period() {
        let mut l = Limiter::new();
        let p = plan(vec![Limit::sliding("minute", 2, Duration::from_secs(60))]);
        let t0 = l.base;
        assert!(l.admit("a", &p, t0).is_ok());
        l.finish("a");
        assert!(l.admit("a", &p, t0 + Duration::from_secs(10)).is_ok());
        l.finish("a");
        let refused = l.admit("a", &p, t0 + Duration::from_secs(20)).unwrap_err();
        assert_eq!(refused.name, "minute");
        assert_eq!(refused.retry_after, Duration::from_secs(40));
        assert_eq!(refused.retry_after_secs(), 40);
        // Another account has its own budget.
        assert!(l.admit("b", &p, t0 + Duration::from_secs(20)).is_ok());
        // The first request leaves the window at t0 + 60 s.
        assert!(l.admit("a", &p, t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn fixed_window_resets_at_the_slice_boundary() {
        let mut l = Limiter::new();
        let p = plan(vec![Limit::fixed("second", 1, Duration::from_secs(1))]);
        let t0 = l.base;
        assert!(l.admit("a", &p, t0 + Duration::from_millis(100)).is_ok());
        let refused = l
            .admit("a", &p, t0 + Duration::from_millis(700))
            .unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_millis(300));
        assert_eq!(refused.retry_after_secs(), 1);
        assert!(l.admit("a", &p, t0 + Duration::from_millis(1000)).is_ok());
    }

    #[test]
    fn concurrency_cap_counts_in_flight_requests() {
        let mut l = Limiter::new();
        let p = LimitPlan {
            concurrency: Some(2),
            ..LimitPlan::default()
        };
        let t0 = l.base;
        assert_eq!(l.admit("a", &p, t0).unwrap().1, 1);
        assert_eq!(l.admit("a", &p, t0).unwrap().1, 2);
        assert!(l.admit("a", &p, t0).unwrap_err().is_concurrency());
        l.finish("a");
        assert_eq!(l.admit("a", &p, t0).unwrap().1, 2);
    }

    #[test]
    fn shared_windows_count_every_account() {
        let mut l = Limiter::new();
        let p = LimitPlan {
            shared: vec![(
                "app".into(),
                vec![Limit::sliding("appminute", 2, Duration::from_secs(60))],
            )],
            ..LimitPlan::default()
        };
        let t0 = l.base;
        assert!(l.admit("a", &p, t0).is_ok());
        assert!(l.admit("b", &p, t0).is_ok());
        assert_eq!(l.admit("c", &p, t0).unwrap_err().name, "appminute");
    }

    #[test]
    fn refused_requests_use_no_budget() {
        let mut l = Limiter::new();
        let p = plan(vec![Limit::sliding("minute", 1, Duration::from_secs(60))]);
        let t0 = l.base;
        assert!(l.admit("a", &p, t0).is_ok());
        for s in 1..30 {
            assert!(l.admit("a", &p, t0 + Duration::from_secs(s)).is_err());
        }
        assert!(l.admit("a", &p, t0 + Duration::from_secs(60)).is_ok());
    }
}
