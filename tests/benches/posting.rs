//! Posting throughput under the providers' enforced limits:
//! `cargo bench -p hub-tests --bench posting`.
//!
//! 10,000 sales are put in the ledger (a SQLite file) and posted by
//! `POSTING_BENCH_WORKERS` workers (default 4, like concurrent push
//! functions) into the QuickBooks sandbox, which enforces 500 calls a minute
//! and 40 batches a minute per realm (sliding windows) and 10 in flight; then
//! into the Xero sandbox (60 a minute, 5 in flight). Reported: wall time,
//! transactions a minute, calls per posted transaction, 429s, and that the
//! books hold each sale once.
//!
//! `POSTING_BENCH_COUNT` changes the count; `POSTING_BENCH_DEST` picks
//! `quickbooks`, `xero` or `both` (default). The last line is the figures as
//! JSON, prefixed `figures: `.

#![allow(clippy::float_arithmetic)] // rates for the report; no money here

use hub_sandboxes::quickbooks::{QuickBooksConfig, QuickBooksSandbox};
use hub_sandboxes::xero::{XeroConfig, XeroSandbox};
use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;
use serde_json::json;
use shared::adapters::file_secrets::FileSecrets;
use shared::adapters::sqlite::SqliteStore;
use shared::ids::{ConnectionId, ExternalId, ProviderAccountId, SecretName, TenantId};
use shared::model::{
    AccountMapping, Connection, Currency, Direction, Provider, Record, Tenant, TimeZoneName,
    Transaction,
};
use shared::pipelines::push::Pusher;
use shared::pipelines::records::ingest;
use shared::providers::auth::{Credentials, StoredToken};
use shared::providers::{Endpoints, ProviderClients};
use shared::{Config, Stores};
use std::time::{Duration, Instant};

fn sales(pos: &Connection, n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            Record::Transaction(Transaction {
                tenant: pos.tenant.clone(),
                connection: pos.id.clone(),
                source: Provider::Toast,
                external_id: ExternalId::new(format!("sale-{i}")).unwrap(),
                amount: Decimal::new(500 + (i as i64 * 37) % 20_000, 2),
                currency: Currency::new("USD").unwrap(),
                direction: if i % 25 == 0 {
                    Direction::Debit
                } else {
                    Direction::Credit
                },
                description: format!("Order {i}"),
                business_date: jiff::civil::date(2026, 11, 1 + (i % 28) as i8),
                occurred_at: Timestamp::from_second(1_764_000_000 + i as i64).unwrap(),
                reference: format!("T-{i}"),
                payment_method: Some("CREDIT".into()),
                line_items: Vec::new(),
                parts: Vec::new(),
                hold: None,
            })
        })
        .collect()
}

struct Run {
    stores: Stores,
    tenant: TenantId,
    pos: Connection,
    dir: std::path::PathBuf,
}

