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
use shared::ports::DestinationStatus;
use shared::providers::Endpoints;
use shared::providers::toast::streams::ToastOrders;
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
            parts: hub_sandboxes::quickbooks::role_items(),
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
    let pos = shared::providers::registry::prepare(&clients, &pos)
        .await
        .unwrap();
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
    // A sale per order, and a record per refunded payment beside it.
    let records = report.tally.created as usize;
    assert!(records > orders, "{records} records of {orders} orders");

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
    assert_eq!(posted, records);
    // One receipt per sale or refund with money in it; none twice.
    let receipts: Vec<serde_json::Value> = qbo
        .created_sales_receipts(&realm)
        .into_iter()
        .chain(qbo.created_refund_receipts(&realm))
        .collect();
    let notes: BTreeSet<&str> = receipts
        .iter()
        .map(|r| r["PrivateNote"].as_str().unwrap())
        .collect();
    assert_eq!(notes.len(), receipts.len(), "no record booked twice");
    assert!(
        receipts.len() >= records * 9 / 10,
        "{} receipts",
        receipts.len()
    );
    let truth = toast.truth();
    books_match_truth(&truth, &guid, &qbo.account_totals(&realm));
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
    }
    let sales_receipts = qbo.created_sales_receipts(&realm).len();

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
        sales_receipts,
        "updated, not created again"
    );
    // The books follow the tip, account by account.
    books_match_truth(&toast.truth(), &guid, &qbo.account_totals(&realm));
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
    let tips: Decimal = remote["Line"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["SalesItemLineDetail"]["ItemRef"]["value"] == "33")
        .map(|l| Decimal::from_str(&l["Amount"].to_string()).unwrap())
        .sum();
    let tip = toast.order(&guid, &first).unwrap().checks[0]
        .payments
        .iter()
        .filter(|p| !p.voided)
        .map(|p| p.tip_cents)
        .sum::<i64>();
    assert_eq!(
        tips,
        Decimal::new(tip, 2),
        "the receipt's tips line is the new tip"
    );

    // A mapping the books refuse: failed in the ledger with QuickBooks' message, parked.
    let mut broken = pos.clone();
    broken
        .mappings
        .get_mut(&Provider::QuickBooks)
        .unwrap()
        .parts
        .insert("sales:*".into(), "9999".into());
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
    // Each issue names the location (source connection) it belongs to.
    let locations: Vec<&str> = rec.locations.iter().map(|l| l.location.as_str()).collect();
    assert!(
        rec.issues.iter().all(|i| i
            .location
            .as_deref()
            .is_some_and(|l| locations.contains(&l))),
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
            parts: hub_sandboxes::quickbooks::role_items(),
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
    // Each order ingested once: its sale, and a record per refunded payment.
    let refunds: usize = toast
        .orders(&guid)
        .iter()
        .filter(|o| !o.voided && !o.deleted)
        .flat_map(|o| o.checks.iter().filter(|c| !c.voided))
        .flat_map(|c| c.payments.iter())
        .filter(|p| p.refund.is_some())
        .count();
    assert_eq!(
        tally.created as usize,
        orders.len() + refunds,
        "each order ingested once"
    );
    // The first event read the restaurant's currency (its orders carry
    // none) and kept it on the connection.
    let pos = hub
        .stores
        .connections
        .get(&pos.tenant, &pos.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pos.currency.as_ref().map(|c| c.as_str()), Some("USD"));
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
    let notes: Vec<String> = qbo
        .created_sales_receipts(&realm)
        .iter()
        .chain(qbo.created_refund_receipts(&realm).iter())
        .map(|r| r["PrivateNote"].as_str().unwrap().to_string())
        .collect();
    let distinct: BTreeSet<&String> = notes.iter().collect();
    assert_eq!(
        distinct.len(),
        notes.len(),
        "one receipt per record, not three"
    );
    books_match_truth(&toast.truth(), &guid, &qbo.account_totals(&realm));
}

