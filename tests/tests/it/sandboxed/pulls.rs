//! Scheduled pulls against the Toast sandbox: thousands of orders over many
//! pages land in the ledger once; an edit inside the overlap window becomes a
//! new version with a push queued; a pull killed after a few pages and
//! restarted ends with nothing lost and nothing duplicated.

use super::{Hub, login};
use crate::backends::{Backend, conformance};
use hub_sandboxes::toast::{ToastConfig, ToastLimits, ToastSandbox};
use jiff::{SignedDuration, Timestamp};
use shared::model::{Connection, Provider, RecordKind};
use shared::pipelines::pull::{PullError, PullSettings, Puller, RunOptions};
use shared::pipelines::records::{PushItem, RecordEvent};
use shared::providers::{Endpoints, ProviderClients};
use std::collections::BTreeMap;
use std::time::Duration;

conformance!(
    an_edit_inside_the_overlap_becomes_a_new_version_with_a_push,
    a_pull_killed_after_two_pages_resumes_with_nothing_lost_or_doubled,
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
        let orders = shared::pipelines::streams::ToastOrders {
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
}

async fn drain(q: &dyn shared::ports::WorkQueue) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let got = q
            .receive(10, Duration::from_secs(300), Duration::ZERO)
            .await
            .unwrap();
        if got.is_empty() {
            return out;
        }
        for m in got {
            q.delete(&m.receipt).await.unwrap();
            out.push(m.body);
        }
    }
}

async fn thousands_of_orders_over_many_pages_land_in_the_ledger_once(b: Backend) {
    let s = setup(b, 250, 8).await;
    let report = s.pull(RunOptions::default()).await.unwrap();
    let total = s.sandbox_orders();
    assert!(total >= 2000, "{total}");
    assert!(report.pages >= 20, "many pages: {}", report.pages);
    let ledger = s.ledger().await;
    assert_eq!(ledger.len(), total, "every order in the ledger");
    assert!(ledger.values().all(|v| *v == 1));
    assert_eq!(report.tally.created as usize, total);
    // Every new transaction was queued once for the accounting destination and published once.
    let pushes = drain(s.hub.stores.push_queue.as_ref()).await;
    assert_eq!(pushes.len(), total);
    let push: PushItem = serde_json::from_str(&pushes[0]).unwrap();
    assert_eq!((push.destination, push.version), (Provider::QuickBooks, 1));
    let events = drain(s.hub.stores.outbound_queue.as_ref()).await;
    assert_eq!(events.len(), total);
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
    let partial = s.ledger().await.len();
    assert_eq!(partial, 200, "two pages of 100 were checkpointed");
    let report = s.pull(RunOptions::default()).await.unwrap();
    let ledger = s.ledger().await;
    assert_eq!(ledger.len(), s.sandbox_orders(), "nothing lost");
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
