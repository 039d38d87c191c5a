//! The daily journal at scale, under the providers' enforced limits:
//! `cargo bench -p hub-tests --bench journal`.
//!
//! `JOURNAL_BENCH_RESTAURANTS` restaurants (default 1,000), each a tenant
//! with a Toast POS and its own books booking daily summaries, have one
//! business day of 20 sales each in the ledger (a SQLite file). The day is
//! final, so each restaurant's day is queued as its sales arrive, and
//! `JOURNAL_BENCH_WORKERS` push workers (default 4) post them: into the
//! QuickBooks sandbox (one realm per restaurant, 500 calls a minute and 10 in
//! flight per realm), then into the Xero sandbox (one organisation per
//! restaurant, 60 calls a minute and 5 in flight per organisation, 10,000 a
//! minute per app). Then a tenth of the restaurants get a late refund,
//! posted again. Reported: wall time, provider calls per restaurant-day and
//! per late change (counted by the sandboxes), 429s, and that each book holds
//! one entry per day. The last line is the figures as JSON, prefixed
//! `figures: `.

#![allow(clippy::float_arithmetic)] // rates for the report; no money here

use hub_sandboxes::quickbooks::{QuickBooksConfig, QuickBooksSandbox};
use hub_sandboxes::xero::{XeroConfig, XeroSandbox, role_accounts};
use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;
use serde_json::json;
use shared::adapters::file_secrets::FileSecrets;
use shared::adapters::sqlite::SqliteStore;
use shared::ids::{ConnectionId, ExternalId, ProviderAccountId, SecretName, TenantId};
use shared::model::journal::DestinationBooks;
use shared::model::{
    Connection, Currency, Direction, Part, Provider, Record, Tenant, TimeZoneName, Transaction,
};
use shared::pipelines::push::Pusher;
use shared::pipelines::records::ingest;
use shared::providers::auth::{Credentials, StoredToken};
use shared::providers::{Endpoints, ProviderClients};
use shared::{Config, Stores};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const DAY: jiff::civil::Date = jiff::civil::date(2026, 11, 2);
const SALES_PER_DAY: usize = 20;

fn part(role: &str, cents: i64) -> Part {
    Part {
        role: role.into(),
        amount: Decimal::new(cents, 2),
    }
}

/// A sale (or a refund) in parts that balance: sales, 8 % tax, a tip, the
/// card tender.
fn sale(pos: &Connection, id: &str, cents: i64, refund: bool) -> Record {
    let tax = cents * 8 / 100;
    let tip = if refund { 0 } else { cents / 10 };
    let parts = if refund {
        vec![
            part("refunds", cents),
            part("tax:State", -tax),
            part("tender:card", -(cents + tax)),
        ]
    } else {
        vec![
            part("sales:food", cents),
            part("tax:State", tax),
            part("tips", tip),
            part("tender:card", cents + tax + tip),
        ]
    };
    Record::Transaction(Transaction {
        tenant: pos.tenant.clone(),
        connection: pos.id.clone(),
        source: Provider::Toast,
        external_id: ExternalId::new(id).unwrap(),
        amount: Decimal::new(cents + tax + tip, 2),
        currency: Currency::new("USD").unwrap(),
        direction: if refund {
            Direction::Debit
        } else {
            Direction::Credit
        },
        description: format!("Order {id}"),
        business_date: DAY,
        occurred_at: Timestamp::from_second(1_762_100_000).unwrap(),
        reference: id.into(),
        payment_method: Some("CREDIT".into()),
        line_items: Vec::new(),
        parts,
        hold: None,
    })
}

fn stores(dir: &std::path::Path) -> Stores {
    std::fs::create_dir_all(dir).unwrap();
    let config = Config::from_lookup(|_| None).unwrap();
    Stores::embedded(
        SqliteStore::open(&dir.join("state.db")).unwrap(),
        FileSecrets::new(dir.join("secrets.json")),
        5,
        &config,
    )
}

