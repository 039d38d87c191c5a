//! Pulls planned within a shared budget, against the MarketMan sandbox (500
//! calls a day per API consumer, as documented): a hundred buyers on one
//! consumer key over a simulated day of schedule ticks (the stores on a
//! manual clock) are each pulled at the planned freshness and the consumer
//! stays inside its budget; a pull the provider tells to wait is deferred,
//! skipped, and pulled once the wait is over, with nothing parked; and a
//! budget too small for the configured freshness says so in the health
//! report and its alert.

use super::{Hub, drain, login};
use crate::backends::{Backend, conformance};
use hub_sandboxes::Limit as SandboxLimit;
use hub_sandboxes::marketman::{MarketManConfig, MarketManSandbox};
use jiff::{SignedDuration, Timestamp};
use shared::model::{Connection, Provider};
use shared::pipelines::cadence;
use shared::pipelines::health::{Alerter, State, Thresholds, monitor};
use shared::pipelines::pull::{PullJob, PullOutcome, PullSettings, Puller, RunOptions};
use shared::pipelines::pull::{pull_or_defer, run_job, schedule};
use shared::ports::{Clock, ManualClock};
use shared::providers::{Endpoints, ProviderClients};
use std::collections::BTreeMap;
use std::time::Duration;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

conformance!(
    a_pull_told_to_wait_is_deferred_skipped_and_pulled_when_the_wait_is_over,
    a_budget_short_of_the_target_says_so_in_health_and_an_alert,
);

// A simulated day is 96 ticks over a hundred connections: the embedded
// backend runs it; the cases above show the deferral on both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_buyers_on_one_consumer_are_pulled_as_planned_through_a_day_sqlite() {
    a_hundred_buyers_on_one_consumer_are_pulled_as_planned_through_a_day(Backend::sqlite()).await;
}

struct Setup {
    mm: MarketManSandbox,
    hub: Hub,
    clock: ManualClock,
    clients: ProviderClients,
    puller: Puller,
    connections: Vec<Connection>,
}

impl Setup {
    /// Pull jobs in the dead-letter queue.
    async fn parked(&self) -> usize {
        self.hub
            .stores
            .pull_queue
            .dead_letters(10)
            .await
            .unwrap()
            .len()
    }
}

/// `buyers` MarketMan connections, every one holding the same consumer key,
/// on stores whose clock stands at a tick's start.
async fn setup(b: Backend, buyers: usize, config: MarketManConfig) -> Setup {
    let (b, clock) = b.with_manual_clock();
    let tick = SignedDuration::from_mins(15);
    let now = clock.now().as_millisecond();
    let tick_ms = tick.as_millis() as i64;
    clock.advance(SignedDuration::from_millis(
        tick_ms - now.rem_euclid(tick_ms),
    ));
    let mm = MarketManSandbox::start(MarketManConfig {
        buyers,
        vendors: 1,
        catalog_items: 2,
        inventory_items: 3,
        ..config
    })
    .await
    .unwrap();
    let hub = Hub::new(b).await;
    let mut connections = Vec::new();
    for (i, buyer) in mm.buyer_guids().iter().enumerate() {
        connections.push(
            hub.connect(
                &format!("mm-{i:03}"),
                Provider::MarketMan,
                buyer,
                "UTC",
                login(&[
                    ("api_key", mm.api_key()),
                    ("api_password", mm.api_password()),
                ]),
            )
            .await,
        );
    }
    let clients = hub.clients(Endpoints {
        marketman: mm.base_url(),
        ..Endpoints::default()
    });
    let puller = Puller::new(hub.stores.clone(), PullSettings::default());
    Setup {
        mm,
        hub,
        clock,
        clients,
        puller,
        connections,
    }
}

async fn a_hundred_buyers_on_one_consumer_are_pulled_as_planned_through_a_day(b: Backend) {
    let s = setup(b, 100, MarketManConfig::seeded(81)).await;
    let mut pulled: BTreeMap<String, Vec<Timestamp>> = BTreeMap::new();
    let mut plans = Vec::new();
    for _ in 0..96 {
        let now = s.clock.now();
        let tick = schedule(&s.hub.stores, &s.clients, Provider::MarketMan, now)
            .await
            .unwrap();
        assert!(tick.deferred.is_empty(), "{tick:?}");
        assert_eq!(tick.queued + tick.not_due, 100);
        for job in drain(s.hub.stores.pull_queue.as_ref()).await {
            let outcome = run_job(&s.puller, &s.clients, &job).await.unwrap();
            assert!(matches!(outcome, PullOutcome::Done(_)), "{outcome:?}");
            let job: PullJob = serde_json::from_str(&job).unwrap();
            pulled
                .entry(job.connection.to_string())
                .or_default()
                .push(now);
        }
        plans = tick.plans;
        s.clock.advance(SignedDuration::from_mins(15));
    }
    // One consumer, one plan: 100 × 2 calls, twice a day, is 400 of the 500.
    let [plan] = &plans[..] else {
        panic!("one budget for one consumer key: {plans:?}");
    };
    assert_eq!(plan.sharing, 100);
    assert!(
        plan.budget_key.starts_with("marketman:consumer-"),
        "{plan:?}"
    );
    assert_eq!(plan.freshness(), SignedDuration::from_hours(12));
    // Every buyer pulled twice, twelve hours apart: the planned freshness.
    assert_eq!(pulled.len(), 100, "every buyer was pulled");
    for (connection, at) in &pulled {
        assert_eq!(at.len(), 2, "{connection}: {at:?}");
        assert_eq!(
            at[1].duration_since(at[0]),
            SignedDuration::from_hours(12),
            "{connection}"
        );
    }
    // The consumer's calls, as the sandbox counted them, inside its budget.
    let counters = s.mm.counters();
    assert!(
        counters.total_calls() < 500,
        "{} calls",
        counters.total_calls()
    );
    assert_eq!(counters.rate_limited, 0, "the sandbox never refused a call");
    // Nothing failed, nothing waits for an operator.
    assert_eq!(s.parked().await, 0, "nothing waits for an operator");
}

