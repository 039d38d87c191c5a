//! Webhook intake: `cargo bench -p hub-tests --bench intake`.
//!
//! 1. Signed Toast deliveries (each a distinct event, 1.6 kB) through the
//!    hub's HTTP routes (`hub serve`'s router on loopback) on the embedded
//!    store, 16 at a time: deliveries per second and the latency
//!    percentiles a provider sees (verify, claim, route, enqueue, answer).
//! 2. With `HUB_BENCH_AWS_ENDPOINT` (and `AWS_ENDPOINT_URL`, credentials and
//!    region for the SDK, as `cargo xtask bench` sets them): the same
//!    handler a webhook function runs, called once per delivery against
//!    DynamoDB and SQS on the emulator: time per invocation.
//!
//! The last line is the figures as JSON, prefixed `figures: `.

#![allow(clippy::float_arithmetic)] // rates and percentiles for the report; no money here

use hub::serve::{AppState, run};
use hub_sandboxes::webhook::signed_headers;
use shared::adapters::file_secrets::FileSecrets;
use shared::adapters::sqlite::SqliteStore;
use shared::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
use shared::model::{Connection, Provider, Tenant, TimeZoneName};
use shared::webhooks::{WebhookIntake, WebhookRequest, WebhookSettings};
use shared::{Config, Stores};
use std::time::{Duration, Instant};

const KEY: &str = "bench-signing-key";
const FIXTURE: &str = include_str!("../fixtures/toast/webhook_order_updated.json");
const RESTAURANT: &str = "0cd990c9-fd74-461d-8468-de2a0919ccbba";

fn bodies(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut v: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
            v["guid"] = uuid::Uuid::new_v4().to_string().into();
            v["details"]["order"]["guid"] = format!("order-{i}").into();
            serde_json::to_vec(&v).unwrap()
        })
        .collect()
}

