//! The health monitor against a QuickBooks sandbox made to fail: the
//! connection turns unhealthy, one alert goes out (not one per check), and one
//! recovery notice when it heals.

use super::{Hub, token_credentials};
use crate::backends::{Backend, conformance};
use hub_sandboxes::Faults;
use hub_sandboxes::quickbooks::{QuickBooksConfig, QuickBooksSandbox};
use jiff::SignedDuration;
use shared::ids::ConnectionId;
use shared::model::Provider;
use shared::pipelines::health::{Alerter, State, Thresholds, monitor, monitor_one};
use shared::providers::Endpoints;
use std::time::Duration;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

conformance!(
    a_failing_connection_alerts_once_and_recovers_once,
    the_square_check_reads_every_location,
    one_connection_is_checked_now_and_its_report_stored
);

async fn a_failing_connection_alerts_once_and_recovers_once(b: Backend) {
    let qbo = QuickBooksSandbox::start(QuickBooksConfig {
        limits: Vec::new(),
        ..QuickBooksConfig::seeded(51)
    })
    .await
    .unwrap();
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/alerts"))
        .and(body_string_contains("UNHEALTHY: quickbooks bistro/books"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/alerts"))
        .and(body_string_contains("RECOVERED: quickbooks bistro/books"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&slack)
        .await;
    let hub = Hub::new(b).await;
    let realm = qbo.realm_id();
    let grant = qbo.grant(&realm);
    hub.app(Provider::QuickBooks, qbo.client_id(), qbo.client_secret())
        .await;
    hub.connect(
        "books",
        Provider::QuickBooks,
        &realm,
        "America/Los_Angeles",
        token_credentials(
            &grant.access_token,
            grant.refresh_token.as_deref(),
            SignedDuration::from_hours(1),
        ),
    )
    .await;
    let clients = hub.clients(Endpoints {
        quickbooks: qbo.base_url(),
        ..Endpoints::default()
    });
    let alerter = Alerter::new(Some(format!("{}/alerts", slack.uri())));
    let t = Thresholds {
        window: SignedDuration::from_secs(3),
        ..Thresholds::default()
    };

    let r = monitor(&hub.stores, &clients, &alerter, &t).await.unwrap();
    assert_eq!(r[0].state, State::Healthy, "{:?}", r[0].reasons);
    assert!(r[0].reachability_ms.is_some());

    qbo.set_faults(Faults::errors(1.0));
    for _ in 0..2 {
        let r = monitor(&hub.stores, &clients, &alerter, &t).await.unwrap();
        assert_eq!(r[0].state, State::Unhealthy);
        assert!(
            r[0].reasons.iter().any(|x| x.starts_with("unreachable")),
            "{:?}",
            r[0].reasons
        );
        assert!(r[0].success_permille.unwrap() < 500, "{:?}", r[0]);
    }

    qbo.set_faults(Faults::none());
    // Let the failed calls age out of the window.
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    for _ in 0..2 {
        let r = monitor(&hub.stores, &clients, &alerter, &t).await.unwrap();
        assert_eq!(r[0].state, State::Healthy, "{:?}", r[0].reasons);
    }
    let stored = shared::pipelines::health::last_report(
        &hub.stores,
        &hub.stores.connections.list_all().await.unwrap()[0],
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(stored.state, State::Healthy);
    // The two `expect(1)`s are checked when the mock server drops.
}

async fn the_square_check_reads_every_location(b: Backend) {
    use hub_sandboxes::square::{SquareConfig, SquareSandbox};
    let square = SquareSandbox::start(SquareConfig {
        locations: 3,
        days: 1,
        ..SquareConfig::seeded(52)
    })
    .await
    .unwrap();
    let hub = Hub::new(b).await;
    hub.app(Provider::Square, square.client_id(), square.client_secret())
        .await;
    let g = square.grant();
    hub.connect(
        "pos",
        Provider::Square,
        &square.merchant_id(),
        "America/Los_Angeles",
        token_credentials(
            &g.access_token,
            g.refresh_token.as_deref(),
            SignedDuration::from_hours(1),
        ),
    )
    .await;
    let clients = hub.clients(Endpoints {
        square: square.base_url(),
        square_token: format!("{}/oauth2/token", square.base_url()),
        ..Endpoints::default()
    });
    let r = monitor(
        &hub.stores,
        &clients,
        &Alerter::new(None),
        &Thresholds::default(),
    )
    .await
    .unwrap();
    // Reachable (never pulled yet is all it has to say).
    assert_eq!(r[0].reasons, ["never pulled"]);
    assert!(r[0].reachability_ms.is_some());
    let c = square.counters();
    assert_eq!(c.calls_to("GET", "/v2/locations"), 1);
    // A request without location_id reads the main location only: one per location.
    assert_eq!(c.calls_to("GET", "/v2/payments"), 3);
}

async fn one_connection_is_checked_now_and_its_report_stored(b: Backend) {
    let qbo = QuickBooksSandbox::start(QuickBooksConfig {
        limits: Vec::new(),
        ..QuickBooksConfig::seeded(52)
    })
    .await
    .unwrap();
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/alerts"))
        .and(body_string_contains("UNHEALTHY: quickbooks bistro/books"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&slack)
        .await;
    let hub = Hub::new(b).await;
    let realm = qbo.realm_id();
    let grant = qbo.grant(&realm);
    hub.app(Provider::QuickBooks, qbo.client_id(), qbo.client_secret())
        .await;
    let c = hub
        .connect(
            "books",
            Provider::QuickBooks,
            &realm,
            "America/Los_Angeles",
            token_credentials(
                &grant.access_token,
                grant.refresh_token.as_deref(),
                SignedDuration::from_hours(1),
            ),
        )
        .await;
    let clients = hub.clients(Endpoints {
        quickbooks: qbo.base_url(),
        ..Endpoints::default()
    });
    let alerter = Alerter::new(Some(format!("{}/alerts", slack.uri())));
    let t = Thresholds::default();
    let none = |_: &shared::model::Connection| None;
    let check = |id: &str| {
        let id = ConnectionId::new(id).unwrap();
        let (clients, alerter, t, stores, tenant) =
            (&clients, &alerter, &t, &hub.stores, &c.tenant);
        async move {
            monitor_one(stores, clients, &none, tenant, &id, alerter, t)
                .await
                .unwrap()
        }
    };
    assert!(
        shared::pipelines::health::last_report(&hub.stores, &c)
            .await
            .unwrap()
            .is_none()
    );
    qbo.set_faults(Faults::errors(1.0));
    let r = check("books").await.expect("the connection exists");
    assert_eq!(r.state, State::Unhealthy);
    assert!(
        r.reasons.iter().any(|x| x.starts_with("unreachable")),
        "{:?}",
        r.reasons
    );
    let stored = shared::pipelines::health::last_report(&hub.stores, &c)
        .await
        .unwrap()
        .expect("the report is stored");
    assert_eq!(stored, r);
    // A second check in the same state alerts no more (one `expect(1)`).
    assert_eq!(check("books").await.unwrap().state, State::Unhealthy);
    assert!(check("nope").await.is_none(), "no such connection");
}
