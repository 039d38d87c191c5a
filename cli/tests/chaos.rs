//! Chaos: the local runner (`hub pull`, `hub push`) killed with SIGKILL at
//! random points, over and over, while the books drop a fifth of their
//! answers after saving; then restarted until the work is done. The books
//! must hold every Toast order exactly once: zero lost, zero duplicated, and
//! the ledger's totals to the cent. A message whose receivers all died
//! reaches the dead-letter queue after the receive limit (nothing dropped) and
//! is redriven with `hub dlq redrive`, as an operator would.
//!
//! `HUB_CHAOS_TRIALS` sets the number of kills (default 24); the seed of the
//! kill times is printed, and `HUB_CHAOS_SEED` replays it.

use hub_sandboxes::Faults;
use hub_sandboxes::quickbooks::{QuickBooksConfig, QuickBooksSandbox};
use hub_sandboxes::toast::{ToastConfig, ToastLimits, ToastSandbox};
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use shared::adapters::file_secrets::FileSecrets;
use shared::adapters::sqlite::SqliteStore;
use shared::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
use shared::model::{AccountMapping, Connection, Provider, RecordKind, Tenant, TimeZoneName};
use shared::providers::auth::{Credentials, StoredToken};
use shared::{Config, Stores};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn stores(dir: &Path) -> Stores {
    let config = Config::from_lookup(|_| None).unwrap();
    Stores::embedded(
        SqliteStore::open(&dir.join("state.db")).unwrap(),
        FileSecrets::new(dir.join("secrets.json")),
        5,
        &config,
    )
}

async fn seed_hub(stores: &Stores, toast: &ToastSandbox, qbo: &QuickBooksSandbox) -> TenantId {
    let tenant = TenantId::new("bistro").unwrap();
    stores
        .connections
        .put_tenant(&Tenant {
            id: tenant.clone(),
            name: "Bistro".into(),
        })
        .await
        .unwrap();
    stores
        .secrets
        .put(
            &SecretName::new("apps/quickbooks").unwrap(),
            &serde_json::json!({"client_id": qbo.client_id(), "client_secret": qbo.client_secret()})
                .to_string()
                .into(),
        )
        .await
        .unwrap();
    let realm = qbo.realm_id();
    let grant = qbo.grant(&realm);
    let connection = |id: &str, provider, account: &str| Connection {
        id: ConnectionId::new(id).unwrap(),
        tenant: tenant.clone(),
        provider,
        account_id: ProviderAccountId::new(account).unwrap(),
        time_zone: TimeZoneName::new("America/New_York").unwrap(),
        business_day_close: Default::default(),
        credentials: SecretName::new(format!("bistro/{id}")).unwrap(),
        mappings: Default::default(),
        codes: Default::default(),
        currency: None,
    };
    let mut pos = connection("pos", Provider::Toast, &toast.restaurant_guids()[0]);
    pos.mappings.insert(
        Provider::QuickBooks,
        AccountMapping {
            parts: hub_sandboxes::quickbooks::role_items(),
            deposit_account: Some("4".into()),
            ..AccountMapping::default()
        },
    );
    let books = connection("books", Provider::QuickBooks, &realm);
    let login = Credentials {
        token: None,
        login: [
            ("client_id".to_string(), toast.client_id().to_string()),
            (
                "client_secret".to_string(),
                toast.client_secret().to_string(),
            ),
        ]
        .into_iter()
        .collect(),
    };
    let token = Credentials {
        token: Some(StoredToken {
            access_token: grant.access_token.clone(),
            refresh_token: grant.refresh_token.clone(),
            expires_at: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1),
            refresh_expires_at: None,
        }),
        login: Default::default(),
    };
    for (c, creds) in [(pos, login), (books, token)] {
        stores
            .secrets
            .put(&c.credentials, &creds.to_secret())
            .await
            .unwrap();
        stores.connections.register(&c).await.unwrap();
    }
    tenant
}

