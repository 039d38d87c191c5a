//! Chaos by schedule: the local runner (`hub pull`, `hub push`) dies at
//! named kill points (`shared::chaos`: after page N of a pull, between the
//! ledger write and the queue write, after the k-th post to the books), over
//! and over, while the books drop a fifth of their answers after saving; then
//! it is restarted until the work is done. Every run must die exactly where
//! it was told to (its marker line seen, then SIGKILL), and the books must
//! hold every Toast order exactly once: zero lost, zero duplicated, and the
//! ledger's totals to the cent. A message whose receivers all died reaches
//! the dead-letter queue after the receive limit (nothing dropped) and is
//! redriven with `hub dlq redrive`, as an operator would.
//!
//! The schedule is every stop in [`PULL_STOPS`] and [`PUSH_STOPS`], cycled to
//! `HUB_CHAOS_TRIALS` runs (default 24) and shuffled by the seed. The seed
//! (default [`DEFAULT_SEED`], printed) also drives the sandboxes' data and
//! faults; `HUB_CHAOS_SEED` replays another.
//!
//! Each stop is reachable by construction, so a run that ends without dying
//! there is a failure, never a skip: every pull reads at least one page of
//! orders and one of menus (two pages, two ledger writes), and before every
//! push to die at its k-th post, orders enough for k requests arrive
//! ([`late_orders_for`]) and are pulled.

use hub_sandboxes::Faults;
use hub_sandboxes::quickbooks::{QuickBooksConfig, QuickBooksSandbox};
use hub_sandboxes::toast::{ToastConfig, ToastLimits, ToastSandbox};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rust_decimal::Decimal;
use shared::adapters::file_secrets::FileSecrets;
use shared::adapters::sqlite::SqliteStore;
use shared::chaos::{INGEST_LEDGER_WRITTEN, PULL_PAGE_STORED, PUSH_POSTED};
use shared::ids::{ConnectionId, ProviderAccountId, SecretName, StreamName, TenantId};
use shared::model::{AccountMapping, Connection, Provider, RecordKind, Tenant, TimeZoneName};
use shared::ports::{CursorKey, QueueDepth};
use shared::providers::auth::{Credentials, StoredToken};
use shared::{Config, Stores};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

mod support;

/// The seed when `HUB_CHAOS_SEED` is not set.
const DEFAULT_SEED: u64 = 20_240_611;

