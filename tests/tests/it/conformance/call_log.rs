use crate::backends::{Backend, conformance};
use jiff::{SignedDuration, Timestamp};
use shared::ports::{CallOutcome, CallRecord};

conformance!(calls_are_read_back_per_account_from_a_time_on);

async fn calls_are_read_back_per_account_from_a_time_on(b: Backend) {
    let account = format!("xero:{}", uuid::Uuid::new_v4());
    let now = Timestamp::now();
    let call = |secs_ago: i64, outcome, status| CallRecord {
        account: account.clone(),
        endpoint: "xero.banktransactions.save".into(),
        at: now - SignedDuration::from_secs(secs_ago),
        latency_ms: 120,
        outcome,
        status,
    };
    let calls = [
        call(3600, CallOutcome::Ok, Some(200)),
        call(120, CallOutcome::RateLimited, Some(429)),
        call(60, CallOutcome::Transient, None),
        call(1, CallOutcome::Ok, Some(200)),
    ];
    for c in &calls {
        b.calls.record(c).await.unwrap();
    }
    let mut other = call(1, CallOutcome::Ok, Some(200));
    other.account = "xero:someone-else".into();
    b.calls.record(&other).await.unwrap();

    let recent = b
        .calls
        .since(&account, now - SignedDuration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(recent, calls[1..].to_vec());
    assert_eq!(
        b.calls
            .since(&account, now - SignedDuration::from_hours(2))
            .await
            .unwrap()
            .len(),
        4
    );
}