async fn seed(stores: &Stores) {
    let tenant = TenantId::new("bench").unwrap();
    stores
        .connections
        .put_tenant(&Tenant {
            id: tenant.clone(),
            name: "Bench".into(),
        })
        .await
        .unwrap();
    stores
        .secrets
        .put(
            &SecretName::new("webhooks/toast").unwrap(),
            &KEY.to_string().into(),
        )
        .await
        .unwrap();
    stores
        .connections
        .register(&Connection {
            id: ConnectionId::new("pos").unwrap(),
            tenant,
            provider: Provider::Toast,
            account_id: ProviderAccountId::new(RESTAURANT).unwrap(),
            time_zone: TimeZoneName::new("America/New_York").unwrap(),
            business_day_close: Default::default(),
            credentials: SecretName::new("bench/pos").unwrap(),
            mappings: Default::default(),
            codes: Default::default(),
            currency: None,
            books: Default::default(),
        })
        .await
        .unwrap();
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let n: usize = std::env::var("INTAKE_BENCH_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let concurrency = 16;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = std::env::temp_dir().join(format!("hub-intake-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = Config::from_lookup(|_| None).unwrap();
        let stores = Stores::embedded(
            SqliteStore::open(&dir.join("state.db")).unwrap(),
            FileSecrets::new(dir.join("secrets.json")),
            5,
            &config,
        );
        seed(&stores).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhooks/toast", listener.local_addr().unwrap());
        tokio::spawn(run(
            listener,
            AppState::new(stores.clone(), WebhookSettings::default()),
            std::future::pending(),
        ));
        let requests: Vec<(reqwest::header::HeaderMap, Vec<u8>)> = bodies(n)
            .into_iter()
            .map(|b| (signed_headers(Provider::Toast, &url, &b, KEY).unwrap(), b))
            .collect();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        // Warm up: connections, the key cache, SQLite's pages.
        for (h, b) in requests.iter().take(50) {
            client.post(&url).headers(h.clone()).body(b.clone()).send().await.unwrap();
        }
        let started = Instant::now();
        let chunks: Vec<Vec<(reqwest::header::HeaderMap, Vec<u8>)>> = requests[50..]
            .chunks(requests[50..].len().div_ceil(concurrency))
            .map(<[_]>::to_vec)
            .collect();
        let mut tasks = Vec::new();
        for chunk in chunks {
            let (client, url) = (client.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(chunk.len());
                for (h, b) in chunk {
                    let t = Instant::now();
                    let r = client.post(&url).headers(h).body(b).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    lat.push(t.elapsed());
                }
                lat
            }));
        }
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.unwrap());
        }
        let secs = started.elapsed().as_secs_f64();
        lat.sort();
        let queued = stores.work_queue.depth().await.unwrap().visible;
        assert_eq!(queued as usize, n, "every delivery queued once");
        let (p50, p99) = (percentile(&lat, 0.50), percentile(&lat, 0.99));
        let rate = lat.len() as f64 / secs;
        println!(
            "serve (embedded): {} signed deliveries, {concurrency} at a time: {rate:.0}/s, p50 {p50:.2} ms, p99 {p99:.2} ms",
            lat.len()
        );
        let mut figures = serde_json::json!({
            "embedded": {"deliveries": lat.len(), "concurrency": concurrency, "per_second": rate, "p50_ms": p50, "p99_ms": p99},
        });

        if let Ok(endpoint) = std::env::var("HUB_BENCH_AWS_ENDPOINT") {
            use shared::adapters::aws::schema;
            let sdk = shared::adapters::aws::load_sdk_config().await;
            let ddb = shared::adapters::aws::DynamoClient::new(&sdk);
            let sqs = shared::adapters::aws::SqsClient::new(&sdk);
            let p = format!("intake-bench-{}", std::process::id());
            let (state, idem) = (format!("{p}-state"), format!("{p}-idem"));
            schema::create_state_table(&ddb, &state).await.unwrap();
            schema::create_idempotency_table(&ddb, &idem).await.unwrap();
            let mut vars = vec![
                ("HUB_BACKEND".to_string(), "aws".to_string()),
                ("HUB_STATE_TABLE".to_string(), state),
                ("HUB_IDEMPOTENCY_TABLE".to_string(), idem),
                ("HUB_SECRET_PREFIX".to_string(), format!("{p}/")),
            ];
            for q in ["work", "push", "pull"] {
                let u = schema::create_queue_with_dlq(&sqs, &format!("{p}-{q}"), 5).await.unwrap();
                vars.push((format!("HUB_{}_QUEUE_URL", q.to_uppercase()), u));
            }
            for q in ["unrouted", "outbound"] {
                let u = schema::create_queue(&sqs, &format!("{p}-{q}")).await.unwrap();
                vars.push((format!("HUB_{}_QUEUE_URL", q.to_uppercase()), u));
            }
            let config = Config::from_lookup(|name| {
                vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            })
            .unwrap();
            let stores = Stores::from_config(&config).await.unwrap();
            seed(&stores).await;
            let intake = WebhookIntake::new(stores.clone(), WebhookSettings::default());
            let m = 300;
            let mut lat = Vec::new();
            for (i, b) in bodies(m + 20).into_iter().enumerate() {
                let headers = signed_headers(Provider::Toast, &url, &b, KEY).unwrap();
                let t = Instant::now();
                let r = intake
                    .handle(WebhookRequest {
                        provider: "toast",
                        method: "POST",
                        headers: &headers,
                        body: &b,
                        url: Some(url.clone()),
                    })
                    .await;
                assert_eq!(r.status, 200, "{}", r.body);
                if i >= 20 {
                    lat.push(t.elapsed());
                }
            }
            lat.sort();
            let (p50, p99) = (percentile(&lat, 0.50), percentile(&lat, 0.99));
            println!(
                "handler on DynamoDB + SQS (emulator at {endpoint}): {m} deliveries one at a time: p50 {p50:.2} ms, p99 {p99:.2} ms per invocation"
            );
            figures["aws_emulator"] = serde_json::json!({"deliveries": m, "p50_ms": p50, "p99_ms": p99});
        }
        let _ = std::fs::remove_dir_all(&dir);
        println!("figures: {figures}");
    });
}