async fn square_sales_and_refunds_are_booked_in_xero_once_through_faults(b: Backend) {
    use hub_sandboxes::square::{SquareConfig, SquareSandbox};
    use hub_sandboxes::xero::{XeroConfig, XeroSandbox};
    use shared::providers::square::streams::SquarePayments;
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
            parts: hub_sandboxes::xero::role_accounts(),
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
    assert!(report.tally.created >= 15, "{report:?}");
    // APPROVED payments are not money yet; the day settles when they are
    // captured, and the next pull (by updated_at) sees it.
    let approved: Vec<String> = square
        .payments()
        .into_iter()
        .filter(|p| p.status == "APPROVED")
        .map(|p| p.id)
        .collect();
    for id in &approved {
        square.complete_payment(id).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    puller
        .run_windowed(&pos, &stream, RunOptions::default())
        .await
        .unwrap();

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
    // One POSTED journal per sale or refund with money in it; none twice.
    let journals: Vec<serde_json::Value> = xero
        .manual_journals(&tenant)
        .into_iter()
        .filter(|j| j["Status"] == "POSTED")
        .collect();
    let narrations: BTreeSet<&str> = journals
        .iter()
        .map(|j| j["Narration"].as_str().unwrap())
        .collect();
    assert_eq!(narrations.len(), journals.len(), "no record booked twice");
    assert!(journals.len() >= 15, "{} journals", journals.len());
    assert!(xero.bank_transactions(&tenant).is_empty());
    // Every account, day by day, against the Square sandbox's truth (all
    // its locations: the books keep one organisation).
    let truth = square.truth();
    let books = xero.account_totals(&tenant);
    let accounts = hub_sandboxes::xero::role_accounts();
    let account_of =
        |role: &str| shared::model::parts::resolve(&accounts, role).map(str::to_string);
    let mut days: BTreeSet<jiff::civil::Date> = books.keys().map(|(d, _)| *d).collect();
    days.extend(truth.days().into_iter().map(|(_, d)| d));
    for date in days {
        let mut day: std::collections::BTreeMap<String, Decimal> = Default::default();
        for (loc, d) in truth.days() {
            if d == date {
                for (role, amount) in truth.day(&loc, d, 2) {
                    *day.entry(role).or_default() += amount;
                }
            }
        }
        let want = hub_sandboxes::common::truth::expected_accounts(&day, &account_of);
        let got: std::collections::BTreeMap<String, Decimal> = books
            .iter()
            .filter(|((d, _), v)| *d == date && !v.is_zero())
            .map(|((_, a), v)| (a.clone(), *v))
            .collect();
        assert_eq!(got, want, "{date}: Xero (left) against the truth (right)");
        let rec = reconcile(&hub.stores, &hub.tenant, date).await.unwrap();
        assert!(rec.reconciled, "{rec:?}");
    }
}

/// The books' every account, day by day, against what the Toast sandbox's
/// truth of `location` must put there through the sandbox's role items.
fn books_match_truth(
    truth: &hub_sandboxes::Truth,
    location: &str,
    books: &std::collections::BTreeMap<(jiff::civil::Date, String), Decimal>,
) {
    let items = hub_sandboxes::quickbooks::role_items();
    let account_of = |role: &str| {
        shared::model::parts::resolve(&items, role)
            .and_then(hub_sandboxes::quickbooks::item_account)
    };
    let mut days: BTreeSet<jiff::civil::Date> = books.keys().map(|(d, _)| *d).collect();
    days.extend(
        truth
            .days()
            .into_iter()
            .filter(|(l, _)| l == location)
            .map(|(_, d)| d),
    );
    assert!(!days.is_empty());
    for date in days {
        let want = hub_sandboxes::common::truth::expected_accounts(
            &truth.day(location, date, 2),
            &account_of,
        );
        let got: std::collections::BTreeMap<String, Decimal> = books
            .iter()
            .filter(|((d, _), v)| *d == date && !v.is_zero())
            .map(|((_, a), v)| (a.clone(), *v))
            .collect();
        assert_eq!(got, want, "{date}: books (left) against the truth (right)");
    }
}
