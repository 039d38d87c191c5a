//! Every function binary under cargo lambda's runtime emulator, fed the
//! sample events in `tests/fixtures/events/`: the binaries start, read their
//! configuration, and handle their event as Lambda would hand it over.
//!
//! `cargo xtask test` starts `cargo lambda watch` on a free port with an
//! embedded state folder and the provider endpoints on a closed loopback
//! port, then runs this test with `HUB_SMOKE_RUNTIME` (the emulator's URL)
//! and `HUB_SMOKE_DATA_DIR` (the folder). Without the emulator it cannot run,
//! so it is ignored by a plain `cargo test` and run by xtask with
//! `--ignored`; it fails, never passes, if those variables are missing.
//!
//! It must reach every function crate under `functions/`: each function it
//! got an answer from is listed in `<HUB_SMOKE_DATA_DIR>/invoked` (xtask
//! checks that list against the crates too), and the test fails if a crate
//! is missing from it. With `HUB_TEST_LOG_DIR` (xtask sets it to the same
//! folder), the secrets it seeds and the functions rotate are registered for
//! the leak scan of the functions' logs (`watch.log`).

use hub_sandboxes::webhook::signed_headers;
use serde_json::{Value, json};
use shared::adapters::file_secrets::FileSecrets;
use shared::adapters::sqlite::SqliteStore;
use shared::ids::{ConnectionId, ExternalId, ProviderAccountId, SecretName, TenantId};
use shared::model::{Connection, Provider, RecordKind, Tenant, TimeZoneName};
use shared::pipelines::records::PushItem;
use shared::ports::{LedgerKey, OutgoingMessage, WorkQueue};
use shared::providers::auth::{Credentials, StoredToken};
use shared::{Config, Stores};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The Square notification URL the emulator's functions are configured with.
pub const SQUARE_URL: &str = "https://hub.example.com/webhooks/square";
const KEY: &str = "smoke-signing-key";

mod lambda_common;
use lambda_common::{API, Runtime, fixture, signed_connect_event};

// The leak capture: this test's logs and the secrets it seeds.
#[path = "it/leaks.rs"]
mod leaks;

struct Smoke {
    runtime: Runtime,
    stores: Stores,
    /// The functions' state folder, where `invoked` is written.
    dir: PathBuf,
    /// Every function that answered.
    invoked: Mutex<BTreeSet<String>>,
}

/// The function crates: every folder under `functions/` with a binary.
fn function_crates() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("src/main.rs").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

impl Smoke {
    async fn invoke(&self, function: &str, event: &Value) -> Value {
        let out = self.runtime.invoke(function, event).await;
        if self.invoked.lock().unwrap().insert(function.to_string()) {
            let mut list = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("invoked"))
                .unwrap();
            writeln!(list, "{function}").unwrap();
        }
        out
    }

    /// An HTTP event from its fixture, signed as `provider` signs it.
    async fn webhook(&self, function: &str, provider: Provider, url: &str) -> Value {
        let mut event = fixture(&format!("{function}.json"));
        let body = event["body"].as_str().unwrap().to_string();
        for (name, value) in signed_headers(provider, url, body.as_bytes(), KEY)
            .unwrap()
            .iter()
        {
            event["headers"][name.as_str()] = value.to_str().unwrap().into();
        }
        self.invoke(function, &event).await
    }

    /// The queue consumer's fixture carrying one message really received
    /// from `queue` (its receipt is what the function settles).
    async fn with_message_from(&self, function: &str, queue: &dyn WorkQueue, want: &str) -> Value {
        let got = queue
            .receive(10, Duration::from_secs(120), Duration::ZERO)
            .await
            .unwrap();
        let m = got
            .iter()
            .find(|m| m.body.contains(want))
            .unwrap_or_else(|| panic!("no message with {want} in {got:?}"));
        let mut event = fixture(&format!("{function}.json"));
        let r = &mut event["Records"][0];
        r["messageId"] = m.id.to_string().into();
        r["receiptHandle"] = m.receipt.0.clone().into();
        r["body"] = m.body.clone().into();
        self.invoke(function, &event).await
    }
}

