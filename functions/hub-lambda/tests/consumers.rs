//! Queue-consumer and schedule functions fed Lambda event payloads: a
//! scheduled event fans out, and an SQS batch reports only the failed
//! messages (`batchItemFailures`), parking what can never succeed.

use serde_json::json;
use shared::adapters::file_secrets::FileSecrets;
use shared::adapters::sqlite::SqliteStore;
use shared::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
use shared::model::{Connection, Provider, Tenant, TimeZoneName};
use shared::pipelines::pull::Puller;
use shared::pipelines::push::Pusher;
use shared::providers::{Endpoints, ProviderClients};
use shared::{Config, Stores};

async fn stores() -> Stores {
    let dir = std::env::temp_dir().join(format!(
        "hub-consumers-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let config = Config::from_lookup(|_| None).unwrap();
    let stores = Stores::embedded(
        SqliteStore::in_memory().unwrap(),
        FileSecrets::new(dir.join("s.json")),
        5,
        &config,
    );
    let tenant = TenantId::new("bistro").unwrap();
    stores
        .connections
        .put_tenant(&Tenant {
            id: tenant.clone(),
            name: "Bistro".into(),
        })
        .await
        .unwrap();
    for (id, provider) in [
        ("pos-1", Provider::Toast),
        ("pos-2", Provider::Toast),
        ("books", Provider::QuickBooks),
    ] {
        stores
            .connections
            .register(&Connection {
                id: ConnectionId::new(id).unwrap(),
                tenant: tenant.clone(),
                provider,
                account_id: ProviderAccountId::new(format!("acct-{id}")).unwrap(),
                time_zone: TimeZoneName::new("UTC").unwrap(),
                business_day_close: Default::default(),
                credentials: SecretName::new(format!("bistro/{id}")).unwrap(),
                mappings: Default::default(),
                codes: Default::default(),
                currency: None,
                books: Default::default(),
            })
            .await
            .unwrap();
    }
    stores
}

fn sqs(records: &[(&str, &str)]) -> serde_json::Value {
    json!({"Records": records.iter().map(|(id, body)| json!({
        "messageId": id, "receiptHandle": format!("rh-{id}"), "body": body,
        "attributes": {"ApproximateReceiveCount": "1"}, "eventSource": "aws:sqs"
    })).collect::<Vec<_>>()})
}

#[tokio::test]
async fn a_schedule_fans_out_and_a_bad_job_is_reported_alone() {
    let stores = stores().await;
    let puller = Puller::new(stores.clone(), Default::default());
    let clients = ProviderClients::new(&stores, Endpoints::default(), "http://127.0.0.1:9");
    let scheduled = json!({"version": "0", "source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}});
    let out = hub_lambda::pull::handle(
        &stores,
        &puller,
        &clients,
        Provider::Toast,
        scheduled,
        "req-1",
    )
    .await;
    assert_eq!(
        out,
        json!({"queued": 2, "not_due": 0, "deferred": 0, "days_queued": 0}),
        "one job per Toast connection: each restaurant's budget allows a pull every tick"
    );
    assert_eq!(stores.pull_queue.depth().await.unwrap().visible, 2);

    let out = hub_lambda::pull::handle(
        &stores,
        &puller,
        &clients,
        Provider::Toast,
        sqs(&[("m-1", "not a job")]),
        "req-2",
    )
    .await;
    assert_eq!(
        out,
        json!({"batchItemFailures": [{"itemIdentifier": "m-1"}]})
    );
}

#[tokio::test]
async fn a_push_batch_settles_each_message_on_its_own() {
    let stores = stores().await;
    let clients = ProviderClients::new(&stores, Endpoints::default(), "http://127.0.0.1:9");
    let pusher = Pusher::new(stores.clone(), clients.clone());
    // A message for a ledger row that does not exist can never succeed: it is
    // parked (reported as handled), not retried.
    let missing = json!({"key": {"tenant": "bistro", "provider": "toast", "kind": "transaction", "source_id": "nope"}, "version": 1, "destination": "quickbooks"});
    stores
        .push_queue
        .send_batch(&[shared::ports::OutgoingMessage::new(missing.to_string())])
        .await
        .unwrap();
    let got = stores
        .push_queue
        .receive(
            1,
            std::time::Duration::from_secs(30),
            std::time::Duration::ZERO,
        )
        .await
        .unwrap();
    let event = json!({"Records": [{"messageId": got[0].id, "receiptHandle": got[0].receipt.0, "body": got[0].body, "attributes": {"ApproximateReceiveCount": "1"}}]});
    let out = hub_lambda::push::handle(&stores, &pusher, event, "req-3").await;
    assert_eq!(out, json!({"batchItemFailures": []}));
    assert_eq!(
        stores.push_queue.dead_letters(10).await.unwrap().len(),
        1,
        "parked for an operator"
    );

    let out = hub_lambda::events::handle(&stores, &clients, sqs(&[("w-1", "{}")]), "req-4").await;
    assert_eq!(
        out,
        json!({"batchItemFailures": [{"itemIdentifier": "w-1"}]}),
        "a message that cannot be parked (unknown receipt) comes back"
    );
}

#[test]
fn a_superseded_pull_job_is_done_and_other_failures_are_not() {
    use shared::pipelines::pull::{PullError, PullOutcome};
    let done = hub_lambda::pull::settle(Err(PullError::Superseded("cursor#toast#orders".into())));
    assert!(
        matches!(done, Ok(PullOutcome::Done(ref r)) if r.is_empty()),
        "{done:?}"
    );
    let failed = hub_lambda::pull::settle(Err(PullError::Interrupted(1)));
    assert!(
        matches!(failed, Err(PullError::Interrupted(1))),
        "{failed:?}"
    );
}
