//! `hub` as a user runs it: the HTTP server on a loopback port, and the binary
//! with its environment, on the embedded backend and on the AWS emulator.
//! Every `hub` process runs through `support`, so `cargo xtask test` scans
//! its logs for the secrets it was given.

mod support;

use hub::serve::{AppState, REQUEST_ID, run};
use shared::adapters::file_secrets::FileSecrets;
use shared::adapters::sqlite::{SqliteQueue, SqliteStore};
use shared::ports::{OutgoingMessage, WorkQueue};
use shared::{Config, Stores};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("hub-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn hub(data_dir: &Path, args: &[&str]) -> Output {
    support::output(
        Command::new(env!("CARGO_BIN_EXE_hub"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HUB_DATA_DIR", data_dir)
            .env("HUB_MAX_RECEIVES", "1"),
    )
}

/// Runs `hub` on `dir` with one extra variable, feeding it `stdin`, off the
/// async runtime (the test's sandbox must keep answering meanwhile).
fn hub_with(
    dir: &Path,
    var: (&'static str, String),
    args: Vec<String>,
    stdin: Option<String>,
) -> tokio::task::JoinHandle<Output> {
    hub_with_vars(dir, vec![var], args, stdin)
}

/// [`hub_with`] with several variables.
fn hub_with_vars(
    dir: &Path,
    vars: Vec<(&'static str, String)>,
    args: Vec<String>,
    stdin: Option<String>,
) -> tokio::task::JoinHandle<Output> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hub"));
        cmd.args(&args)
            .env_clear()
            .env("HUB_DATA_DIR", &dir)
            .envs(vars)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = support::capture(&mut cmd).spawn().unwrap();
        if let Some(s) = &stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        support::record(&cmd, stdin.as_deref(), &out);
        out
    })
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn serve_answers_health_and_echoes_the_request_id() {
    let dir = temp_dir();
    let config = Config::from_lookup(|_| None).unwrap();
    let stores = Stores::embedded(
        SqliteStore::in_memory().unwrap(),
        FileSecrets::new(dir.join("secrets.json")),
        5,
        &config,
    );
    stores
        .work_queue
        .send_batch(&[OutgoingMessage::new("{}")])
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(
        listener,
        AppState::new(stores, Default::default()),
        async {
            let _ = stopped.await;
        },
    ));

    let client = reqwest::Client::new();
    let resp = client
        .get(format!("http://{addr}/health"))
        .header(REQUEST_ID, "req-abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()[REQUEST_ID], "req-abc");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["backend"], "embedded");
    assert_eq!(body["queues"]["work"]["visible"], 1);

    let resp = client
        .get(format!("http://{addr}/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(
        !resp.headers()[REQUEST_ID].is_empty(),
        "a request id is made when none is sent"
    );

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[test]
fn tenants_and_connections_are_managed_from_the_command_line() {
    let dir = temp_dir();
    let o = hub(&dir, &["tenant", "add", "bistro", "--name", "Bistro Group"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hub(
        &dir,
        &[
            "connection",
            "add",
            "--tenant",
            "bistro",
            "--id",
            "toast-main",
            "--provider",
            "toast",
            "--account",
            "f9a1b2c3-0000-4000-8000-000000000001",
            "--time-zone",
            "America/New_York",
            "--close",
            "04:00",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hub(
        &dir,
        &["connection", "list", "--tenant", "bistro", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let list: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(list[0]["provider"], "toast");
    assert_eq!(list[0]["time_zone"], "America/New_York");
    assert_eq!(list[0]["business_day_close"], "04:00:00");
    assert_eq!(list[0]["credentials"], "tenants/bistro/toast-main");
    assert!(dir.join("state.db").exists());
}

#[test]
fn bad_input_is_refused_with_the_reason() {
    let dir = temp_dir();
    hub(&dir, &["tenant", "add", "bistro", "--name", "Bistro"]);
    let o = hub(
        &dir,
        &[
            "connection",
            "add",
            "--tenant",
            "bistro",
            "--id",
            "sq",
            "--provider",
            "square",
            "--account",
            "M1",
            "--time-zone",
            "Mars/Olympus",
        ],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--time-zone \"Mars/Olympus\""),
        "{}",
        stderr(&o)
    );
    let o = hub(
        &dir,
        &[
            "connection",
            "add",
            "--tenant",
            "nobody",
            "--id",
            "sq",
            "--provider",
            "square",
            "--account",
            "M1",
            "--time-zone",
            "UTC",
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("tenant nobody"), "{}", stderr(&o));
    let o = hub(&dir, &["connection", "list", "--tenant", "a#b"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("TenantId"), "{}", stderr(&o));
    let o = support::output(
        Command::new(env!("CARGO_BIN_EXE_hub"))
            .args(["tenant", "list"])
            .env("HUB_STATE_TABLE", "only-one"),
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("HUB_IDEMPOTENCY_TABLE"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn parked_messages_are_listed_and_redriven() {
    let dir = temp_dir();
    {
        let db = SqliteStore::open(&dir.join("state.db")).unwrap();
        let q = SqliteQueue::new(db, "work", 1);
        q.send_batch(&[OutgoingMessage::new("{\"event\":\"poison\"}")])
            .await
            .unwrap();
        let m = q
            .receive(1, Duration::from_secs(30), Duration::ZERO)
            .await
            .unwrap();
        q.change_visibility(&m[0].receipt, Duration::ZERO)
            .await
            .unwrap();
        assert!(
            q.receive(1, Duration::from_secs(30), Duration::ZERO)
                .await
                .unwrap()
                .is_empty()
        );
    }
    let o = hub(&dir, &["dlq", "list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dead: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(dead.as_array().unwrap().len(), 1);
    assert_eq!(dead[0]["body"], "{\"event\":\"poison\"}");

    let id = dead[0]["id"].as_str().unwrap();
    let o = hub(&dir, &["dlq", "show", id]);
    assert!(o.status.success(), "{}", stderr(&o));
    let shown: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(shown["body"]["event"], "poison");
    let o = hub(&dir, &["dlq", "show", "no-such-id"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no message no-such-id"),
        "{}",
        stderr(&o)
    );
    let o = hub(&dir, &["dlq", "redrive"]);
    assert!(!o.status.success(), "redrive needs ids or --all");
    let o = hub(&dir, &["dlq", "redrive", "--all"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("1 message(s) sent back"),
        "{}",
        stdout(&o)
    );
    let o = hub(&dir, &["dlq", "list", "--json"]);
    assert_eq!(stdout(&o).trim(), "[]");
}

#[tokio::test]
async fn a_parked_push_says_why_in_the_providers_words() {
    use shared::ports::{Ledger, LedgerKey, SourceRecord};
    let dir = temp_dir();
    let key = LedgerKey {
        tenant: shared::ids::TenantId::new("bistro").unwrap(),
        provider: shared::model::Provider::Toast,
        kind: shared::model::RecordKind::Transaction,
        source_id: shared::ids::ExternalId::new("order-7").unwrap(),
    };
    let refusal = "validation: Invalid Reference Id: Account 9999 (2500)";
    {
        let db = SqliteStore::open(&dir.join("state.db")).unwrap();
        let record = SourceRecord {
            key: key.clone(),
            business_date: Some(jiff::civil::date(2026, 11, 27)),
            payload: serde_json::json!({"kind": "transaction"}),
        };
        db.upsert(&record, &[shared::model::Provider::QuickBooks])
            .await
            .unwrap();
        for _ in 0..2 {
            db.mark_failed(&key, shared::model::Provider::QuickBooks, 1, refusal)
                .await
                .unwrap();
        }
        let q = SqliteQueue::new(db, "push", 5);
        let body = serde_json::json!({"key": key, "version": 1, "destination": "quickbooks"});
        q.send_batch(&[OutgoingMessage::new(body.to_string())])
            .await
            .unwrap();
        let m = q
            .receive(1, Duration::from_secs(30), Duration::ZERO)
            .await
            .unwrap();
        q.park(&m[0]).await.unwrap();
    }
    let o = hub(&dir, &["dlq", "list", "--queue", "push"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("why: quickbooks refused or failed it 2 time(s); last: validation: Invalid Reference Id: Account 9999"),
        "{}",
        stdout(&o)
    );
    let o = hub(&dir, &["dlq", "list", "--queue", "push", "--json"]);
    let dead: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let id = dead[0]["id"].as_str().unwrap().to_string();
    let o = hub(&dir, &["dlq", "show", "--queue", "push", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    let shown: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let why = &shown["reason"];
    assert_eq!(why["last_error"], refusal, "{shown:#}");
    assert_eq!(why["attempts"], 2);
    assert_eq!(why["status"], "failed");
    assert_eq!(why["destination"], "quickbooks");
    assert_eq!(why["still_needed"], true);
    assert!(
        why["at"].as_str().is_some_and(|t| t.starts_with("20")),
        "{why}"
    );
    assert_eq!(shown["body"]["version"], 1);
    // A ledger row the hub cannot read is an issue of its day, not a zero.
    let o = hub(
        &dir,
        &[
            "reconcile",
            "--tenant",
            "bistro",
            "--date",
            "2026-11-27",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(r["reconciled"], false, "{r:#}");
    assert_eq!(r["issues"][0]["problem"], "unreadable", "{r:#}");
    assert!(
        r["issues"][0]["reason"]
            .as_str()
            .is_some_and(|w| w.starts_with("the ledger row is not a record")),
        "{r:#}"
    );
}

#[test]
fn the_aws_backend_is_configured_from_the_environment() {
    let endpoint = std::env::var("HUB_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("HUB_TEST_AWS_ENDPOINT is not set: this test needs the AWS emulator; run `cargo xtask test`")
    });
    let aws = |args: &[&str], extra: &[(String, String)]| {
        support::output(
            Command::new(env!("CARGO_BIN_EXE_hub"))
                .args(args)
                .env_clear()
                .env("AWS_ENDPOINT_URL", &endpoint)
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .envs(extra.iter().cloned()),
        )
    };
    let prefix = format!("cli{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let o = aws(&["aws", "bootstrap", "--prefix", &prefix], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let settings: Vec<(String, String)> = stdout(&o)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(settings.len(), 9, "{}", stdout(&o));
    let o = aws(
        &["tenant", "add", "cloud", "--name", "Cloud Kitchen"],
        &settings,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = aws(&["tenant", "list", "--json"], &settings);
    assert!(o.status.success(), "{}", stderr(&o));
    let tenants: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(tenants[0]["name"], "Cloud Kitchen");
    let o = aws(&["dlq", "list", "--queue", "push", "--json"], &settings);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "[]");
}

fn fixture(path: &str) -> String {
    format!("{}/../tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn hub_plain(args: &[&str]) -> Output {
    support::output(
        Command::new(env!("CARGO_BIN_EXE_hub"))
            .args(args)
            .env_remove("HUB_WEBHOOK_SECRET"),
    )
}

#[test]
fn webhook_verify_checks_a_captured_delivery() {
    let body = fixture("square/webhook_test_notification.json");
    let url = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9";
    let sig = "x-square-hmacsha256-signature: GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=";
    let args = |key: &'static str| {
        vec![
            "webhook",
            "verify",
            "--provider",
            "square",
            "--secret",
            key,
            "--url",
            url,
            "--header",
            "Content-Type: application/json",
            "--header",
            sig,
            "--body-file",
            &body,
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| hub_plain(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let o = run(args("Ibxx_5AKakO-3qeNVR61Dw"));
    assert_eq!(
        (o.status.code(), stdout(&o).trim()),
        (Some(0), "valid"),
        "{}",
        stderr(&o)
    );
    let o = run(args("MCmhFRxGX82xMwg5FsaoQA"));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o).trim(),
        "invalid: x-square-hmacsha256-signature signature does not match the body"
    );
    assert!(
        !stdout(&o).contains("MCmhFRxGX82xMwg5FsaoQA")
            && !stderr(&o).contains("MCmhFRxGX82xMwg5FsaoQA")
    );

    // Usage errors exit 2: no URL for Square, a provider that does not sign, an unknown one.
    let o = hub_plain(&[
        "webhook",
        "verify",
        "--provider",
        "square",
        "--secret",
        "k",
        "--body-file",
        &body,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--url is required for square"),
        "{}",
        stderr(&o)
    );
    let o = hub_plain(&[
        "webhook",
        "verify",
        "--provider",
        "marketman",
        "--secret",
        "k",
        "--body-file",
        &body,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = hub_plain(&[
        "webhook",
        "verify",
        "--provider",
        "paypal",
        "--secret",
        "k",
        "--body-file",
        &body,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = hub_plain(&[
        "webhook",
        "verify",
        "--provider",
        "xero",
        "--secret",
        "k",
        "--header",
        "no colon",
        "--body-file",
        &body,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn webhook_sign_makes_headers_that_verify() {
    for (provider, path) in [
        ("toast", "toast/webhook_order_updated.json"),
        ("xero", "xero/webhook_contact_update.json"),
        ("quickbooks", "qbo/webhook_legacy_event_notifications.json"),
    ] {
        let body = fixture(path);
        let o = hub_plain(&[
            "webhook",
            "sign",
            "--provider",
            provider,
            "--secret",
            "dev-key",
            "--body-file",
            &body,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let header = stdout(&o).trim().to_string();
        assert!(header.contains(": "), "{header}");
        let o = hub_plain(&[
            "webhook",
            "verify",
            "--provider",
            provider,
            "--secret",
            "dev-key",
            "--header",
            &header,
            "--body-file",
            &body,
        ]);
        assert_eq!(
            (o.status.code(), stdout(&o).trim()),
            (Some(0), "valid"),
            "{provider}"
        );
        let o = hub_plain(&[
            "webhook",
            "verify",
            "--provider",
            provider,
            "--secret",
            "other",
            "--header",
            &header,
            "--body-file",
            &body,
        ]);
        assert_eq!(o.status.code(), Some(1), "{provider}");
    }
    let o = hub_plain(&[
        "webhook",
        "sign",
        "--provider",
        "quickbooks",
        "--secret",
        "b5771f19b12ddb4bcdb9f08bdc50bc63878a",
        "--body-file",
        &fixture("qbo/webhook_legacy_event_notifications.json"),
    ]);
    assert_eq!(
        stdout(&o).trim(),
        "intuit-signature: JC2GUwciPmRBwEO7WvrRmKqu9tGOKL8FFallocTFi8Q="
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_pull_reads_a_toast_restaurant_and_re_pulls_a_range() {
    use hub_sandboxes::toast::{ToastConfig, ToastLimits, ToastSandbox};
    let sandbox = ToastSandbox::start(ToastConfig {
        days: 2,
        orders_per_day: 30,
        limits: ToastLimits::unlimited(),
        ..ToastConfig::seeded(9)
    })
    .await
    .unwrap();
    let guid = sandbox.restaurant_guids()[0].clone();
    // A sale per order, and a refund per refunded payment.
    let total: usize = sandbox
        .orders(&guid)
        .iter()
        .map(|o| 1 + o.refunded_payments())
        .sum();
    let dir = temp_dir();
    let run = |args: Vec<String>, stdin: Option<String>| {
        hub_with(
            &dir,
            ("HUB_ENDPOINT_TOAST", sandbox.base_url()),
            args,
            stdin,
        )
    };
    let a = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let o = run(a(&["tenant", "add", "bistro", "--name", "Bistro"]), None)
        .await
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(
        a(&[
            "connection",
            "add",
            "--tenant",
            "bistro",
            "--id",
            "pos",
            "--provider",
            "toast",
            "--account",
            &guid,
            "--time-zone",
            "America/New_York",
        ]),
        None,
    )
    .await
    .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let creds = format!(
        r#"{{"login":{{"client_id":"{}","client_secret":"{}"}}}}"#,
        sandbox.client_id(),
        sandbox.client_secret()
    );
    let o = run(a(&["secret", "set", "tenants/bistro/pos"]), Some(creds))
        .await
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stdout(&o).contains(sandbox.client_secret()),
        "the secret is not echoed"
    );

    let o = run(a(&["pull", "toast", "--tenant", "bistro", "--json"]), None)
        .await
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let reports: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let orders = reports
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stream"] == "orders")
        .unwrap();
    assert_eq!(
        orders["report"]["tally"]["created"].as_u64().unwrap() as usize,
        total
    );
    assert!(
        reports
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["stream"] == "menus")
    );

    // A re-pull of the whole range finds nothing new and leaves the cursor alone.
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let from = (today - jiff::Span::new().days(5)).to_string();
    let to = today.tomorrow().unwrap().to_string();
    let o = run(
        a(&[
            "pull", "toast", "--tenant", "bistro", "--from", &from, "--to", &to,
        ]),
        None,
    )
    .await
    .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!(
            "{total} record(s): 0 new, 0 changed, {total} unchanged"
        )),
        "{}",
        stdout(&o)
    );
    let o = run(a(&["pull", "square", "--tenant", "bistro"]), None)
        .await
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("tenant bistro has no square connection"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn status_lists_connections_never_checked_as_degraded() {
    let dir = temp_dir();
    hub(&dir, &["tenant", "add", "bistro", "--name", "Bistro"]);
    let o = hub(
        &dir,
        &[
            "connection",
            "add",
            "--tenant",
            "bistro",
            "--id",
            "pos",
            "--provider",
            "toast",
            "--account",
            "r-1",
            "--time-zone",
            "UTC",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hub(&dir, &["status", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v[0]["connection"], "pos");
    assert_eq!(v[0]["state"], "degraded");
    assert!(
        v[0]["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("never checked")
    );
    for field in [
        "last_pull",
        "last_post",
        "dlq_depth",
        "refresh_token_days_left",
        "success_permille",
    ] {
        assert!(
            v[0].get(field).is_some(),
            "{field} is part of the documented JSON"
        );
    }
}

#[tokio::test]
async fn accounts_lists_the_chart_of_the_books_and_caches_it() {
    use hub_sandboxes::quickbooks::{QuickBooksConfig, QuickBooksSandbox};
    let qbo = QuickBooksSandbox::start(QuickBooksConfig::seeded(71))
        .await
        .unwrap();
    let realm = qbo.realm_id();
    let grant = qbo.grant(&realm);
    let dir = temp_dir();
    let run = |args: Vec<String>, stdin: Option<String>| {
        hub_with(
            &dir,
            ("HUB_ENDPOINT_QUICKBOOKS", qbo.base_url()),
            args,
            stdin,
        )
    };
    let a = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    for (args, stdin) in [
        (a(&["tenant", "add", "bistro", "--name", "Bistro"]), None),
        (
            a(&[
                "connection", "add", "--tenant", "bistro", "--id", "books", "--provider",
                "quickbooks", "--account", &realm, "--time-zone", "America/Chicago",
            ]),
            None,
        ),
        (
            a(&["secret", "set", "tenants/bistro/books"]),
            Some(
                serde_json::json!({"token": {"access_token": grant.access_token, "refresh_token": grant.refresh_token, "expires_at": jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)}})
                    .to_string(),
            ),
        ),
        (
            a(&["secret", "set", "apps/quickbooks"]),
            Some(
                serde_json::json!({"client_id": qbo.client_id(), "client_secret": qbo.client_secret()})
                    .to_string(),
            ),
        ),
    ] {
        let o = run(args, stdin).await.unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }

    let o = run(a(&["accounts", "bistro", "--json"]), None)
        .await
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let charts: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let chart = &charts[0];
    assert_eq!(chart["provider"], "quickbooks");
    assert_eq!(chart["cached"], false);
    let names: Vec<&str> = chart["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    let seeded = qbo.entities(&realm, hub_sandboxes::quickbooks::QboEntity::Account);
    assert_eq!(names.len(), seeded.len(), "every account of the realm");
    let queries = || {
        qbo.counters()
            .calls_to("GET", "/v3/company/{realmId}/query")
    };
    assert_eq!(queries(), 1);

    // Served from the cache the second time; fetched again when asked.
    let o = run(a(&["accounts", "bistro"]), None).await.unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("(cached)"), "{}", stdout(&o));
    assert!(stdout(&o).contains(names[0]), "{}", stdout(&o));
    assert_eq!(queries(), 1);
    let o = run(a(&["accounts", "bistro", "--refresh"]), None)
        .await
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("(cached)"));
    assert_eq!(queries(), 2);

    let o = run(a(&["accounts", "nobody"]), None).await.unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("tenant nobody has no quickbooks or xero connection"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_demo_reconciles_every_restaurant_day_and_says_so() {
    let dir = temp_dir();
    let o = support::output(
        Command::new(env!("CARGO_BIN_EXE_hub"))
            .args(["demo", "--seed", "11", "--json", "--data-dir"])
            .arg(&dir)
            .env_clear(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["reconciled"], true);
    assert_eq!(report["dead_letters_left"], 0);
    let rows = report["rows"].as_array().unwrap();
    let restaurants: std::collections::BTreeSet<&str> = rows
        .iter()
        .map(|r| r["restaurant"].as_str().unwrap())
        .collect();
    assert_eq!(restaurants.len(), 2, "{rows:?}");
    for r in rows {
        let diff: rust_decimal::Decimal = r["difference"].as_str().unwrap().parse().unwrap();
        assert!(diff.is_zero(), "{r}");
        assert_eq!(r["duplicates"], 0, "{r}");
        assert!(r["records"].as_u64().unwrap() > 0);
        // Every account line: truth (the POS sandbox's own totals) = books.
        let lines = r["lines"].as_array().unwrap();
        assert!(lines.len() >= 8, "sales, tax, tips, tenders, ...: {r}");
        let dec = |v: &serde_json::Value| -> rust_decimal::Decimal {
            v.as_str().unwrap().parse().unwrap()
        };
        for l in lines {
            assert_eq!(dec(&l["truth"]), dec(&l["books"]), "{l}");
            assert!(dec(&l["difference"]).is_zero(), "{l}");
        }
        for part in ["sales", "tax", "tips", "tenders"] {
            let v: rust_decimal::Decimal = r[part].as_str().unwrap().parse().unwrap();
            assert!(v > rust_decimal::Decimal::ZERO, "{part}: {r}");
        }
    }
    // Daily summary, the default: one journal per restaurant-day; the day
    // the demo's unmapped category held posted once it was mapped.
    for r in rows {
        assert_eq!(r["journals"], 1, "{r}");
    }
    assert!(
        rows.iter().any(|r| r["held"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k.as_str().unwrap().starts_with("sales:")))),
        "a day was held for its new sales category, then mapped: {rows:?}"
    );
    assert!(report["token_refreshes"].as_u64().unwrap() >= 2);
    assert!(report["webhooks_sent"].as_u64().unwrap() > 0);
    // Progress goes to stderr, phase by phase, with where time went.
    for phase in [
        "webhooks -> ledger",
        "scheduled pulls",
        "pushes through faults",
        "reconcile",
        "health check",
    ] {
        assert!(stderr(&o).contains(phase), "{}", stderr(&o));
    }
    assert!(dir.join("state.db").is_file(), "the state stays for a look");
    // `hub status` on the demo's state, as the demo suggests: every
    // connection checked by the run, every source with its last pull.
    let o = hub(&dir, &["status", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let reports: Vec<serde_json::Value> = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(reports.len() >= 6, "{reports:?}");
    for r in &reports {
        let reasons = r["reasons"].to_string();
        assert!(!reasons.contains("never checked"), "{r}");
        assert!(!reasons.contains("unreachable"), "{r}");
        if matches!(r["provider"].as_str(), Some("toast" | "square")) {
            assert!(r["last_pull"].is_string(), "{r}");
        }
    }
}

#[test]
fn the_demo_per_order_posts_each_sale_and_reconciles_after_the_redrive() {
    let dir = temp_dir();
    let o = support::output(
        Command::new(env!("CARGO_BIN_EXE_hub"))
            .args([
                "demo",
                "--seed",
                "11",
                "--posting",
                "per_order",
                "--json",
                "--data-dir",
            ])
            .arg(&dir)
            .env_clear(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["reconciled"], true);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let dec =
        |v: &serde_json::Value| -> rust_decimal::Decimal { v.as_str().unwrap().parse().unwrap() };
    for r in rows {
        // Per order: QuickBooks takes receipts, Xero a manual journal per sale.
        let want = if r["systems"] == "square+xero" {
            r["records"].as_u64().unwrap()
        } else {
            0
        };
        assert_eq!(r["journals"].as_u64(), Some(want), "{r}");
        assert_eq!(r["duplicates"], 0, "{r}");
        for l in r["lines"].as_array().unwrap() {
            assert_eq!(dec(&l["truth"]), dec(&l["books"]), "{l}");
        }
    }
    assert!(
        rows.iter()
            .any(|r| r["dead_lettered"].as_u64().unwrap() > 0),
        "the refused cash sales were parked, then redriven: {rows:?}"
    );
}

#[test]
fn the_demo_fails_when_a_day_does_not_reconcile() {
    let dir = temp_dir();
    let o = support::output(
        Command::new(env!("CARGO_BIN_EXE_hub"))
            .args(["demo", "--seed", "11", "--no-fix", "--data-dir"])
            .arg(&dir)
            .env_clear(),
    );
    assert!(!o.status.success());
    assert!(stdout(&o).contains("NO"), "{}", stdout(&o));
    assert!(stdout(&o).contains("NOT reconciled"), "{}", stdout(&o));
    assert!(stderr(&o).contains("did not reconcile"), "{}", stderr(&o));
}

#[test]
fn books_preview_shows_a_files_parts_and_journal_and_refuses_bad_input() {
    let dir = temp_dir();
    let file = dir.join("orders.json");
    std::fs::write(
        &file,
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/toast/order_get_response.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let o = hub(
        &dir,
        &[
            "books",
            "preview",
            "--source",
            "toast",
            "--time-zone",
            "America/New_York",
            "--close",
            "04:00",
            "--file",
            file.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let p: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let day = &p["days"][0];
    assert_eq!(day["business_date"], "2019-02-24");
    assert_eq!(day["imbalance"], "0.00");
    let parts: std::collections::BTreeMap<String, String> = day["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["role"].as_str().unwrap().to_string(),
                x["amount"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(parts["tax:State Tax"], "0.06");
    assert_eq!(parts["tender:card"], "1.06");
    assert_eq!(parts["fees"], "0.04");
    assert_eq!(p["records"][0]["kind"], "sale");
    assert!(p["held"].as_array().unwrap().is_empty());
    // A Square file must be an object of lists.
    std::fs::write(&file, "[1, 2]").unwrap();
    let o = hub(
        &dir,
        &[
            "books",
            "preview",
            "--source",
            "square",
            "--time-zone",
            "UTC",
            "--file",
            file.to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("a Square file holds"), "{}", stderr(&o));
    // No file, no tenant: a clear refusal.
    let o = hub(&dir, &["books", "preview"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--tenant and --date"), "{}", stderr(&o));
    // A mapping for a role that does not exist is refused before anything is stored.
    let o = hub(&dir, &["tenant", "add", "bistro", "--name", "Bistro"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hub(
        &dir,
        &[
            "connection",
            "add",
            "--tenant",
            "bistro",
            "--id",
            "pos",
            "--provider",
            "toast",
            "--account",
            "r1",
            "--time-zone",
            "America/New_York",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hub(
        &dir,
        &[
            "connection",
            "map",
            "--tenant",
            "bistro",
            "--id",
            "pos",
            "--destination",
            "quickbooks",
            "tips=33",
            "tipz=34",
        ],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("\"tipz\" is not a part's role"),
        "{}",
        stderr(&o)
    );
    let o = hub(
        &dir,
        &[
            "connection",
            "map",
            "--tenant",
            "bistro",
            "--id",
            "pos",
            "--destination",
            "quickbooks",
            "--deposit-account",
            "4",
            "tips=33",
            "sales:*=20",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = hub(
        &dir,
        &["connection", "list", "--tenant", "bistro", "--json"],
    );
    let list: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(list[0]["mappings"]["quickbooks"]["parts"]["tips"], "33");
    assert_eq!(list[0]["mappings"]["quickbooks"]["parts"]["sales:*"], "20");
    assert_eq!(list[0]["mappings"]["quickbooks"]["deposit_account"], "4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_with_no_mapping_holds_its_records_and_status_and_reconcile_name_the_keys() {
    use hub_sandboxes::quickbooks::{QuickBooksConfig, QuickBooksSandbox};
    use hub_sandboxes::toast::{ToastConfig, ToastLimits, ToastSandbox};
    let toast = ToastSandbox::start(ToastConfig {
        days: 1,
        orders_per_day: 12,
        limits: ToastLimits::unlimited(),
        ..ToastConfig::seeded(31)
    })
    .await
    .unwrap();
    let qbo = QuickBooksSandbox::start(QuickBooksConfig {
        limits: Vec::new(),
        ..QuickBooksConfig::seeded(32)
    })
    .await
    .unwrap();
    let guid = toast.restaurant_guids()[0].clone();
    let realm = qbo.realm_id();
    let dir = temp_dir();
    let vars = vec![
        ("HUB_ENDPOINT_TOAST", toast.base_url()),
        ("HUB_ENDPOINT_QUICKBOOKS", qbo.base_url()),
        (
            "HUB_ENDPOINT_QUICKBOOKS_TOKEN",
            format!("{}/oauth2/v1/tokens/bearer", qbo.base_url()),
        ),
        ("HUB_MAX_RECEIVES", "1".to_string()),
    ];
    let run = |args: &[&str], stdin: Option<String>| {
        hub_with_vars(
            &dir,
            vars.clone(),
            args.iter().map(|x| x.to_string()).collect(),
            stdin,
        )
    };
    let ok = |o: &Output| assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
    ok(&run(&["tenant", "add", "bistro", "--name", "Bistro"], None)
        .await
        .unwrap());
    for (id, provider, account) in [
        ("pos", "toast", guid.as_str()),
        ("books", "quickbooks", realm.as_str()),
    ] {
        ok(&run(
            &[
                "connection",
                "add",
                "--tenant",
                "bistro",
                "--id",
                id,
                "--provider",
                provider,
                "--account",
                account,
                "--time-zone",
                "America/New_York",
                // Each sale its own receipt (the default books daily).
                "--posting",
                "per_order",
            ],
            None,
        )
        .await
        .unwrap());
    }
    let login = format!(
        r#"{{"login":{{"client_id":"{}","client_secret":"{}"}}}}"#,
        toast.client_id(),
        toast.client_secret()
    );
    ok(&run(&["secret", "set", "tenants/bistro/pos"], Some(login))
        .await
        .unwrap());
    let grant = qbo.grant(&realm);
    let token = shared::providers::auth::Credentials {
        token: Some(shared::providers::auth::StoredToken {
            access_token: grant.access_token.clone(),
            refresh_token: grant.refresh_token.clone(),
            expires_at: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1),
            refresh_expires_at: None,
        }),
        login: Default::default(),
    };
    use secrecy::ExposeSecret;
    ok(&run(
        &["secret", "set", "tenants/bistro/books"],
        Some(token.to_secret().expose_secret().to_string()),
    )
    .await
    .unwrap());
    let app = format!(
        r#"{{"client_id":"{}","client_secret":"{}"}}"#,
        qbo.client_id(),
        qbo.client_secret()
    );
    ok(&run(&["secret", "set", "apps/quickbooks"], Some(app))
        .await
        .unwrap());
    // Every role but tips and tax.
    let pairs: Vec<String> = hub_sandboxes::quickbooks::role_items()
        .into_iter()
        .filter(|(k, _)| k != "tips" && !k.starts_with("tax:"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut args = vec![
        "connection",
        "map",
        "--tenant",
        "bistro",
        "--id",
        "pos",
        "--destination",
        "quickbooks",
        "--deposit-account",
        "4",
    ];
    args.extend(pairs.iter().map(String::as_str));
    ok(&run(&args, None).await.unwrap());
    ok(&run(&["pull", "toast", "--tenant", "bistro"], None)
        .await
        .unwrap());
    ok(&run(&["push"], None).await.unwrap());
    // Nothing was booked to a guess: what went holds neither tips nor tax
    // (a gift card sold for cash, say); the rest waits.
    let before = qbo.created_sales_receipts(&realm);
    for r in &before {
        let text = r["Line"].to_string();
        assert!(!text.contains("tips") && !text.contains("tax"), "{r}");
    }
    let sales = toast
        .orders(&guid)
        .iter()
        .filter(|o| !o.voided && !o.deleted)
        .count();
    assert!(
        before.len() < sales / 2,
        "{} of {sales} booked",
        before.len()
    );
    let o = run(&["status", "--check"], None).await.unwrap();
    let text = stdout(&o);
    assert!(
        text.contains("parts with no quickbooks mapping hold records: tax:Liquor Tax, tax:Sales Tax, tips (hub connection map)"),
        "{text}{}",
        stderr(&o)
    );
    // A person's table: no metric lines (they belong to the Lambda's log),
    // and every row as wide as the header, the columns lined up.
    assert!(!text.contains("CloudWatchMetrics"), "{text}");
    let widths: std::collections::BTreeSet<usize> =
        text.lines().map(|l| l.chars().count()).collect();
    assert_eq!(widths.len(), 1, "rows of different widths:\n{text}");
    let (_, date) = toast.truth().days()[0].clone();
    let o = run(
        &[
            "reconcile",
            "--tenant",
            "bistro",
            "--date",
            &date.to_string(),
        ],
        None,
    )
    .await
    .unwrap();
    let text = stdout(&o);
    assert!(text.contains("NOT reconciled"), "{text}");
    assert!(
        text.contains("no quickbooks item mapped for part(s) ") && text.contains("tips"),
        "{text}"
    );
    // The preview of the day says the same, record by record.
    let o = run(
        &[
            "books",
            "preview",
            "--tenant",
            "bistro",
            "--date",
            &date.to_string(),
            "--json",
        ],
        None,
    )
    .await
    .unwrap();
    ok(&o);
    let p: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let refused: Vec<&str> = p["records"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["postings"].as_array().unwrap().iter())
        .filter_map(|x| x["refused"].as_str())
        .collect();
    assert!(!refused.is_empty(), "{p:#}");
    assert!(
        refused.iter().all(|r| r.contains("mapped for part(s)")),
        "{refused:?}"
    );
    assert!(
        p["days"][0]["parts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["role"] == "tips")
    );
    // Mapped, the same records book on the next push (after a redrive).
    ok(&run(
        &[
            "connection",
            "map",
            "--tenant",
            "bistro",
            "--id",
            "pos",
            "--destination",
            "quickbooks",
            "tips=33",
            "tax:*=23",
        ],
        None,
    )
    .await
    .unwrap());
    ok(&run(&["dlq", "redrive", "--queue", "push", "--all"], None)
        .await
        .unwrap());
    ok(&run(&["push"], None).await.unwrap());
    assert!(qbo.created_sales_receipts(&realm).len() > before.len());
    let o = run(
        &[
            "reconcile",
            "--tenant",
            "bistro",
            "--date",
            &date.to_string(),
        ],
        None,
    )
    .await
    .unwrap();
    assert!(stdout(&o).contains(": reconciled"), "{}", stdout(&o));
}

/// A books connection added from the command line posts daily summaries: a
/// day with no mapping yet is held, with its keys, in `hub status`, `hub
/// reconcile` and `hub mappings show`; `hub mappings suggest` proposes
/// accounts from the chart; `hub mappings set` with them posts the held day
/// (and says so), one JournalEntry, and `hub mappings history` lists the
/// version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_day_is_listed_proposed_for_and_posted_once_mapped() {
    use hub_sandboxes::quickbooks::{QuickBooksConfig, QuickBooksSandbox};
    use hub_sandboxes::toast::{ToastConfig, ToastLimits, ToastSandbox};
    let toast = ToastSandbox::start(ToastConfig {
        days: 1,
        orders_per_day: 12,
        limits: ToastLimits::unlimited(),
        ..ToastConfig::seeded(41)
    })
    .await
    .unwrap();
    let qbo = QuickBooksSandbox::start(QuickBooksConfig {
        limits: Vec::new(),
        ..QuickBooksConfig::seeded(42)
    })
    .await
    .unwrap();
    let guid = toast.restaurant_guids()[0].clone();
    let realm = qbo.realm_id();
    let dir = temp_dir();
    let vars = vec![
        ("HUB_ENDPOINT_TOAST", toast.base_url()),
        ("HUB_ENDPOINT_QUICKBOOKS", qbo.base_url()),
        (
            "HUB_ENDPOINT_QUICKBOOKS_TOKEN",
            format!("{}/oauth2/v1/tokens/bearer", qbo.base_url()),
        ),
    ];
    let run = |args: &[&str]| {
        hub_with_vars(
            &dir,
            vars.clone(),
            args.iter().map(|x| x.to_string()).collect(),
            None,
        )
    };
    let ok = |o: &Output| {
        assert!(o.status.success(), "{}{}", stdout(o), stderr(o));
        stdout(o)
    };
    ok(&run(&["tenant", "add", "bistro", "--name", "Bistro"])
        .await
        .unwrap());
    for (id, provider, account) in [
        ("pos", "toast", guid.as_str()),
        ("books", "quickbooks", realm.as_str()),
    ] {
        ok(&run(&[
            "connection",
            "add",
            "--tenant",
            "bistro",
            "--id",
            id,
            "--provider",
            provider,
            "--account",
            account,
            "--time-zone",
            "America/New_York",
        ])
        .await
        .unwrap());
    }
    let login = format!(
        r#"{{"login":{{"client_id":"{}","client_secret":"{}"}}}}"#,
        toast.client_id(),
        toast.client_secret()
    );
    let grant = qbo.grant(&realm);
    let token = shared::providers::auth::Credentials {
        token: Some(shared::providers::auth::StoredToken {
            access_token: grant.access_token.clone(),
            refresh_token: grant.refresh_token.clone(),
            expires_at: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1),
            refresh_expires_at: None,
        }),
        login: Default::default(),
    };
    use secrecy::ExposeSecret;
    let app = format!(
        r#"{{"client_id":"{}","client_secret":"{}"}}"#,
        qbo.client_id(),
        qbo.client_secret()
    );
    for (name, value) in [
        ("tenants/bistro/pos", login),
        (
            "tenants/bistro/books",
            token.to_secret().expose_secret().to_string(),
        ),
        ("apps/quickbooks", app),
    ] {
        ok(&hub_with_vars(
            &dir,
            vars.clone(),
            ["secret", "set", name].map(String::from).to_vec(),
            Some(value),
        )
        .await
        .unwrap());
    }
    ok(&run(&["pull", "toast", "--tenant", "bistro"]).await.unwrap());
    ok(&run(&["push"]).await.unwrap());
    assert!(
        qbo.created_journal_entries(&realm).is_empty(),
        "nothing booked to a guess"
    );
    let (_, date) = toast.truth().days()[0].clone();
    let day = date.to_string();

    let text = ok(&run(&["status", "--check"]).await.unwrap());
    assert!(
        text.contains("day(s) held for mapping") && text.contains(&day),
        "{text}"
    );
    let text = stdout(
        &run(&["reconcile", "--tenant", "bistro", "--date", &day])
            .await
            .unwrap(),
    );
    assert!(
        text.contains("NOT reconciled") && text.contains("needs mapping"),
        "{text}"
    );
    let text = ok(&run(&["mappings", "show", "--tenant", "bistro"])
        .await
        .unwrap());
    assert!(
        text.contains("NEEDS MAPPING") && text.contains("tender:card"),
        "{text}"
    );

    // The proposals, taken as they are, plus the operator's choice for any
    // key the chart names nothing for (over/short here: an expense).
    let o = run(&["mappings", "suggest", "--tenant", "bistro", "--json"])
        .await
        .unwrap();
    let proposals: Vec<serde_json::Value> = serde_json::from_str(&ok(&o)).unwrap();
    assert!(
        proposals.iter().any(|p| p["key"] == "tender:card"),
        "{proposals:#?}"
    );
    let held: Vec<String> = {
        let o = run(&["mappings", "show", "--tenant", "bistro", "--json"])
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
        v["held"].as_object().unwrap().keys().cloned().collect()
    };
    let fallback = hub_sandboxes::quickbooks::item_account("41").unwrap();
    let mut pairs: Vec<String> = held
        .iter()
        .map(|k| {
            let account = proposals
                .iter()
                .find(|p| p["key"] == k.as_str())
                .map(|p| p["account"].as_str().unwrap().to_string())
                .unwrap_or_else(|| fallback.clone());
            format!("{k}={account}")
        })
        .collect();
    pairs.push(format!("over_short={fallback}"));
    let mut args = vec!["mappings", "set", "--tenant", "bistro", "--from", &day];
    args.extend(pairs.iter().map(String::as_str));
    let text = ok(&run(&args).await.unwrap());
    assert!(text.contains(&day) && text.contains("posted"), "{text}");
    let entries = qbo.created_journal_entries(&realm);
    assert_eq!(entries.len(), 1, "one entry for the day: {entries:#?}");
    let text = ok(&run(&["reconcile", "--tenant", "bistro", "--date", &day])
        .await
        .unwrap());
    assert!(!text.contains("NOT reconciled"), "{text}");
    let text = ok(&run(&["mappings", "history", "--tenant", "bistro"])
        .await
        .unwrap());
    assert!(
        text.contains(&day) && text.contains("first version"),
        "{text}"
    );
    // The same version again changes nothing and posts nothing.
    let text = ok(&run(&args).await.unwrap());
    assert!(text.contains("unchanged"), "{text}");
    assert_eq!(qbo.created_journal_entries(&realm).len(), 1);
}
