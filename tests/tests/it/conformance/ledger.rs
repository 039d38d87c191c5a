use crate::backends::{Backend, conformance};
use jiff::civil::date;
use serde_json::json;
use shared::ids::{ExternalId, TenantId};
use shared::model::{Provider, RecordKind};
use shared::ports::{DestinationStatus, LedgerKey, SourceRecord, StoreError, UpsertOutcome};

conformance!(
    the_same_content_is_a_no_op_and_new_content_a_new_version,
    posting_state_is_kept_per_destination_and_version,
    rows_are_listed_by_tenant_and_business_date,
    concurrent_upserts_of_one_new_record_create_it_once,
    undated_rows_are_listed_by_tenant_and_kind,
    a_row_is_promised_to_one_send_at_a_time,
    a_row_upserted_but_never_queued_is_queued_by_the_next_ingest,
);

const DESTS: [Provider; 2] = [Provider::QuickBooks, Provider::Xero];

fn tenant() -> TenantId {
    TenantId::new(format!("t-{}", uuid::Uuid::new_v4())).unwrap()
}

fn record(tenant: &TenantId, id: &str, amount: &str, day: u8) -> SourceRecord {
    SourceRecord {
        key: LedgerKey {
            tenant: tenant.clone(),
            provider: Provider::Toast,
            kind: RecordKind::Transaction,
            source_id: ExternalId::new(id).unwrap(),
        },
        business_date: Some(date(2026, 11, day as i8)),
        payload: json!({"amount": amount, "currency": "USD", "external_id": id}),
    }
}

async fn the_same_content_is_a_no_op_and_new_content_a_new_version(b: Backend) {
    let t = tenant();
    let r = record(&t, "order-1", "12.50", 27);
    assert_eq!(
        b.ledger.upsert(&r, &DESTS).await.unwrap(),
        UpsertOutcome::Created { version: 1 }
    );
    match b.ledger.upsert(&r, &DESTS).await.unwrap() {
        UpsertOutcome::Unchanged { version, pending } => {
            assert_eq!(version, 1);
            let dests: Vec<Provider> = pending.iter().map(|(d, _)| *d).collect();
            assert_eq!(dests, DESTS.to_vec(), "both still untried");
        }
        other => panic!("{other:?}"),
    }
    b.ledger
        .mark_posted(&r.key, Provider::QuickBooks, 1, "sr-77", Some("0"))
        .await
        .unwrap();

    // A tip adjustment changes the content: version 2, pending again, but the
    // remote id and SyncToken stay so the push is an update.
    let tipped = record(&t, "order-1", "14.50", 27);
    assert_eq!(
        b.ledger.upsert(&tipped, &DESTS).await.unwrap(),
        UpsertOutcome::Changed { version: 2 }
    );
    let row = b.ledger.get(&r.key).await.unwrap().unwrap();
    assert_eq!(row.version, 2);
    assert_eq!(row.payload["amount"], "14.50");
    assert_eq!(row.content_hash, tipped.content_hash());
    let qbo = &row.destinations[&Provider::QuickBooks];
    assert_eq!(qbo.status, DestinationStatus::Pending);
    assert_eq!(qbo.version, 2);
    assert_eq!(qbo.remote_id.as_deref(), Some("sr-77"));
    assert_eq!(qbo.sync_token.as_deref(), Some("0"));
    assert_eq!(
        row.destinations[&Provider::Xero].status,
        DestinationStatus::Pending
    );
}

