//! Injected faults: 5xx at a rate (reproducibly), dropped connections,
//! latency and concurrency.

use crate::client;
use crate::toast::login;
use hub_sandboxes::Faults;
use hub_sandboxes::toast::{ToastConfig, ToastLimits, ToastSandbox};
use std::time::Duration;

fn config(seed: u64) -> ToastConfig {
    ToastConfig {
        days: 1,
        orders_per_day: 2,
        limits: ToastLimits::unlimited(),
        ..ToastConfig::seeded(seed)
    }
}

async fn statuses(seed: u64, rate: f64, n: usize) -> (Vec<u16>, u64) {
    let toast = ToastSandbox::start(config(seed)).await.unwrap();
    let token = login(&toast).await;
    let restaurant = toast.restaurant_guids()[0].clone();
    toast.set_faults(Faults::errors(rate));
    let http = client();
    let mut out = Vec::new();
    for _ in 0..n {
        let resp = http
            .get(format!("{}/menus/v2/metadata", toast.base_url()))
            .bearer_auth(&token)
            .header("Toast-Restaurant-External-ID", &restaurant)
            .send()
            .await
            .unwrap();
        out.push(resp.status().as_u16());
    }
    (out, toast.counters().injected_errors)
}

#[tokio::test]
async fn server_errors_come_at_the_configured_rate_and_replay_with_the_seed() {
    let (a, injected) = statuses(7, 0.3, 200).await;
    let errors = a.iter().filter(|s| **s >= 500).count();
    assert!(
        (35..=85).contains(&errors),
        "{errors} errors in 200 at rate 0.3"
    );
    assert_eq!(injected, errors as u64);
    assert!(a.iter().all(|s| [200, 500, 503].contains(s)));
    assert!(a.contains(&500) && a.contains(&503));
    let (b, _) = statuses(7, 0.3, 200).await;
    assert_eq!(a, b, "same seed, same faults");
    let (c, _) = statuses(8, 0.3, 200).await;
    assert_ne!(a, c, "another seed, other faults");
    let (none, _) = statuses(7, 0.0, 50).await;
    assert!(none.iter().all(|s| *s == 200));
}

#[tokio::test]
async fn a_dropped_connection_is_a_transport_error_not_a_status() {
    let toast = ToastSandbox::start(config(1)).await.unwrap();
    let token = login(&toast).await;
    let restaurant = toast.restaurant_guids()[0].clone();
    let http = client();
    let get = || {
        http.get(format!("{}/menus/v2/metadata", toast.base_url()))
            .bearer_auth(&token)
            .header("Toast-Restaurant-External-ID", &restaurant)
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);
    toast.set_faults(Faults::drops(1.0));
    let err = get().await.unwrap_err();
    assert!(err.status().is_none(), "no HTTP status: {err:?}");
    assert!(!err.is_timeout(), "closed, not timed out: {err:?}");
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    assert_eq!(toast.counters().dropped_connections, 1);
    toast.set_faults(Faults::none());
    assert_eq!(
        get().await.unwrap().status(),
        200,
        "the next connection works"
    );
}

#[tokio::test]
async fn latency_makes_requests_overlap_and_max_in_flight_sees_it() {
    let toast = ToastSandbox::start(config(1)).await.unwrap();
    let token = login(&toast).await;
    let restaurant = toast.restaurant_guids()[0].clone();
    toast.set_faults(Faults::latency(Duration::from_millis(1000)));
    let http = client();
    let started = std::time::Instant::now();
    let calls = (0..4).map(|_| {
        http.get(format!("{}/menus/v2/metadata", toast.base_url()))
            .bearer_auth(&token)
            .header("Toast-Restaurant-External-ID", &restaurant)
            .send()
    });
    let results = futures_join(calls.collect()).await;
    assert!(results.iter().all(|s| *s == 200));
    assert!(started.elapsed() >= Duration::from_millis(1000));
    assert_eq!(toast.counters().max_in_flight[&restaurant], 4);
}

/// Runs requests concurrently (without pulling in the futures crate).
pub async fn futures_join<F>(calls: Vec<F>) -> Vec<u16>
where
    F: std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static,
{
    let handles: Vec<_> = calls.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap().unwrap().status().as_u16());
    }
    out
}

#[tokio::test]
async fn a_dropped_connection_sends_zero_bytes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let toast = ToastSandbox::start(config(1)).await.unwrap();
    toast.set_faults(Faults::drops(1.0));
    let mut socket = tokio::net::TcpStream::connect(toast.addr()).await.unwrap();
    socket
        .write_all(b"GET /menus/v2/metadata HTTP/1.1\r\nHost: sandbox\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    // EOF or a reset, but never a byte of HTTP.
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut received))
        .await
        .expect("the sandbox closes the socket");
    assert!(
        received.is_empty(),
        "got {:?}",
        String::from_utf8_lossy(&received)
    );
    assert_eq!(toast.counters().dropped_connections, 1);
}
