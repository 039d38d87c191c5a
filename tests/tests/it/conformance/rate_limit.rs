//! Rate budgets on a manual clock: every wait is exact, and "after the wait"
//! is the clock moved by that much, so no case depends on how fast the
//! machine or the emulator is.

use crate::backends::{Backend, conformance};
use jiff::SignedDuration;
use shared::ports::{Acquire, Clock, Limit, ManualClock};
use std::time::Duration;

conformance!(
    a_budget_grants_its_burst_then_says_how_long_to_wait,
    a_block_stops_every_caller_until_it_ends,
    concurrency_slots_are_shared_and_expire,
    fifty_concurrent_callers_never_exceed_the_limit,
    a_small_limit_grants_its_whole_allowance_at_once_and_no_more,
);

fn key() -> String {
    format!("quickbooks:realm-{}", uuid::Uuid::new_v4().simple())
}

fn advance_ms(clock: &ManualClock, ms: i64) {
    clock.advance(SignedDuration::from_millis(ms));
}

const fn wait_ms(ms: u64) -> Acquire {
    Acquire::Wait(Duration::from_millis(ms))
}

async fn a_budget_grants_its_burst_then_says_how_long_to_wait(b: Backend) {
    let (b, clock) = b.with_manual_clock();
    let k = key();
    // 20 a minute: a burst of 2, then one every 60/18 s (3333.3 ms).
    let limits = [Limit::new("minute", 20, Duration::from_secs(60))];
    assert_eq!(
        b.rate_limits.acquire(&k, &limits).await.unwrap(),
        Acquire::Granted
    );
    assert_eq!(
        b.rate_limits.acquire(&k, &limits).await.unwrap(),
        Acquire::Granted
    );
    assert_eq!(
        b.rate_limits.acquire(&k, &limits).await.unwrap(),
        wait_ms(3_334),
        "the burst is spent: one token refills in 60 s / 18, rounded up"
    );
    // A refused call spends nothing: a millisecond short, still refused;
    // at the wait it named, granted.
    advance_ms(&clock, 3_333);
    assert!(matches!(
        b.rate_limits.acquire(&k, &limits).await.unwrap(),
        Acquire::Wait(_)
    ));
    advance_ms(&clock, 1);
    assert_eq!(
        b.rate_limits.acquire(&k, &limits).await.unwrap(),
        Acquire::Granted
    );
    // Another account has its own budget.
    assert_eq!(
        b.rate_limits.acquire(&key(), &limits).await.unwrap(),
        Acquire::Granted
    );
    // Several limits: the tightest one decides.
    let k2 = key();
    let two = [
        Limit::new("second", 100, Duration::from_secs(1)),
        Limit::new("day", 1, Duration::from_secs(86_400)),
    ];
    assert_eq!(
        b.rate_limits.acquire(&k2, &two).await.unwrap(),
        Acquire::Granted
    );
    assert_eq!(
        b.rate_limits.acquire(&k2, &two).await.unwrap(),
        Acquire::Wait(Duration::from_secs(86_400))
    );
}

async fn a_block_stops_every_caller_until_it_ends(b: Backend) {
    let (b, clock) = b.with_manual_clock();
    let k = key();
    let limits = [Limit::new("minute", 500, Duration::from_secs(60))];
    b.rate_limits
        .block_until(&k, clock.now() + SignedDuration::from_millis(800))
        .await
        .unwrap();
    // A shorter block does not shorten it.
    b.rate_limits.block_until(&k, clock.now()).await.unwrap();
    assert_eq!(
        b.rate_limits.acquire(&k, &limits).await.unwrap(),
        wait_ms(800),
        "blocked by a 429"
    );
    advance_ms(&clock, 799);
    assert_eq!(
        b.rate_limits.acquire(&k, &limits).await.unwrap(),
        wait_ms(1)
    );
    // Other accounts are not blocked.
    assert_eq!(
        b.rate_limits.acquire(&key(), &limits).await.unwrap(),
        Acquire::Granted
    );
    advance_ms(&clock, 1);
    assert_eq!(
        b.rate_limits.acquire(&k, &limits).await.unwrap(),
        Acquire::Granted,
        "the block has ended"
    );
}

