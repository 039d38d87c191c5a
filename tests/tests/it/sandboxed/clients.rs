//! Provider clients against the sandboxes: every page is read, 429s are
//! waited out rather than hammered, injected 5xx are retried through, fifty
//! workers share one realm's budget without ever exceeding it, and an expired
//! token is refreshed once for twenty callers.

use super::{Hub, login, token_credentials};
use crate::backends::{Backend, conformance};
use hub_sandboxes::quickbooks::{QuickBooksConfig, QuickBooksSandbox};
use hub_sandboxes::toast::{ToastConfig, ToastLimits, ToastSandbox};
use hub_sandboxes::{Faults, Limit as SandboxLimit};
use jiff::{SignedDuration, Timestamp};
use shared::model::Provider;
use shared::ports::Limit;
use shared::providers::Endpoints;
use shared::providers::http::RetryPolicy;
use std::sync::Arc;
use std::time::Duration;

conformance!(
    toast_paging_reads_every_order_even_with_30_percent_5xx,
    fifty_workers_share_one_realm_budget_and_never_exceed_it,
    a_429_is_waited_out_not_hammered,
    twenty_callers_with_an_expired_token_cause_one_refresh,
);

async fn toast(orders_per_day: u32, days: u32) -> ToastSandbox {
    ToastSandbox::start(ToastConfig {
        days,
        orders_per_day,
        limits: ToastLimits::unlimited(),
        ..ToastConfig::seeded(7)
    })
    .await
    .unwrap()
}

async fn toast_paging_reads_every_order_even_with_30_percent_5xx(b: Backend) {
    let sandbox = toast(150, 3).await;
    let hub = Hub::new(b).await;
    let guid = sandbox.restaurant_guids()[0].clone();
    let c = hub
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
    let endpoints = Endpoints {
        toast: sandbox.base_url(),
        ..Endpoints::default()
    };
    let clients = hub.clients(endpoints);
    let http = clients.http().clone().with_policy(RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(5),
        ..RetryPolicy::default()
    });
    let client = shared::providers::toast::ToastClient::new(
        http,
        clients.tokens().clone(),
        &sandbox.base_url(),
        c.account_id.clone(),
        c.credentials.clone(),
    );
    // Log in before the faults start: Toast allows two logins an hour, and a
    // login that a 5xx ate still counts.
    client.menus_metadata().await.unwrap();
    sandbox.set_faults(Faults::errors(0.3));
    let all = sandbox.orders(&guid);
    let start = Timestamp::now() - SignedDuration::from_hours(24 * 29);
    let orders = client
        .orders_bulk(start, Timestamp::now() + SignedDuration::from_hours(1))
        .await
        .unwrap();
    let mut got: Vec<&str> = orders.iter().map(|o| o["guid"].as_str().unwrap()).collect();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), all.len(), "every order, once");
    assert!(all.len() >= 450);
    let counters = sandbox.counters();
    assert!(counters.injected_errors > 0, "faults were injected");
    assert_eq!(counters.token_requests, 1, "one login, reused");
}

async fn fifty_workers_share_one_realm_budget_and_never_exceed_it(b: Backend) {
    // The sandbox allows 40 calls in any 3 s; the hub's budget says the same.
    let sandbox = QuickBooksSandbox::start(QuickBooksConfig {
        limits: vec![SandboxLimit::sliding("minute", 40, Duration::from_secs(3))],
        concurrency: Some(10),
        observe_window: Duration::from_secs(3),
        ..QuickBooksConfig::seeded(3)
    })
    .await
    .unwrap();
    let hub = Hub::new(b).await;
    let realm = sandbox.realm_id();
    let grant = sandbox.grant(&realm);
    hub.app(
        Provider::QuickBooks,
        sandbox.client_id(),
        sandbox.client_secret(),
    )
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
        quickbooks: sandbox.base_url(),
        quickbooks_token: format!("{}/oauth2/v1/tokens/bearer", sandbox.base_url()),
        ..Endpoints::default()
    });
    let client = Arc::new(clients.quickbooks(&c).await.unwrap().with_limits(
        vec![Limit::new("window", 40, Duration::from_secs(3))],
        Some(10),
    ));
    // Sixty calls from fifty workers: more than one window's worth, so the
    // budget must hold some back. A count of calls, not a stretch of time.
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let n = if i < 10 { 2 } else { 1 };
                for _ in 0..n {
                    client.accounts().await.unwrap();
                }
                n
            })
        })
        .collect();
    let mut calls = 0;
    for t in tasks {
        calls += t.await.unwrap();
    }
    let counters = sandbox.counters();
    let peak = counters
        .max_calls_per_window
        .values()
        .copied()
        .max()
        .unwrap_or(0);
    assert_eq!(calls, 60);
    assert_eq!(
        counters.calls_to("GET", "/v3/company/{realmId}/query"),
        60,
        "every call reached the books once"
    );
    // Counted as the calls arrived, by the sandbox's clock, whatever the
    // network and the machine's load did to them on the way.
    assert!(peak <= 40, "at most 40 calls in any 3 s window, saw {peak}");
    assert_eq!(
        counters.rate_limited, 0,
        "never refused: the shared budget kept every worker inside the limit"
    );
    assert!(
        counters.max_in_flight.values().all(|n| *n <= 10),
        "{:?}",
        counters.max_in_flight
    );
}