fn hub(dir: &Path, toast: &str, qbo: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hub"));
    c.args(args)
        .env_clear()
        .env("HUB_DATA_DIR", dir)
        .env("HUB_ENDPOINT_TOAST", toast)
        .env("HUB_ENDPOINT_QUICKBOOKS", qbo)
        .env(
            "HUB_ENDPOINT_QUICKBOOKS_TOKEN",
            format!("{qbo}/oauth2/v1/tokens/bearer"),
        )
        .env("HUB_LOG_FORMAT", "json")
        // A push untried after a kill is queued again by the next pull at
        // once (production waits ten minutes).
        .env("HUB_REQUEUE_PENDING_AFTER_SECONDS", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_killed_at_random_points_loses_and_duplicates_nothing() {
    let trials: usize = std::env::var("HUB_CHAOS_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let seed: u64 = std::env::var("HUB_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("chaos: {trials} kills, HUB_CHAOS_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let toast = ToastSandbox::start(ToastConfig {
        days: 3,
        orders_per_day: 60,
        limits: ToastLimits::unlimited(),
        ..ToastConfig::seeded(seed)
    })
    .await
    .unwrap();
    let qbo = QuickBooksSandbox::start(QuickBooksConfig {
        limits: Vec::new(),
        batch_limits: Vec::new(),
        ..QuickBooksConfig::seeded(seed)
    })
    .await
    .unwrap();
    let dir = std::env::temp_dir().join(format!("hub-chaos-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let local = stores(&dir);
    let tenant = seed_hub(&local, &toast, &qbo).await;
    let (toast_url, qbo_url) = (toast.base_url(), qbo.base_url());
    // The books save, then drop the answer, a fifth of the time.
    qbo.set_faults(Faults {
        drop_rate: 0.2,
        drop_after_handling: true,
        ..Faults::none()
    });

    let mut killed = 0;
    for i in 0..trials {
        let args: &[&str] = if i % 2 == 0 {
            &["pull", "toast", "--tenant", "bistro"]
        } else {
            &["push", "--visibility", "1"]
        };
        let mut child = hub(&dir, &toast_url, &qbo_url, args).spawn().unwrap();
        let after = Duration::from_millis(rng.random_range(5..600));
        tokio::time::sleep(after).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
    }
    eprintln!("chaos: {killed} of {trials} runs killed mid-way");
    assert!(
        killed >= trials / 2,
        "most runs must die mid-way to prove anything: {killed}"
    );

    // Restart until done: a full pull, then pushes until the queue is empty.
    // A message received by five runs that all died was parked in the
    // dead-letter queue (the queue cannot tell a kill from a failure): the
    // operator redrives it, as `hub dlq` shows it.
    qbo.set_faults(Faults::none());
    let status = hub(
        &dir,
        &toast_url,
        &qbo_url,
        &["pull", "toast", "--tenant", "bistro"],
    )
    .status()
    .unwrap();
    assert!(status.success());
    let mut redriven = 0;
    for _ in 0..30 {
        let d = local.push_queue.depth().await.unwrap();
        if d.dead > 0 {
            redriven += d.dead;
            let status = hub(
                &dir,
                &toast_url,
                &qbo_url,
                &["dlq", "redrive", "--queue", "push", "--all"],
            )
            .status()
            .unwrap();
            assert!(status.success());
        }
        let status = hub(&dir, &toast_url, &qbo_url, &["push", "--visibility", "1"])
            .status()
            .unwrap();
        assert!(status.success());
        let d = local.push_queue.depth().await.unwrap();
        if d.visible + d.in_flight + d.dead == 0 {
            break;
        }
        // Messages a killed run held come back after their visibility.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    eprintln!("chaos: {redriven} push(es) parked after repeated receives, redriven");
    let d = local.push_queue.depth().await.unwrap();
    assert_eq!(
        (d.visible, d.in_flight, d.dead),
        (0, 0, 0),
        "every push settled, none parked"
    );

    // The ledger holds exactly what one clean pull of the same restaurant
    // gives (nothing lost or invented by the killed pulls)...
    let ledger = ledger_rows(&local, &tenant).await;
    assert!(!ledger.is_empty());
    let control_dir =
        std::env::temp_dir().join(format!("hub-chaos-control-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&control_dir).unwrap();
    let control = stores(&control_dir);
    seed_hub(&control, &toast, &qbo).await;
    let status = hub(
        &control_dir,
        &toast_url,
        &qbo_url,
        &["pull", "toast", "--tenant", "bistro"],
    )
    .status()
    .unwrap();
    assert!(status.success());
    let expected = ledger_rows(&control, &tenant).await;
    assert_eq!(
        ledger.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the same records as a clean pull"
    );
    for (id, row) in &ledger {
        assert_eq!(
            row.content_hash, expected[id].content_hash,
            "{id}: same content"
        );
    }
    // ...and every ledger row with money is in the books exactly once...
    let realm = qbo.realm_id();
    let entities: Vec<serde_json::Value> = qbo
        .created_sales_receipts(&realm)
        .into_iter()
        .chain(qbo.created_refund_receipts(&realm))
        .collect();
    let mut per_record: BTreeMap<String, usize> = BTreeMap::new();
    for e in &entities {
        let note = e["PrivateNote"].as_str().unwrap().to_string();
        *per_record.entry(note).or_default() += 1;
    }
    let duplicated: Vec<_> = per_record.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "booked twice: {duplicated:?}");
    let mut booked = 0;
    for (id, row) in &ledger {
        let state = &row.destinations[&Provider::QuickBooks];
        assert_eq!(
            (state.status, state.version),
            (shared::ports::DestinationStatus::Posted, row.version),
            "{id} not posted"
        );
        if state.remote_id.as_deref().is_some_and(|r| !r.is_empty()) {
            booked += 1;
        }
    }
    assert_eq!(
        entities.len(),
        booked,
        "one entity per record with money: none lost, none extra"
    );
    // ...to the cent, account by account, against the truth the Toast
    // sandbox kept (not the ledger).
    let items = hub_sandboxes::quickbooks::role_items();
    let account_of = |role: &str| {
        shared::model::parts::resolve(&items, role)
            .and_then(hub_sandboxes::quickbooks::item_account)
    };
    let truth = toast.truth();
    let guid = toast.restaurant_guids()[0].clone();
    let totals = qbo.account_totals(&realm);
    let mut days: std::collections::BTreeSet<jiff::civil::Date> =
        totals.keys().map(|(d, _)| *d).collect();
    days.extend(truth.days().into_iter().map(|(_, d)| d));
    for date in days {
        let want = hub_sandboxes::common::truth::expected_accounts(
            &truth.day(&guid, date, 2),
            &account_of,
        );
        let got: BTreeMap<String, Decimal> = totals
            .iter()
            .filter(|((d, _), v)| *d == date && !v.is_zero())
            .map(|((_, a), v)| (a.clone(), *v))
            .collect();
        assert_eq!(
            got, want,
            "{date}: the books (left) against the truth (right)"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&control_dir);
}

async fn ledger_rows(
    stores: &Stores,
    tenant: &TenantId,
) -> BTreeMap<String, shared::ports::LedgerEntry> {
    let mut out = BTreeMap::new();
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let mut day = today - jiff::Span::new().days(7);
    while day <= today.tomorrow().unwrap() {
        for row in stores
            .ledger
            .list_for_business_date(tenant, day)
            .await
            .unwrap()
        {
            if row.key.kind == RecordKind::Transaction {
                out.insert(row.key.source_id.to_string(), row);
            }
        }
        day = day.tomorrow().unwrap();
    }
    out
}
