//! Exactly-once posting end to end: Toast orders pulled into the ledger and
//! posted to the QuickBooks sandbox while it injects 30% faults (5xx, and
//! connections dropped after QuickBooks already saved the receipt). The books
//! end with exactly one SalesReceipt per order and the ledger's totals to the
//! cent; a tip edited afterwards updates the same receipt; a record the books
//! refuse is marked failed and parked, not retried forever.

use super::{Hub, login, token_credentials};
use crate::backends::{Backend, conformance};
use hub_sandboxes::Faults;
use hub_sandboxes::quickbooks::{QboEntity, QuickBooksConfig, QuickBooksSandbox};
use hub_sandboxes::toast::{ToastConfig, ToastLimits, ToastSandbox};
use jiff::SignedDuration;
use rust_decimal::Decimal;
use shared::model::{AccountMapping, Provider};
use shared::pipelines::pull::{PullSettings, Puller, RunOptions};
use shared::pipelines::push::{PushOutcome, Pusher};
use shared::pipelines::reconcile::reconcile;
use shared::pipelines::streams::ToastOrders;
use shared::ports::DestinationStatus;
use shared::providers::Endpoints;
use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

conformance!(
    orders_are_booked_exactly_once_through_faults_and_reconcile_to_the_cent,
    webhooks_delivered_three_times_are_booked_once_beside_the_pull,
    square_sales_and_refunds_are_booked_in_xero_once_through_faults,
);

