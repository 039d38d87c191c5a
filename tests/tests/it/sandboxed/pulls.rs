//! Scheduled pulls against the Toast sandbox: thousands of orders over many
//! pages land in the ledger once; an edit inside the overlap window becomes a
//! new version with a push queued; a pull killed after a few pages and
//! restarted ends with nothing lost and nothing duplicated.

use super::{Hub, drain, login};
use crate::backends::{Backend, conformance};
use hub_sandboxes::toast::{ToastConfig, ToastLimits, ToastSandbox};
use jiff::{SignedDuration, Timestamp};
use shared::model::{Connection, Provider, RecordKind};
use shared::pipelines::pull::{PullError, PullSettings, Puller, RunOptions};
use shared::pipelines::records::{PushItem, RecordEvent};
use shared::providers::{Endpoints, ProviderClients};
use std::collections::BTreeMap;

conformance!(
    an_edit_inside_the_overlap_becomes_a_new_version_with_a_push,
    a_pull_killed_after_two_pages_resumes_with_nothing_lost_or_doubled,
    a_schedule_fans_out_one_job_per_connection_and_each_job_pulls_every_stream,
    inventory_from_square_and_marketman_lands_as_the_latest_level_per_item,
);

// Thousands of ledger rows take minutes on the AWS emulator; the embedded
// backend shows the volume, the cases above show both backends' checkpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousands_of_orders_over_many_pages_land_in_the_ledger_once_sqlite() {
    thousands_of_orders_over_many_pages_land_in_the_ledger_once(Backend::sqlite()).await;
}

struct Setup {
    sandbox: ToastSandbox,
    hub: Hub,
    connection: Connection,
    clients: ProviderClients,
    puller: Puller,
}

async fn setup(b: Backend, orders_per_day: u32, days: u32) -> Setup {
    let sandbox = ToastSandbox::start(ToastConfig {
        days,
        orders_per_day,
        limits: ToastLimits::unlimited(),
        ..ToastConfig::seeded(11)
    })
    .await
    .unwrap();
    let hub = Hub::new(b).await;
    let guid = sandbox.restaurant_guids()[0].clone();
    let connection = hub
        .connect(
            "toast",
            Provider::Toast,
            &guid,
            "America/New_York",
            login(&[
                ("client_id", sandbox.client_id()),
                ("client_secret", sandbox.client_secret()),
            ]),
        )
        .await;
    // An accounting destination, so transactions are queued for posting.
    hub.connect(
        "books",
        Provider::QuickBooks,
        "realm-1",
        "America/New_York",
        login(&[]),
    )
    .await;
    let clients = hub.clients(Endpoints {
        toast: sandbox.base_url(),
        ..Endpoints::default()
    });
    // Toast orders carry no currency: the restaurant's is read once and kept.
    let connection = shared::providers::registry::prepare(&clients, &connection)
        .await
        .unwrap();
    assert_eq!(
        connection.currency.as_ref().map(|c| c.as_str()),
        Some("USD")
    );
    let stored = hub
        .stores
        .connections
        .get(&connection.tenant, &connection.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.currency, connection.currency);
    let puller = Puller::new(
        hub.stores.clone(),
        PullSettings {
            initial_lookback: SignedDuration::from_hours(24 * (i64::from(days) + 3)),
            settle: SignedDuration::ZERO,
            ..PullSettings::default()
        },
    );
    Setup {
        sandbox,
        hub,
        connection,
        clients,
        puller,
    }
}

impl Setup {
    async fn pull(
        &self,
        options: RunOptions,
    ) -> Result<shared::pipelines::pull::PullReport, PullError> {
        let orders = shared::providers::toast::streams::ToastOrders {
            client: self.clients.toast(&self.connection).unwrap(),
            connection: self.connection.clone(),
        };
        self.puller
            .run_windowed(&self.connection, &orders, options)
            .await
    }

    /// Every transaction row in the ledger: (external id → version).
    async fn ledger(&self) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        let today = Timestamp::now()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .date();
        let mut d = today - jiff::Span::new().days(40);
        while d <= today + jiff::Span::new().days(1) {
            for row in self
                .hub
                .stores
                .ledger
                .list_for_business_date(&self.hub.tenant, d)
                .await
                .unwrap()
            {
                assert_eq!(row.key.kind, RecordKind::Transaction);
                assert!(
                    out.insert(row.key.source_id.to_string(), row.version)
                        .is_none(),
                    "one row per order"
                );
            }
            d = d.tomorrow().unwrap();
        }
        out
    }

    fn sandbox_orders(&self) -> usize {
        self.sandbox
            .orders(self.connection.account_id.as_str())
            .len()
    }

    /// The records the sandbox's orders make: a sale each, and a refund per
    /// refunded payment.
    fn sandbox_records(&self) -> usize {
        self.sandbox
            .orders(self.connection.account_id.as_str())
            .iter()
            .map(|o| 1 + o.refunded_payments())
            .sum()
    }
}

