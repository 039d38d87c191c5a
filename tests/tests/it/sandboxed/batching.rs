//! Batch posting: QuickBooks creates go 10 to a batch while the realm's 40
//! batches a minute last and one by one after; Xero bank transactions go up
//! to 50 to a request, each item with its own result. A batch whose answer
//! was lost is resent as the same batch (same members, same key) however its
//! messages come back, so regrouping never books a row twice.

use super::{Hub, token_credentials};
use crate::backends::{Backend, conformance};
use hub_sandboxes::Faults;
use hub_sandboxes::quickbooks::{QuickBooksConfig, QuickBooksSandbox};
use hub_sandboxes::xero::{XeroConfig, XeroSandbox};
use jiff::SignedDuration;
use rust_decimal::Decimal;
use shared::ids::ExternalId;
use shared::model::{
    AccountMapping, Connection, Currency, Direction, Provider, Record, Transaction,
};
use shared::pipelines::push::{PushOutcome, Pusher};
use shared::pipelines::records::ingest;
use shared::ports::{DestinationStatus, LedgerKey};
use shared::providers::{Endpoints, ProviderClients};
use std::collections::BTreeSet;
use std::time::Duration;

conformance!(
    quickbooks_batches_while_the_budget_lasts_and_a_lost_answer_is_resent_as_the_same_batch,
    quickbooks_posts_singly_once_the_batch_budget_is_spent,
    xero_takes_fifty_to_a_request_and_refuses_items_one_by_one,
    quickbooks_a_member_refused_in_a_lost_batch_posts_once_its_mapping_is_fixed_and_redriven,
    xero_a_member_refused_in_a_lost_batch_posts_once_its_mapping_is_fixed_and_redriven,
    quickbooks_a_refused_single_posts_once_its_mapping_is_fixed_and_redriven,
    a_retry_longer_than_the_queue_can_hide_a_message_parks_it_with_the_reason,
    a_request_that_could_outlast_the_invocation_is_not_begun,
    a_push_a_crash_left_unqueued_is_queued_once_by_the_sweep,
);

const QBO_ROUTE_BATCH: &str = "/v3/company/{realmId}/batch";
const QBO_ROUTE_SINGLE: &str = "/v3/company/{realmId}/salesreceipt";

fn sales(pos: &Connection, prefix: &str, n: usize, cash_every: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Record::Transaction(Transaction {
                tenant: pos.tenant.clone(),
                connection: pos.id.clone(),
                source: Provider::Toast,
                external_id: ExternalId::new(format!("{prefix}-{i}")).unwrap(),
                amount: Decimal::new(1000 + i as i64 * 7, 2),
                currency: Currency::new("USD").unwrap(),
                direction: Direction::Credit,
                description: format!("Order {prefix}-{i}"),
                business_date: jiff::civil::date(2026, 11, 27),
                occurred_at: jiff::Timestamp::from_second(1_764_259_200 + i as i64).unwrap(),
                reference: format!("{prefix}-{i}"),
                payment_method: Some(if cash_every > 0 && i % cash_every == 0 {
                    "CASH".into()
                } else {
                    "CREDIT".into()
                }),
                line_items: Vec::new(),
                parts: Vec::new(),
                hold: None,
            })
        })
        .collect()
}

async fn pos(hub: &Hub, destination: Provider, mapping: AccountMapping) -> Connection {
    let mut pos = hub
        .connect(
            "pos",
            Provider::Toast,
            "rest-1",
            "America/New_York",
            super::login(&[("client_id", "unused"), ("client_secret", "unused")]),
        )
        .await;
    pos.mappings.insert(destination, mapping);
    hub.stores.connections.register(&pos).await.unwrap();
    pos
}

