use crate::backends::{Backend, conformance};
use jiff::{SignedDuration, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use shared::ids::SecretName;
use shared::ports::{CachedSecrets, ManualClock, SecretStore, StoreError};
use std::time::Duration;

conformance!(
    a_write_is_a_new_version_and_the_old_one_is_previous,
    a_missing_secret_is_not_found_by_name,
    the_cache_serves_reads_within_its_ttl_and_sees_its_own_writes,
);

fn name() -> SecretName {
    SecretName::new(format!(
        "tenant-{}/quickbooks",
        uuid::Uuid::new_v4().simple()
    ))
    .unwrap()
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

async fn a_write_is_a_new_version_and_the_old_one_is_previous(b: Backend) {
    let store = b.secrets();
    let n = name();
    let v1 = store
        .put(&n, &secret("{\"refresh_token\":\"r1\"}"))
        .await
        .unwrap();
    assert_eq!(
        store.get(&n).await.unwrap().expose_secret(),
        "{\"refresh_token\":\"r1\"}"
    );
    assert!(store.get_previous(&n).await.unwrap().is_none());
    let v2 = store
        .put(&n, &secret("{\"refresh_token\":\"r2\"}"))
        .await
        .unwrap();
    assert_ne!(v1, v2);
    assert_eq!(
        store.get(&n).await.unwrap().expose_secret(),
        "{\"refresh_token\":\"r2\"}"
    );
    assert_eq!(
        store
            .get_previous(&n)
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        "{\"refresh_token\":\"r1\"}"
    );
}

async fn a_missing_secret_is_not_found_by_name(b: Backend) {
    let store = b.secrets();
    let n = name();
    match store.get(&n).await {
        Err(StoreError::NotFound(what)) => assert!(what.contains(n.as_str()), "{what}"),
        other => panic!("expected not found, got {other:?}"),
    }
    assert!(store.get_previous(&n).await.unwrap().is_none());
}

async fn the_cache_serves_reads_within_its_ttl_and_sees_its_own_writes(b: Backend) {
    // The TTL runs on a manual clock: however long the store takes to answer,
    // "within" and "after" are where the test puts the clock.
    let clock = ManualClock::new(Timestamp::now());
    let n = name();
    let ttl = Duration::from_secs(300);
    let reader = CachedSecrets::new(b.secrets(), ttl).with_clock(clock.clone());
    let other_writer = b.secrets();
    reader.put(&n, &secret("one")).await.unwrap();
    assert_eq!(reader.get(&n).await.unwrap().expose_secret(), "one");

    other_writer.put(&n, &secret("two")).await.unwrap();
    assert_eq!(
        reader.get(&n).await.unwrap().expose_secret(),
        "one",
        "within the TTL the cached value is served"
    );
    clock.advance(SignedDuration::try_from(ttl).unwrap() - SignedDuration::from_millis(1));
    assert_eq!(
        reader.get(&n).await.unwrap().expose_secret(),
        "one",
        "to the TTL's last millisecond"
    );
    clock.advance(SignedDuration::from_millis(1));
    assert_eq!(
        reader.get(&n).await.unwrap().expose_secret(),
        "two",
        "after the TTL it is re-read"
    );

    reader.put(&n, &secret("three")).await.unwrap();
    assert_eq!(
        reader.get(&n).await.unwrap().expose_secret(),
        "three",
        "own writes are seen at once"
    );
}
