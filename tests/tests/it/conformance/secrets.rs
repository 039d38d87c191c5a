use crate::backends::{Backend, conformance};
use secrecy::{ExposeSecret, SecretString};
use shared::ids::SecretName;
use shared::ports::{CachedSecrets, SecretStore, StoreError};
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
    let n = name();
    let ttl = Duration::from_millis(800);
    let reader = CachedSecrets::new(b.secrets(), ttl);
    let other_writer = b.secrets();
    reader.put(&n, &secret("one")).await.unwrap();
    assert_eq!(reader.get(&n).await.unwrap().expose_secret(), "one");

    other_writer.put(&n, &secret("two")).await.unwrap();
    assert_eq!(
        reader.get(&n).await.unwrap().expose_secret(),
        "one",
        "within the TTL the cached value is served"
    );
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
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