async fn thousands_of_orders_over_many_pages_land_in_the_ledger_once(b: Backend) {
    let s = setup(b, 250, 8).await;
    let report = s.pull(RunOptions::default()).await.unwrap();
    let total = s.sandbox_orders();
    assert!(total >= 2000, "{total}");
    assert!(report.pages >= 20, "many pages: {}", report.pages);
    let ledger = s.ledger().await;
    let records = s.sandbox_records();
    assert!(records > total, "refunds are records of their own");
    assert_eq!(
        ledger.len(),
        records,
        "every order and refund in the ledger"
    );
    assert!(ledger.values().all(|v| *v == 1));
    assert_eq!(report.tally.created as usize, records);
    // Every new transaction was queued once for the accounting destination and published once.
    let pushes = drain(s.hub.stores.push_queue.as_ref()).await;
    assert_eq!(pushes.len(), records);
    let push: PushItem = serde_json::from_str(&pushes[0]).unwrap();
    assert_eq!((push.destination, push.version), (Provider::QuickBooks, 1));
    let events = drain(s.hub.stores.outbound_queue.as_ref()).await;
    assert_eq!(events.len(), records);
    let event: RecordEvent = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(
        (event.schema.as_str(), event.change.as_str()),
        ("integration-hub.record.v1", "created")
    );
    // A second run reads the overlap again and changes nothing.
    let again = s.pull(RunOptions::default()).await.unwrap();
    assert_eq!((again.tally.created, again.tally.changed), (0, 0));
    assert!(drain(s.hub.stores.push_queue.as_ref()).await.is_empty());
}

async fn an_edit_inside_the_overlap_becomes_a_new_version_with_a_push(b: Backend) {
    let s = setup(b, 40, 2).await;
    s.pull(RunOptions::default()).await.unwrap();
    drain(s.hub.stores.push_queue.as_ref()).await;
    // A tip added an hour ago, before where the last run stopped: only the
    // overlap finds it.
    let restaurant = s.connection.account_id.to_string();
    let guid = s.sandbox.orders(&restaurant)[0].guid.clone();
    s.sandbox
        .edit_order_at(
            &restaurant,
            &guid,
            Timestamp::now() - SignedDuration::from_hours(1),
            |o| {
                o.checks[0].payments[0].tip_cents += 500;
            },
        )
        .unwrap();
    let report = s.pull(RunOptions::default()).await.unwrap();
    assert_eq!((report.tally.changed, report.tally.created), (1, 0));
    assert_eq!(s.ledger().await[&guid], 2);
    let pushes: Vec<PushItem> = drain(s.hub.stores.push_queue.as_ref())
        .await
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(pushes.len(), 1);
    assert_eq!(
        (pushes[0].key.source_id.as_str(), pushes[0].version),
        (guid.as_str(), 2)
    );
}

async fn a_pull_killed_after_two_pages_resumes_with_nothing_lost_or_doubled(b: Backend) {
    let s = setup(b, 70, 4).await;
    let err = s
        .pull(RunOptions {
            stop_after_pages: Some(2),
            ..RunOptions::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, PullError::Interrupted(2)), "{err}");
    let first = s.ledger().await;
    let partial = first.len();
    let sales = first.keys().filter(|k| !k.contains(":refund:")).count();
    assert_eq!(sales, 200, "two pages of 100 orders were checkpointed");
    let report = s.pull(RunOptions::default()).await.unwrap();
    let ledger = s.ledger().await;
    assert_eq!(ledger.len(), s.sandbox_records(), "nothing lost");
    assert!(
        ledger.values().all(|v| *v == 1),
        "nothing doubled or re-versioned"
    );
    assert_eq!(report.tally.created as usize + partial, ledger.len());
    let pushes = drain(s.hub.stores.push_queue.as_ref()).await;
    assert_eq!(
        pushes.len(),
        ledger.len(),
        "one push per order across both runs"
    );
}

