use crate::backends::{Backend, conformance};
use shared::ids::{StreamName, TenantId};
use shared::model::Provider;
use shared::ports::{CasOutcome, CursorKey};

conformance!(
    a_new_cursor_is_created_once,
    compare_and_set_advances_only_from_the_expected_version,
    of_twenty_concurrent_advances_exactly_one_wins,
);

fn key() -> CursorKey {
    CursorKey {
        tenant: TenantId::new(format!("t-{}", uuid::Uuid::new_v4())).unwrap(),
        provider: Provider::Toast,
        stream: StreamName::new("orders").unwrap(),
    }
}

async fn a_new_cursor_is_created_once(b: Backend) {
    let k = key();
    assert_eq!(b.cursors.get(&k).await.unwrap(), None);
    let CasOutcome::Set(c) = b
        .cursors
        .compare_and_set(&k, None, "2026-01-01T00:00:00Z")
        .await
        .unwrap()
    else {
        panic!("creating a missing cursor must succeed");
    };
    assert_eq!(c.version, 1);
    match b.cursors.compare_and_set(&k, None, "other").await.unwrap() {
        CasOutcome::Conflict { current: Some(cur) } => {
            assert_eq!(cur.value, "2026-01-01T00:00:00Z");
            assert_eq!(cur.version, 1);
        }
        other => panic!("second create must conflict, got {other:?}"),
    }
    assert_eq!(
        b.cursors.get(&k).await.unwrap().unwrap().value,
        "2026-01-01T00:00:00Z"
    );
}

async fn compare_and_set_advances_only_from_the_expected_version(b: Backend) {
    let k = key();
    b.cursors.compare_and_set(&k, None, "a").await.unwrap();
    let CasOutcome::Set(c2) = b.cursors.compare_and_set(&k, Some(1), "b").await.unwrap() else {
        panic!("advance from the current version must succeed");
    };
    assert_eq!((c2.value.as_str(), c2.version), ("b", 2));
    match b
        .cursors
        .compare_and_set(&k, Some(1), "stale")
        .await
        .unwrap()
    {
        CasOutcome::Conflict { current: Some(cur) } => assert_eq!(cur.version, 2),
        other => panic!("a stale expected version must conflict, got {other:?}"),
    }
    // A cursor that does not exist cannot be advanced from a version.
    let missing = key();
    assert!(matches!(
        b.cursors
            .compare_and_set(&missing, Some(1), "x")
            .await
            .unwrap(),
        CasOutcome::Conflict { current: None }
    ));
    assert_eq!(b.cursors.get(&k).await.unwrap().unwrap().value, "b");
}

async fn of_twenty_concurrent_advances_exactly_one_wins(b: Backend) {
    let k = key();
    b.cursors.compare_and_set(&k, None, "start").await.unwrap();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (store, k, barrier) = (b.cursors.clone(), k.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .compare_and_set(&k, Some(1), &format!("page-{i}"))
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        if let CasOutcome::Set(c) = t.await.unwrap().unwrap() {
            winners.push(c.value);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let stored = b.cursors.get(&k).await.unwrap().unwrap();
    assert_eq!((stored.version, &stored.value), (2, &winners[0]));
}
