//! Xero: per-item validation errors, Idempotency-Key replay, refresh-token
//! rotation, rate-limit headers and problems.

use crate::client;
use crate::faults::futures_join;
use hub_sandboxes::xero::{XeroConfig, XeroSandbox};
use hub_sandboxes::{Faults, Limit};
use serde_json::{Value, json};
use std::time::Duration;

const REQUEST: &str = include_str!("../../../tests/fixtures/xero/bank_transactions_request.json");

struct Xero {
    sb: XeroSandbox,
    tenant: String,
    token: String,
}

impl Xero {
    async fn start(config: XeroConfig) -> Self {
        let sb = XeroSandbox::start(config).await.unwrap();
        let tenant = sb.tenant_id();
        let token = sb.grant().access_token;
        Self { sb, tenant, token }
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/api.xro/2.0/{rest}", self.sb.base_url())
    }

    async fn put(&self, query: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
        let mut req = client()
            .put(self.url(&format!("BankTransactions{query}")))
            .bearer_auth(&self.token)
            .header("xero-tenant-id", &self.tenant)
            .header("Accept", "application/json")
            .json(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        req.send().await.unwrap()
    }
}

fn txn(reference: &str, account: &str, unit: Value) -> Value {
    json!({
        "Type": "RECEIVE",
        "Contact": {"Name": "Walk-in Customers"},
        "BankAccount": {"Code": "090"},
        "Date": "2025-06-02",
        "Reference": reference,
        "LineAmountTypes": "NoTax",
        "LineItems": [{"Description": "Daily sales", "Quantity": 1, "UnitAmount": unit, "AccountCode": account}],
    })
}

#[tokio::test]
async fn summarize_errors_false_saves_the_valid_items_and_flags_the_invalid_one() {
    let x = Xero::start(XeroConfig::seeded(9)).await;
    let body = json!({"BankTransactions": [txn("day-1", "200", json!(1234.56)), txn("day-2", "999", json!(10))]});
    let resp = x.put("?summarizeErrors=false", Some("key-1"), &body).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("X-MinLimit-Remaining"));
    assert!(resp.headers().contains_key("X-DayLimit-Remaining"));
    assert!(resp.headers().contains_key("X-AppMinLimit-Remaining"));
    let first: Value = resp.json().await.unwrap();
    let items = first["BankTransactions"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["StatusAttributeString"], "OK");
    assert_eq!(items[0]["Total"], json!(1234.56));
    assert_eq!(items[0]["LineItems"][0]["LineAmount"], json!(1234.56));
    assert_eq!(items[0]["BankAccount"]["Code"], "090");
    assert_eq!(items[1]["StatusAttributeString"], "ERROR");
    assert_eq!(
        items[1]["ValidationErrors"][0]["Message"],
        "Account code '999' is not a valid code for this document."
    );
    assert_eq!(x.sb.bank_transactions(&x.tenant).len(), 1);

    // The same key replays the answer and saves nothing more.
    let again: Value = x
        .put("?summarizeErrors=false", Some("key-1"), &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(x.sb.bank_transactions(&x.tenant).len(), 1);
    let c = x.sb.counters();
    assert_eq!(c.creates_for("key-1"), 1);
    assert_eq!(c.requests_for("key-1"), 2);
    assert_eq!(
        c.calls_to("PUT", "/api.xro/2.0/BankTransactions"),
        2,
        "replays still count as calls"
    );

    // Reusing the key for another body is refused.
    let other = json!({"BankTransactions": [txn("day-3", "200", json!(1))]});
    assert_eq!(
        x.put("?summarizeErrors=false", Some("key-1"), &other)
            .await
            .status(),
        400
    );

    // Read back.
    let id = items[0]["BankTransactionID"].as_str().unwrap();
    let read: Value = client()
        .get(x.url(&format!("BankTransactions/{id}")))
        .bearer_auth(&x.token)
        .header("xero-tenant-id", &x.tenant)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["BankTransactions"][0]["Reference"], "day-1");
}

#[tokio::test]
async fn default_summarize_errors_is_a_400_validation_exception_saving_nothing() {
    let x = Xero::start(XeroConfig::seeded(9)).await;
    let body = json!({"BankTransactions": [txn("ok", "200", json!(5)), txn("bad", "200", serde_json::from_str::<Value>("0.30000000000000004").unwrap())]});
    let resp = x.put("", Some("key-2"), &body).await;
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["ErrorNumber"], 10);
    assert_eq!(err["Type"], "ValidationException");
    assert_eq!(
        err["Elements"][1]["ValidationErrors"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{err}"
    );
    assert!(x.sb.bank_transactions(&x.tenant).is_empty());
    assert_eq!(x.sb.counters().creates_for("key-2"), 0);
}

