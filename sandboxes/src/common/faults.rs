//! Injected faults: server errors, latency, dropped connections and expired
//! tokens, drawn from a seeded `ChaCha8Rng` so a run can be replayed.
//!
//! Every request that passes the rate limiter draws, in this order: one value
//! for "drop the connection", one for "answer 5xx", one for which 5xx (500 or
//! 503). The same seed and the same request order give the same faults;
//! concurrent requests draw in whatever order they reach the lock.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Mutex;
use std::time::Duration;

/// Faults a sandbox injects, changeable while it runs
/// (`set_faults` on every sandbox handle).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Faults {
    /// Probability (0..=1) that a request is answered with 500 or 503 (half
    /// each) in the provider's error shape, before the request is handled.
    pub error_rate: f64,
    /// Added to every request after it is admitted by the rate limiter, so
    /// slow requests overlap and count as concurrent.
    pub latency: Duration,
    /// Probability (0..=1) that the connection is closed with no HTTP
    /// response at all.
    pub drop_rate: f64,
    /// Every access token is treated as expired: 401 in the provider's shape.
    pub expire_tokens: bool,
    /// With `drop_rate`: drop *after* the request was handled (its effects are
    /// kept, the response is lost), instead of before. Models a write that
    /// succeeded on the provider while the client saw a network error.
    pub drop_after_handling: bool,
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Only server errors, at `rate`.
    pub fn errors(rate: f64) -> Self {
        Self {
            error_rate: rate,
            ..Self::default()
        }
    }

    /// Only dropped connections, at `rate`.
    pub fn drops(rate: f64) -> Self {
        Self {
            drop_rate: rate,
            ..Self::default()
        }
    }

    /// Only latency.
    pub fn latency(latency: Duration) -> Self {
        Self {
            latency,
            ..Self::default()
        }
    }
}

/// What the dice said for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Handle normally.
    Pass,
    /// Close the connection before handling.
    DropBefore,
    /// Handle, then close the connection instead of answering.
    DropAfter,
    /// Answer with this 5xx status without handling.
    ServerError(u16),
}

/// The fault settings and the RNG they draw from.
#[derive(Debug)]
pub(crate) struct FaultInjector {
    faults: Mutex<Faults>,
    rng: Mutex<ChaCha8Rng>,
}

impl FaultInjector {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            faults: Mutex::new(Faults::default()),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0xfa17_5eed)),
        }
    }

    pub(crate) fn set(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }

    pub(crate) fn get(&self) -> Faults {
        self.faults.lock().unwrap().clone()
    }

    /// Draws the fate of one request.
    pub(crate) fn roll(&self) -> Verdict {
        let faults = self.get();
        let mut rng = self.rng.lock().unwrap();
        let drop = rng.random_bool(probability(faults.drop_rate));
        let error = rng.random_bool(probability(faults.error_rate));
        let status = if rng.random_bool(0.5) { 500 } else { 503 };
        match (drop, error) {
            (true, _) if faults.drop_after_handling => Verdict::DropAfter,
            (true, _) => Verdict::DropBefore,
            (false, true) => Verdict::ServerError(status),
            (false, false) => Verdict::Pass,
        }
    }
}

/// A rate as a probability `random_bool` accepts (NaN counts as 0).
fn probability(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}