async fn setup(destination: Provider, account: &str, token: &str, app: (&str, &str)) -> Run {
    let dir = std::env::temp_dir().join(format!(
        "hub-posting-bench-{}-{destination}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = Config::from_lookup(|_| None).unwrap();
    let stores = Stores::embedded(
        SqliteStore::open(&dir.join("state.db")).unwrap(),
        FileSecrets::new(dir.join("secrets.json")),
        5,
        &config,
    );
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
            &SecretName::new(format!("apps/{destination}")).unwrap(),
            &json!({"client_id": app.0, "client_secret": app.1})
                .to_string()
                .into(),
        )
        .await
        .unwrap();
    let books_secret = SecretName::new("bench/books").unwrap();
    let creds = Credentials {
        token: Some(StoredToken {
            access_token: token.into(),
            refresh_token: None,
            expires_at: Timestamp::now() + SignedDuration::from_hours(1),
            refresh_expires_at: None,
        }),
        login: Default::default(),
    };
    stores
        .secrets
        .put(&books_secret, &creds.to_secret())
        .await
        .unwrap();
    let mapping = match destination {
        Provider::QuickBooks => AccountMapping {
            sales_item: Some("20".into()),
            deposit_account: Some("4".into()),
            expense_account: Some("7".into()),
            ..AccountMapping::default()
        },
        _ => AccountMapping {
            sales_account: Some("200".into()),
            expense_account: Some("429".into()),
            deposit_account: Some("090".into()),
            ..AccountMapping::default()
        },
    };
    let pos = Connection {
        id: ConnectionId::new("pos").unwrap(),
        tenant: tenant.clone(),
        provider: Provider::Toast,
        account_id: ProviderAccountId::new("restaurant").unwrap(),
        time_zone: TimeZoneName::new("America/New_York").unwrap(),
        business_day_close: Default::default(),
        credentials: SecretName::new("bench/pos").unwrap(),
        mappings: [(destination, mapping)].into_iter().collect(),
        codes: Default::default(),
        currency: None,
        books: Default::default(),
    };
    stores.connections.register(&pos).await.unwrap();
    stores
        .connections
        .register(&Connection {
            id: ConnectionId::new("books").unwrap(),
            provider: destination,
            account_id: ProviderAccountId::new(account).unwrap(),
            credentials: books_secret,
            mappings: Default::default(),
            ..pos.clone()
        })
        .await
        .unwrap();
    Run {
        stores,
        tenant,
        pos,
        dir,
    }
}

/// Posts everything queued with `workers` concurrent pushers; wall time.
async fn post_all(run: &Run, clients: &ProviderClients, workers: usize) -> Duration {
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let pusher = Pusher::new(run.stores.clone(), clients.clone());
        let stores = run.stores.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                pusher
                    .drain(stores.push_queue.as_ref(), 1000)
                    .await
                    .unwrap();
                let d = stores.push_queue.depth().await.unwrap();
                if d.visible + d.in_flight == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    t0.elapsed()
}

fn main() {
    let count: usize = std::env::var("POSTING_BENCH_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let workers: usize = std::env::var("POSTING_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let dest = std::env::var("POSTING_BENCH_DEST").unwrap_or_else(|_| "both".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut figures = serde_json::Map::new();
        if dest == "both" || dest == "quickbooks" {
            let qbo = QuickBooksSandbox::start(QuickBooksConfig::seeded(81)).await.unwrap();
            let realm = qbo.realm_id();
            let grant = qbo.grant(&realm);
            let run = setup(Provider::QuickBooks, &realm, &grant.access_token, (qbo.client_id(), qbo.client_secret())).await;
            let clients = ProviderClients::new(
                &run.stores,
                Endpoints { quickbooks: qbo.base_url(), quickbooks_token: format!("{}/oauth2/v1/tokens/bearer", qbo.base_url()), ..Endpoints::default() },
                "http://127.0.0.1:9",
            );
            ingest(&run.stores, &run.tenant, Provider::Toast, &[Provider::QuickBooks], sales(&run.pos, count)).await.unwrap();
            println!("quickbooks: posting {count} transactions with {workers} workers (500 calls/min, 40 batches/min, 10 in flight per realm)");
            let wall = post_all(&run, &clients, workers).await;
            let c = qbo.counters();
            let batches = c.calls_to("POST", "/v3/company/{realmId}/batch");
            let singles = c.calls_to("POST", "/v3/company/{realmId}/salesreceipt") + c.calls_to("POST", "/v3/company/{realmId}/purchase");
            let booked = qbo.created_sales_receipts(&realm).len() + qbo.created_purchases(&realm).len();
            assert_eq!(booked, count, "each sale booked once");
            let calls = batches + singles;
            let secs = wall.as_secs_f64();
            println!(
                "quickbooks: {count} posted in {:.1} min ({:.0}/min): {batches} batch calls + {singles} single calls = {:.3} calls per transaction; {} x 429; peak {} calls in a 60 s window",
                secs / 60.0,
                count as f64 / secs * 60.0,
                calls as f64 / count as f64,
                c.rate_limited,
                c.max_calls_per_window.values().max().copied().unwrap_or(0),
            );
            figures.insert("quickbooks".into(), json!({
                "transactions": count, "workers": workers, "wall_seconds": secs,
                "per_minute": count as f64 / secs * 60.0, "batch_calls": batches, "single_calls": singles,
                "calls_per_transaction": calls as f64 / count as f64, "rate_limited": c.rate_limited,
            }));
            let _ = std::fs::remove_dir_all(&run.dir);
        }
        if dest == "both" || dest == "xero" {
            let xero = XeroSandbox::start(XeroConfig::seeded(82)).await.unwrap();
            let tenant = xero.tenant_id();
            let grant = xero.grant();
            let run = setup(Provider::Xero, &tenant, &grant.access_token, (xero.client_id(), xero.client_secret())).await;
            let clients = ProviderClients::new(
                &run.stores,
                Endpoints { xero: xero.base_url(), xero_token: format!("{}/connect/token", xero.base_url()), ..Endpoints::default() },
                "http://127.0.0.1:9",
            );
            ingest(&run.stores, &run.tenant, Provider::Toast, &[Provider::Xero], sales(&run.pos, count)).await.unwrap();
            println!("xero: posting {count} transactions with {workers} workers (60 calls/min, 5 in flight per tenant)");
            let wall = post_all(&run, &clients, workers).await;
            let c = xero.counters();
            // The hub saves with POST (update-or-create); PUT (create only)
            // is counted too, so a change of verb cannot read as no calls.
            let calls = c.calls_to("POST", "/api.xro/2.0/BankTransactions") + c.calls_to("PUT", "/api.xro/2.0/BankTransactions");
            let booked = xero.bank_transactions(&tenant).len();
            assert_eq!(booked, count, "each sale booked once");
            assert!(calls > 0, "the sandbox counted no BankTransactions calls for {count} bookings");
            let secs = wall.as_secs_f64();
            println!(
                "xero: {count} posted in {:.1} min ({:.0}/min): {calls} calls = {:.3} calls per transaction; {} x 429",
                secs / 60.0,
                count as f64 / secs * 60.0,
                calls as f64 / count as f64,
                c.rate_limited,
            );
            figures.insert("xero".into(), json!({
                "transactions": count, "workers": workers, "wall_seconds": secs,
                "per_minute": count as f64 / secs * 60.0, "calls": calls,
                "calls_per_transaction": calls as f64 / count as f64, "rate_limited": c.rate_limited,
            }));
            let _ = std::fs::remove_dir_all(&run.dir);
        }
        println!("figures: {}", serde_json::Value::Object(figures));
    });
}
