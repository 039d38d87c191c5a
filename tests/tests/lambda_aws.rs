//! The Lambda path end to end, as deployed: every function binary under
//! cargo lambda's runtime emulator, configured with the stack's own tables
//! and queues (created in the AWS emulator from the template as AWS reads it,
//! after the SAM transform) and pointed at the provider sandboxes (`hub
//! sandboxes`). The test plays the parts AWS plays (API Gateway's events, the
//! SQS event source mappings, the schedules): a signed Toast webhook goes
//! through `webhook-toast`, the work queue, `process-events`, the push
//! queue and `push` into the sandbox QuickBooks; a scheduled pull runs; the
//! connect flow starts from a signed link; an intake is accepted; the health
//! monitor checks every connection. Every AWS call the functions make is
//! recorded (`HUB_AWS_CALL_LOG`) and checked by `cargo xtask test` against
//! each function's policies in the transformed template.
//!
//! `cargo xtask test` sets `HUB_E2E_RUNTIME`, `HUB_E2E_SANDBOXES` (the JSON
//! `hub sandboxes` wrote) and `HUB_E2E_ENV` (the functions' environment);
//! without them it fails, never passes, so a plain `cargo test` ignores it.

use hub_sandboxes::webhook::signed_headers;
use serde_json::{Value, json};
use shared::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
use shared::model::{AccountMapping, Connection, Provider, Tenant, TimeZoneName};
use shared::ports::WorkQueue;
use shared::providers::auth::{Credentials, StoredToken};
use shared::{Config, Stores};
use std::collections::BTreeMap;
use std::time::Duration;

mod lambda_common;
use lambda_common::{API, Runtime, fixture, signed_connect_event};

const KEY: &str = "e2e-signing-key";