async fn posting_state_is_kept_per_destination_and_version(b: Backend) {
    let t = tenant();
    let r = record(&t, "order-2", "8.00", 27);
    b.ledger.upsert(&r, &DESTS).await.unwrap();
    assert_eq!(
        b.ledger
            .mark_failed(&r.key, Provider::Xero, 1, "rate limited")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        b.ledger
            .mark_failed(&r.key, Provider::Xero, 1, "Account code '200' is not valid")
            .await
            .unwrap(),
        2
    );
    b.ledger
        .mark_posted(&r.key, Provider::QuickBooks, 1, "sr-1", Some("3"))
        .await
        .unwrap();
    let row = b.ledger.get(&r.key).await.unwrap().unwrap();
    let xero = &row.destinations[&Provider::Xero];
    assert_eq!(xero.status, DestinationStatus::Failed);
    assert_eq!(xero.attempts, 2);
    assert_eq!(
        xero.last_error.as_deref(),
        Some("Account code '200' is not valid")
    );
    let qbo = &row.destinations[&Provider::QuickBooks];
    assert_eq!(
        (qbo.status, qbo.remote_id.as_deref()),
        (DestinationStatus::Posted, Some("sr-1"))
    );

    // A result for a version the row has left behind is refused.
    b.ledger
        .upsert(&record(&t, "order-2", "9.00", 27), &DESTS)
        .await
        .unwrap();
    assert!(matches!(
        b.ledger
            .mark_posted(&r.key, Provider::Xero, 1, "bt-1", None)
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Unknown rows are not found.
    let missing = record(&t, "never-seen", "1.00", 27);
    assert!(matches!(
        b.ledger
            .mark_failed(&missing.key, Provider::Xero, 1, "x")
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(b.ledger.get(&missing.key).await.unwrap().is_none());
}

async fn rows_are_listed_by_tenant_and_business_date(b: Backend) {
    let (t, other) = (tenant(), tenant());
    for (id, day) in [("a", 27), ("b", 27), ("c", 28)] {
        b.ledger
            .upsert(&record(&t, id, "1.00", day), &DESTS)
            .await
            .unwrap();
    }
    b.ledger
        .upsert(&record(&other, "a", "1.00", 27), &DESTS)
        .await
        .unwrap();
    let rows = b
        .ledger
        .list_for_business_date(&t, date(2026, 11, 27))
        .await
        .unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.key.source_id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert!(rows.iter().all(|r| r.key.tenant == t));
    // A record whose business date changes moves to the new date.
    b.ledger
        .upsert(&record(&t, "b", "1.00", 28), &DESTS)
        .await
        .unwrap();
    let rows = b
        .ledger
        .list_for_business_date(&t, date(2026, 11, 28))
        .await
        .unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.key.source_id.as_str()).collect();
    assert_eq!(ids, ["b", "c"]);
}

async fn concurrent_upserts_of_one_new_record_create_it_once(b: Backend) {
    let t = tenant();
    let r = record(&t, "dup", "5.00", 27);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(10));
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (ledger, r, barrier) = (b.ledger.clone(), r.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                ledger.upsert(&r, &DESTS).await
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            UpsertOutcome::Created { .. } => created += 1,
            UpsertOutcome::Unchanged { version, .. } => assert_eq!(version, 1),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 1);
}

async fn undated_rows_are_listed_by_tenant_and_kind(b: Backend) {
    let t = tenant();
    let level = |item: &str, qty: &str| SourceRecord {
        key: LedgerKey {
            tenant: t.clone(),
            provider: Provider::Square,
            kind: RecordKind::InventoryLevel,
            source_id: ExternalId::new(format!("L1:{item}")).unwrap(),
        },
        business_date: None,
        payload: json!({"item": item, "quantity": qty}),
    };
    b.ledger.upsert(&level("flour", "10"), &[]).await.unwrap();
    b.ledger.upsert(&level("sugar", "4"), &[]).await.unwrap();
    b.ledger.upsert(&level("flour", "7.5"), &[]).await.unwrap();
    b.ledger
        .upsert(&record(&t, "sale", "1.00", 27), &DESTS)
        .await
        .unwrap();
    let rows = b
        .ledger
        .list_undated(&t, RecordKind::InventoryLevel)
        .await
        .unwrap();
    let latest: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.payload["item"].as_str().unwrap().to_string(),
                r.payload["quantity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        latest,
        [
            ("flour".to_string(), "7.5".to_string()),
            ("sugar".to_string(), "4".to_string())
        ]
    );
    assert!(
        b.ledger
            .list_undated(&t, RecordKind::MenuItem)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        b.ledger
            .list_undated(&tenant(), RecordKind::InventoryLevel)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_row_is_promised_to_one_send_at_a_time(b: Backend) {
    let t = tenant();
    let r = record(&t, "order-send", "9.99", 27);
    b.ledger.upsert(&r, &DESTS).await.unwrap();
    // 10 workers try to put the same row into their own batch: one wins.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let ledger = b.ledger.clone();
        let key = r.key.clone();
        tasks.push(tokio::spawn(async move {
            ledger
                .mark_send(
                    &key,
                    Provider::QuickBooks,
                    1,
                    Some(&format!("batch-{i}")),
                    None,
                )
                .await
        }));
    }
    let mut won = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(()) => won.push(format!("batch-{i}")),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won.len(), 1, "exactly one send holds the row: {won:?}");
    let row = b.ledger.get(&r.key).await.unwrap().unwrap();
    assert_eq!(
        row.destinations[&Provider::QuickBooks].send.as_deref(),
        Some(won[0].as_str())
    );
    // Xero's marker is separate.
    assert_eq!(row.destinations[&Provider::Xero].send, None);
    // A failure keeps the promise (the retry resends the same request)...
    b.ledger
        .mark_failed(&r.key, Provider::QuickBooks, 1, "timed out")
        .await
        .unwrap();
    let row = b.ledger.get(&r.key).await.unwrap().unwrap();
    assert_eq!(
        row.destinations[&Provider::QuickBooks].send.as_deref(),
        Some(won[0].as_str())
    );
    // ...a wrong expectation is refused, the right one releases it...
    assert!(matches!(
        b.ledger
            .mark_send(&r.key, Provider::QuickBooks, 1, None, Some("batch-x"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    b.ledger
        .mark_send(
            &r.key,
            Provider::QuickBooks,
            1,
            Some("single-1"),
            Some(won[0].as_str()),
        )
        .await
        .unwrap();
    // ...posting clears it, and a new version starts without one.
    b.ledger
        .mark_posted(&r.key, Provider::QuickBooks, 1, "QB-1", Some("0"))
        .await
        .unwrap();
    let row = b.ledger.get(&r.key).await.unwrap().unwrap();
    assert_eq!(row.destinations[&Provider::QuickBooks].send, None);
    b.ledger
        .mark_send(&r.key, Provider::Xero, 1, Some("x-1"), None)
        .await
        .unwrap();
    let changed = record(&t, "order-send", "10.99", 27);
    assert_eq!(
        b.ledger.upsert(&changed, &DESTS).await.unwrap(),
        UpsertOutcome::Changed { version: 2 }
    );
    let row = b.ledger.get(&r.key).await.unwrap().unwrap();
    assert_eq!(row.destinations[&Provider::Xero].send, None);
    // A stale version cannot take a promise.
    assert!(matches!(
        b.ledger
            .mark_send(&r.key, Provider::Xero, 1, Some("x-2"), None)
            .await,
        Err(StoreError::Conflict(_))
    ));
}

async fn a_row_upserted_but_never_queued_is_queued_by_the_next_ingest(b: Backend) {
    use shared::pipelines::records::{PushItem, ingest, source_record};
    let stores = b.stores(5).await;
    let t = tenant();
    let record = shared::model::Record::Transaction(shared::model::Transaction {
        tenant: t.clone(),
        connection: shared::ids::ConnectionId::new("pos").unwrap(),
        source: Provider::Toast,
        external_id: ExternalId::new("order-crash").unwrap(),
        amount: "12.50".parse().unwrap(),
        currency: shared::model::Currency::new("USD").unwrap(),
        direction: shared::model::Direction::Credit,
        description: "Order".into(),
        business_date: date(2026, 11, 27),
        occurred_at: jiff::Timestamp::from_second(1_764_259_200).unwrap(),
        reference: "T-1".into(),
        payment_method: None,
        line_items: Vec::new(),
        parts: Vec::new(),
        hold: None,
    });
    // A process upserts the row, then dies before queueing its push.
    let sr = source_record(&t, Provider::Toast, &record);
    b.ledger.upsert(&sr, &[Provider::QuickBooks]).await.unwrap();
    assert_eq!(stores.push_queue.depth().await.unwrap().visible, 0);
    // A re-read right away queues nothing more (the push is surely queued).
    // (HUB_REQUEUE_PENDING_AFTER_SECONDS is not set in this binary: 600 s.)
    let tally = ingest(
        &stores,
        &t,
        Provider::Toast,
        &[Provider::QuickBooks],
        vec![record.clone()],
    )
    .await
    .unwrap();
    assert_eq!((tally.unchanged, tally.pushes), (1, 0));
    // Ten minutes on, the next pull reads the same record: unchanged, but
    // still untried, so its push is queued now.
    // (Here "ten minutes" is zero.)
    let tally = shared::pipelines::records::ingest_with(
        &stores,
        &t,
        Provider::Toast,
        &[Provider::QuickBooks],
        vec![record.clone()],
        jiff::SignedDuration::ZERO,
    )
    .await
    .unwrap();
    assert_eq!((tally.unchanged, tally.pushes), (1, 1));
    let m = stores
        .push_queue
        .receive(
            10,
            std::time::Duration::from_secs(30),
            std::time::Duration::ZERO,
        )
        .await
        .unwrap();
    let item: PushItem = serde_json::from_str(&m[0].body).unwrap();
    assert_eq!(
        (item.key, item.version, item.destination),
        (sr.key.clone(), 1, Provider::QuickBooks)
    );
    // Once posted, a re-read queues nothing.
    b.ledger
        .mark_posted(&sr.key, Provider::QuickBooks, 1, "QB-9", None)
        .await
        .unwrap();
    let tally = ingest(
        &stores,
        &t,
        Provider::Toast,
        &[Provider::QuickBooks],
        vec![record],
    )
    .await
    .unwrap();
    assert_eq!((tally.unchanged, tally.pushes), (1, 0));
}
