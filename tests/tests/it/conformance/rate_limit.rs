use crate::backends::{Backend, conformance};
use jiff::{SignedDuration, Timestamp};
use shared::ports::{Acquire, Limit};
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

async fn a_budget_grants_its_burst_then_says_how_long_to_wait(b: Backend) {
    let k = key();
    // 20 a minute: a burst of 2, then one every 60/18 s.
    let limits = [Limit::new("minute", 20, Duration::from_secs(60))];
    assert_eq!(
        b.rate_limits.acquire(&k, &limits).await.unwrap(),
        Acquire::Granted
    );
    assert_eq!(
        b.rate_limits.acquire(&k, &limits).await.unwrap(),
        Acquire::Granted
    );
    match b.rate_limits.acquire(&k, &limits).await.unwrap() {
        Acquire::Wait(d) => assert!(
            d > Duration::from_secs(2) && d <= Duration::from_millis(3_334),
            "{d:?}"
        ),
        Acquire::Granted => panic!("the burst is spent"),
    }
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
    assert!(
        matches!(b.rate_limits.acquire(&k2, &two).await.unwrap(), Acquire::Wait(d) if d > Duration::from_secs(3600))
    );
}

async fn a_block_stops_every_caller_until_it_ends(b: Backend) {
    let k = key();
    let limits = [Limit::new("minute", 500, Duration::from_secs(60))];
    b.rate_limits
        .block_until(&k, Timestamp::now() + SignedDuration::from_millis(800))
        .await
        .unwrap();
    // A shorter block does not shorten it.
    b.rate_limits
        .block_until(&k, Timestamp::now())
        .await
        .unwrap();
    match b.rate_limits.acquire(&k, &limits).await.unwrap() {
        Acquire::Wait(d) => assert!(
            d > Duration::from_millis(400) && d <= Duration::from_millis(800),
            "{d:?}"
        ),
        Acquire::Granted => panic!("blocked by a 429"),
    }
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        b.rate_limits.acquire(&k, &limits).await.unwrap(),
        Acquire::Granted
    );
}

async fn concurrency_slots_are_shared_and_expire(b: Backend) {
    // Counting, with leases no run can outlast.
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
    // Expiry: a lease that has run out frees its slot. Only a lower bound is
    // waited for, so a slow machine cannot make this pass or fail.
    let k = key();
    assert!(
        b.rate_limits
            .take_slot(&k, "e", 1, Duration::from_millis(200))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        b.rate_limits.take_slot(&k, "f", 1, long).await.unwrap(),
        "slot e's lease ran out"
    );
    assert!(!b.rate_limits.take_slot(&k, "g", 1, long).await.unwrap());
}

async fn fifty_concurrent_callers_never_exceed_the_limit(b: Backend) {
    let k = key();
    // 30 per 2 s: in any 2 s window at most 30 grants, whoever asks.
    let limits = [Limit::new("window", 30, Duration::from_secs(2))];
    let start = std::time::Instant::now();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (store, k) = (b.rate_limits.clone(), k.clone());
            tokio::spawn(async move {
                let mut grants = Vec::new();
                while start.elapsed() < Duration::from_secs(3) {
                    match store.acquire(&k, &limits).await.unwrap() {
                        Acquire::Granted => grants.push(start.elapsed()),
                        Acquire::Wait(d) => {
                            tokio::time::sleep(d.min(Duration::from_millis(100))).await
                        }
                    }
                }
                grants
            })
        })
        .collect();
    let mut grants = Vec::new();
    for t in tasks {
        grants.extend(t.await.unwrap());
    }
    grants.sort();
    assert!(
        grants.len() >= 20,
        "the budget is used, not starved: {}",
        grants.len()
    );
    for (i, g) in grants.iter().enumerate() {
        let in_window = grants[i..]
            .iter()
            .take_while(|x| **x < *g + Duration::from_secs(2))
            .count();
        assert!(in_window <= 30, "{in_window} grants within 2 s of {g:?}");
    }
}

async fn a_small_limit_grants_its_whole_allowance_at_once_and_no_more(b: Backend) {
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
    match b.rate_limits.acquire(&k, &limits).await.unwrap() {
        Acquire::Wait(d) => assert!(d > Duration::from_secs(3590), "{d:?}"),
        Acquire::Granted => panic!("a third login within the hour"),
    }
    // A short window frees its slots as they age out.
    let k = key();
    let limits = [Limit::new("second", 3, Duration::from_millis(500))];
    for _ in 0..3 {
        assert_eq!(
            b.rate_limits.acquire(&k, &limits).await.unwrap(),
            Acquire::Granted
        );
    }
    assert!(matches!(
        b.rate_limits.acquire(&k, &limits).await.unwrap(),
        Acquire::Wait(_)
    ));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        b.rate_limits.acquire(&k, &limits).await.unwrap(),
        Acquire::Granted
    );
}
