//! Rate budgets shared by every concurrent invocation: a token bucket per
//! provider account and limit, a "blocked until" that any 429 sets so every
//! worker backs off, and lease-based concurrency slots. Kept in the store so
//! fifty Lambda invocations share one budget instead of each assuming it owns
//! the whole of it.
//!
//! A [`Limit`] of `max` calls per `per` is enforced as a bucket holding at
//! most `max / 10` tokens, refilled at `(max - burst) / per`: that never lets
//! more than `max` calls through in any window of `per`, however the calls are
//! spread. Small limits (10 or fewer a window) keep an exact log of their
//! grants instead, so their whole allowance can be used at once.

use super::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// At most `max` calls in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    /// A name for the window (`minute`, `day`, ...), used as the bucket's key.
    pub name: &'static str,
    /// Calls allowed per window.
    pub max: u32,
    /// The window.
    pub per: Duration,
}

impl Limit {
    /// `max` calls per `per`.
    pub const fn new(name: &'static str, max: u32, per: Duration) -> Self {
        Limit { name, max, per }
    }

    /// Tokens the bucket can hold: a tenth of the window's calls, a fifth
    /// for windows of an hour or more. Smoothing a per-second or per-minute
    /// limit spares the provider bursts; smoothing a daily one to a tenth
    /// only holds back work the budget has room for (MarketMan's 500 a day
    /// would allow 50 calls, then one every three minutes). A fifth is what
    /// the pull planner leaves unplanned (`pipelines::cadence`), so the
    /// bucket's steady refill still covers every planned pull.
    pub fn burst(&self) -> u64 {
        let share = if self.per >= Duration::from_secs(3600) {
            5
        } else {
            10
        };
        u64::from((self.max / share).max(1).min(self.max.max(1)))
    }

    /// Milli-tokens added per millisecond, as a fraction (numerator, denominator).
    fn refill(&self) -> (u64, u64) {
        let per_ms = u64::try_from(self.per.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        (
            u64::from(self.max).saturating_sub(self.burst()) * 1000,
            per_ms,
        )
    }
}

/// The answer to a request for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
    /// Go ahead: one token was taken from every bucket.
    Granted,
    /// Not yet: try again after this long.
    Wait(Duration),
}

/// One bucket's state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Bucket {
    /// Milli-tokens held.
    pub milli: u64,
    /// When they were last counted (ms since the epoch).
    pub at_ms: i64,
    /// Small limits (at most [`SLIDING_LOG_MAX`] calls a window): the grants
    /// in the current window, exactly (ms since the epoch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<i64>,
}

/// Limits of at most this many calls a window keep an exact log of grants
/// instead of a token bucket, so "2 logins an hour" means 2 whenever asked,
/// never more in any hour.
pub const SLIDING_LOG_MAX: u32 = 10;

/// The stored state of one account's budget: what both adapters read and
/// write; the rules live here so they cannot drift apart.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Budget {
    /// Buckets by limit name.
    #[serde(default)]
    pub buckets: BTreeMap<String, Bucket>,
    /// No calls before this (ms since the epoch), set by a 429.
    #[serde(default)]
    pub blocked_until_ms: i64,
    /// Concurrency slots held: slot id → lease end (ms since the epoch).
    #[serde(default)]
    pub slots: BTreeMap<String, i64>,
}

impl Budget {
    /// Takes one token from every bucket if each has one; else says how long
    /// until they all will. `now_ms` is the store's clock.
    pub fn acquire(&mut self, limits: &[Limit], now_ms: i64) -> Acquire {
        if self.blocked_until_ms > now_ms {
            return Acquire::Wait(ms(self.blocked_until_ms - now_ms));
        }
        let mut wait_ms: i64 = 0;
        let mut refilled = Vec::with_capacity(limits.len());
        let mut logged = Vec::new();
        for limit in limits.iter().filter(|l| l.max <= SLIDING_LOG_MAX) {
            let per_ms = i64::try_from(limit.per.as_millis()).unwrap_or(i64::MAX);
            let mut log = self
                .buckets
                .get(limit.name)
                .map(|b| b.log.clone())
                .unwrap_or_default();
            log.retain(|t| now_ms - t < per_ms);
            log.sort_unstable();
            if log.len() >= limit.max as usize {
                let oldest = log[log.len() - limit.max as usize];
                wait_ms = wait_ms.max(oldest + per_ms - now_ms);
            }
            logged.push((limit.name, log));
        }
        for limit in limits.iter().filter(|l| l.max > SLIDING_LOG_MAX) {
            let cap = limit.burst() * 1000;
            let b = self.buckets.get(limit.name).cloned().unwrap_or(Bucket {
                milli: cap,
                at_ms: now_ms,
                log: Vec::new(),
            });
            let (num, den) = limit.refill();
            let elapsed = u64::try_from(now_ms.saturating_sub(b.at_ms)).unwrap_or(0);
            let milli = (b.milli + elapsed.saturating_mul(num) / den).min(cap);
            if milli < 1000 {
                let missing = 1000 - milli;
                let need = if num == 0 {
                    u64::MAX / 2
                } else {
                    missing.saturating_mul(den).div_ceil(num)
                };
                wait_ms = wait_ms.max(i64::try_from(need).unwrap_or(i64::MAX));
            }
            refilled.push((limit.name, milli));
        }
        if wait_ms > 0 {
            return Acquire::Wait(ms(wait_ms));
        }
        for (name, mut log) in logged {
            log.push(now_ms);
            self.buckets.insert(
                name.to_string(),
                Bucket {
                    milli: 0,
                    at_ms: now_ms,
                    log,
                },
            );
        }
        for (name, milli) in refilled {
            self.buckets.insert(
                name.to_string(),
                Bucket {
                    milli: milli - 1000,
                    at_ms: now_ms,
                    log: Vec::new(),
                },
            );
        }
        Acquire::Granted
    }

    /// Takes a concurrency slot if fewer than `max` live ones are held.
    pub fn take_slot(&mut self, id: &str, max: u32, lease_until_ms: i64, now_ms: i64) -> bool {
        self.slots.retain(|_, until| *until > now_ms);
        if self.slots.len() >= max as usize {
            return false;
        }
        self.slots.insert(id.to_string(), lease_until_ms);
        true
    }
}

fn ms(v: i64) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

/// The shared budgets.
#[async_trait]
pub trait RateLimitStore: Send + Sync + std::fmt::Debug {
    /// Asks to make one call under `limits` on the budget `key`.
    async fn acquire(&self, key: &str, limits: &[Limit]) -> StoreResult<Acquire>;

    /// No calls on `key` before `until` (a 429 said so). Never shortens an
    /// existing block.
    async fn block_until(&self, key: &str, until: Timestamp) -> StoreResult<()>;

    /// Takes one of `max` concurrency slots on `key`, held until released or
    /// until `lease` passes. `false`: all are taken.
    async fn take_slot(
        &self,
        key: &str,
        slot: &str,
        max: u32,
        lease: Duration,
    ) -> StoreResult<bool>;

    /// Gives a slot back.
    async fn release_slot(&self, key: &str, slot: &str) -> StoreResult<()>;
}