/// A kill point and the pass through it to die on.
type Stop = (&'static str, u64);

/// Where pulls die. Every pull reads at least two pages (the orders'
/// overlap, menus) and writes the ledger for each.
const PULL_STOPS: &[Stop] = &[
    (PULL_PAGE_STORED, 1),
    (PULL_PAGE_STORED, 2),
    (INGEST_LEDGER_WRITTEN, 1),
    (INGEST_LEDGER_WRITTEN, 2),
];

/// Where pushes die. Before each, orders enough for its posts arrive.
const PUSH_STOPS: &[Stop] = &[(PUSH_POSTED, 1), (PUSH_POSTED, 2), (PUSH_POSTED, 3)];

/// How many late orders to add before a pull so that the push after it
/// reaches its `k`-th post: rows for `k` requests (ten to a batch, so
/// `10(k-1) + 1`), a quarter more for orders with no money (voided,
/// deleted; about one in nine), and three to spare. Each is a new row
/// never posted, its push queued by the pull: older work only adds posts.
fn late_orders_for((_, k): Stop) -> usize {
    let rows = 10 * (k as usize - 1) + 1;
    rows + rows.div_ceil(4) + 3
}

/// The longest one run may take to reach its stop or its end.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

/// The longest the push queue may take to settle once the chaos is over
/// (messages a killed run held come back after a second; a retry's
/// backoff can be longer).
const SETTLE_DEADLINE: Duration = Duration::from_secs(300);

const SIGKILL: i32 = 9;

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
        books: Default::default(),
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

/// A restaurant with two pages of orders (three days of 40), its books,
/// and a hub on an embedded store that knows both.
struct Scene {
    toast: ToastSandbox,
    qbo: QuickBooksSandbox,
    dir: PathBuf,
    local: Stores,
    tenant: TenantId,
}

impl Scene {
    async fn start(seed: u64) -> Scene {
        let toast = ToastSandbox::start(ToastConfig {
            days: 3,
            orders_per_day: 40,
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
        Scene {
            toast,
            qbo,
            dir,
            local,
            tenant,
        }
    }

    fn hub(&self, args: &[&str]) -> Command {
        hub(
            &self.dir,
            &self.toast.base_url(),
            &self.qbo.base_url(),
            args,
        )
    }

    fn guid(&self) -> String {
        self.toast.restaurant_guids()[0].clone()
    }

    async fn push_depth(&self) -> QueueDepth {
        self.local.push_queue.depth().await.unwrap()
    }
}

const PULL: &[&str] = &["pull", "toast", "--tenant", "bistro"];
// A killed run's messages come back after a second.
const PUSH: &[&str] = &["push", "--visibility", "1"];

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
    // The leak scan's capture (HUB_TEST_LOG_DIR): debug logs, secrets listed.
    support::prepare(&mut c);
    c
}

/// How a run told to stop ended.
#[derive(Debug)]
enum Ran {
    /// It wrote this marker line and was then killed.
    Stopped { marker: String, status: ExitStatus },
    /// It ended on its own, never writing a marker.
    Finished(ExitStatus),
}

/// Runs `cmd` with `HUB_CHAOS_STOP_AT` set to `stop`; when its marker line
/// shows on stderr (the process is then held at the point), kills it with
/// SIGKILL.
fn run_until(mut cmd: Command, (point, pass): Stop) -> Ran {
    cmd.env(shared::chaos::ENV, format!("{point}:{pass}"))
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads to the end, so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            support::log_line(&line);
            if line.starts_with(shared::chaos::MARKER) {
                let _ = tx.send(line);
            }
        }
    });
    tokio::task::block_in_place(|| match rx.recv_timeout(RUN_DEADLINE) {
        Ok(marker) => {
            child.kill().unwrap();
            Ran::Stopped {
                marker,
                status: child.wait().unwrap(),
            }
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Ran::Finished(child.wait().unwrap())
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{point}:{pass}: neither stopped nor finished in {RUN_DEADLINE:?}")
        }
    })
}

/// That `ran` died exactly at `stop`: its marker named the point and the
/// pass, and it was still held there when SIGKILL came.
fn assert_died_at(ran: &Ran, (point, pass): Stop, what: &str) {
    match ran {
        Ran::Stopped { marker, status } => {
            assert_eq!(
                marker,
                &format!("{}{point}:{pass}", shared::chaos::MARKER),
                "{what}: stopped elsewhere"
            );
            assert_eq!(
                status.signal(),
                Some(SIGKILL),
                "{what}: held at {point}:{pass} until killed, but ended {status}"
            );
        }
        Ran::Finished(status) => {
            panic!("{what}: ran to its end ({status}) without reaching {point}:{pass}")
        }
    }
}

