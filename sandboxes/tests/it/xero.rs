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
async fn put_never_updates_a_bank_transaction_and_post_does() {
    let x = Xero::start(XeroConfig::seeded(9)).await;
    let body = json!({"BankTransactions": [txn("day-1", "200", json!(100))]});
    let resp: Value = x
        .put("?summarizeErrors=false", None, &body)
        .await
        .json()
        .await
        .unwrap();
    let id = resp["BankTransactions"][0]["BankTransactionID"]
        .as_str()
        .unwrap()
        .to_string();
    let mut change = txn("day-1", "200", json!(150));
    change["BankTransactionID"] = id.clone().into();
    let body = json!({"BankTransactions": [change]});
    let resp: Value = x
        .put("?summarizeErrors=false", None, &body)
        .await
        .json()
        .await
        .unwrap();
    let refused = &resp["BankTransactions"][0];
    assert_eq!(refused["StatusAttributeString"], "ERROR", "{resp}");
    assert!(
        refused["ValidationErrors"][0]["Message"]
            .as_str()
            .unwrap()
            .contains("PUT only creates bank transactions"),
        "{resp}"
    );
    let saved = x.sb.bank_transactions(&x.tenant);
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0]["Total"], json!(100.0), "unchanged by the PUT");
    let resp: Value = client()
        .post(x.url("BankTransactions?summarizeErrors=false"))
        .bearer_auth(&x.token)
        .header("xero-tenant-id", &x.tenant)
        .header("Accept", "application/json")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        resp["BankTransactions"][0]["StatusAttributeString"], "OK",
        "{resp}"
    );
    let saved = x.sb.bank_transactions(&x.tenant);
    assert_eq!(saved.len(), 1, "updated in place");
    assert_eq!(saved[0]["Total"], json!(150.0));
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

    // While two are in flight, a third is refused as `concurrent`. The two
    // take 5 s, so the third has all that time to arrive once both are in.
    x.sb.set_faults(Faults::latency(Duration::from_secs(5)));
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
    // Wait until both are admitted (the sandbox says so), not for a while.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while x.sb.counters().in_flight.get(&x.tenant).copied() != Some(2) {
        assert!(
            std::time::Instant::now() < deadline,
            "the two slow calls never were in flight together"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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

impl Xero {
    async fn journals(
        &self,
        method: reqwest::Method,
        query: &str,
        key: Option<&str>,
        body: &Value,
    ) -> (u16, Value) {
        let mut req = client()
            .request(method, self.url(&format!("ManualJournals{query}")))
            .bearer_auth(&self.token)
            .header("xero-tenant-id", &self.tenant)
            .header("Accept", "application/json")
            .json(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn get(&self, rest: &str) -> (u16, Value) {
        let resp = client()
            .get(self.url(rest))
            .bearer_auth(&self.token)
            .header("xero-tenant-id", &self.tenant)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }
}

/// A day's journal: lines as (account code, amount), debit positive.
fn journal(narration: &str, status: &str, lines: &[(&str, f64)]) -> Value {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(code, amount)| json!({"LineAmount": amount, "AccountCode": code, "Description": format!("line {code}"), "TaxType": "NONE"}))
        .collect();
    json!({
        "Narration": narration,
        "Date": "2025-06-02",
        "LineAmountTypes": "NoTax",
        "Status": status,
        "JournalLines": lines,
    })
}

fn day_lines() -> Vec<(&'static str, f64)> {
    vec![
        ("610", 120.0),
        ("611", 30.0),
        ("204", 5.0),
        ("200", -100.0),
        ("201", -40.0),
        ("820", -8.0),
        ("825", -7.0),
    ]
}

#[tokio::test]
async fn manual_journal_put_creates_and_a_put_naming_an_existing_journal_is_refused() {
    let x = Xero::start(XeroConfig::seeded(9)).await;
    let put = reqwest::Method::PUT;
    let body = json!({"ManualJournals": [journal("Sales 2025-06-02", "POSTED", &day_lines())]});
    let (status, created) = x
        .journals(put.clone(), "?summarizeErrors=false", None, &body)
        .await;
    assert_eq!(status, 200, "{created}");
    let mj = &created["ManualJournals"][0];
    assert_eq!(mj["StatusAttributeString"], "OK");
    assert_eq!(mj["Status"], "POSTED");
    assert_eq!(mj["LineAmountTypes"], "NoTax");
    assert_eq!(mj["Narration"], "Sales 2025-06-02");
    assert_eq!(mj["Date"], "/Date(1748822400000+0000)/");
    assert!(mj["UpdatedDateUTC"].as_str().unwrap().starts_with("/Date("));
    assert_eq!(mj["JournalLines"].as_array().unwrap().len(), 7);
    assert_eq!(mj["JournalLines"][0]["AccountCode"], "610");
    assert_eq!(mj["JournalLines"][3]["LineAmount"], json!(-100.0));
    let card =
        x.sb.accounts(&x.tenant)
            .into_iter()
            .find(|a| a["Code"] == "610")
            .unwrap();
    assert_eq!(card["Name"], "Card Clearing");
    assert_eq!(mj["JournalLines"][0]["AccountID"], card["AccountID"]);
    let id = mj["ManualJournalID"].as_str().unwrap().to_string();
    assert_ne!(id, hub_sandboxes::xero::ZERO_ID);

    // Defaults: DRAFT, NoTax; lines may name the account by AccountID.
    let by_id = json!({"ManualJournals": [{"Narration": "by id", "JournalLines": [
        {"LineAmount": 10, "AccountID": card["AccountID"]},
        {"LineAmount": -10, "AccountCode": "200"},
    ]}]});
    let (status, draft) = x.journals(put.clone(), "", None, &by_id).await;
    assert_eq!(status, 200, "{draft}");
    assert_eq!(draft["ManualJournals"][0]["Status"], "DRAFT");
    assert_eq!(draft["ManualJournals"][0]["LineAmountTypes"], "NoTax");
    assert_eq!(
        draft["ManualJournals"][0]["JournalLines"][0]["AccountCode"],
        "610"
    );

    // PUT never updates.
    let mut again = journal(
        "Sales 2025-06-02, edited",
        "POSTED",
        &[("610", 1.0), ("200", -1.0)],
    );
    again["ManualJournalID"] = json!(id);
    let (status, refused) = x
        .journals(
            put.clone(),
            "?summarizeErrors=false",
            None,
            &json!({"ManualJournals": [again]}),
        )
        .await;
    assert_eq!(status, 200, "{refused}");
    let item = &refused["ManualJournals"][0];
    assert_eq!(item["StatusAttributeString"], "ERROR");
    assert_eq!(item["ManualJournalID"], hub_sandboxes::xero::ZERO_ID);
    assert_eq!(
        item["ValidationErrors"][0]["Message"],
        format!(
            "ManualJournal {id} already exists. PUT only creates manual journals; use POST to update one."
        )
    );
    let saved = x.sb.manual_journals(&x.tenant);
    assert_eq!(saved.len(), 2);
    assert_eq!(saved[0]["Narration"], "Sales 2025-06-02", "unchanged");
    assert_eq!(saved[0]["JournalLines"].as_array().unwrap().len(), 7);
    assert_eq!(saved[0], {
        let mut m = mj.clone();
        m.as_object_mut().unwrap().remove("StatusAttributeString");
        m
    });
    assert_eq!(
        x.sb.counters()
            .calls_to("PUT", "/api.xro/2.0/ManualJournals"),
        3
    );
}

#[tokio::test]
async fn manual_journal_post_updates_in_place() {
    let x = Xero::start(XeroConfig::seeded(9)).await;
    let post = reqwest::Method::POST;
    let body = json!({"ManualJournals": [journal("Sales 2025-06-02", "DRAFT", &day_lines())]});
    let (status, created) = x
        .journals(post.clone(), "?summarizeErrors=false", Some("mj-1"), &body)
        .await;
    assert_eq!(status, 200, "{created}");
    let id = created["ManualJournals"][0]["ManualJournalID"]
        .as_str()
        .unwrap()
        .to_string();

    // A late refund: the day is recomputed and the same journal updated.
    let mut update = journal(
        "Sales 2025-06-02 (recomputed)",
        "POSTED",
        &[("610", 110.0), ("203", 10.0), ("200", -120.0)],
    );
    update["ManualJournalID"] = json!(id);
    let (status, updated) = x
        .journals(
            post.clone(),
            "?summarizeErrors=false",
            Some("mj-2"),
            &json!({"ManualJournals": [update]}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    let mj = &updated["ManualJournals"][0];
    assert_eq!(mj["StatusAttributeString"], "OK");
    assert_eq!(mj["ManualJournalID"], id.as_str());
    assert_eq!(mj["Status"], "POSTED");
    assert_eq!(mj["JournalLines"].as_array().unwrap().len(), 3);
    assert_eq!(mj["JournalLines"][1]["AccountCode"], "203");
    let saved = x.sb.manual_journals(&x.tenant);
    assert_eq!(saved.len(), 1, "one journal, updated in place");
    assert_eq!(saved[0]["Narration"], "Sales 2025-06-02 (recomputed)");
    let c = x.sb.counters();
    assert_eq!((c.creates_for("mj-1"), c.creates_for("mj-2")), (1, 0));

    // Fields left out keep their values.
    let (status, sparse) = x
        .journals(
            post.clone(),
            "",
            None,
            &json!({"ManualJournals": [{"ManualJournalID": id, "Narration": "renamed"}]}),
        )
        .await;
    assert_eq!(status, 200, "{sparse}");
    assert_eq!(
        sparse["ManualJournals"][0]["JournalLines"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(sparse["ManualJournals"][0]["Status"], "POSTED");

    // Read back, one and all; an unknown id is not found.
    let (status, one) = x.get(&format!("ManualJournals/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(one["ManualJournals"][0]["Narration"], "renamed");
    let (_, posted) = x.get("ManualJournals?where=Status%3D%3D%22POSTED%22").await;
    assert_eq!(posted["ManualJournals"].as_array().unwrap().len(), 1);
    let (_, drafts) = x.get("ManualJournals?where=Status%3D%3D%22DRAFT%22").await;
    assert!(drafts["ManualJournals"].as_array().unwrap().is_empty());
    let (status, _) = x
        .get(&format!(
            "ManualJournals/{}",
            "6f1b1f1e-0000-4000-8000-000000000000"
        ))
        .await;
    assert_eq!(status, 404);
    let mut unknown = journal("x", "DRAFT", &[("610", 1.0), ("200", -1.0)]);
    unknown["ManualJournalID"] = json!("6f1b1f1e-0000-4000-8000-000000000000");
    let (_, r) = x
        .journals(
            post.clone(),
            "?summarizeErrors=false",
            None,
            &json!({"ManualJournals": [unknown]}),
        )
        .await;
    assert_eq!(
        r["ManualJournals"][0]["ValidationErrors"][0]["Message"],
        "ManualJournal 6f1b1f1e-0000-4000-8000-000000000000 could not be found."
    );

    // A POSTED journal may be voided; then it cannot be edited.
    let (status, voided) = x
        .journals(
            post.clone(),
            "?summarizeErrors=false",
            None,
            &json!({"ManualJournals": [{"ManualJournalID": id, "Narration": "voided", "Status": "VOIDED"}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(voided["ManualJournals"][0]["Status"], "VOIDED", "{voided}");
    let (_, edit) = x
        .journals(
            post,
            "?summarizeErrors=false",
            None,
            &json!({"ManualJournals": [{"ManualJournalID": id, "Narration": "again"}]}),
        )
        .await;
    assert_eq!(
        edit["ManualJournals"][0]["ValidationErrors"][0]["Message"],
        "A VOIDED manual journal cannot be modified."
    );
}

#[tokio::test]
async fn invalid_journals_get_their_own_validation_errors_under_summarize_errors_false() {
    let x = Xero::start(XeroConfig::seeded(9)).await;
    assert!(x.sb.archive_account(&x.tenant, "260"));
    let mut no_narration = journal("", "POSTED", &[("610", 1.0), ("200", -1.0)]);
    no_narration["LineAmountTypes"] = json!("Sometimes");
    let mut bad_tax = journal("tax", "POSTED", &[("610", 1.0), ("200", -1.0)]);
    bad_tax["JournalLines"][0]["TaxType"] = json!("OUTPUT");
    let body = json!({"ManualJournals": [
        journal("balanced", "POSTED", &[("610", 100.0), ("200", -100.0)]),
        journal("unbalanced", "POSTED", &[("610", 100.0), ("200", -10.0)]),
        journal("bank", "POSTED", &[("090", 100.0), ("200", -100.0)]),
        journal("one line", "POSTED", &[("610", 0.0)]),
        journal("unknown and archived", "POSTED", &[("999", 5.0), ("260", -5.0)]),
        no_narration,
        journal("status", "ARCHIVED", &[("610", 1.0), ("200", -1.0)]),
        bad_tax,
    ]});
    let (status, resp) = x
        .journals(
            reqwest::Method::PUT,
            "?summarizeErrors=false",
            Some("mj-bad"),
            &body,
        )
        .await;
    assert_eq!(status, 200, "{resp}");
    let items = resp["ManualJournals"].as_array().unwrap();
    assert_eq!(items.len(), 8);
    let messages = |i: usize| -> Vec<String> {
        items[i]["ValidationErrors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Message"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(items[0]["StatusAttributeString"], "OK");
    assert!(
        items[1..]
            .iter()
            .all(|i| i["StatusAttributeString"] == "ERROR")
    );
    assert_eq!(
        messages(1),
        ["The total debits (100.00) must equal total credits (-10.00)"]
    );
    assert_eq!(
        messages(2),
        ["You can't post a manual journal to a bank account (account code '090')."]
    );
    assert_eq!(
        messages(3),
        ["A manual journal must have at least two journal lines."]
    );
    assert_eq!(
        messages(4),
        [
            "Account code '999' is not a valid code for this document.",
            "Account code '260' has been archived or has been deleted. Each line item must reference a valid account.",
        ]
    );
    assert_eq!(
        messages(5),
        [
            "Narration is required.",
            "LineAmountTypes must be Exclusive, Inclusive or NoTax."
        ]
    );
    assert_eq!(
        messages(6),
        ["Status ARCHIVED is not valid for a manual journal; use DRAFT or POSTED."]
    );
    assert_eq!(
        messages(7),
        ["The TaxType code 'OUTPUT' is not a valid tax type; the sandbox has only NONE."]
    );
    assert_eq!(items[1]["Narration"], "unbalanced", "the element is echoed");
    assert_eq!(
        x.sb.manual_journals(&x.tenant).len(),
        1,
        "only the valid one is saved"
    );
    assert_eq!(x.sb.counters().creates_for("mj-bad"), 1);

    // Without summarizeErrors=false: one 400 and nothing saved.
    let resp = client()
        .put(x.url("ManualJournals"))
        .bearer_auth(&x.token)
        .header("xero-tenant-id", &x.tenant)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["Type"], "ValidationException");
    assert_eq!(err["Elements"].as_array().unwrap().len(), 8);
    assert_eq!(x.sb.manual_journals(&x.tenant).len(), 1);
}

#[tokio::test]
async fn a_repeated_manual_journal_idempotency_key_replays_and_saves_once() {
    let x = Xero::start(XeroConfig::seeded(9)).await;
    let body = json!({"ManualJournals": [journal("Sales 2025-06-02", "POSTED", &day_lines())]});
    let (s1, first) = x
        .journals(
            reqwest::Method::POST,
            "?summarizeErrors=false",
            Some("day-2025-06-02"),
            &body,
        )
        .await;
    assert_eq!(s1, 200);
    let (s2, second) = x
        .journals(
            reqwest::Method::POST,
            "?summarizeErrors=false",
            Some("day-2025-06-02"),
            &body,
        )
        .await;
    assert_eq!((s2, &second), (200, &first));
    assert_eq!(x.sb.manual_journals(&x.tenant).len(), 1);
    let c = x.sb.counters();
    assert_eq!(c.creates_for("day-2025-06-02"), 1);
    assert_eq!(c.requests_for("day-2025-06-02"), 2);
    assert_eq!(c.calls_to("POST", "/api.xro/2.0/ManualJournals"), 2);
    let other =
        json!({"ManualJournals": [journal("other", "POSTED", &[("610", 1.0), ("200", -1.0)])]});
    let (status, _) = x
        .journals(
            reqwest::Method::POST,
            "?summarizeErrors=false",
            Some("day-2025-06-02"),
            &other,
        )
        .await;
    assert_eq!(status, 400, "a key reused for another body");
    // No tenant header: refused like BankTransactions.
    let resp = client()
        .get(x.url("ManualJournals"))
        .bearer_auth(&x.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn account_totals_come_from_posted_journals_and_authorised_bank_transactions() {
    use rust_decimal::Decimal;
    let x = Xero::start(XeroConfig::seeded(9)).await;
    let body = json!({"ManualJournals": [
        journal("posted", "POSTED", &day_lines()),
        journal("draft", "DRAFT", &[("611", 999.0), ("200", -999.0)]),
    ]});
    let (status, _) = x
        .journals(reqwest::Method::PUT, "?summarizeErrors=false", None, &body)
        .await;
    assert_eq!(status, 200);
    // A card payout (RECEIVE, no tax) and a fee (SPEND, tax exclusive).
    let payout = txn("payout", "610", json!(118.0));
    let mut fee = txn("fee", "404", json!(2.0));
    fee["Type"] = json!("SPEND");
    fee["LineAmountTypes"] = json!("Exclusive");
    fee["LineItems"][0]["TaxAmount"] = json!(0.2);
    let resp = x
        .put(
            "?summarizeErrors=false",
            None,
            &json!({"BankTransactions": [payout, fee]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let saved: Value = resp.json().await.unwrap();
    assert_eq!(saved["BankTransactions"][1]["Total"], json!(2.2), "{saved}");

    let day: jiff::civil::Date = "2025-06-02".parse().unwrap();
    let d = |s: &str| s.parse::<Decimal>().unwrap();
    let expected: std::collections::BTreeMap<_, _> = [
        ("090", "115.8"),
        ("200", "-100"),
        ("201", "-40"),
        ("204", "5"),
        ("404", "2"),
        ("610", "2"),
        ("611", "30"),
        ("820", "-7.8"),
        ("825", "-7"),
    ]
    .into_iter()
    .map(|(a, v)| ((day, a.to_string()), d(v)))
    .collect();
    let totals = x.sb.account_totals(&x.tenant);
    assert_eq!(totals, expected);
    assert!(totals.values().copied().sum::<Decimal>().is_zero());
}

#[tokio::test]
async fn organisation_and_tracking_categories_are_read_and_set_through_the_handle() {
    use hub_sandboxes::xero::{TRACKING_CATEGORY, TRACKING_OPTIONS};
    let x = Xero::start(XeroConfig::seeded(9)).await;
    let (status, org) = x.get("Organisation").await;
    assert_eq!(status, 200, "{org}");
    let o = &org["Organisations"][0];
    assert_eq!(o["Name"], "Demo Company (US)");
    assert_eq!(o["BaseCurrency"], "USD");
    assert_eq!(o["OrganisationStatus"], "ACTIVE");
    assert!(o.get("PeriodLockDate").is_none(), "absent by default: {o}");
    assert!(o.get("EndOfYearLockDate").is_none());

    let day = jiff::civil::date(2025, 6, 2);
    assert!(x.sb.set_period_lock_date(&x.tenant, Some(day)));
    assert!(x.sb.set_end_of_year_lock_date(&x.tenant, Some(jiff::civil::date(2024, 12, 31))));
    let (_, org) = x.get("Organisation").await;
    let o = &org["Organisations"][0];
    assert_eq!(o["PeriodLockDate"], "/Date(1748822400000+0000)/");
    assert_eq!(o["EndOfYearLockDate"], "/Date(1735603200000+0000)/");
    assert_eq!(x.sb.organisation(&x.tenant).unwrap(), *o);
    assert!(x.sb.set_period_lock_date(&x.tenant, None));
    let (_, org) = x.get("Organisation").await;
    assert!(org["Organisations"][0].get("PeriodLockDate").is_none());

    // The seeded "Location" category and its options.
    let (status, cats) = x.get("TrackingCategories").await;
    assert_eq!(status, 200, "{cats}");
    let cats = cats["TrackingCategories"].as_array().unwrap().clone();
    assert_eq!(cats.len(), 1);
    assert_eq!(cats[0]["Name"], TRACKING_CATEGORY);
    assert_eq!(cats[0]["Status"], "ACTIVE");
    let names: Vec<&str> = cats[0]["Options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, TRACKING_OPTIONS);

    // Options added and archived through the handle.
    let harbor =
        x.sb.add_tracking_option(&x.tenant, "Location", "Harbor")
            .unwrap();
    assert!(
        x.sb.add_tracking_option(&x.tenant, "Location", "harbor")
            .is_none(),
        "names are unique"
    );
    assert!(
        x.sb.add_tracking_option(&x.tenant, "Region", "North")
            .is_none()
    );
    assert!(x.sb.archive_tracking_option(&x.tenant, "Location", "Airport"));
    let id = cats[0]["TrackingCategoryID"].as_str().unwrap();
    let (status, one) = x.get(&format!("TrackingCategories/{id}")).await;
    assert_eq!(status, 200);
    let options = one["TrackingCategories"][0]["Options"].as_array().unwrap();
    assert_eq!(options.len(), 4);
    assert_eq!(options[3]["TrackingOptionID"], harbor.as_str());
    let (_, active) = x
        .get("TrackingCategories?where=Name%3D%3D%22Location%22")
        .await;
    let active = active["TrackingCategories"][0]["Options"]
        .as_array()
        .unwrap();
    assert_eq!(active.len(), 3, "the archived option is left out");
    assert!(active.iter().all(|o| o["Name"] != "Airport"));
    let (_, all) = x.get("TrackingCategories?includeArchived=true").await;
    assert_eq!(
        all["TrackingCategories"][0]["Options"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let (_, none) = x
        .get("TrackingCategories?where=Name%3D%3D%22Region%22")
        .await;
    assert!(none["TrackingCategories"].as_array().unwrap().is_empty());
    let region = x.sb.add_tracking_category(&x.tenant, "Region").unwrap();
    assert!(
        x.sb.add_tracking_category(&x.tenant, "Third").is_none(),
        "at most two active categories"
    );
    assert_eq!(x.sb.tracking_categories(&x.tenant).len(), 2);
    let (status, _) = x.get(&format!("TrackingCategories/{region}")).await;
    assert_eq!(status, 200);
    let (status, _) = x
        .get("TrackingCategories/6f1b1f1e-0000-4000-8000-000000000000")
        .await;
    assert_eq!(status, 404);
}

/// A day's journal at a location: `journal` with every line tracked.
fn tracked_journal(narration: &str, option: &str) -> Value {
    let mut j = journal(narration, "POSTED", &day_lines());
    for l in j["JournalLines"].as_array_mut().unwrap() {
        l["Tracking"] = json!([{"Name": "Location", "Option": option}]);
    }
    j
}

#[tokio::test]
async fn manual_journal_tracking_must_name_an_existing_category_and_option() {
    use rust_decimal::Decimal;
    let x = Xero::start(XeroConfig::seeded(9)).await;
    let (status, created) = x
        .journals(
            reqwest::Method::PUT,
            "",
            Some("mj-tracked"),
            &json!({"ManualJournals": [tracked_journal("Downtown 2025-06-02", "Downtown")]}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let category = &x.sb.tracking_categories(&x.tenant)[0];
    let downtown = category["Options"][0].clone();
    assert_eq!(
        created["ManualJournals"][0]["JournalLines"][0]["Tracking"],
        json!([{
            "Name": "Location",
            "Option": "Downtown",
            "TrackingCategoryID": category["TrackingCategoryID"],
            "TrackingOptionID": downtown["TrackingOptionID"],
        }])
    );

    // By ids too; names any case.
    let mut by_id = journal("by id", "POSTED", &[("610", 10.0), ("200", -10.0)]);
    by_id["JournalLines"][0]["Tracking"] = json!([{
        "TrackingCategoryID": category["TrackingCategoryID"],
        "TrackingOptionID": category["Options"][1]["TrackingOptionID"],
    }]);
    by_id["JournalLines"][1]["Tracking"] = json!([{"Name": "location", "Option": "UPTOWN"}]);
    let unknown_option = json!({"Narration": "nowhere", "Date": "2025-06-02", "JournalLines": [
        {"LineAmount": 1, "AccountCode": "610", "Tracking": [{"Name": "Location", "Option": "Nowhere"}]},
        {"LineAmount": -1, "AccountCode": "200"},
    ]});
    let unknown_category = json!({"Narration": "region", "Date": "2025-06-02", "JournalLines": [
        {"LineAmount": 1, "AccountCode": "610", "Tracking": [{"Name": "Region", "Option": "North"}]},
        {"LineAmount": -1, "AccountCode": "200"},
    ]});
    let twice = json!({"Narration": "twice", "Date": "2025-06-02", "JournalLines": [
        {"LineAmount": 1, "AccountCode": "610", "Tracking": [
            {"Name": "Location", "Option": "Downtown"}, {"Name": "Location", "Option": "Uptown"}]},
        {"LineAmount": -1, "AccountCode": "200"},
    ]});
    assert!(x.sb.archive_tracking_option(&x.tenant, "Location", "Airport"));
    let archived = tracked_journal("airport", "Airport");
    let (status, resp) = x
        .journals(
            reqwest::Method::PUT,
            "?summarizeErrors=false",
            None,
            &json!({"ManualJournals": [by_id, unknown_option, unknown_category, twice, archived]}),
        )
        .await;
    assert_eq!(status, 200, "{resp}");
    let items = resp["ManualJournals"].as_array().unwrap();
    let first_error = |i: usize| items[i]["ValidationErrors"][0]["Message"].clone();
    assert_eq!(items[0]["StatusAttributeString"], "OK", "{resp}");
    assert_eq!(
        items[0]["JournalLines"][1]["Tracking"][0]["Option"],
        "Uptown"
    );
    assert_eq!(
        first_error(1),
        "The TrackingOption 'Nowhere' could not be found in TrackingCategory 'Location'."
    );
    assert_eq!(
        first_error(2),
        "The TrackingCategory 'Region' could not be found."
    );
    assert_eq!(
        first_error(3),
        "The TrackingCategory 'Location' can be used once per line."
    );
    assert_eq!(
        first_error(4),
        "The TrackingOption 'Airport' of TrackingCategory 'Location' is archived."
    );
    assert_eq!(x.sb.manual_journals(&x.tenant).len(), 2);

    // The books per location: the tracked journal is Downtown's.
    let day = jiff::civil::date(2025, 6, 2);
    let by_location = x.sb.account_totals_by_tracking(&x.tenant, "Location");
    let at = |option: Option<&str>, code: &str| {
        by_location
            .get(&(day, option.map(str::to_string), code.to_string()))
            .copied()
            .unwrap_or_default()
    };
    assert_eq!(at(Some("Downtown"), "610"), Decimal::new(120, 0));
    assert_eq!(at(Some("Downtown"), "200"), Decimal::new(-100, 0));
    assert_eq!(at(Some("Uptown"), "610"), Decimal::new(10, 0));
    assert_eq!(at(Some("Uptown"), "200"), Decimal::new(-10, 0));
    assert_eq!(at(None, "610"), Decimal::ZERO);
    let totals = x.sb.account_totals(&x.tenant);
    assert_eq!(totals[&(day, "610".to_string())], Decimal::new(130, 0));
}

#[tokio::test]
async fn lock_dates_refuse_journals_and_bank_transactions_dated_on_or_before_them() {
    let x = Xero::start(XeroConfig::seeded(9)).await;
    let body = json!({"ManualJournals": [journal("Sales 2025-06-02", "POSTED", &day_lines())]});
    let (status, before) = x.journals(reqwest::Method::PUT, "", None, &body).await;
    assert_eq!(status, 200, "{before}");
    let locked_id = before["ManualJournals"][0]["ManualJournalID"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(x.sb.set_period_lock_date(&x.tenant, Some(jiff::civil::date(2025, 6, 2))));
    let period =
        "The document date cannot be before the period lock date, currently set at 02-Jun-2025";

    // On the lock date: a 400 ValidationException naming the lock date.
    let (status, err) = x
        .journals(reqwest::Method::PUT, "", Some("locked-1"), &body)
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["ErrorNumber"], 10);
    assert_eq!(err["Type"], "ValidationException");
    assert_eq!(
        err["Elements"][0]["ValidationErrors"],
        json!([{"Message": period}])
    );
    assert_eq!(x.sb.counters().creates_for("locked-1"), 0);
    // The first open day is open.
    let mut next = journal(
        "Adjustment for 2025-06-02",
        "POSTED",
        &[("610", 5.0), ("200", -5.0)],
    );
    next["Date"] = json!("2025-06-03");
    let (status, ok) = x
        .journals(
            reqwest::Method::POST,
            "",
            None,
            &json!({"ManualJournals": [next]}),
        )
        .await;
    assert_eq!(status, 200, "{ok}");
    let open_id = ok["ManualJournals"][0]["ManualJournalID"]
        .as_str()
        .unwrap()
        .to_string();
    // A journal in the locked period cannot be updated or voided; one
    // cannot be moved into it.
    for change in [
        json!({"ManualJournalID": locked_id, "Narration": "late edit"}),
        json!({"ManualJournalID": locked_id, "Narration": "void", "Status": "VOIDED"}),
        json!({"ManualJournalID": open_id, "Narration": "moved", "Date": "2025-06-01"}),
    ] {
        let (status, err) = x
            .journals(
                reqwest::Method::POST,
                "",
                None,
                &json!({"ManualJournals": [change]}),
            )
            .await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["Elements"][0]["ValidationErrors"][0]["Message"], period);
    }
    let saved = x.sb.manual_journals(&x.tenant);
    assert_eq!(saved[0]["Narration"], "Sales 2025-06-02");
    assert_eq!(saved[0]["Status"], "POSTED");

    // A bank transaction too; with both lock dates, both messages.
    assert!(x.sb.set_end_of_year_lock_date(&x.tenant, Some(jiff::civil::date(2025, 5, 31))));
    let mut bt = txn("payout", "610", json!(118.0));
    bt["Date"] = json!("2025-05-31");
    let resp = x
        .put(
            "?summarizeErrors=false",
            None,
            &json!({"BankTransactions": [bt]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp: Value = resp.json().await.unwrap();
    let item = &resp["BankTransactions"][0];
    assert_eq!(item["StatusAttributeString"], "ERROR");
    assert_eq!(
        item["ValidationErrors"],
        json!([
            {"Message": "The document date cannot be before the period lock date, currently set at 02-Jun-2025"},
            {"Message": "The document date cannot be before the end of year lock date, currently set at 31-May-2025"},
        ])
    );
    assert!(x.sb.bank_transactions(&x.tenant).is_empty());

    // Unlocked, the edit goes through.
    assert!(x.sb.set_period_lock_date(&x.tenant, None));
    assert!(x.sb.set_end_of_year_lock_date(&x.tenant, None));
    let (status, edited) = x
        .journals(
            reqwest::Method::POST,
            "",
            None,
            &json!({"ManualJournals": [{"ManualJournalID": locked_id, "Narration": "late edit"}]}),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["ManualJournals"][0]["Narration"], "late edit");
}