async fn a_pull_told_to_wait_is_deferred_skipped_and_pulled_when_the_wait_is_over(b: Backend) {
    // The consumer's budget: three calls, so the second buyer's pull finds it spent.
    let s = setup(
        b,
        2,
        MarketManConfig {
            limits: vec![SandboxLimit::sliding("day", 3, Duration::from_secs(86_400))],
            ..MarketManConfig::seeded(83)
        },
    )
    .await;
    let [first, second] = &s.connections[..] else {
        unreachable!()
    };
    let now = s.clock.now();
    let done = pull_or_defer(&s.puller, &s.clients, first, RunOptions::default(), now)
        .await
        .unwrap();
    assert!(matches!(done, PullOutcome::Done(_)), "{done:?}");
    let PullOutcome::Deferred(d) =
        pull_or_defer(&s.puller, &s.clients, second, RunOptions::default(), now)
            .await
            .unwrap()
    else {
        panic!("the spent budget did not defer the pull");
    };
    assert!(d.until > now, "{d:?}");
    assert!(d.reason.contains("rate limited"), "{d:?}");
    assert_eq!(
        cadence::deferral(&s.hub.stores, second).await.unwrap(),
        Some(d.clone())
    );

    // Until then, every tick skips it, and says so.
    let tick = schedule(&s.hub.stores, &s.clients, Provider::MarketMan, now)
        .await
        .unwrap();
    let key = format!("{}/{}", second.tenant, second.id);
    assert_eq!(tick.deferred.get(&key), Some(&d.until));
    for job in drain(s.hub.stores.pull_queue.as_ref()).await {
        assert!(!job.contains(second.id.as_str()), "{job}");
    }

    // The provider's day turns over; the first tick after the wait pulls it,
    // whatever its slot, and the deferral ends.
    s.mm.reset_counters();
    let after = d.until.duration_since(now) + SignedDuration::from_mins(15);
    s.clock.advance(after);
    let tick = schedule(
        &s.hub.stores,
        &s.clients,
        Provider::MarketMan,
        s.clock.now(),
    )
    .await
    .unwrap();
    assert!(tick.deferred.is_empty(), "{tick:?}");
    let jobs = drain(s.hub.stores.pull_queue.as_ref()).await;
    let mine: Vec<&String> = jobs
        .iter()
        .filter(|j| j.contains(second.id.as_str()))
        .collect();
    assert_eq!(mine.len(), 1, "{jobs:?}");
    let outcome = run_job(&s.puller, &s.clients, mine[0]).await.unwrap();
    assert!(matches!(outcome, PullOutcome::Done(_)), "{outcome:?}");
    assert_eq!(
        cadence::deferral(&s.hub.stores, second).await.unwrap(),
        None
    );
    assert_eq!(s.parked().await, 0, "a deferral parks nothing");
}

async fn a_budget_short_of_the_target_says_so_in_health_and_an_alert(b: Backend) {
    // Sixty buyers × 2 calls × 4 pulls a day is 480: more than the 400 the
    // planner spends of 500, so each can be pulled every 8 hours, not 6.
    let s = setup(b, 60, MarketManConfig::seeded(85)).await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/alerts"))
        .and(body_string_contains(
            "is shared by 60 connection(s): each can be pulled every 8h, not every 6h as configured",
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(60)
        .mount(&slack)
        .await;
    let alerter = Alerter::new(Some(format!("{}/alerts", slack.uri())));
    let reports = monitor(&s.hub.stores, &s.clients, &alerter, &Thresholds::default())
        .await
        .unwrap();
    assert_eq!(reports.len(), 60);
    for r in &reports {
        assert_eq!(r.state, State::Degraded, "{r:?}");
        assert_eq!(r.budget_sharing, Some(60));
        assert_eq!(r.planned_freshness_secs, Some(8 * 3600));
        assert_eq!(r.target_freshness_secs, Some(6 * 3600));
        assert!(
            r.reasons
                .iter()
                .any(|x| x.starts_with("budget marketman:consumer-")),
            "{:?}",
            r.reasons
        );
    }
    // Ten buyers fit: the same check finds no shortfall.
    let plan = cadence::plan(
        &cadence::Cadence::of(Provider::MarketMan).unwrap(),
        "marketman:consumer",
        10,
    );
    assert!(plan.meets_target() && plan.shortfall().is_none());
}