async fn concurrency_slots_are_shared_and_expire(b: Backend) {
    let (b, clock) = b.with_manual_clock();
    let k = key();
    let long = Duration::from_secs(600);
    assert!(b.rate_limits.take_slot(&k, "a", 2, long).await.unwrap());
    assert!(b.rate_limits.take_slot(&k, "b", 2, long).await.unwrap());
    assert!(
        !b.rate_limits.take_slot(&k, "c", 2, long).await.unwrap(),
        "two of two taken"
    );
    b.rate_limits.release_slot(&k, "b").await.unwrap();
    assert!(b.rate_limits.take_slot(&k, "c", 2, long).await.unwrap());
    assert!(!b.rate_limits.take_slot(&k, "d", 2, long).await.unwrap());
    // Expiry: a live lease holds its slot through any number of calls, to
    // its last millisecond; then the slot is free.
    let k = key();
    assert!(
        b.rate_limits
            .take_slot(&k, "e", 1, Duration::from_millis(200))
            .await
            .unwrap()
    );
    for _ in 0..4 {
        assert!(
            !b.rate_limits.take_slot(&k, "f", 1, long).await.unwrap(),
            "slot e's lease is live"
        );
    }
    advance_ms(&clock, 199);
    assert!(!b.rate_limits.take_slot(&k, "f", 1, long).await.unwrap());
    advance_ms(&clock, 1);
    assert!(
        b.rate_limits.take_slot(&k, "f", 1, long).await.unwrap(),
        "slot e's lease ran out"
    );
    assert!(!b.rate_limits.take_slot(&k, "g", 1, long).await.unwrap());
}

async fn fifty_concurrent_callers_never_exceed_the_limit(b: Backend) {
    let (b, clock) = b.with_manual_clock();
    let k = key();
    // 30 per 2 s: a burst of 3, then 27 more per 2 s (1.35 per step of
    // 100 ms). Fifty callers ask at once at every step of two windows.
    let limits = [Limit::new("window", 30, Duration::from_secs(2))];
    const STEP_MS: i64 = 100;
    const STEPS_PER_WINDOW: usize = 20;
    let mut granted_per_step = Vec::new();
    for step in 0..=2 * STEPS_PER_WINDOW {
        if step > 0 {
            advance_ms(&clock, STEP_MS);
        }
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(50));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (store, k, barrier) = (b.rate_limits.clone(), k.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.acquire(&k, &limits).await.unwrap()
                })
            })
            .collect();
        let mut granted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Acquire::Granted => granted += 1,
                Acquire::Wait(d) => assert!(
                    !d.is_zero() && d <= Duration::from_millis(STEP_MS as u64),
                    "step {step}: a refusal names a wait within the step: {d:?}"
                ),
            }
        }
        granted_per_step.push(granted);
    }
    assert_eq!(
        granted_per_step[0], 3,
        "fifty at once get the burst: {granted_per_step:?}"
    );
    assert!(
        granted_per_step.iter().all(|g| *g >= 1),
        "every step's refill is used, none starved: {granted_per_step:?}"
    );
    // 20 steps cover one window of 2 s.
    for (i, w) in granted_per_step.windows(STEPS_PER_WINDOW).enumerate() {
        let in_window: u32 = w.iter().sum();
        assert!(
            in_window <= 30,
            "{in_window} grants in the 2 s from step {i}: {granted_per_step:?}"
        );
    }
    assert_eq!(
        granted_per_step.iter().sum::<u32>(),
        3 + 2 * 27,
        "the burst and two windows' refill, all of it used: {granted_per_step:?}"
    );
}

async fn a_small_limit_grants_its_whole_allowance_at_once_and_no_more(b: Backend) {
    let (b, clock) = b.with_manual_clock();
    // Toast: two logins an hour, whenever they are needed.
    let k = key();
    let limits = [Limit::new("hour", 2, Duration::from_secs(3600))];
    assert_eq!(
        b.rate_limits.acquire(&k, &limits).await.unwrap(),
        Acquire::Granted
    );
    assert_eq!(
        b.rate_limits.acquire(&k, &limits).await.unwrap(),
        Acquire::Granted
    );
    assert_eq!(
        b.rate_limits.acquire(&k, &limits).await.unwrap(),
        Acquire::Wait(Duration::from_secs(3600)),
        "a third login within the hour"
    );
    // A window slides: each grant frees its place as it ages out, not all at
    // once. 3 per 500 ms, granted at 0, 200 and 200.
    let k = key();
    let limits = [Limit::new("second", 3, Duration::from_millis(500))];
    let acquire = || b.rate_limits.acquire(&k, &limits);
    assert_eq!(acquire().await.unwrap(), Acquire::Granted);
    advance_ms(&clock, 200);
    assert_eq!(acquire().await.unwrap(), Acquire::Granted);
    assert_eq!(acquire().await.unwrap(), Acquire::Granted);
    assert_eq!(
        acquire().await.unwrap(),
        wait_ms(300),
        "until the grant at 0 ages out"
    );
    advance_ms(&clock, 299);
    assert_eq!(acquire().await.unwrap(), wait_ms(1));
    advance_ms(&clock, 1); // 500: the grant at 0 is out
    assert_eq!(acquire().await.unwrap(), Acquire::Granted);
    assert_eq!(
        acquire().await.unwrap(),
        wait_ms(200),
        "the grants at 200 are still in"
    );
    advance_ms(&clock, 200); // 700: both are out
    assert_eq!(acquire().await.unwrap(), Acquire::Granted);
    assert_eq!(acquire().await.unwrap(), Acquire::Granted);
    assert_eq!(acquire().await.unwrap(), wait_ms(300));
}