fn read_json(var: &str) -> Value {
    let path = std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: `cargo xtask test` runs this test"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

struct E2e {
    runtime: Runtime,
    stores: Stores,
}

impl E2e {
    async fn invoke(&self, function: &str, event: &Value) -> Value {
        self.runtime.invoke(function, event).await
    }

    /// What an SQS event source mapping does: receives from `queue` and
    /// invokes `function` with the batch as Lambda hands it over.
    async fn deliver_queue(&self, function: &str, queue: &dyn WorkQueue) -> (usize, Value) {
        let mut got = Vec::new();
        for _ in 0..10 {
            got = queue
                .receive(10, Duration::from_secs(120), Duration::from_secs(1))
                .await
                .unwrap();
            if !got.is_empty() {
                break;
            }
        }
        assert!(!got.is_empty(), "nothing on the queue for {function}");
        let records: Vec<Value> = got
            .iter()
            .map(|m| {
                json!({
                    "messageId": m.id.to_string(),
                    "receiptHandle": m.receipt.0,
                    "body": m.body,
                    "attributes": {
                        "ApproximateReceiveCount": m.receive_count.to_string(),
                        "ApproximateFirstReceiveTimestamp": m
                            .first_received_at
                            .map(|t| t.as_millisecond().to_string())
                            .unwrap_or_default(),
                    },
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:queue",
                })
            })
            .collect();
        let out = self.invoke(function, &json!({ "Records": records })).await;
        (got.len(), out)
    }
}

async fn seed(stores: &Stores, sandboxes: &Value) {
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
            &SecretName::new("webhooks/toast").unwrap(),
            &KEY.to_string().into(),
        )
        .await
        .unwrap();
    let qbo = &sandboxes["quickbooks"];
    stores
        .secrets
        .put(
            &SecretName::new("apps/quickbooks").unwrap(),
            &json!({"client_id": qbo["client_id"], "client_secret": qbo["client_secret"]})
                .to_string()
                .into(),
        )
        .await
        .unwrap();
    let s = |v: &Value| v.as_str().unwrap().to_string();
    let toast = &sandboxes["toast"];
    let login = Credentials {
        token: None,
        login: [
            ("client_id".to_string(), s(&toast["client_id"])),
            ("client_secret".to_string(), s(&toast["client_secret"])),
        ]
        .into_iter()
        .collect(),
    };
    let token = Credentials {
        token: Some(StoredToken {
            access_token: s(&qbo["access_token"]),
            refresh_token: Some(s(&qbo["refresh_token"])),
            expires_at: jiff::Timestamp::now() + jiff::SignedDuration::from_mins(50),
            refresh_expires_at: None,
        }),
        login: Default::default(),
    };
    let mut mappings = BTreeMap::new();
    mappings.insert(
        Provider::QuickBooks,
        AccountMapping {
            parts: hub_sandboxes::quickbooks::role_items(),
            deposit_account: Some("4".into()),
            ..AccountMapping::default()
        },
    );
    for (id, provider, account, creds, mappings) in [
        (
            "pos",
            Provider::Toast,
            s(&toast["restaurant_guids"][0]),
            login,
            mappings,
        ),
        (
            "books",
            Provider::QuickBooks,
            s(&qbo["realm_id"]),
            token,
            BTreeMap::new(),
        ),
    ] {
        let id = ConnectionId::new(id).unwrap();
        let c = Connection {
            credentials: Connection::default_secret(&tenant, &id).unwrap(),
            id,
            tenant: tenant.clone(),
            provider,
            account_id: ProviderAccountId::new(account).unwrap(),
            time_zone: TimeZoneName::new("America/New_York").unwrap(),
            business_day_close: Default::default(),
            mappings,
            codes: [
                ("supplier:acme".to_string(), "V-1".to_string()),
                ("item:flour".to_string(), "FL-25".to_string()),
            ]
            .into_iter()
            .collect(),
            currency: None,
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

/// The sales receipts the sandbox QuickBooks holds, read through its API
/// with the books connection's current token (the hub may have renewed it).
async fn receipts(e2e: &E2e, sandboxes: &Value) -> Vec<Value> {
    let secret = SecretName::new("tenants/bistro/books").unwrap();
    let creds =
        Credentials::parse(&e2e.stores.secrets.get(&secret).await.unwrap(), &secret).unwrap();
    let token = creds.token.unwrap().access_token;
    let base = sandboxes["settings"]["HUB_ENDPOINT_QUICKBOOKS"]
        .as_str()
        .unwrap();
    let realm = sandboxes["quickbooks"]["realm_id"].as_str().unwrap();
    let v: Value = e2e
        .runtime
        .http()
        .get(format!("{base}/v3/company/{realm}/query"))
        .query(&[("query", "select * from SalesReceipt")])
        .bearer_auth(token)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["QueryResponse"]["SalesReceipt"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs the stack's resources in the AWS emulator and cargo lambda's runtime: `cargo xtask test` runs it"]
async fn a_sale_goes_from_a_signed_webhook_through_the_functions_into_the_books() {
    let runtime = std::env::var("HUB_E2E_RUNTIME")
        .expect("HUB_E2E_RUNTIME: the URL of `cargo lambda watch` (cargo xtask test sets it)");
    let sandboxes = read_json("HUB_E2E_SANDBOXES");
    let env: BTreeMap<String, String> = serde_json::from_value(read_json("HUB_E2E_ENV")).unwrap();
    let config = Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let stores = Stores::from_config(&config).await.unwrap();
    assert_eq!(stores.backend, "aws");
    seed(&stores, &sandboxes).await;
    let e2e = E2e {
        runtime: Runtime::new(runtime),
        stores,
    };

    // API Gateway hands the signed delivery to the webhook function.
    let body = sandboxes["toast"]["order_updated_events"][0]
        .as_str()
        .unwrap()
        .to_string();
    let order: Value = serde_json::from_str(&body).unwrap();
    let order_guid = order["details"]["order"]["guid"].as_str().unwrap();
    let mut event = fixture("webhook-toast.json");
    event["body"] = body.clone().into();
    for (name, value) in signed_headers(
        Provider::Toast,
        &format!("{API}/webhooks/toast"),
        body.as_bytes(),
        KEY,
    )
    .unwrap()
    .iter()
    {
        event["headers"][name.as_str()] = value.to_str().unwrap().into();
    }
    let out = e2e.invoke("webhook-toast", &event).await;
    assert_eq!(out["statusCode"], 200, "{out}");
    let answer: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    assert_eq!(answer["accepted"], 1, "{answer}");

    // The work queue's event source mapping runs process-events.
    let (n, out) = e2e
        .deliver_queue("process-events", e2e.stores.work_queue.as_ref())
        .await;
    assert_eq!((n, &out), (1, &json!({"batchItemFailures": []})));

    // The push queue's runs push: the sale reaches the books once.
    let (n, out) = e2e
        .deliver_queue("push", e2e.stores.push_queue.as_ref())
        .await;
    assert_eq!((n, &out), (1, &json!({"batchItemFailures": []})));
    let books = receipts(&e2e, &sandboxes).await;
    let ours: Vec<&Value> = books
        .iter()
        .filter(|r| {
            r["PrivateNote"]
                .as_str()
                .is_some_and(|n| n.contains(order_guid))
        })
        .collect();
    assert_eq!(ours.len(), 1, "the sale is in the books once: {books:#?}");

    // A schedule fans out a pull job; the pull queue's mapping runs it.
    let out = e2e.invoke("pull-toast", &fixture("pull-toast.json")).await;
    assert_eq!(
        out,
        json!({"queued": 1, "not_due": 0, "deferred": 0, "days_queued": 0})
    );
    let (n, out) = e2e
        .deliver_queue("pull-toast", e2e.stores.pull_queue.as_ref())
        .await;
    assert_eq!((n, &out), (1, &json!({"batchItemFailures": []})));

    // The connect flow starts from a link the hub signed.
    let event = signed_connect_event(&e2e.stores, "books-2").await;
    let out = e2e.invoke("connect", &event).await;
    assert_eq!(out["statusCode"], 302, "{out}");

    // The back office's purchase order is accepted and queued for MarketMan.
    let out = e2e.invoke("intake", &fixture("intake.json")).await;
    assert_eq!(out["statusCode"], 202, "{out}");

    // The monitor checks every connection.
    let out = e2e
        .invoke("health-monitor", &fixture("health-monitor.json"))
        .await;
    assert_eq!(out["checked"], 2, "{out}");
}
