//! Pull throughput and memory: `cargo bench -p hub-tests --bench pull`.
//!
//! 1. Transform throughput: Toast orders (as the sandbox serves them) to
//!    transactions, records per second, in process.
//! 2. A full pull of 100,000 orders from the Toast sandbox over loopback into
//!    the embedded store (a SQLite file): records per second end to end, and
//!    the process's peak resident memory during the pull (VmHWM, reset just
//!    before it starts) next to the resident memory before it. Records stream
//!    page by page, so the peak should not grow with the number of orders.
//!
//! Set `PULL_BENCH_ORDERS` to change the order count.

#![allow(clippy::float_arithmetic)] // rates and sizes for the report; no money here

use hub_sandboxes::toast::{ToastConfig, ToastLimits, ToastSandbox};
use jiff::SignedDuration;
use shared::adapters::file_secrets::FileSecrets;
use shared::adapters::sqlite::SqliteStore;
use shared::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
use shared::model::{Connection, Provider, Tenant, TimeZoneName};
use shared::pipelines::pull::{PullSettings, Puller, RunOptions};
use shared::providers::auth::Credentials;
use shared::providers::toast::streams::ToastOrders;
use shared::providers::{Endpoints, ProviderClients};
use shared::{Config, Stores};
use std::time::Instant;

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let orders: u32 = std::env::var("PULL_BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let days = 20u32;
    let per_day = orders.div_ceil(days);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let sandbox = ToastSandbox::start(ToastConfig {
            days,
            orders_per_day: per_day,
            limits: ToastLimits::unlimited(),
            ..ToastConfig::seeded(42)
        })
        .await
        .unwrap();
        let guid = sandbox.restaurant_guids()[0].clone();
        let total = sandbox.orders(&guid).len();
        // The records those orders make: a sale each, and a refund per
        // refunded payment (refunds are transactions of their own).
        let records: usize = sandbox.orders(&guid).iter().map(|o| 1 + o.refunded_payments()).sum();

        let dir = std::env::temp_dir().join(format!("hub-pull-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = Config::from_lookup(|_| None).unwrap();
        let stores = Stores::embedded(SqliteStore::open(&dir.join("state.db")).unwrap(), FileSecrets::new(dir.join("secrets.json")), 5, &config);
        let tenant = TenantId::new("bench").unwrap();
        stores.connections.put_tenant(&Tenant { id: tenant.clone(), name: "Bench".into() }).await.unwrap();
        let secret = SecretName::new("bench/toast").unwrap();
        let creds = Credentials {
            token: None,
            login: [("client_id", sandbox.client_id()), ("client_secret", sandbox.client_secret())]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        stores.secrets.put(&secret, &creds.to_secret()).await.unwrap();
        let connection = Connection {
            id: ConnectionId::new("toast").unwrap(),
            tenant: tenant.clone(),
            provider: Provider::Toast,
            account_id: ProviderAccountId::new(&guid).unwrap(),
            time_zone: TimeZoneName::new("America/New_York").unwrap(),
            business_day_close: Default::default(),
            credentials: secret,
            mappings: Default::default(),
            codes: Default::default(),
            currency: Some(shared::model::Currency::usd()),
            books: Default::default(),
        };
        stores.connections.register(&connection).await.unwrap();
        stores
            .connections
            .register(&Connection { id: ConnectionId::new("books").unwrap(), provider: Provider::QuickBooks, account_id: ProviderAccountId::new("realm").unwrap(), ..connection.clone() })
            .await
            .unwrap();

        // 1. Transform throughput.
        let sample: Vec<serde_json::Value> = sandbox.orders(&guid).iter().take(20_000).map(|o| sandbox.order_json(&guid, &o.guid).unwrap()).collect();
        let t0 = Instant::now();
        let mut n = 0usize;
        for _ in 0..5 {
            for o in &sample {
                std::hint::black_box(shared::providers::toast::transform::order_to_transactions(o, &connection).unwrap());
                n += 1;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let transform_rate = n as f64 / secs;
        println!("transform: {n} Toast orders in {secs:.3} s = {transform_rate:.0} orders/s");
        drop(sample);

        // 2. A full pull.
        let clients = ProviderClients::new(&stores, Endpoints { toast: sandbox.base_url(), ..Endpoints::default() }, "http://127.0.0.1:9");
        let puller = Puller::new(
            stores.clone(),
            PullSettings { initial_lookback: SignedDuration::from_hours(24 * (i64::from(days) + 2)), settle: SignedDuration::ZERO, ..PullSettings::default() },
        );
        let stream = ToastOrders { client: clients.toast(&connection).unwrap(), connection: connection.clone() };
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = status_kb("VmRSS:");
        let t0 = Instant::now();
        let report = puller.run_windowed(&connection, &stream, RunOptions::default()).await.unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let peak = status_kb("VmHWM:");
        assert_eq!(report.tally.created as usize, records, "every sale and refund landed once");
        println!(
            "pull: {total} orders ({records} records: sales and refunds), {} pages, {secs:.1} s = {:.0} orders/s, {:.0} records/s end to end (HTTP, transform, ledger, push and event queues)",
            report.pages,
            total as f64 / secs,
            records as f64 / secs
        );
        println!(
            "memory: resident before the pull {:.1} MiB, peak during it {:.1} MiB (+{:.1} MiB; the sandbox serving the orders lives in the same process)",
            before as f64 / 1024.0,
            peak as f64 / 1024.0,
            peak.saturating_sub(before) as f64 / 1024.0
        );
        println!(
            "figures: {}",
            serde_json::json!({
                "transform_orders_per_second_one_core": transform_rate,
                "pull_orders": total,
                "pull_records": records,
                "pull_seconds": secs,
                "pull_orders_per_second": total as f64 / secs,
                "pull_records_per_second": records as f64 / secs,
                "rss_before_mib": before as f64 / 1024.0,
                "peak_rss_mib": peak as f64 / 1024.0,
                "peak_growth_mib": peak.saturating_sub(before) as f64 / 1024.0,
            })
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}