/// A QuickBooks sandbox (seeded `seed`), a hub with a Toast point of sale
/// mapped to it and the books connected: (sandbox, hub, pos, clients, realm).
async fn quickbooks_hub(
    b: Backend,
    seed: u64,
) -> (QuickBooksSandbox, Hub, Connection, ProviderClients, String) {
    let qbo = QuickBooksSandbox::start(QuickBooksConfig::seeded(seed))
        .await
        .unwrap();
    let hub = Hub::new(b).await;
    let realm = qbo.realm_id();
    let grant = qbo.grant(&realm);
    hub.app(Provider::QuickBooks, qbo.client_id(), qbo.client_secret())
        .await;
    let pos = pos(
        &hub,
        Provider::QuickBooks,
        AccountMapping {
            sales_item: Some("20".into()),
            deposit_account: Some("4".into()),
            ..AccountMapping::default()
        },
    )
    .await;
    hub.connect(
        "books",
        Provider::QuickBooks,
        &realm,
        "America/New_York",
        token_credentials(
            &grant.access_token,
            grant.refresh_token.as_deref(),
            SignedDuration::from_hours(1),
        ),
    )
    .await;
    let clients = hub.clients(Endpoints {
        quickbooks: qbo.base_url(),
        quickbooks_token: format!("{}/oauth2/v1/tokens/bearer", qbo.base_url()),
        ..Endpoints::default()
    });
    (qbo, hub, pos, clients, realm)
}

fn key(hub: &Hub, id: &str) -> LedgerKey {
    LedgerKey {
        tenant: hub.tenant.clone(),
        provider: Provider::Toast,
        kind: shared::model::RecordKind::Transaction,
        source_id: ExternalId::new(id).unwrap(),
    }
}