/// Runs `cmd` to its end; it must succeed.
fn run_clean(mut cmd: Command, what: &str) {
    cmd.stderr(Stdio::piped());
    let out = tokio::task::block_in_place(|| cmd.output().unwrap());
    support::record(&cmd, None, &out);
    let log = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = log.lines().rev().take(20).collect();
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        out.status,
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

/// Polls the push queue until `done` holds, failing at `deadline`.
async fn wait_for(
    scene: &Scene,
    deadline: Instant,
    what: &str,
    done: impl Fn(&QueueDepth) -> bool,
) -> QueueDepth {
    loop {
        let d = scene.push_depth().await;
        if done(&d) {
            return d;
        }
        assert!(Instant::now() < deadline, "{what}: still {d:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Adds `n` orders of yesterday (restaurant time, so every refund of them
/// is in the past) that the POS reports only now: modified ten minutes ago,
/// inside the next pull's window.
fn late_orders(toast: &ToastSandbox, guid: &str, n: usize) {
    let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
    let now = jiff::Timestamp::now();
    let yesterday = now
        .to_zoned_datetime(tz.clone())
        .date()
        .yesterday()
        .unwrap();
    let noon = yesterday
        .at(12, 0, 0, 0)
        .to_zoned_datetime(tz)
        .unwrap()
        .timestamp();
    let arrived = now - jiff::SignedDuration::from_mins(10);
    for i in 0..n {
        let opened = noon + jiff::SignedDuration::from_mins(7 * i as i64);
        let order = toast.generate_order(guid, opened).unwrap();
        toast
            .edit_order_at(guid, &order.guid, arrived, |_| {})
            .unwrap();
    }
}

/// Every pull stop and push stop, cycled to `trials` runs (pulls on even
/// trials, pushes on odd), each list shuffled by `seed`.
fn schedule(trials: usize, seed: u64) -> Vec<(&'static [&'static str], Stop)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut cycled = |stops: &[Stop], n: usize| {
        let mut v: Vec<Stop> = stops.iter().copied().cycle().take(n).collect();
        v.shuffle(&mut rng);
        v.into_iter()
    };
    let mut pulls = cycled(PULL_STOPS, trials.div_ceil(2));
    let mut pushes = cycled(PUSH_STOPS, trials / 2);
    (0..trials)
        .map(|i| match i % 2 {
            0 => (PULL, pulls.next().unwrap()),
            _ => (PUSH, pushes.next().unwrap()),
        })
        .collect()
}

#[test]
fn the_schedule_stops_at_every_point() {
    let all: Vec<&str> = PULL_STOPS.iter().chain(PUSH_STOPS).map(|s| s.0).collect();
    for point in shared::chaos::POINTS {
        assert!(all.contains(&point), "{point} is never scheduled");
    }
    let s = schedule(24, DEFAULT_SEED);
    assert_eq!(
        s,
        schedule(24, DEFAULT_SEED),
        "the same seed, the same schedule"
    );
    for stop in PULL_STOPS.iter().chain(PUSH_STOPS) {
        assert!(s.iter().any(|(_, t)| t == stop), "{stop:?} never runs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_killed_at_every_point_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let trials: usize = std::env::var("HUB_CHAOS_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let seed: u64 = std::env::var("HUB_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    let plan = schedule(trials, seed);
    eprintln!("chaos: {trials} kills, HUB_CHAOS_SEED={seed}");

    let scene = Scene::start(seed).await;
    let (toast, qbo, local, tenant) = (&scene.toast, &scene.qbo, &scene.local, &scene.tenant);
    // The books save, then drop the answer, a fifth of the time.
    qbo.set_faults(Faults {
        drop_rate: 0.2,
        drop_after_handling: true,
        ..Faults::none()
    });

    for (i, (args, stop)) in plan.iter().enumerate() {
        let is_pull = *args == PULL;
        // The first pull reads the three days of orders: work enough.
        if is_pull && i > 0 {
            let next_push = plan.get(i + 1).map_or((PUSH_POSTED, 1), |(_, s)| *s);
            late_orders(toast, &scene.guid(), late_orders_for(next_push));
        }
        let what = format!(
            "run {i} (hub {}, stop {}:{})",
            args.join(" "),
            stop.0,
            stop.1
        );
        let ran = run_until(scene.hub(args), *stop);
        assert_died_at(&ran, *stop, &what);
        if is_pull {
            // Restarted: whatever it read is in the ledger and queued
            // before the next push dies.
            run_clean(scene.hub(PULL), &format!("restart after {what}"));
        }
    }
    let chaos_done = started.elapsed();
    eprintln!(
        "chaos: {trials} of {trials} runs died where scheduled ({:.1}s)",
        chaos_done.as_secs_f64()
    );

    // Restart until done: a full pull, then pushes until the queue is empty.
    // A message received by five runs that all died was parked in the
    // dead-letter queue (the queue cannot tell a kill from a failure): the
    // operator redrives it, as `hub dlq` shows it.
    qbo.set_faults(Faults::none());
    run_clean(scene.hub(PULL), "the last pull");
    let deadline = Instant::now() + SETTLE_DEADLINE;
    let mut redriven = 0;
    loop {
        let d = scene.push_depth().await;
        if d.dead > 0 {
            redriven += d.dead;
            run_clean(
                scene.hub(&["dlq", "redrive", "--queue", "push", "--all"]),
                "dlq redrive",
            );
        }
        run_clean(scene.hub(PUSH), "a clean push");
        // Messages a killed run held, or a retry delayed, come back after
        // their visibility: wait for them, or for nothing left.
        let d = wait_for(&scene, deadline, "the push queue settling", |d| {
            d.visible + d.dead > 0 || d.in_flight == 0
        })
        .await;
        if d.visible + d.in_flight + d.dead == 0 {
            break;
        }
    }
    eprintln!("chaos: {redriven} push(es) parked after repeated receives, redriven");

    // The ledger holds exactly what one clean pull of the same restaurant
    // gives (nothing lost or invented by the killed pulls)...
    let ledger = ledger_rows(local, tenant).await;
    assert!(!ledger.is_empty());
    let control_dir =
        std::env::temp_dir().join(format!("hub-chaos-control-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&control_dir).unwrap();
    let control = stores(&control_dir);
    seed_hub(&control, toast, qbo).await;
    run_clean(
        hub(&control_dir, &toast.base_url(), &qbo.base_url(), PULL),
        "the control pull",
    );
    let expected = ledger_rows(&control, tenant).await;
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
    let guid = scene.guid();
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
    eprintln!(
        "chaos: {} records booked once each; chaos {:.1}s, recovery and checks {:.1}s",
        ledger.len(),
        chaos_done.as_secs_f64(),
        (started.elapsed() - chaos_done).as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&scene.dir);
    let _ = std::fs::remove_dir_all(&control_dir);
}

/// The check bites: each kill point is reached, the run is held there until
/// killed, and what comes after the point never happened; a stop a run
/// never reaches is reported as a run that finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kill_point_is_reached_and_nothing_after_it_runs() {
    let scene = Scene::start(DEFAULT_SEED).await;
    let (local, tenant) = (&scene.local, &scene.tenant);
    let orders_cursor = CursorKey {
        tenant: tenant.clone(),
        provider: Provider::Toast,
        stream: StreamName::new("pos.orders").unwrap(),
    };

    // Between the ledger write and the queue write: the first page's rows
    // are in the ledger; no push, no event and no cursor was written.
    let stop = (INGEST_LEDGER_WRITTEN, 1);
    assert_died_at(&run_until(scene.hub(PULL), stop), stop, "pull");
    let first = ledger_rows(local, tenant).await;
    assert!(!first.is_empty(), "the ledger was written");
    assert_eq!(scene.push_depth().await, QueueDepth::default(), "no push");
    assert_eq!(
        local.outbound_queue.depth().await.unwrap(),
        QueueDepth::default(),
        "no event"
    );
    assert!(local.cursors.get(&orders_cursor).await.unwrap().is_none());

    // After page 1: stored, queued and checkpointed; page 2 never read.
    let stop = (PULL_PAGE_STORED, 1);
    assert_died_at(&run_until(scene.hub(PULL), stop), stop, "pull");
    let after_page_1 = ledger_rows(local, tenant).await;
    assert_eq!(
        after_page_1.keys().collect::<Vec<_>>(),
        first.keys().collect::<Vec<_>>(),
        "page 1 again, nothing of page 2"
    );
    assert!(
        scene.push_depth().await.visible > 0,
        "page 1's pushes queued"
    );
    let cursor = local.cursors.get(&orders_cursor).await.unwrap().unwrap();
    let state: shared::pipelines::pull::CursorState = serde_json::from_str(&cursor.value).unwrap();
    assert_eq!(
        state.slice.map(|s| s.next),
        Some(shared::pipelines::pull::PageToken::Page(2)),
        "checkpointed at page 2"
    );
    run_clean(scene.hub(PULL), "the pull resumed");
    let all = ledger_rows(local, tenant).await;
    assert!(all.len() > first.len(), "page 2 was there to read");

    // After the first post: the books hold what it sent; the ledger records
    // none of it.
    let stop = (PUSH_POSTED, 1);
    assert_died_at(&run_until(scene.hub(PUSH), stop), stop, "push");
    let realm = scene.qbo.realm_id();
    let saved = scene.qbo.created_sales_receipts(&realm).len()
        + scene.qbo.created_refund_receipts(&realm).len();
    assert!(saved > 0, "the books saved the post");
    let recorded = ledger_rows(local, tenant)
        .await
        .values()
        .filter(|r| {
            r.destinations[&Provider::QuickBooks]
                .remote_id
                .as_deref()
                .is_some_and(|id| !id.is_empty())
        })
        .count();
    assert_eq!(recorded, 0, "no booked id reached the ledger");

    // A stop past the run's last pass: it runs to its end, and the harness
    // says so (the chaos test fails such a run).
    let ran = run_until(scene.hub(PULL), (PULL_PAGE_STORED, 1_000));
    assert!(
        matches!(&ran, Ran::Finished(s) if s.success()),
        "never stopped: {ran:?}"
    );
    let _ = std::fs::remove_dir_all(&scene.dir);
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
