//! Idempotency on a manual clock: leases and retention end where the test
//! moves the clock, never after a sleep.

use crate::backends::{Backend, conformance};
use jiff::{SignedDuration, Timestamp};
use shared::ids::IdempotencyKey;
use shared::ports::{ClaimOutcome, Clock, ManualClock, StoreError};

conformance!(
    a_live_claim_is_in_progress_for_everyone_else,
    a_completed_key_is_done_until_its_retention_ends,
    an_expired_lease_is_reclaimable_and_the_old_token_is_dead,
    a_released_key_can_be_claimed_at_once,
    twenty_concurrent_claimers_get_exactly_one_winner,
);

fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::new(format!("{s}-{}", uuid::Uuid::new_v4())).unwrap()
}

/// `ms` after the clock's present.
fn after(clock: &ManualClock, ms: i64) -> Timestamp {
    clock.now() + SignedDuration::from_millis(ms)
}

async fn a_live_claim_is_in_progress_for_everyone_else(b: Backend) {
    let (b, clock) = b.with_manual_clock();
    let in_ = |ms| after(&clock, ms);
    let k = key("live");
    let lease = in_(60_000);
    let ClaimOutcome::Claimed(_) = b.idempotency.claim(&k, lease).await.unwrap() else {
        panic!("first claim must win");
    };
    match b.idempotency.claim(&k, in_(60_000)).await.unwrap() {
        ClaimOutcome::InProgress { lease_until } => {
            assert_eq!(lease_until.as_millisecond(), lease.as_millisecond());
        }
        other => panic!("second claim must see in-progress, got {other:?}"),
    }
}

async fn a_completed_key_is_done_until_its_retention_ends(b: Backend) {
    let (b, clock) = b.with_manual_clock();
    let in_ = |ms| after(&clock, ms);
    let k = key("done");
    let ClaimOutcome::Claimed(token) = b.idempotency.claim(&k, in_(60_000)).await.unwrap() else {
        panic!("first claim must win");
    };
    let retain = in_(1_000);
    b.idempotency
        .complete(&k, &token, Some("{\"queued\":3}"), retain)
        .await
        .unwrap();
    let done = ClaimOutcome::Done {
        result: Some("{\"queued\":3}".to_string()),
        retained_until: retain,
    };
    assert_eq!(b.idempotency.claim(&k, in_(60_000)).await.unwrap(), done);
    // Completing twice is refused: the claim is spent.
    assert!(matches!(
        b.idempotency.complete(&k, &token, None, in_(1_000)).await,
        Err(StoreError::Conflict(_))
    ));
    clock.advance(SignedDuration::from_millis(999));
    assert_eq!(
        b.idempotency.claim(&k, in_(60_000)).await.unwrap(),
        done,
        "done to the retention's last millisecond"
    );
    clock.advance(SignedDuration::from_millis(1));
    assert!(
        matches!(
            b.idempotency.claim(&k, in_(60_000)).await.unwrap(),
            ClaimOutcome::Claimed(_)
        ),
        "after retention the key is free again"
    );
}

async fn an_expired_lease_is_reclaimable_and_the_old_token_is_dead(b: Backend) {
    let (b, clock) = b.with_manual_clock();
    let in_ = |ms| after(&clock, ms);
    let k = key("expired");
    let lease = in_(300);
    let ClaimOutcome::Claimed(old) = b.idempotency.claim(&k, lease).await.unwrap() else {
        panic!("first claim must win");
    };
    clock.advance(SignedDuration::from_millis(299));
    assert_eq!(
        b.idempotency.claim(&k, in_(60_000)).await.unwrap(),
        ClaimOutcome::InProgress { lease_until: lease },
        "the lease holds to its last millisecond"
    );
    clock.advance(SignedDuration::from_millis(1));
    let ClaimOutcome::Claimed(new) = b.idempotency.claim(&k, in_(60_000)).await.unwrap() else {
        panic!("a claim whose lease ended must be reclaimable");
    };
    assert_ne!(old, new);
    assert!(
        matches!(
            b.idempotency.complete(&k, &old, None, in_(60_000)).await,
            Err(StoreError::Conflict(_))
        ),
        "the first claimer lost its lease and must not complete"
    );
    assert!(matches!(
        b.idempotency.release(&k, &old).await,
        Err(StoreError::Conflict(_))
    ));
    b.idempotency
        .complete(&k, &new, None, in_(60_000))
        .await
        .unwrap();
    assert!(matches!(
        b.idempotency.claim(&k, in_(60_000)).await.unwrap(),
        ClaimOutcome::Done { result: None, .. }
    ));
}

async fn a_released_key_can_be_claimed_at_once(b: Backend) {
    let (b, clock) = b.with_manual_clock();
    let in_ = |ms| after(&clock, ms);
    let k = key("released");
    let ClaimOutcome::Claimed(token) = b.idempotency.claim(&k, in_(60_000)).await.unwrap() else {
        panic!("first claim must win");
    };
    b.idempotency.release(&k, &token).await.unwrap();
    assert!(matches!(
        b.idempotency.claim(&k, in_(60_000)).await.unwrap(),
        ClaimOutcome::Claimed(_)
    ));
}

async fn twenty_concurrent_claimers_get_exactly_one_winner(b: Backend) {
    let (b, clock) = b.with_manual_clock();
    let in_ = |ms| after(&clock, ms);
    let k = key("race");
    let lease = in_(60_000);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (store, k, barrier) = (b.idempotency.clone(), k.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.claim(&k, lease).await
            })
        })
        .collect();
    let mut claimed = 0;
    let mut in_progress = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            ClaimOutcome::Claimed(_) => claimed += 1,
            ClaimOutcome::InProgress { .. } => in_progress += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((claimed, in_progress), (1, 19));
}