async fn quickbooks_batches_while_the_budget_lasts_and_a_lost_answer_is_resent_as_the_same_batch(
    b: Backend,
) {
    let (qbo, hub, pos, clients, realm) = quickbooks_hub(b, 61).await;
    let mut pusher = Pusher::new(hub.stores.clone(), clients.clone());
    pusher.retry_base = Duration::ZERO;
    let dests = [Provider::QuickBooks];

    // 1. 25 sales; every answer is lost after QuickBooks saved the batch.
    ingest(
        &hub.stores,
        &hub.tenant,
        Provider::Toast,
        &dests,
        sales(&pos, "a", 25, 0),
    )
    .await
    .unwrap();
    qbo.set_faults(Faults {
        drop_rate: 1.0,
        drop_after_handling: true,
        ..Faults::none()
    });
    let outcomes = pusher
        .drain(hub.stores.push_queue.as_ref(), 1)
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 25);
    assert!(
        outcomes.iter().all(|o| matches!(o, PushOutcome::Retry(..))),
        "{outcomes:?}"
    );
    let lost = qbo.counters();
    assert_eq!(
        qbo.created_sales_receipts(&realm).len(),
        25,
        "QuickBooks saved them though no answer came back"
    );
    assert_eq!(lost.calls_to("POST", QBO_ROUTE_SINGLE), 0);
    qbo.set_faults(Faults::none());

    // 2. The messages come back one at a time (a grouping unlike the first):
    // each resends the batch its row was promised to, with the same key.
    let mut posted = 0;
    loop {
        let got = hub
            .stores
            .push_queue
            .receive(1, Duration::from_secs(60), Duration::ZERO)
            .await
            .unwrap();
        let Some(m) = got.first() else { break };
        match pusher
            .handle(hub.stores.push_queue.as_ref(), m)
            .await
            .unwrap()
        {
            PushOutcome::Posted(_) => posted += 1,
            PushOutcome::Skipped(why) => assert_eq!(why, "already posted"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        posted, 3,
        "one message per batch resends it; its answer posts all members"
    );
    let receipts = qbo.created_sales_receipts(&realm);
    assert_eq!(receipts.len(), 25, "no row booked twice");
    let docs: BTreeSet<&str> = receipts
        .iter()
        .map(|r| r["DocNumber"].as_str().unwrap())
        .collect();
    assert_eq!(docs.len(), 25);
    let c = qbo.counters();
    assert_eq!(c.calls_to("POST", QBO_ROUTE_SINGLE), 0);
    let replayed: u64 = c.requests_per_key.values().sum();
    let created: u64 = c.creates_per_key.values().sum();
    assert_eq!(created, 25, "each batch key created its members once");
    assert!(
        replayed >= 6,
        "three batches, each sent and resent: {replayed}"
    );
    for i in 0..25 {
        let row = hub
            .stores
            .ledger
            .get(&key(&hub, &format!("a-{i}")))
            .await
            .unwrap()
            .unwrap();
        let s = &row.destinations[&Provider::QuickBooks];
        assert_eq!(s.status, DestinationStatus::Posted);
        assert_eq!(s.send, None, "the promise is released once posted");
        assert!(s.sync_token.is_some());
    }

    // 3. A row promised to a batch that was never written (its worker died
    // between the two writes): the batch is declared abandoned, the promise
    // released, and the row sent afresh, once.
    ingest(
        &hub.stores,
        &hub.tenant,
        Provider::Toast,
        &dests,
        sales(&pos, "c", 1, 0),
    )
    .await
    .unwrap();
    hub.stores
        .ledger
        .mark_send(
            &key(&hub, "c-0"),
            Provider::QuickBooks,
            1,
            Some("b:deadbeef"),
            None,
        )
        .await
        .unwrap();
    let outcomes = pusher
        .drain(hub.stores.push_queue.as_ref(), 1)
        .await
        .unwrap();
    assert!(
        matches!(outcomes.as_slice(), [PushOutcome::Retry(..)]),
        "{outcomes:?}"
    );
    let row = hub
        .stores
        .ledger
        .get(&key(&hub, "c-0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.destinations[&Provider::QuickBooks].send, None);
    let late = shared::ids::IdempotencyKey::new("push-batch:deadbeef").unwrap();
    assert!(
        matches!(
            hub.stores
                .idempotency
                .claim(&late, jiff::Timestamp::now() + SignedDuration::from_mins(1))
                .await
                .unwrap(),
            shared::ports::ClaimOutcome::Done { .. }
        ),
        "the dead worker can no longer write that batch"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let outcomes = pusher
        .drain(hub.stores.push_queue.as_ref(), 1)
        .await
        .unwrap();
    assert!(
        matches!(outcomes.as_slice(), [PushOutcome::Posted(_)]),
        "{outcomes:?}"
    );
    assert_eq!(qbo.created_sales_receipts(&realm).len(), 26);
}

async fn quickbooks_posts_singly_once_the_batch_budget_is_spent(b: Backend) {
    let (qbo, hub, pos, clients, realm) = quickbooks_hub(b, 63).await;
    let pusher = Pusher::new(hub.stores.clone(), clients);
    // 150 sales: 15 full batches would need 15 of the realm's 40 a minute,
    // more than its budget holds at once (a burst of 4, then one every 1.7 s).
    let n = 150;
    ingest(
        &hub.stores,
        &hub.tenant,
        Provider::Toast,
        &[Provider::QuickBooks],
        sales(&pos, "b", n, 0),
    )
    .await
    .unwrap();
    let outcomes = pusher
        .drain(hub.stores.push_queue.as_ref(), 10)
        .await
        .unwrap();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, PushOutcome::Posted(_)))
            .count(),
        n,
        "{outcomes:?}"
    );
    let c = qbo.counters();
    let (batches, singles) = (
        c.calls_to("POST", QBO_ROUTE_BATCH) as usize,
        c.calls_to("POST", QBO_ROUTE_SINGLE) as usize,
    );
    assert_eq!(
        batches * 10 + singles,
        n,
        "batches {batches}, singles {singles}"
    );
    assert!(
        batches >= 4 && singles >= 10,
        "batches {batches}, singles {singles}"
    );
    assert_eq!(c.rate_limited, 0, "the hub stays inside both budgets");
    assert_eq!(qbo.created_sales_receipts(&realm).len(), n);
}

/// A Xero sandbox (seeded `seed`), a hub with a Toast point of sale mapped
/// to it (cash to bank account 999, which Xero does not have) and the books
/// connected: (sandbox, hub, pos, clients, tenant).
async fn xero_hub(
    b: Backend,
    seed: u64,
) -> (XeroSandbox, Hub, Connection, ProviderClients, String) {
    let xero = XeroSandbox::start(XeroConfig::seeded(seed)).await.unwrap();
    let hub = Hub::new(b).await;
    hub.app(Provider::Xero, xero.client_id(), xero.client_secret())
        .await;
    // Cash goes to a bank account Xero does not have: those items are refused.
    let mut mapping = AccountMapping {
        sales_account: Some("200".into()),
        expense_account: Some("429".into()),
        deposit_account: Some("090".into()),
        ..AccountMapping::default()
    };
    mapping
        .by_payment_method
        .insert("CASH".into(), "999".into());
    let pos = pos(&hub, Provider::Xero, mapping).await;
    let tenant = xero.tenant_id();
    let xg = xero.grant();
    hub.connect(
        "books",
        Provider::Xero,
        &tenant,
        "America/New_York",
        token_credentials(
            &xg.access_token,
            xg.refresh_token.as_deref(),
            SignedDuration::from_hours(1),
        ),
    )
    .await;
    let clients = hub.clients(Endpoints {
        xero: xero.base_url(),
        xero_token: format!("{}/connect/token", xero.base_url()),
        ..Endpoints::default()
    });
    (xero, hub, pos, clients, tenant)
}

async fn xero_takes_fifty_to_a_request_and_refuses_items_one_by_one(b: Backend) {
    let (xero, hub, pos, clients, tenant) = xero_hub(b, 62).await;
    let pusher = Pusher::new(hub.stores.clone(), clients);
    // 60 sales, every 10th paid in cash.
    ingest(
        &hub.stores,
        &hub.tenant,
        Provider::Toast,
        &[Provider::Xero],
        sales(&pos, "x", 60, 10),
    )
    .await
    .unwrap();
    let outcomes = pusher
        .drain(hub.stores.push_queue.as_ref(), 10)
        .await
        .unwrap();
    let parked = outcomes
        .iter()
        .filter(|o| matches!(o, PushOutcome::Park(_)))
        .count();
    let posted = outcomes
        .iter()
        .filter(|o| matches!(o, PushOutcome::Posted(_)))
        .count();
    assert_eq!((posted, parked), (54, 6), "{outcomes:?}");
    let c = xero.counters();
    // POST: Xero's update-or-create (PUT never updates).
    let posts = c.calls_to("POST", "/api.xro/2.0/BankTransactions");
    assert_eq!(posts, 2, "60 items: one request of 50, one of 10");
    assert_eq!(xero.bank_transactions(&tenant).len(), 54);
    assert_eq!(
        hub.stores.push_queue.dead_letters(10).await.unwrap().len(),
        6
    );
    for i in 0..60 {
        let row = hub
            .stores
            .ledger
            .get(&key(&hub, &format!("x-{i}")))
            .await
            .unwrap()
            .unwrap();
        let s = &row.destinations[&Provider::Xero];
        if i % 10 == 0 {
            assert_eq!(s.status, DestinationStatus::Failed);
            assert!(
                s.last_error
                    .as_deref()
                    .unwrap_or_default()
                    .contains("BankAccount"),
                "the item's own message: {:?}",
                s.last_error
            );
            assert_eq!(s.send, None, "released: a fixed mapping sends it afresh");
        } else {
            assert_eq!(s.status, DestinationStatus::Posted);
        }
    }
}

/// Drains the push queue until nothing is visible or in flight (every
/// retry's delay is zero: no clock is waited on); the outcomes.
async fn settle(hub: &Hub, pusher: &Pusher) -> Vec<PushOutcome> {
    let mut all = Vec::new();
    for _ in 0..50 {
        all.extend(
            pusher
                .drain(hub.stores.push_queue.as_ref(), 1)
                .await
                .unwrap(),
        );
        let d = hub.stores.push_queue.depth().await.unwrap();
        if d.visible + d.in_flight == 0 {
            return all;
        }
    }
    panic!("the push queue did not settle: {all:?}");
}

/// The mistake: cash sales mapped to an account QuickBooks does not have.
async fn map_cash_to_an_account_quickbooks_lacks(hub: &Hub, mut pos: Connection) -> Connection {
    let mapping = pos.mappings.get_mut(&Provider::QuickBooks).unwrap();
    mapping
        .by_payment_method
        .insert("CASH".into(), "9999".into());
    hub.stores.connections.register(&pos).await.unwrap();
    pos
}

/// The operator fixes the cash mapping and redrives the ten parked
/// messages; the queue settles with nothing parked again.
async fn fix_redrive_and_settle(
    hub: &Hub,
    pos: &Connection,
    pusher: &Pusher,
    destination: Provider,
) {
    map_cash_to_the_default(hub, pos, destination).await;
    assert_eq!(hub.stores.push_queue.redrive(None).await.unwrap(), 10);
    let outcomes = settle(hub, pusher).await;
    assert!(
        !outcomes.iter().any(|o| matches!(o, PushOutcome::Park(_))),
        "nothing is parked again: {outcomes:?}"
    );
}

/// The `destination` states of rows `<prefix>-0..n`, each asserted posted.
async fn posted_states(
    hub: &Hub,
    prefix: &str,
    n: usize,
    destination: Provider,
) -> Vec<shared::ports::DestinationState> {
    let mut out = Vec::new();
    for i in 0..n {
        let row = hub
            .stores
            .ledger
            .get(&key(hub, &format!("{prefix}-{i}")))
            .await
            .unwrap()
            .unwrap();
        let s = row.destinations[&destination].clone();
        assert_eq!(s.status, DestinationStatus::Posted, "{prefix}-{i}: {s:?}");
        out.push(s);
    }
    out
}

/// The operator's fix: cash sales go to the default deposit account.
async fn map_cash_to_the_default(hub: &Hub, pos: &Connection, destination: Provider) {
    let mut fixed = pos.clone();
    let m = fixed.mappings.get_mut(&destination).unwrap();
    assert!(m.by_payment_method.remove("CASH").is_some());
    hub.stores.connections.register(&fixed).await.unwrap();
}

/// Ten sales, the first paid in cash (mapped to an account the books do not
/// have), pushed while every answer is lost after the books handled the
/// batch: the books saved nine and refused the cash sale, the hub heard
/// nothing, and after the queue's receive limit all ten messages sit in the
/// dead-letter queue with their rows still promised to that batch.
async fn lost_batch_parked(
    hub: &Hub,
    pos: &Connection,
    pusher: &Pusher,
    destination: Provider,
    prefix: &str,
    set_faults: impl Fn(Faults),
) {
    ingest(
        &hub.stores,
        &hub.tenant,
        Provider::Toast,
        &[destination],
        sales(pos, prefix, 10, 10),
    )
    .await
    .unwrap();
    set_faults(Faults {
        drop_rate: 1.0,
        drop_after_handling: true,
        ..Faults::none()
    });
    let outcomes = settle(hub, pusher).await;
    assert!(
        outcomes.iter().all(|o| matches!(o, PushOutcome::Retry(..))),
        "{outcomes:?}"
    );
    set_faults(Faults::none());
    assert_eq!(
        hub.stores.push_queue.depth().await.unwrap().dead,
        10,
        "the receive limit parked every message"
    );
    let row = hub
        .stores
        .ledger
        .get(&key(hub, &format!("{prefix}-0")))
        .await
        .unwrap()
        .unwrap();
    let s = &row.destinations[&destination];
    assert!(
        s.send.as_deref().is_some_and(|m| m.starts_with("b:")),
        "the cash sale is still promised to its batch: {s:?}"
    );
}

async fn quickbooks_a_member_refused_in_a_lost_batch_posts_once_its_mapping_is_fixed_and_redriven(
    b: Backend,
) {
    let (qbo, hub, pos, clients, realm) = quickbooks_hub(b, 71).await;
    let pos = map_cash_to_an_account_quickbooks_lacks(&hub, pos).await;
    let mut pusher = Pusher::new(hub.stores.clone(), clients);
    pusher.retry_base = Duration::ZERO;
    lost_batch_parked(&hub, &pos, &pusher, Provider::QuickBooks, "q", |f| {
        qbo.set_faults(f)
    })
    .await;
    assert_eq!(
        qbo.created_sales_receipts(&realm).len(),
        9,
        "QuickBooks saved the nine it could, though no answer came back"
    );

    fix_redrive_and_settle(&hub, &pos, &pusher, Provider::QuickBooks).await;
    assert_eq!(hub.stores.push_queue.depth().await.unwrap().dead, 0);

    let receipts = qbo.created_sales_receipts(&realm);
    assert_eq!(receipts.len(), 10, "{receipts:#?}");
    let docs: BTreeSet<&str> = receipts
        .iter()
        .map(|r| r["DocNumber"].as_str().unwrap())
        .collect();
    assert_eq!(docs.len(), 10, "each sale booked once");
    let cash = receipts.iter().find(|r| r["DocNumber"] == "q-0").unwrap();
    assert_eq!(
        cash["DepositToAccountRef"]["value"], "4",
        "the fixed mapping was read, not the body refused before: {cash:#}"
    );
    for s in posted_states(&hub, "q", 10, Provider::QuickBooks).await {
        assert_eq!(s.send, None);
    }
}

async fn xero_a_member_refused_in_a_lost_batch_posts_once_its_mapping_is_fixed_and_redriven(
    b: Backend,
) {
    let (xero, hub, pos, clients, tenant) = xero_hub(b, 72).await;
    let mut pusher = Pusher::new(hub.stores.clone(), clients);
    pusher.retry_base = Duration::ZERO;
    lost_batch_parked(&hub, &pos, &pusher, Provider::Xero, "x", |f| {
        xero.set_faults(f)
    })
    .await;
    assert_eq!(xero.bank_transactions(&tenant).len(), 9);

    fix_redrive_and_settle(&hub, &pos, &pusher, Provider::Xero).await;
    let txns = xero.bank_transactions(&tenant);
    assert_eq!(txns.len(), 10, "{txns:#?}");
    let refs: BTreeSet<&str> = txns
        .iter()
        .map(|t| t["Reference"].as_str().unwrap())
        .collect();
    assert_eq!(refs.len(), 10, "each sale booked once");
    let cash = txns.iter().find(|t| t["Reference"] == "x-0").unwrap();
    assert_eq!(
        cash["BankAccount"]["Code"], "090",
        "the fixed mapping was read: {cash:#}"
    );
    posted_states(&hub, "x", 10, Provider::Xero).await;
}

async fn quickbooks_a_refused_single_posts_once_its_mapping_is_fixed_and_redriven(b: Backend) {
    let (qbo, hub, pos, clients, realm) = quickbooks_hub(b, 73).await;
    let pos = map_cash_to_an_account_quickbooks_lacks(&hub, pos).await;
    let pusher = Pusher::new(hub.stores.clone(), clients);
    // One cash sale: a batch of one goes out as a single create.
    ingest(
        &hub.stores,
        &hub.tenant,
        Provider::Toast,
        &[Provider::QuickBooks],
        sales(&pos, "s", 1, 1),
    )
    .await
    .unwrap();
    let outcomes = settle(&hub, &pusher).await;
    assert!(
        matches!(outcomes.as_slice(), [PushOutcome::Park(why)] if why.contains("9999")),
        "{outcomes:?}"
    );
    let row = hub
        .stores
        .ledger
        .get(&key(&hub, "s-0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.destinations[&Provider::QuickBooks].send, None);

    map_cash_to_the_default(&hub, &pos, Provider::QuickBooks).await;
    assert_eq!(hub.stores.push_queue.redrive(None).await.unwrap(), 1);
    let outcomes = settle(&hub, &pusher).await;
    assert!(
        matches!(outcomes.as_slice(), [PushOutcome::Posted(_)]),
        "a fresh attempt under a new requestid, not QuickBooks' replay of its refusal: {outcomes:?}"
    );
    let receipts = qbo.created_sales_receipts(&realm);
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0]["DepositToAccountRef"]["value"], "4");
    let c = qbo.counters();
    assert_eq!(
        c.calls_to("POST", QBO_ROUTE_SINGLE),
        2,
        "one refused, one posted"
    );
    assert_eq!(c.calls_to("POST", QBO_ROUTE_BATCH), 0);
}

async fn a_retry_longer_than_the_queue_can_hide_a_message_parks_it_with_the_reason(b: Backend) {
    let (qbo, hub, pos, clients, realm) = quickbooks_hub(b, 74).await;
    let pusher = Pusher::new(hub.stores.clone(), clients);
    ingest(
        &hub.stores,
        &hub.tenant,
        Provider::Toast,
        &[Provider::QuickBooks],
        sales(&pos, "h", 1, 0),
    )
    .await
    .unwrap();
    qbo.set_faults(Faults::errors(1.0));
    let got = hub
        .stores
        .push_queue
        .receive(1, Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap();
    let mut m = got[0].clone();
    if hub.stores.backend == "aws" {
        let first = m
            .first_received_at
            .expect("SQS says when it first gave the message out");
        assert!((jiff::Timestamp::now() - first).as_secs().abs() < 120);
    }
    // First received 11 h 59 min ago: SQS would refuse to hide it for the
    // retry's backoff, so it is parked now, saying why.
    m.first_received_at = Some(jiff::Timestamp::now() - SignedDuration::from_mins(11 * 60 + 59));
    let out = pusher
        .handle(hub.stores.push_queue.as_ref(), &m)
        .await
        .unwrap();
    let PushOutcome::Park(why) = &out else {
        panic!("{out:?}")
    };
    assert!(
        why.contains("longer than the queue can hold the message"),
        "{why}"
    );
    let d = hub.stores.push_queue.depth().await.unwrap();
    assert_eq!((d.visible, d.in_flight, d.dead), (0, 0, 1));
    assert!(qbo.created_sales_receipts(&realm).is_empty());

    // Received just now, the same failure is only delayed.
    qbo.set_faults(Faults::none());
    assert_eq!(hub.stores.push_queue.redrive(None).await.unwrap(), 1);
    let outcomes = settle(&hub, &pusher).await;
    assert!(
        matches!(outcomes.as_slice(), [PushOutcome::Posted(_)]),
        "{outcomes:?}"
    );
}

/// The push function's timeout: a request (a rate-budget wait and the call,
/// 90 s at worst) is begun only while it can finish; the rest go back to the
/// queue untried and unpromised, and the next invocation posts them once.
async fn a_request_that_could_outlast_the_invocation_is_not_begun(b: Backend) {
    let (qbo, hub, pos, clients, realm) = quickbooks_hub(b, 75).await;
    let pusher = Pusher::new(hub.stores.clone(), clients);
    ingest(
        &hub.stores,
        &hub.tenant,
        Provider::Toast,
        &[Provider::QuickBooks],
        sales(&pos, "t", 12, 0),
    )
    .await
    .unwrap();
    // 60 s left: less than one request may take.
    let late = pusher.until(std::time::Instant::now() + Duration::from_secs(60));
    let outcomes = late.drain(hub.stores.push_queue.as_ref(), 1).await.unwrap();
    assert_eq!(outcomes.len(), 12);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, PushOutcome::Retry(_, why) if why.contains("time is nearly up"))),
        "{outcomes:?}"
    );
    assert_eq!(qbo.counters().total_calls(), 0, "nothing was sent");
    for i in 0..12 {
        let row = hub
            .stores
            .ledger
            .get(&key(&hub, &format!("t-{i}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.destinations[&Provider::QuickBooks].send, None, "t-{i}");
    }
    let outcomes = settle(&hub, &pusher).await;
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, PushOutcome::Posted(_)))
            .count(),
        12,
        "{outcomes:?}"
    );
    assert_eq!(qbo.created_sales_receipts(&realm).len(), 12);
}