async fn a_schedule_fans_out_one_job_per_connection_and_each_job_pulls_every_stream(b: Backend) {
    use shared::pipelines::pull::{run_job, schedule};
    let s = setup(b, 20, 2).await;
    // A second restaurant of the same provider, and a QuickBooks connection the Toast schedule ignores.
    let guid2 = s.sandbox.seed_restaurant("Second");
    s.hub
        .connect(
            "toast-2",
            Provider::Toast,
            &guid2,
            "America/Chicago",
            login(&[
                ("client_id", s.sandbox.client_id()),
                ("client_secret", s.sandbox.client_secret()),
            ]),
        )
        .await;
    let tick = schedule(
        &s.hub.stores,
        &s.clients,
        Provider::Toast,
        jiff::Timestamp::now(),
    )
    .await
    .unwrap();
    // Each restaurant has its own budget, ample for a pull every tick.
    assert_eq!((tick.queued, tick.not_due), (2, 0));
    let jobs = drain(s.hub.stores.pull_queue.as_ref()).await;
    assert_eq!(jobs.len(), 2);
    let puller = Puller::new(
        s.hub.stores.clone(),
        PullSettings {
            initial_lookback: SignedDuration::from_hours(24 * 5),
            settle: SignedDuration::ZERO,
            ..PullSettings::default()
        },
    );
    let mut orders = 0;
    for job in &jobs {
        let shared::pipelines::pull::PullOutcome::Done(reports) =
            run_job(&puller, &s.clients, job).await.unwrap()
        else {
            panic!("a Toast pull with budget to spare was deferred");
        };
        let streams: Vec<&str> = reports.iter().map(|(s, _)| *s).collect();
        assert_eq!(streams, ["orders", "menus"]);
        orders += reports[0].1.tally.created;
    }
    // The menus, read as the definition shapes them (integer references into
    // top-level maps), give every item its modifier options as ingredients.
    let menus = s
        .clients
        .toast(&s.connection)
        .unwrap()
        .menus()
        .await
        .unwrap();
    let items = shared::providers::toast::transform::menus_to_items(&menus, &s.connection).unwrap();
    assert!(!items.is_empty());
    for item in &items {
        let names: Vec<&str> = item.ingredients.iter().map(|i| i.name.as_str()).collect();
        assert!(
            names.starts_with(&["Fries", "Side Salad"]),
            "{}: {names:?}",
            item.name
        );
    }
    assert!(items.iter().any(|i| i.ingredients.len() == 4));
    let expected = s.sandbox_records()
        + s.sandbox
            .orders(&guid2)
            .iter()
            .map(|o| 1 + o.refunded_payments())
            .sum::<usize>();
    assert_eq!(orders as usize, expected);
    assert!(
        run_job(
            &puller,
            &s.clients,
            "{\"tenant\":\"bistro\",\"connection\":\"gone\"}"
        )
        .await
        .is_err()
    );
}

async fn inventory_from_square_and_marketman_lands_as_the_latest_level_per_item(b: Backend) {
    use hub_sandboxes::marketman::{MarketManConfig, MarketManSandbox};
    use hub_sandboxes::square::{SquareConfig, SquareSandbox};
    use shared::pipelines::pull::pull_connection;
    let square = SquareSandbox::start(SquareConfig {
        days: 1,
        payments_per_day: 5,
        ..SquareConfig::seeded(71)
    })
    .await
    .unwrap();
    let mm = MarketManSandbox::start(MarketManConfig::seeded(72))
        .await
        .unwrap();
    let hub = Hub::new(b).await;
    let sq = hub
        .connect(
            "sq",
            Provider::Square,
            &square.merchant_id(),
            "America/Los_Angeles",
            login(&[("access_token", &square.grant().access_token)]),
        )
        .await;
    let buyer = mm.buyer_guid();
    let mmc = hub
        .connect(
            "mm",
            Provider::MarketMan,
            &buyer,
            "UTC",
            login(&[
                ("api_key", mm.api_key()),
                ("api_password", mm.api_password()),
            ]),
        )
        .await;
    let clients = hub.clients(Endpoints {
        square: square.base_url(),
        marketman: mm.base_url(),
        ..Endpoints::default()
    });
    let puller = Puller::new(
        hub.stores.clone(),
        PullSettings {
            settle: SignedDuration::ZERO,
            ..PullSettings::default()
        },
    );
    let reports = pull_connection(&puller, &clients, &sq, RunOptions::default())
        .await
        .unwrap();
    assert_eq!(
        reports.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        ["payments", "inventory"]
    );
    pull_connection(&puller, &clients, &mmc, RunOptions::default())
        .await
        .unwrap();
    let levels = hub
        .stores
        .ledger
        .list_undated(&hub.tenant, RecordKind::InventoryLevel)
        .await
        .unwrap();
    let in_stock = square
        .inventory_counts()
        .iter()
        .filter(|c| c.to_json()["state"] == "IN_STOCK")
        .count();
    let items = mm.items(&buyer).len();
    let from_square = levels
        .iter()
        .filter(|r| r.key.provider == Provider::Square)
        .count();
    let from_marketman = levels
        .iter()
        .filter(|r| r.key.provider == Provider::MarketMan)
        .count();
    assert_eq!(
        (from_square, from_marketman),
        (in_stock, items),
        "one level per item and location"
    );
    // A recount is a new version of the same level, not a second one.
    let c = square.inventory_counts()[0].clone();
    let json = c.to_json();
    let (location, item) = (
        json["location_id"].as_str().unwrap().to_string(),
        json["catalog_object_id"].as_str().unwrap().to_string(),
    );
    square.set_inventory_count(&location, &item, "123.5".parse().unwrap());
    pull_connection(&puller, &clients, &sq, RunOptions::default())
        .await
        .unwrap();
    let levels = hub
        .stores
        .ledger
        .list_undated(&hub.tenant, RecordKind::InventoryLevel)
        .await
        .unwrap();
    assert_eq!(
        levels.len(),
        in_stock + items + usize::from(json["state"] != "IN_STOCK")
    );
    let row = levels
        .iter()
        .find(|r| r.key.source_id.as_str() == format!("{location}:{item}"))
        .unwrap();
    assert_eq!(row.payload["record"]["quantity"], "123.5");
}