#[tokio::test]
async fn the_published_request_reads_case_insensitively() {
    let x = Xero::start(XeroConfig::seeded(9)).await;
    let mut body: Value = serde_json::from_str(REQUEST).unwrap();
    // The published example's all-zero ContactID names no contact.
    let resp: Value = x
        .put("?summarizeErrors=false", None, &body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        resp["BankTransactions"][0]["StatusAttributeString"],
        "ERROR"
    );
    body["BankTransactions"][0]["Contact"] = json!({"Name": "Foobar Ltd"});
    let resp: Value = x
        .put("?summarizeErrors=false", None, &body)
        .await
        .json()
        .await
        .unwrap();
    let saved = &resp["BankTransactions"][0];
    assert_eq!(saved["StatusAttributeString"], "OK", "{resp}");
    assert_eq!(saved["Type"], "SPEND");
    assert_eq!(
        saved["LineItems"][0]["AccountCode"], "400",
        "`Lineitems` is read"
    );
    assert_eq!(saved["Total"], json!(20.0));
    assert_eq!(saved["Contact"]["Name"], "Foobar Ltd");
}

#[tokio::test]
async fn refresh_rotates_and_reuse_is_invalid_grant() {
    let x = Xero::start(XeroConfig::seeded(9)).await;
    let rt = x.sb.valid_refresh_token();
    let refresh = |rt: String| {
        client()
            .post(format!("{}/connect/token", x.sb.base_url()))
            .basic_auth(x.sb.client_id(), Some(x.sb.client_secret()))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
            ])
            .send()
    };
    let body: Value = refresh(rt.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(body["expires_in"], 1800);
    assert_eq!(body["token_type"], "Bearer");
    let new_rt = body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(new_rt, rt);
    let reused = refresh(rt).await.unwrap();
    assert_eq!(reused.status(), 400);
    assert_eq!(
        reused.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(refresh(new_rt).await.unwrap().status(), 200);

    let access = body["access_token"].as_str().unwrap();
    let conns: Value = client()
        .get(format!("{}/connections", x.sb.base_url()))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(conns[0]["tenantId"], x.tenant.as_str());
    assert_eq!(conns[0]["tenantType"], "ORGANISATION");

    // Missing tenant header → 403; expired token → 401.
    let resp = client()
        .get(x.url("Accounts"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let accounts: Value = client()
        .get(x.url("Accounts"))
        .query(&[("where", "Type==\"BANK\"")])
        .bearer_auth(access)
        .header("xero-tenant-id", &x.tenant)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accounts["Accounts"].as_array().unwrap().len(), 3);
    x.sb.set_faults(Faults {
        expire_tokens: true,
        ..Faults::none()
    });
    let resp = client()
        .get(x.url("Accounts"))
        .bearer_auth(access)
        .header("xero-tenant-id", &x.tenant)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn minute_day_and_concurrency_limits_name_the_problem() {
    for (limits, problem) in [
        (
            vec![
                Limit::sliding("minute", 3, Duration::from_secs(60)),
                Limit::sliding("day", 100, Duration::from_secs(86_400)),
            ],
            "minute",
        ),
        (
            vec![
                Limit::sliding("minute", 100, Duration::from_secs(60)),
                Limit::sliding("day", 3, Duration::from_secs(86_400)),
            ],
            "day",
        ),
    ] {
        let x = Xero::start(XeroConfig {
            limits,
            ..XeroConfig::seeded(9)
        })
        .await;
        let mut statuses = Vec::new();
        let mut last = None;
        for _ in 0..4 {
            let resp = client()
                .get(x.url("Accounts"))
                .bearer_auth(&x.token)
                .header("xero-tenant-id", &x.tenant)
                .send()
                .await
                .unwrap();
            statuses.push(resp.status().as_u16());
            last = Some(resp);
        }
        assert_eq!(statuses, [200, 200, 200, 429]);
        let last = last.unwrap();
        assert_eq!(last.headers()["X-Rate-Limit-Problem"], problem);
        let retry: u64 = last.headers()["Retry-After"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1);
        assert_eq!(x.sb.counters().max_calls_per_window[&x.tenant], 3);
    }

    let x = Xero::start(XeroConfig {
        concurrency: Some(2),
        ..XeroConfig::seeded(9)
    })
    .await;
    x.sb.set_faults(Faults::latency(Duration::from_millis(1000)));
    let calls: Vec<_> = (0..4)
        .map(|_| {
            client()
                .get(x.url("Accounts"))
                .bearer_auth(&x.token)
                .header("xero-tenant-id", &x.tenant)
                .send()
        })
        .collect();
    let statuses = futures_join(calls).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(x.sb.counters().max_in_flight[&x.tenant], 2);

    // While two are in flight, a third is refused as `concurrent`.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(
                client()
                    .get(x.url("Accounts"))
                    .bearer_auth(&x.token)
                    .header("xero-tenant-id", &x.tenant)
                    .send(),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = client()
        .get(x.url("Accounts"))
        .bearer_auth(&x.token)
        .header("xero-tenant-id", &x.tenant)
        .send()
        .await
        .unwrap();
    assert_eq!(third.status(), 429);
    assert_eq!(third.headers()["X-Rate-Limit-Problem"], "concurrent");
    for s in slow {
        assert_eq!(s.await.unwrap().unwrap().status(), 200);
    }
}