/// Registers `n` restaurants posting to `destination`, the accounts of
/// `accounts` (one per restaurant) with `tokens`, and ingests their day.
async fn seed(
    stores: &Stores,
    destination: Provider,
    app: (&str, &str),
    accounts: &[String],
    token: &dyn Fn(usize) -> String,
    mapping: BTreeMap<String, String>,
) -> Vec<Connection> {
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
    let mut sources = Vec::new();
    for (i, account) in accounts.iter().enumerate() {
        let tenant = TenantId::new(format!("r{i:04}")).unwrap();
        stores
            .connections
            .put_tenant(&Tenant {
                id: tenant.clone(),
                name: format!("Restaurant {i}"),
            })
            .await
            .unwrap();
        let creds = Credentials {
            token: Some(StoredToken {
                access_token: token(i),
                refresh_token: None,
                expires_at: Timestamp::now() + SignedDuration::from_hours(2),
                refresh_expires_at: None,
            }),
            login: Default::default(),
        };
        let secret = SecretName::new(format!("tenants/{tenant}/books")).unwrap();
        stores
            .secrets
            .put(&secret, &creds.to_secret())
            .await
            .unwrap();
        let pos = Connection {
            id: ConnectionId::new("pos").unwrap(),
            tenant: tenant.clone(),
            provider: Provider::Toast,
            account_id: ProviderAccountId::new(format!("restaurant-{i}")).unwrap(),
            time_zone: TimeZoneName::new("America/New_York").unwrap(),
            business_day_close: Default::default(),
            credentials: SecretName::new(format!("tenants/{tenant}/pos")).unwrap(),
            mappings: Default::default(),
            codes: Default::default(),
            currency: None,
            books: Default::default(),
        };
        stores.connections.register(&pos).await.unwrap();
        let mut books = DestinationBooks::new_connection();
        books
            .journal
            .set(jiff::civil::date(2026, 1, 1), mapping.clone());
        stores
            .connections
            .register(&Connection {
                id: ConnectionId::new("books").unwrap(),
                provider: destination,
                account_id: ProviderAccountId::new(account.as_str()).unwrap(),
                credentials: secret,
                books,
                ..pos.clone()
            })
            .await
            .unwrap();
        let day: Vec<Record> = (0..SALES_PER_DAY)
            .map(|s| {
                sale(
                    &pos,
                    &format!("{tenant}-{s}"),
                    1_000 + (s as i64 * 137) % 9_000,
                    false,
                )
            })
            .collect();
        ingest(stores, &tenant, Provider::Toast, &[], day)
            .await
            .unwrap();
        sources.push(pos);
    }
    sources
}

/// Posts everything queued with `workers` concurrent pushers; wall time.
async fn post_all(stores: &Stores, clients: &ProviderClients, workers: usize) -> Duration {
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let pusher = Pusher::new(stores.clone(), clients.clone());
        let stores = stores.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                for o in pusher
                    .drain(stores.push_queue.as_ref(), 1000)
                    .await
                    .unwrap()
                {
                    if let shared::pipelines::push::PushOutcome::Park(why) = o {
                        panic!("a day was parked: {why}");
                    }
                }
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

/// A tenth of `sources` get a late refund, ingested (each queues its day).
async fn late_refunds(stores: &Stores, sources: &[Connection]) -> usize {
    let mut n = 0;
    for pos in sources.iter().step_by(10) {
        let r = sale(pos, &format!("{}-refund", pos.tenant), 1_500, true);
        ingest(stores, &pos.tenant, Provider::Toast, &[], vec![r])
            .await
            .unwrap();
        n += 1;
    }
    n
}

/// A books sandbox as the run reads it.
struct Books<'a> {
    name: &'a str,
    /// Entries (journal entries, manual journals) in all its companies.
    entries: &'a dyn Fn() -> usize,
    /// Calls it has answered so far, and how many it refused with 429.
    calls: &'a dyn Fn() -> (u64, u64),
}

/// Posts every restaurant's day, then a tenth of them again after a late
/// refund; the figures of both, counted at the sandbox.
async fn measure(
    books: &Books<'_>,
    stores: &Stores,
    clients: &ProviderClients,
    sources: &[Connection],
    workers: usize,
) -> serde_json::Value {
    let n = sources.len();
    let name = books.name;
    let wall = post_all(stores, clients, workers).await;
    let (first_calls, _) = (books.calls)();
    assert_eq!((books.entries)(), n, "{name}: one entry per restaurant-day");
    let late = late_refunds(stores, sources).await;
    let late_wall = post_all(stores, clients, workers).await;
    let (all_calls, rate_limited) = (books.calls)();
    let late_calls = all_calls - first_calls;
    assert_eq!(
        (books.entries)(),
        n,
        "{name}: a late change updates its day in place"
    );
    let per_day = first_calls as f64 / n as f64;
    let per_late = late_calls as f64 / late.max(1) as f64;
    println!(
        "{name}: {n} days posted in {:.1}s ({:.0} days/min): {first_calls} calls = {per_day:.3} per restaurant-day; {late} late refunds in {:.1}s: {late_calls} calls = {per_late:.2} per late change; {rate_limited} x 429",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64() * 60.0,
        late_wall.as_secs_f64(),
    );
    json!({
        "restaurants": n, "sales_per_day": SALES_PER_DAY, "workers": workers,
        "wall_seconds": wall.as_secs_f64(), "calls": first_calls,
        "calls_per_restaurant_day": per_day,
        "late_changes": late, "late_wall_seconds": late_wall.as_secs_f64(), "late_calls": late_calls,
        "calls_per_late_change": per_late,
        "rate_limited": rate_limited,
    })
}