async fn seed(stores: &Stores) {
    let tenant = TenantId::new("bistro").unwrap();
    stores
        .connections
        .put_tenant(&Tenant {
            id: tenant.clone(),
            name: "Bistro".into(),
        })
        .await
        .unwrap();
    for provider in [
        Provider::Toast,
        Provider::Square,
        Provider::QuickBooks,
        Provider::Xero,
    ] {
        stores
            .secrets
            .put(
                &SecretName::new(format!("webhooks/{provider}")).unwrap(),
                &KEY.to_string().into(),
            )
            .await
            .unwrap();
    }
    stores
        .secrets
        .put(
            &SecretName::new("apps/quickbooks").unwrap(),
            &json!({"client_id": "smoke-app", "client_secret": "smoke-app-secret"})
                .to_string()
                .into(),
        )
        .await
        .unwrap();
    let login = |pairs: &[(&str, &str)]| Credentials {
        token: None,
        login: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let token = Credentials {
        token: Some(StoredToken {
            access_token: "smoke-access".into(),
            refresh_token: Some("smoke-refresh".into()),
            expires_at: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1),
            refresh_expires_at: None,
        }),
        login: Default::default(),
    };
    for (id, provider, account, creds) in [
        (
            "pos",
            Provider::Toast,
            "0cd990c9-fd74-461d-8468-de2a0919ccbba",
            login(&[("client_id", "c"), ("client_secret", "s")]),
        ),
        ("cafe", Provider::Square, "MLEFBHHSJGVHD", token),
        (
            "inventory",
            Provider::MarketMan,
            "buyer-1",
            login(&[("api_key", "k"), ("api_password", "p")]),
        ),
    ] {
        let c = Connection {
            id: ConnectionId::new(id).unwrap(),
            tenant: tenant.clone(),
            provider,
            account_id: ProviderAccountId::new(account).unwrap(),
            time_zone: TimeZoneName::new("America/New_York").unwrap(),
            business_day_close: Default::default(),
            credentials: SecretName::new(format!("bistro/{id}")).unwrap(),
            mappings: Default::default(),
            codes: [
                ("supplier:acme".to_string(), "V-1".to_string()),
                ("item:flour".to_string(), "FL-25".to_string()),
            ]
            .into_iter()
            .collect(),
            // Known already (no Toast API to learn it from here).
            currency: Some(shared::model::Currency::usd()),
            books: Default::default(),
        };
        stores
            .secrets
            .put(&c.credentials, &creds.to_secret())
            .await
            .unwrap();
        stores.connections.register(&c).await.unwrap();
    }
}