async fn orders_are_booked_exactly_once_through_faults_and_reconcile_to_the_cent(b: Backend) {
    let toast = ToastSandbox::start(ToastConfig {
        days: 2,
        orders_per_day: 25,
        limits: ToastLimits::unlimited(),
        ..ToastConfig::seeded(21)
    })
    .await
    .unwrap();
    let qbo = QuickBooksSandbox::start(QuickBooksConfig {
        limits: Vec::new(),
        ..QuickBooksConfig::seeded(22)
    })
    .await
    .unwrap();
    let hub = Hub::new(b).await;
    let guid = toast.restaurant_guids()[0].clone();
    let realm = qbo.realm_id();
    let grant = qbo.grant(&realm);
    hub.app(Provider::QuickBooks, qbo.client_id(), qbo.client_secret())
        .await;
    let mut pos = hub
        .connect(
            "pos",
            Provider::Toast,
            &guid,
            "America/New_York",
            login(&[
                ("client_id", toast.client_id()),
                ("client_secret", toast.client_secret()),
            ]),
        )
        .await;
    pos.mappings.insert(
        Provider::QuickBooks,
        AccountMapping {
            sales_item: Some("20".into()),
            deposit_account: Some("4".into()),
            ..AccountMapping::default()
        },
    );
    hub.stores.connections.register(&pos).await.unwrap();
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
    let endpoints = Endpoints {
        toast: toast.base_url(),
        quickbooks: qbo.base_url(),
        quickbooks_token: format!("{}/oauth2/v1/tokens/bearer", qbo.base_url()),
        ..Endpoints::default()
    };
    let clients = hub.clients(endpoints);
    let puller = Puller::new(
        hub.stores.clone(),
        PullSettings {
            initial_lookback: SignedDuration::from_hours(24 * 5),
            settle: SignedDuration::ZERO,
            ..PullSettings::default()
        },
    );
    let pull = || async {
        let stream = ToastOrders {
            client: clients.toast(&pos).unwrap(),
            connection: pos.clone(),
        };
        puller
            .run_windowed(&pos, &stream, RunOptions::default())
            .await
            .unwrap()
    };
    let report = pull().await;
    let orders = toast.orders(&guid).len();
    assert_eq!(report.tally.created as usize, orders);

    // Push through faults: 15% 5xx, 15% of connections dropped after QuickBooks saved the receipt.
    qbo.set_faults(Faults {
        error_rate: 0.15,
        drop_rate: 0.15,
        drop_after_handling: true,
        ..Faults::none()
    });
    let mut pusher = Pusher::new(hub.stores.clone(), clients.clone());
    pusher.retry_base = Duration::ZERO;
    let mut posted = 0;
    for _ in 0..20 {
        let outcomes = pusher
            .drain(hub.stores.push_queue.as_ref(), 100)
            .await
            .unwrap();
        posted += outcomes
            .iter()
            .filter(|o| matches!(o, PushOutcome::Posted(_)))
            .count();
        assert!(
            outcomes.iter().all(|o| !matches!(o, PushOutcome::Park(_))),
            "{outcomes:?}"
        );
        if hub.stores.push_queue.depth().await.unwrap().visible == 0
            && hub.stores.push_queue.depth().await.unwrap().in_flight == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    qbo.set_faults(Faults::none());
    assert_eq!(posted, orders);
    let receipts = qbo.created_sales_receipts(&realm);
    assert_eq!(receipts.len(), orders, "exactly one SalesReceipt per order");
    let docs: BTreeSet<&str> = receipts
        .iter()
        .map(|r| r["DocNumber"].as_str().unwrap())
        .collect();
    assert_eq!(docs.len(), orders);
    let books: Decimal = receipts
        .iter()
        .map(|r| Decimal::from_str(&r["TotalAmt"].to_string()).unwrap())
        .sum();
    let mut ledger_total = Decimal::ZERO;
    let mut dates = BTreeSet::new();
    for r in &receipts {
        dates.insert(
            r["TxnDate"]
                .as_str()
                .unwrap()
                .parse::<jiff::civil::Date>()
                .unwrap(),
        );
    }
    for d in &dates {
        let rec = reconcile(&hub.stores, &hub.tenant, *d).await.unwrap();
        assert!(rec.reconciled, "{rec:?}");
        ledger_total += rec.locations.iter().map(|l| l.pos_total).sum::<Decimal>();
    }
    assert_eq!(
        books, ledger_total,
        "the books hold the ledger's totals to the cent"
    );

    // A tip added later is a new version: the same receipt is updated.
    // Orders whose first check and its first payment stand (a voided one books zero whatever its tip).
    let live: Vec<String> = toast
        .orders(&guid)
        .iter()
        .filter(|o| {
            !o.voided
                && !o.deleted
                && o.checks
                    .first()
                    .is_some_and(|c| !c.voided && c.payments.first().is_some_and(|p| !p.voided))
        })
        .map(|o| o.guid.clone())
        .collect();
    let first = live[0].clone();
    toast
        .edit_order(&guid, &first, |o| o.checks[0].payments[0].tip_cents += 250)
        .unwrap();
    // A pull's window ends at the millisecond it starts; let the edit be older.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = pull().await;
    assert_eq!(
        report.tally.changed,
        1,
        "{report:?} edited {:?}",
        toast.order(&guid, &first).map(|o| o.modified)
    );
    let outcomes = pusher
        .drain(hub.stores.push_queue.as_ref(), 10)
        .await
        .unwrap();
    assert!(
        matches!(outcomes.as_slice(), [PushOutcome::Posted(_)]),
        "{outcomes:?}"
    );
    assert_eq!(
        qbo.created_sales_receipts(&realm).len(),
        orders,
        "updated, not created again"
    );
    let key = shared::ports::LedgerKey {
        tenant: hub.tenant.clone(),
        provider: Provider::Toast,
        kind: shared::model::RecordKind::Transaction,
        source_id: shared::ids::ExternalId::new(&first).unwrap(),
    };
    let row = hub.stores.ledger.get(&key).await.unwrap().unwrap();
    let state = &row.destinations[&Provider::QuickBooks];
    assert_eq!(
        (state.status, state.version),
        (DestinationStatus::Posted, 2)
    );
    let remote = qbo
        .entity(
            &realm,
            QboEntity::SalesReceipt,
            state.remote_id.as_ref().unwrap(),
        )
        .unwrap();
    let amount = row.payload["record"]["amount"].as_str().unwrap();
    assert_eq!(
        Decimal::from_str(&remote["TotalAmt"].to_string()).unwrap(),
        Decimal::from_str(amount).unwrap()
    );

    // A mapping the books refuse: failed in the ledger with QuickBooks' message, parked.
    let mut broken = pos.clone();
    broken
        .mappings
        .get_mut(&Provider::QuickBooks)
        .unwrap()
        .sales_item = Some("9999".into());
    hub.stores.connections.register(&broken).await.unwrap();
    let second = live[1].clone();
    toast
        .edit_order(&guid, &second, |o| o.checks[0].payments[0].tip_cents += 100)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    pull().await;
    let outcomes = pusher
        .drain(hub.stores.push_queue.as_ref(), 10)
        .await
        .unwrap();
    assert!(
        matches!(outcomes.as_slice(), [PushOutcome::Park(_)]),
        "{outcomes:?}"
    );
    let dead = hub.stores.push_queue.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let key2 = shared::ports::LedgerKey {
        source_id: shared::ids::ExternalId::new(&second).unwrap(),
        ..key
    };
    let row = hub.stores.ledger.get(&key2).await.unwrap().unwrap();
    let state = &row.destinations[&Provider::QuickBooks];
    assert_eq!(state.status, DestinationStatus::Failed);
    assert!(
        state
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("refused as invalid"),
        "{:?}",
        state.last_error
    );
    let date = row.business_date.unwrap();
    let rec = reconcile(&hub.stores, &hub.tenant, date).await.unwrap();
    assert!(!rec.reconciled);
    assert!(
        rec.issues
            .iter()
            .any(|i| i.problem == "failed" && i.key == key2.storage_key()),
        "{:?}",
        rec.issues
    );
}

async fn webhooks_delivered_three_times_are_booked_once_beside_the_pull(b: Backend) {
    use hub::serve::{AppState, run};
    use shared::webhooks::signing_key_secret;
    let toast = ToastSandbox::start(ToastConfig {
        days: 1,
        orders_per_day: 12,
        limits: ToastLimits::unlimited(),
        ..ToastConfig::seeded(31)
    })
    .await
    .unwrap();
    let qbo = QuickBooksSandbox::start(QuickBooksConfig {
        limits: Vec::new(),
        ..QuickBooksConfig::seeded(32)
    })
    .await
    .unwrap();
    let hub = Hub::new(b).await;
    let guid = toast.restaurant_guids()[0].clone();
    let realm = qbo.realm_id();
    let grant = qbo.grant(&realm);
    hub.app(Provider::QuickBooks, qbo.client_id(), qbo.client_secret())
        .await;
    let mut pos = hub
        .connect(
            "pos",
            Provider::Toast,
            &guid,
            "America/New_York",
            login(&[
                ("client_id", toast.client_id()),
                ("client_secret", toast.client_secret()),
            ]),
        )
        .await;
    pos.mappings.insert(
        Provider::QuickBooks,
        AccountMapping {
            sales_item: Some("20".into()),
            deposit_account: Some("4".into()),
            ..AccountMapping::default()
        },
    );
    hub.stores.connections.register(&pos).await.unwrap();
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
    hub.stores
        .secrets
        .put(
            &signing_key_secret(Provider::Toast),
            &"toast-subscription-secret".to_string().into(),
        )
        .await
        .unwrap();
    let clients = hub.clients(Endpoints {
        toast: toast.base_url(),
        quickbooks: qbo.base_url(),
        quickbooks_token: format!("{}/oauth2/v1/tokens/bearer", qbo.base_url()),
        ..Endpoints::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhooks/toast", listener.local_addr().unwrap());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run(
        listener,
        AppState::new(hub.stores.clone(), Default::default()),
        async {
            let _ = stopped.await;
        },
    ));

    // Every order's webhook, delivered three times (the provider retried).
    let orders: Vec<String> = toast.orders(&guid).iter().map(|o| o.guid.clone()).collect();
    for o in &orders {
        let body = toast.order_updated_event(&guid, o).unwrap();
        for _ in 0..3 {
            let status = hub_sandboxes::send_webhook(
                Provider::Toast,
                &url,
                &body,
                "toast-subscription-secret",
            )
            .await
            .unwrap();
            assert_eq!(status.as_u16(), 200);
        }
    }
    let tally = shared::pipelines::events::drain(&hub.stores, &clients, 100)
        .await
        .unwrap();
    assert_eq!(
        tally.created as usize,
        orders.len(),
        "each order ingested once"
    );
    // The scheduled pull finds the same orders: nothing new.
    let puller = Puller::new(
        hub.stores.clone(),
        PullSettings {
            initial_lookback: SignedDuration::from_hours(72),
            settle: SignedDuration::ZERO,
            ..PullSettings::default()
        },
    );
    let stream = ToastOrders {
        client: clients.toast(&pos).unwrap(),
        connection: pos.clone(),
    };
    let report = puller
        .run_windowed(&pos, &stream, RunOptions::default())
        .await
        .unwrap();
    assert_eq!((report.tally.created, report.tally.changed), (0, 0));

    qbo.set_faults(Faults {
        error_rate: 0.15,
        drop_rate: 0.15,
        drop_after_handling: true,
        ..Faults::none()
    });
    let mut pusher = Pusher::new(hub.stores.clone(), clients.clone());
    pusher.retry_base = Duration::ZERO;
    for _ in 0..20 {
        pusher
            .drain(hub.stores.push_queue.as_ref(), 100)
            .await
            .unwrap();
        let d = hub.stores.push_queue.depth().await.unwrap();
        if d.visible + d.in_flight == 0 {
            break;
        }
    }
    assert_eq!(
        qbo.created_sales_receipts(&realm).len(),
        orders.len(),
        "one receipt per order, not three"
    );
}

async fn square_sales_and_refunds_are_booked_in_xero_once_through_faults(b: Backend) {
    use hub_sandboxes::square::{SquareConfig, SquareSandbox};
    use hub_sandboxes::xero::{XeroConfig, XeroSandbox};
    use shared::pipelines::streams::SquarePayments;
    let square = SquareSandbox::start(SquareConfig {
        days: 1,
        payments_per_day: 15,
        ..SquareConfig::seeded(41)
    })
    .await
    .unwrap();
    let xero = XeroSandbox::start(XeroConfig {
        limits: Vec::new(),
        ..XeroConfig::seeded(42)
    })
    .await
    .unwrap();
    let hub = Hub::new(b).await;
    hub.app(Provider::Square, square.client_id(), square.client_secret())
        .await;
    hub.app(Provider::Xero, xero.client_id(), xero.client_secret())
        .await;
    let sq = square.grant();
    let mut pos = hub
        .connect(
            "cafe",
            Provider::Square,
            &square.merchant_id(),
            "America/Los_Angeles",
            token_credentials(
                &sq.access_token,
                sq.refresh_token.as_deref(),
                SignedDuration::from_hours(1),
            ),
        )
        .await;
    pos.mappings.insert(
        Provider::Xero,
        AccountMapping {
            sales_account: Some("200".into()),
            expense_account: Some("429".into()),
            deposit_account: Some("090".into()),
            ..AccountMapping::default()
        },
    );
    hub.stores.connections.register(&pos).await.unwrap();
    let tenant = xero.tenant_id();
    let xg = xero.grant();
    hub.connect(
        "books",
        Provider::Xero,
        &tenant,
        "America/Los_Angeles",
        token_credentials(
            &xg.access_token,
            xg.refresh_token.as_deref(),
            SignedDuration::from_hours(1),
        ),
    )
    .await;
    let clients = hub.clients(Endpoints {
        square: square.base_url(),
        square_token: format!("{}/oauth2/token", square.base_url()),
        xero: xero.base_url(),
        xero_token: format!("{}/connect/token", xero.base_url()),
        ..Endpoints::default()
    });
    let puller = Puller::new(
        hub.stores.clone(),
        PullSettings {
            initial_lookback: SignedDuration::from_hours(72),
            settle: SignedDuration::ZERO,
            ..PullSettings::default()
        },
    );
    let stream = SquarePayments {
        client: clients.square(&pos).await.unwrap(),
        connection: pos.clone(),
    };
    let report = puller
        .run_windowed(&pos, &stream, RunOptions::default())
        .await
        .unwrap();
    let records = report.tally.created as usize;
    assert!(records >= 15, "{records}");

    xero.set_faults(Faults {
        error_rate: 0.15,
        drop_rate: 0.15,
        drop_after_handling: true,
        ..Faults::none()
    });
    let mut pusher = Pusher::new(hub.stores.clone(), clients.clone());
    pusher.retry_base = Duration::ZERO;
    for _ in 0..20 {
        let outcomes = pusher
            .drain(hub.stores.push_queue.as_ref(), 100)
            .await
            .unwrap();
        assert!(
            outcomes.iter().all(|o| !matches!(o, PushOutcome::Park(_))),
            "{outcomes:?}"
        );
        let d = hub.stores.push_queue.depth().await.unwrap();
        if d.visible + d.in_flight == 0 {
            break;
        }
    }
    xero.set_faults(Faults::none());
    let booked = xero.bank_transactions(&tenant);
    assert_eq!(
        booked.len(),
        records,
        "one bank transaction per sale or refund"
    );
    let net: Decimal = booked
        .iter()
        .map(|t| {
            let total = Decimal::from_str(&t["Total"].to_string()).unwrap();
            if t["Type"] == "SPEND" { -total } else { total }
        })
        .sum();
    let mut ledger = Decimal::ZERO;
    let dates: BTreeSet<jiff::civil::Date> = booked
        .iter()
        .map(|t| t["DateString"].as_str().unwrap()[..10].parse().unwrap())
        .collect();
    for d in dates {
        let rec = reconcile(&hub.stores, &hub.tenant, d).await.unwrap();
        assert!(rec.reconciled, "{rec:?}");
        ledger += rec.locations.iter().map(|l| l.pos_total).sum::<Decimal>();
    }
    assert_eq!(net, ledger, "Xero holds the ledger's net to the cent");
}