/// A Square pull reads every location by update time, completes each page
/// with its orders, sibling payments and refunds, and lands records whose
/// parts, summed per business date, are the sandbox's truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn square_sales_of_every_location_land_as_the_sandboxes_truth_sqlite() {
    use hub_sandboxes::square::{SquareConfig, SquareSandbox};
    use shared::model::{Record, Transaction};
    use shared::providers::square::streams::SquarePayments;
    let square = SquareSandbox::start(SquareConfig {
        days: 2,
        payments_per_day: 20,
        locations: 3,
        ..SquareConfig::seeded(73)
    })
    .await
    .unwrap();
    let hub = Hub::new(Backend::sqlite()).await;
    let sq = hub
        .connect(
            "sq",
            Provider::Square,
            &square.merchant_id(),
            "America/Los_Angeles",
            login(&[("access_token", &square.grant().access_token)]),
        )
        .await;
    let clients = hub.clients(Endpoints {
        square: square.base_url(),
        ..Endpoints::default()
    });
    let puller = Puller::new(
        hub.stores.clone(),
        PullSettings {
            settle: SignedDuration::ZERO,
            ..PullSettings::default()
        },
    );
    let stream = SquarePayments {
        client: clients.square(&sq).await.unwrap(),
        connection: sq.clone(),
    };
    puller
        .run_windowed(&sq, &stream, RunOptions::default())
        .await
        .unwrap();
    let truth = square.truth();
    let mut want: BTreeMap<jiff::civil::Date, BTreeMap<String, rust_decimal::Decimal>> =
        BTreeMap::new();
    for (loc, date) in truth.days() {
        let day = want.entry(date).or_default();
        for (role, amount) in truth.day(&loc, date, 2) {
            *day.entry(role).or_default() += amount;
        }
    }
    assert!(want.len() >= 2);
    let mut ids = std::collections::BTreeSet::new();
    for (date, day) in &want {
        let mut got: BTreeMap<String, rust_decimal::Decimal> = BTreeMap::new();
        for row in hub
            .stores
            .ledger
            .list_for_business_date(&hub.tenant, *date)
            .await
            .unwrap()
        {
            let Record::Transaction(t): Record = serde_json::from_value(row.payload).unwrap()
            else {
                continue;
            };
            let t: Transaction = t;
            ids.insert(t.external_id.as_str().to_string());
            if t.hold.is_some() {
                continue;
            }
            for p in &t.parts {
                *got.entry(p.role.clone()).or_default() += p.amount;
            }
        }
        got.retain(|_, v| !v.is_zero());
        assert_eq!(&got, day, "{date}");
    }
    let locations: std::collections::BTreeSet<String> =
        square.orders().into_iter().map(|o| o.location_id).collect();
    assert_eq!(locations.len(), 3);
    for r in square.refunds() {
        assert!(ids.contains(&r.id), "refund {} landed", r.id);
    }
}