fn main() {
    let n: usize = std::env::var("JOURNAL_BENCH_RESTAURANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let workers: usize = std::env::var("JOURNAL_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut figures = serde_json::Map::new();
        let base = std::env::temp_dir().join(format!("hub-journal-bench-{}", std::process::id()));

        // QuickBooks: a realm per restaurant.
        let qbo = QuickBooksSandbox::start(QuickBooksConfig {
            realms: n,
            ..QuickBooksConfig::seeded(91)
        })
        .await
        .unwrap();
        let realms = qbo.realm_ids();
        let grants: Vec<String> = realms.iter().map(|r| qbo.grant(r).access_token).collect();
        let mapping: BTreeMap<String, String> = [
            ("sales:food", "item 20"),
            ("tax:State", "item 23"),
            ("tips", "item 33"),
            ("tender:card", "item 37"),
            ("refunds", "item 36"),
        ]
        .into_iter()
        .map(|(k, item)| {
            let item = item.trim_start_matches("item ");
            (k.to_string(), hub_sandboxes::quickbooks::item_account(item).unwrap())
        })
        .collect();
        let stores_q = stores(&base.join("quickbooks"));
        let t_seed = Instant::now();
        let sources = seed(&stores_q, Provider::QuickBooks, (qbo.client_id(), qbo.client_secret()), &realms, &|i| grants[i].clone(), mapping).await;
        let seeded = t_seed.elapsed();
        let clients = ProviderClients::new(
            &stores_q,
            Endpoints {
                quickbooks: qbo.base_url(),
                quickbooks_token: format!("{}/oauth2/v1/tokens/bearer", qbo.base_url()),
                ..Endpoints::default()
            },
            "http://127.0.0.1:9",
        );
        println!("quickbooks: {n} restaurants x 1 day ({} sales) in the ledger in {:.1}s; posting with {workers} workers", n * SALES_PER_DAY, seeded.as_secs_f64());
        let books = Books {
            name: "quickbooks",
            entries: &|| realms.iter().map(|r| qbo.journal_entries(r).len()).sum(),
            calls: &|| {
                let c = qbo.counters();
                (c.total_calls(), c.rate_limited)
            },
        };
        figures.insert("quickbooks".into(), measure(&books, &stores_q, &clients, &sources, workers).await);

        // Xero: an organisation per restaurant, one app.
        let xero = XeroSandbox::start(XeroConfig {
            tenants: n,
            ..XeroConfig::seeded(92)
        })
        .await
        .unwrap();
        let orgs = xero.tenant_ids();
        let token = xero.grant().access_token;
        let roles = role_accounts();
        let mapping: BTreeMap<String, String> = ["tax:State", "tips", "tender:card", "refunds"]
            .into_iter()
            .map(|k| {
                let family = format!("{}:*", k.split(':').next().unwrap());
                let code = roles.get(k).or_else(|| roles.get(&family)).unwrap().clone();
                (k.to_string(), code)
            })
            .chain([("sales:food".to_string(), roles["sales:*"].clone())])
            .collect();
        let stores_x = stores(&base.join("xero"));
        let sources = seed(&stores_x, Provider::Xero, (xero.client_id(), xero.client_secret()), &orgs, &|_| token.clone(), mapping).await;
        let clients = ProviderClients::new(
            &stores_x,
            Endpoints {
                xero: xero.base_url(),
                xero_token: format!("{}/connect/token", xero.base_url()),
                ..Endpoints::default()
            },
            "http://127.0.0.1:9",
        );
        println!("xero: {n} restaurants x 1 day; posting with {workers} workers");
        let books = Books {
            name: "xero",
            entries: &|| orgs.iter().map(|o| xero.manual_journals(o).len()).sum(),
            calls: &|| {
                let c = xero.counters();
                (c.total_calls(), c.rate_limited)
            },
        };
        figures.insert("xero".into(), measure(&books, &stores_x, &clients, &sources, workers).await);
        let _ = std::fs::remove_dir_all(&base);
        println!("figures: {}", serde_json::Value::Object(figures));
    });
}