async fn a_429_is_waited_out_not_hammered(b: Backend) {
    // The sandbox allows 4 calls per 3 s; the hub's budget is set far higher,
    // so only the sandbox's 429s (and their Retry-After) hold it back.
    let sandbox = QuickBooksSandbox::start(QuickBooksConfig {
        limits: vec![SandboxLimit::fixed("minute", 4, Duration::from_secs(3))],
        ..QuickBooksConfig::seeded(4)
    })
    .await
    .unwrap();
    let hub = Hub::new(b).await;
    let realm = sandbox.realm_id();
    let grant = sandbox.grant(&realm);
    hub.app(
        Provider::QuickBooks,
        sandbox.client_id(),
        sandbox.client_secret(),
    )
    .await;
    let c = hub
        .connect(
            "books",
            Provider::QuickBooks,
            &realm,
            "UTC",
            token_credentials(
                &grant.access_token,
                grant.refresh_token.as_deref(),
                SignedDuration::from_hours(1),
            ),
        )
        .await;
    let clients = hub.clients(Endpoints {
        quickbooks: sandbox.base_url(),
        ..Endpoints::default()
    });
    let client = clients.quickbooks(&c).await.unwrap().with_limits(
        vec![Limit::new("minute", 10_000, Duration::from_secs(60))],
        None,
    );
    for _ in 0..10 {
        client.accounts().await.unwrap();
    }
    let counters = sandbox.counters();
    assert!(counters.rate_limited >= 1, "the sandbox did refuse");
    assert!(
        counters.rate_limited <= 3,
        "each 429 was waited out, not retried at once: {}",
        counters.rate_limited
    );
}

async fn twenty_callers_with_an_expired_token_cause_one_refresh(b: Backend) {
    let sandbox = QuickBooksSandbox::start(QuickBooksConfig::seeded(5))
        .await
        .unwrap();
    let hub = Hub::new(b).await;
    let realm = sandbox.realm_id();
    let grant = sandbox.grant(&realm);
    hub.app(
        Provider::QuickBooks,
        sandbox.client_id(),
        sandbox.client_secret(),
    )
    .await;
    let c = hub
        .connect(
            "books",
            Provider::QuickBooks,
            &realm,
            "UTC",
            token_credentials(
                &grant.access_token,
                grant.refresh_token.as_deref(),
                SignedDuration::from_hours(1),
            ),
        )
        .await;
    sandbox.expire_access_tokens();
    let clients = hub.clients(Endpoints {
        quickbooks: sandbox.base_url(),
        quickbooks_token: format!("{}/oauth2/v1/tokens/bearer", sandbox.base_url()),
        ..Endpoints::default()
    });
    let client = Arc::new(clients.quickbooks(&c).await.unwrap());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.accounts().await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let counters = sandbox.counters();
    assert_eq!(counters.refreshes, 1, "one refresh for twenty callers");
    assert_eq!(counters.invalid_grants, 0);
    let stored = shared::providers::auth::Credentials::parse(
        &hub.stores.secrets.get(&c.credentials).await.unwrap(),
        &c.credentials,
    )
    .unwrap();
    let refresh = stored.token.unwrap().refresh_token.unwrap();
    assert!(
        sandbox.refresh_token_is_valid(&refresh),
        "the stored refresh token is the newest one"
    );
}