#[tokio::test]
#[ignore = "needs cargo lambda's runtime emulator: `cargo xtask test` runs it with --ignored"]
async fn every_function_binary_handles_its_sample_event() {
    let runtime = std::env::var("HUB_SMOKE_RUNTIME")
        .expect("HUB_SMOKE_RUNTIME: the URL of `cargo lambda watch` (cargo xtask test sets it)");
    let dir = std::env::var("HUB_SMOKE_DATA_DIR")
        .expect("HUB_SMOKE_DATA_DIR: the functions' HUB_DATA_DIR (cargo xtask test sets it)");
    let dir = PathBuf::from(dir);
    leaks::init();
    let config = Config::from_lookup(|_| None).unwrap();
    let stores = Stores::embedded(
        SqliteStore::open(&dir.join("state.db")).unwrap(),
        FileSecrets::new(dir.join("secrets.json")),
        5,
        &config,
    );
    seed(&stores).await;
    let secrets_file = dir.join("secrets.json");
    leaks::register_secrets_file(&secrets_file);
    let smoke = Smoke {
        runtime: Runtime::new(runtime),
        stores,
        dir,
        invoked: Mutex::new(BTreeSet::new()),
    };
    let hook = |p: &str| format!("https://abc123.execute-api.us-east-1.amazonaws.com/webhooks/{p}");

    // Webhooks: signed deliveries are accepted (routed or kept unrouted).
    for (function, provider, url) in [
        ("webhook-toast", Provider::Toast, hook("toast")),
        ("webhook-square", Provider::Square, SQUARE_URL.to_string()),
        (
            "webhook-quickbooks",
            Provider::QuickBooks,
            hook("quickbooks"),
        ),
        ("webhook-xero", Provider::Xero, hook("xero")),
    ] {
        let out = smoke.webhook(function, provider, &url).await;
        assert_eq!(out["statusCode"], 200, "{function}: {out}");
    }
    // A forged one is refused by the same binary.
    let mut forged = fixture("webhook-toast.json");
    forged["headers"]["toast-signature"] = "AAAA".into();
    let out = smoke.invoke("webhook-toast", &forged).await;
    assert_eq!(out["statusCode"], 401, "{out}");

    // The Toast order goes from the work queue into the ledger.
    let order = "534bf25a-b657-45aa-9a63-47f8f35400d6";
    let out = smoke
        .with_message_from("process-events", smoke.stores.work_queue.as_ref(), order)
        .await;
    assert_eq!(out, json!({"batchItemFailures": []}));
    let key = LedgerKey {
        tenant: TenantId::new("bistro").unwrap(),
        provider: Provider::Toast,
        kind: RecordKind::Transaction,
        // Toast's transaction is keyed by the order's check.
        source_id: ExternalId::new("f6d98b95-2816-4f54-b1ab-7a5d71e83769").unwrap(),
    };
    assert!(
        smoke.stores.ledger.get(&key).await.unwrap().is_some(),
        "the order is in the ledger"
    );

    // A push for books the tenant has no connection to is parked, not retried.
    let item = PushItem {
        key,
        version: 1,
        destination: Provider::QuickBooks,
    };
    smoke
        .stores
        .push_queue
        .send_batch(&[OutgoingMessage::new(serde_json::to_string(&item).unwrap())])
        .await
        .unwrap();
    let out = smoke
        .with_message_from(
            "push",
            smoke.stores.push_queue.as_ref(),
            "f6d98b95-2816-4f54-b1ab-7a5d71e83769",
        )
        .await;
    assert_eq!(out, json!({"batchItemFailures": []}));
    assert_eq!(smoke.stores.push_queue.depth().await.unwrap().dead, 1);

    // The connect flow: a start without a link the hub signed is refused;
    // with one (as `hub connect --link` issues it) the user is sent to
    // QuickBooks with a state, and back to the API's own host (no public URL
    // is configured).
    let out = smoke.invoke("connect", &fixture("connect.json")).await;
    assert_eq!(out["statusCode"], 401, "{out}");
    let event = signed_connect_event(&smoke.stores, "books").await;
    let out = smoke.invoke("connect", &event).await;
    assert_eq!(out["statusCode"], 302, "{out}");
    let location = out["headers"]["location"].as_str().unwrap_or_default();
    assert!(location.contains("state="), "{out}");
    let redirect: std::collections::HashMap<String, String> = url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(
        redirect["redirect_uri"],
        format!("{API}/connect/quickbooks/callback")
    );

    // The back office's purchase order is accepted and queued for MarketMan.
    let out = smoke.invoke("intake", &fixture("intake.json")).await;
    assert_eq!(out["statusCode"], 202, "{out}");

    // Schedules fan out a job per connection whose slot is this tick: every
    // tick for a Toast or Square restaurant, one tick in 24 (6 h) for the
    // MarketMan buyer, so which tick this is decides whether it is queued.
    for function in ["pull-toast", "pull-square", "pull-marketman"] {
        let out = smoke
            .invoke(function, &fixture(&format!("{function}.json")))
            .await;
        let planned = out["queued"].as_u64().zip(out["not_due"].as_u64());
        assert!(
            matches!(planned, Some((q, n)) if q + n == 1) && out["deferred"] == 0,
            "{function}: {out}"
        );
        if function != "pull-marketman" {
            assert_eq!(out["queued"], 1, "{function}: {out}");
        }
    }
    // The monitor checks every connection (the providers are unreachable here).
    let out = smoke
        .invoke("health-monitor", &fixture("health-monitor.json"))
        .await;
    assert_eq!(out["checked"], 3, "{out}");

    // What the functions wrote (rotated tokens, connect state) is scanned
    // for too.
    leaks::register_secrets_file(&secrets_file);
    // Every function crate handled its event: a new crate needs its case
    // here.
    let invoked = smoke.invoked.lock().unwrap().clone();
    let crates = function_crates();
    assert!(!crates.is_empty(), "no function crates found");
    let missing: Vec<&String> = crates.difference(&invoked).collect();
    assert!(
        missing.is_empty(),
        "function crates whose sample event this test did not run: {missing:?}"
    );
}