async fn a_push_a_crash_left_unqueued_is_queued_once_by_the_sweep(b: Backend) {
    use shared::pipelines::records::{requeue_stranded, source_record};
    // The stores' clock on the evening of the sales' business date: the
    // sweep reads the days around "now", so a wall clock would leave the
    // fixed-date sales outside its window a week after they were written.
    let start: jiff::Timestamp = "2026-11-27T22:00:00Z".parse().unwrap();
    let (b, _clock) = b.with_manual_clock_at(start);
    let hub = Hub::new(b).await;
    let pos = pos(&hub, Provider::QuickBooks, AccountMapping::default()).await;
    hub.connect(
        "books",
        Provider::QuickBooks,
        "realm-1",
        "America/New_York",
        token_credentials("access", Some("refresh"), SignedDuration::from_hours(1)),
    )
    .await;
    // The ledger written, then the process gone before the queue write.
    let mut keys = BTreeSet::new();
    for r in sales(&pos, "stranded", 3, 0) {
        let sr = source_record(&hub.tenant, Provider::Toast, &r);
        hub.stores
            .ledger
            .upsert(&sr, &[Provider::QuickBooks])
            .await
            .unwrap();
        keys.insert(sr.key.storage_key());
    }
    assert_eq!(hub.stores.push_queue.depth().await.unwrap().visible, 0);
    let after = SignedDuration::from_mins(10);
    let now = start;
    let sweep = |at: jiff::Timestamp| requeue_stranded(&hub.stores, at, after, 7);
    // Pending for less than ten minutes: its push may yet be on its way.
    assert_eq!(
        sweep(now + SignedDuration::from_mins(5))
            .await
            .unwrap()
            .requeued,
        0
    );
    // Past that, each stranded row's push is queued, once.
    let swept = sweep(now + SignedDuration::from_mins(11)).await.unwrap();
    assert_eq!(swept.requeued, 3, "{swept:?}");
    assert_eq!(
        sweep(now + SignedDuration::from_mins(16))
            .await
            .unwrap()
            .requeued,
        0
    );
    let mut queued = BTreeSet::new();
    for body in super::drain(hub.stores.push_queue.as_ref()).await {
        let item: shared::pipelines::records::PushItem = serde_json::from_str(&body).unwrap();
        assert_eq!(item.destination, Provider::QuickBooks);
        assert_eq!(item.version, 1);
        assert!(
            queued.insert(item.key.storage_key()),
            "queued twice: {body}"
        );
    }
    assert_eq!(queued, keys);
}
