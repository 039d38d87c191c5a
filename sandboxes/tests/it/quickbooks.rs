//! QuickBooks Online: token rotation, query paging, requestid idempotency,
//! SyncToken checks, validation faults, batch, concurrency.

use crate::client;
use crate::faults::futures_join;
use hub_sandboxes::Faults;
use hub_sandboxes::quickbooks::{QboEntity, QuickBooksConfig, QuickBooksSandbox};
use serde_json::{Value, json};
use std::time::Duration;

const SALESRECEIPT: &str =
    include_str!("../../../tests/fixtures/qbo/salesreceipt_create_request.json");
const PURCHASE: &str = include_str!("../../../tests/fixtures/qbo/purchase_create_request.json");

struct Qbo {
    sb: QuickBooksSandbox,
    realm: String,
    token: String,
}

impl Qbo {
    async fn start(config: QuickBooksConfig) -> Self {
        let sb = QuickBooksSandbox::start(config).await.unwrap();
        let realm = sb.realm_id();
        let token = sb.grant(&realm).access_token;
        Self { sb, realm, token }
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/v3/company/{}/{rest}", self.sb.base_url(), self.realm)
    }

    async fn post(&self, rest: &str, body: &Value) -> (u16, Value) {
        let resp = client()
            .post(self.url(rest))
            .bearer_auth(&self.token)
            .header("Accept", "application/json")
            .json(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn query(&self, q: &str) -> (u16, Value) {
        let resp = client()
            .get(self.url("query"))
            .query(&[("query", q), ("minorversion", "75")])
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }
}

fn fault_code(body: &Value) -> &str {
    body["Fault"]["Error"][0]["code"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token_and_a_spent_one_is_invalid_grant() {
    let qbo = QuickBooksSandbox::start(QuickBooksConfig::seeded(3))
        .await
        .unwrap();
    let realm = qbo.realm_id();
    let first = qbo.valid_refresh_token(&realm);
    let url = format!("{}/oauth2/v1/tokens/bearer", qbo.base_url());
    let refresh = |rt: String, basic: bool| {
        let mut req = client().post(&url).header("Accept", "application/json");
        let mut form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", rt),
        ];
        if basic {
            req = req.basic_auth(qbo.client_id(), Some(qbo.client_secret()));
        } else {
            form.push(("client_id", qbo.client_id().to_string()));
            form.push(("client_secret", qbo.client_secret().to_string()));
        }
        req.form(&form).send()
    };
    let resp = refresh(first.clone(), true).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["x_refresh_token_expires_in"].as_u64().unwrap() > 0);
    let second = body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second, first, "a new refresh token on every refresh");
    assert!(!qbo.refresh_token_is_valid(&first));

    let reused = refresh(first, true).await.unwrap();
    assert_eq!(reused.status(), 400);
    assert_eq!(
        reused.json::<Value>().await.unwrap(),
        json!({"error": "invalid_grant"})
    );

    // client_secret_post works too, and the new access token reads the realm.
    let third: Value = refresh(second, false).await.unwrap().json().await.unwrap();
    let access = third["access_token"].as_str().unwrap();
    let resp = client()
        .get(format!("{}/v3/company/{realm}/account/35", qbo.base_url()))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["Account"]["Name"],
        "Checking"
    );

    let bad = client()
        .post(&url)
        .basic_auth(qbo.client_id(), Some("wrong"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let c = qbo.counters();
    assert_eq!((c.token_requests, c.refreshes, c.invalid_grants), (4, 3, 1));
}

#[tokio::test]
async fn query_pages_with_startposition_and_maxresults() {
    let q = Qbo::start(QuickBooksConfig::seeded(3)).await;
    let (status, all) = q.query("select * from Account").await;
    assert_eq!(status, 200);
    let accounts = all["QueryResponse"]["Account"].as_array().unwrap();
    assert_eq!(accounts.len(), hub_sandboxes::quickbooks::ACCOUNTS.len());
    assert_eq!(all["QueryResponse"]["startPosition"], 1);
    let mut paged = Vec::new();
    let mut start = 1;
    loop {
        let (_, page) = q
            .query(&format!(
                "select * from Account STARTPOSITION {start} MAXRESULTS 5"
            ))
            .await;
        let Some(rows) = page["QueryResponse"]["Account"].as_array() else {
            break;
        };
        assert_eq!(page["QueryResponse"]["maxResults"], rows.len());
        paged.extend(rows.iter().map(|a| a["Id"].clone()));
        start += 5;
    }
    assert_eq!(
        paged,
        accounts.iter().map(|a| a["Id"].clone()).collect::<Vec<_>>()
    );
    let (_, banks) = q
        .query("SELECT * FROM Account WHERE AccountType = 'Bank' ORDERBY Name DESC")
        .await;
    let names: Vec<&str> = banks["QueryResponse"]["Account"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Savings", "Checking"]);
    let (_, count) = q.query("select count(*) from Item").await;
    assert_eq!(
        count["QueryResponse"]["totalCount"],
        hub_sandboxes::quickbooks::ITEMS.len()
    );
    let (_, none) = q.query("select * from SalesReceipt").await;
    assert_eq!(none["QueryResponse"], json!({}));
    let (status, bad) = q.query("select * from Account where").await;
    assert_eq!(status, 400);
    assert_eq!(fault_code(&bad), "4000");
}

#[tokio::test]
async fn a_repeated_requestid_creates_once_and_replays_the_answer() {
    let q = Qbo::start(QuickBooksConfig::seeded(3)).await;
    let body: Value = serde_json::from_str(SALESRECEIPT).unwrap();
    let (s1, first) = q
        .post("salesreceipt?requestid=sr-0001&minorversion=75", &body)
        .await;
    assert_eq!(s1, 200, "{first}");
    let sr = &first["SalesReceipt"];
    assert_eq!(sr["SyncToken"], "0");
    assert_eq!(sr["TotalAmt"], json!(35.0));
    assert_eq!(
        sr["DepositToAccountRef"],
        json!({"value": "4", "name": "Undeposited Funds"})
    );
    assert_eq!(sr["Line"][1]["DetailType"], "SubTotalLineDetail");
    let (s2, second) = q
        .post("salesreceipt?requestid=sr-0001&minorversion=75", &body)
        .await;
    assert_eq!(
        (s2, &second),
        (200, &first),
        "the original answer, byte for byte"
    );
    let (_, other) = q.post("salesreceipt?requestid=sr-0002", &body).await;
    assert_ne!(other["SalesReceipt"]["Id"], sr["Id"]);
    assert_eq!(q.sb.created_sales_receipts(&q.realm).len(), 2);
    let c = q.sb.counters();
    assert_eq!(c.creates_for("sr-0001"), 1);
    assert_eq!(c.requests_for("sr-0001"), 2);
    assert_eq!(
        c.creates_per_key[&(q.realm.clone(), "sr-0002".to_string())],
        1
    );
    assert_eq!(c.calls_to("POST", "/v3/company/{realmId}/salesreceipt"), 3);
    // Read it back, and find it by query.
    let id = sr["Id"].as_str().unwrap();
    let (_, found) = q
        .query(&format!("select * from SalesReceipt where Id = '{id}'"))
        .await;
    assert_eq!(found["QueryResponse"]["SalesReceipt"][0], *sr);
}

#[tokio::test]
async fn a_stale_synctoken_is_fault_5010_and_sparse_updates_bump_it() {
    let q = Qbo::start(QuickBooksConfig::seeded(3)).await;
    let body: Value = serde_json::from_str(PURCHASE).unwrap();
    let (status, created) = q.post("purchase", &body).await;
    assert_eq!(status, 200, "{created}");
    let p = &created["Purchase"];
    assert_eq!(p["TotalAmt"], json!(10.0));
    assert_eq!(p["AccountRef"]["name"], "Visa");
    let id = p["Id"].as_str().unwrap().to_string();

    let update = json!({"sparse": true, "Id": id, "SyncToken": "0", "PrivateNote": "late edit"});
    let (status, updated) = q.post("purchase", &update).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["Purchase"]["SyncToken"], "1");
    assert_eq!(updated["Purchase"]["PrivateNote"], "late edit");
    assert_eq!(
        updated["Purchase"]["TotalAmt"],
        json!(10.0),
        "sparse keeps the lines"
    );

    let (status, stale) = q.post("purchase", &update).await;
    assert_eq!(status, 400);
    assert_eq!(stale["Fault"]["type"], "ValidationFault");
    assert_eq!(fault_code(&stale), "5010");
    assert_eq!(stale["Fault"]["Error"][0]["Message"], "Stale Object Error");
    assert!(stale["time"].is_string());

    // Someone else edits it in QuickBooks: the hub's token 1 is stale too.
    assert_eq!(
        q.sb.touch(&q.realm, QboEntity::Purchase, &id).as_deref(),
        Some("2")
    );
    let (status, _) = q
        .post(
            "purchase",
            &json!({"sparse": true, "Id": id, "SyncToken": "1", "PrivateNote": "x"}),
        )
        .await;
    assert_eq!(status, 400);
    let resp = client()
        .get(q.url(&format!("purchase/{id}")))
        .bearer_auth(&q.token)
        .send()
        .await
        .unwrap();
    let read: Value = resp.json().await.unwrap();
    assert_eq!(read["Purchase"]["SyncToken"], "2");
}

#[tokio::test]
async fn unknown_references_and_bad_amounts_are_validation_faults() {
    let q = Qbo::start(QuickBooksConfig::seeded(3)).await;
    let mut body: Value = serde_json::from_str(SALESRECEIPT).unwrap();
    body["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] = json!("999");
    let (status, f) = q.post("salesreceipt?requestid=bad-item", &body).await;
    assert_eq!(status, 400);
    assert_eq!(f["Fault"]["type"], "ValidationFault");
    assert_eq!(fault_code(&f), "610");
    assert!(
        f["Fault"]["Error"][0]["Detail"]
            .as_str()
            .unwrap()
            .contains("999")
    );

    let mut body: Value = serde_json::from_str(PURCHASE).unwrap();
    body["Line"][0]["AccountBasedExpenseLineDetail"]["AccountRef"]["value"] = json!("404");
    let (status, f) = q.post("purchase", &body).await;
    assert_eq!((status, fault_code(&f)), (400, "610"));

    let mut body: Value = serde_json::from_str(SALESRECEIPT).unwrap();
    body["Line"][0]["Amount"] = serde_json::from_str::<Value>("0.30000000000000004").unwrap();
    let (status, f) = q.post("salesreceipt", &body).await;
    assert_eq!(
        (status, fault_code(&f)),
        (400, "2170"),
        "float money is refused"
    );

    let mut body: Value = serde_json::from_str(SALESRECEIPT).unwrap();
    body["Line"][0]["SalesItemLineDetail"]["Qty"] = json!(2);
    let (status, f) = q.post("salesreceipt", &body).await;
    assert_eq!(
        (status, fault_code(&f)),
        (400, "6070"),
        "Amount must be Qty x UnitPrice"
    );
    assert!(q.sb.created_sales_receipts(&q.realm).is_empty());
    assert_eq!(q.sb.counters().creates_for("bad-item"), 0);
}

#[tokio::test]
async fn batch_answers_per_item_and_replays_by_requestid() {
    let q = Qbo::start(QuickBooksConfig::seeded(3)).await;
    let sr: Value = serde_json::from_str(SALESRECEIPT).unwrap();
    let mut bad = sr.clone();
    bad["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] = json!("999");
    let request = json!({"BatchItemRequest": [
        {"bId": "b1", "operation": "create", "SalesReceipt": sr},
        {"bId": "b2", "operation": "create", "SalesReceipt": bad},
        {"bId": "b3", "operation": "update", "SalesReceipt": {"Id": "11", "SyncToken": "0", "sparse": true}},
        {"bId": "b4", "Query": "select * from Account where Name = 'Checking'"},
        {"bId": "b5", "operation": "create", "Vendor": {"DisplayName": "Smith Family Store"}},
    ]});
    let (status, resp) = q.post("batch?requestid=batch-1", &request).await;
    assert_eq!(status, 200, "{resp}");
    let items = resp["BatchItemResponse"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(items[0]["bId"], "b1");
    assert_eq!(items[0]["SalesReceipt"]["TotalAmt"], json!(35.0));
    assert_eq!(fault_code(&items[1]), "610");
    assert_eq!(items[1]["Fault"]["type"], "ValidationFault");
    assert_eq!(fault_code(&items[2]), "610", "no SalesReceipt 11");
    assert_eq!(items[3]["QueryResponse"]["Account"][0]["Id"], "35");
    assert!(items[4]["Fault"].is_object());
    let (_, again) = q.post("batch?requestid=batch-1", &request).await;
    assert_eq!(again, resp);
    assert_eq!(q.sb.created_sales_receipts(&q.realm).len(), 1);
    assert_eq!(q.sb.counters().creates_for("batch-1"), 1);

    let many: Vec<Value> = (0..31)
        .map(|i| json!({"bId": format!("q{i}"), "Query": "select * from Item"}))
        .collect();
    let (status, f) = q.post("batch", &json!({"BatchItemRequest": many})).await;
    assert_eq!(status, 400);
    assert!(f["Fault"].is_object());
}

#[tokio::test]
async fn concurrency_and_rate_limits_answer_throttle_faults() {
    let q = Qbo::start(QuickBooksConfig {
        concurrency: Some(2),
        ..QuickBooksConfig::seeded(3)
    })
    .await;
    q.sb.set_faults(Faults::latency(Duration::from_millis(1000)));
    let calls: Vec<_> = (0..5)
        .map(|_| {
            client()
                .get(q.url("account/35"))
                .bearer_auth(&q.token)
                .send()
        })
        .collect();
    let statuses = futures_join(calls).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        3,
        "{statuses:?}"
    );
    let c = q.sb.counters();
    assert_eq!(c.max_in_flight[&q.realm], 2);
    assert_eq!(c.rate_limited, 3);

    let q = Qbo::start(QuickBooksConfig {
        limits: vec![hub_sandboxes::Limit::sliding(
            "minute",
            3,
            Duration::from_secs(60),
        )],
        ..QuickBooksConfig::seeded(3)
    })
    .await;
    let mut last = None;
    for _ in 0..4 {
        last = Some(
            client()
                .get(q.url("account/35"))
                .bearer_auth(&q.token)
                .send()
                .await
                .unwrap(),
        );
    }
    let last = last.unwrap();
    assert_eq!(last.status(), 429);
    let retry: u64 = last.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let body: Value = last.json().await.unwrap();
    assert!(
        body["Fault"]["Error"][0]["Message"]
            .as_str()
            .unwrap()
            .contains("ThrottleExceeded")
    );
    assert_eq!(q.sb.counters().max_calls_per_window[&q.realm], 3);

    // A token for one realm cannot read another; an expired one gets 401.
    let q = Qbo::start(QuickBooksConfig::seeded(3)).await;
    let resp = client()
        .get(format!("{}/v3/company/123/account/35", q.sb.base_url()))
        .bearer_auth(&q.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    q.sb.expire_access_tokens();
    let resp = client()
        .get(q.url("account/35"))
        .bearer_auth(&q.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["Fault"]["type"], "AUTHENTICATION");
    assert_eq!(q.sb.counters().unauthorized, 1);
}

#[tokio::test]
async fn a_write_whose_response_was_lost_is_replayed_not_repeated() {
    let q = Qbo::start(QuickBooksConfig::seeded(3)).await;
    let body: Value = serde_json::from_str(SALESRECEIPT).unwrap();
    q.sb.set_faults(Faults {
        drop_rate: 1.0,
        drop_after_handling: true,
        ..Faults::none()
    });
    let lost = client()
        .post(q.url("salesreceipt?requestid=lost-1"))
        .bearer_auth(&q.token)
        .json(&body)
        .send()
        .await
        .unwrap_err();
    assert!(lost.status().is_none(), "{lost:?}");
    assert_eq!(
        q.sb.created_sales_receipts(&q.realm).len(),
        1,
        "QuickBooks did create it"
    );
    q.sb.set_faults(Faults::none());
    let (status, retried) = q.post("salesreceipt?requestid=lost-1", &body).await;
    assert_eq!(status, 200);
    assert_eq!(
        retried["SalesReceipt"]["Id"],
        q.sb.created_sales_receipts(&q.realm)[0]["Id"]
    );
    assert_eq!(
        q.sb.created_sales_receipts(&q.realm).len(),
        1,
        "the retry created nothing"
    );
    let c = q.sb.counters();
    assert_eq!((c.creates_for("lost-1"), c.requests_for("lost-1")), (1, 2));
    assert_eq!(c.dropped_connections, 1);
}

fn sales_line(item: &str, amount: Value) -> Value {
    json!({
        "DetailType": "SalesItemLineDetail",
        "Amount": amount,
        "SalesItemLineDetail": {"ItemRef": {"value": item}, "Qty": 1, "UnitPrice": amount},
    })
}

fn refund(account: &str) -> Value {
    json!({
        "TxnDate": "2025-06-02",
        "DocNumber": "R-0602",
        "PrivateNote": "refund of check 42",
        "DepositToAccountRef": {"value": account},
        "Line": [sales_line("20", json!(20.0))],
        "TxnTaxDetail": {"TotalTax": 1.25},
    })
}

#[tokio::test]
async fn refund_receipts_are_created_updated_read_queried_and_batched_like_sales_receipts() {
    let q = Qbo::start(QuickBooksConfig::seeded(3)).await;
    let (status, first) = q
        .post(
            "refundreceipt?requestid=rr-0001&minorversion=75",
            &refund("99"),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let rr = &first["RefundReceipt"];
    assert_eq!(rr["SyncToken"], "0");
    assert_eq!(rr["TotalAmt"], json!(21.25));
    assert_eq!(rr["DocNumber"], "R-0602");
    assert_eq!(rr["PrivateNote"], "refund of check 42");
    assert_eq!(
        rr["DepositToAccountRef"],
        json!({"value": "99", "name": "Cash Clearing"})
    );
    assert_eq!(
        rr["Line"][0]["SalesItemLineDetail"]["ItemRef"]["name"],
        "Food Sales"
    );
    assert_eq!(rr["Line"][1]["DetailType"], "SubTotalLineDetail");
    let (s2, again) = q
        .post(
            "refundreceipt?requestid=rr-0001&minorversion=75",
            &refund("99"),
        )
        .await;
    assert_eq!((s2, &again), (200, &first), "replayed, not repeated");
    assert_eq!(q.sb.created_refund_receipts(&q.realm).len(), 1);
    let c = q.sb.counters();
    assert_eq!(
        (c.creates_for("rr-0001"), c.requests_for("rr-0001")),
        (1, 2)
    );

    // Sparse update bumps the SyncToken; the old token is then stale.
    let id = rr["Id"].as_str().unwrap().to_string();
    let update = json!({"sparse": true, "Id": id, "SyncToken": "0", "PrivateNote": "edited"});
    let (status, updated) = q.post("refundreceipt", &update).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["RefundReceipt"]["SyncToken"], "1");
    assert_eq!(updated["RefundReceipt"]["TotalAmt"], json!(21.25));
    assert_eq!(updated["RefundReceipt"]["PrivateNote"], "edited");
    let (status, stale) = q.post("refundreceipt", &update).await;
    assert_eq!((status, fault_code(&stale)), (400, "5010"));

    let read: Value = client()
        .get(q.url(&format!("refundreceipt/{id}")))
        .bearer_auth(&q.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["RefundReceipt"], updated["RefundReceipt"]);
    let (_, found) = q
        .query(&format!("select * from RefundReceipt where Id = '{id}'"))
        .await;
    assert_eq!(
        found["QueryResponse"]["RefundReceipt"][0],
        updated["RefundReceipt"]
    );

    // DepositToAccountRef is required and must name an account.
    let mut missing = refund("99");
    missing
        .as_object_mut()
        .unwrap()
        .remove("DepositToAccountRef");
    let (status, f) = q.post("refundreceipt", &missing).await;
    assert_eq!((status, fault_code(&f)), (400, "2020"));
    let (status, f) = q.post("refundreceipt", &refund("777")).await;
    assert_eq!((status, fault_code(&f)), (400, "610"));
    let mut bad_item = refund("99");
    bad_item["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] = json!("999");
    let (status, f) = q.post("refundreceipt", &bad_item).await;
    assert_eq!((status, fault_code(&f)), (400, "610"));

    // Inside a batch, with its own requestid replay.
    let request = json!({"BatchItemRequest": [
        {"bId": "r1", "operation": "create", "RefundReceipt": refund("98")},
        {"bId": "r2", "operation": "create", "RefundReceipt": refund("777")},
        {"bId": "r3", "Query": "select * from RefundReceipt"},
    ]});
    let (status, resp) = q.post("batch?requestid=rbatch-1", &request).await;
    assert_eq!(status, 200, "{resp}");
    let items = resp["BatchItemResponse"].as_array().unwrap();
    assert_eq!(
        items[0]["RefundReceipt"]["DepositToAccountRef"]["name"],
        "Card Clearing"
    );
    assert_eq!(fault_code(&items[1]), "610");
    assert_eq!(
        items[2]["QueryResponse"]["RefundReceipt"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (_, replay) = q.post("batch?requestid=rbatch-1", &request).await;
    assert_eq!(replay, resp);
    assert_eq!(q.sb.created_refund_receipts(&q.realm).len(), 2);
    assert!(q.sb.created_sales_receipts(&q.realm).is_empty());
}

#[tokio::test]
async fn negative_lines_and_a_zero_total_are_accepted_but_a_negative_total_is_not() {
    let q = Qbo::start(QuickBooksConfig::seeded(3)).await;
    let body = json!({"Line": [sales_line("20", json!(30.0)), sales_line("36", json!(-30.0))]});
    let (status, zero) = q.post("salesreceipt", &body).await;
    assert_eq!(status, 200, "{zero}");
    assert_eq!(zero["SalesReceipt"]["TotalAmt"], json!(0.0));
    assert_eq!(zero["SalesReceipt"]["Line"][1]["Amount"], json!(-30.0));

    let body = json!({"Line": [sales_line("20", json!(10.0)), sales_line("36", json!(-12.5))]});
    let (status, f) = q.post("salesreceipt", &body).await;
    assert_eq!((status, fault_code(&f)), (400, "6000"), "{f}");
    assert_eq!(f["Fault"]["type"], "ValidationFault");
    let mut r = refund("99");
    r["Line"] = json!([sales_line("20", json!(-5.0))]);
    r["TxnTaxDetail"] = json!({});
    let (status, f) = q.post("refundreceipt", &r).await;
    assert_eq!((status, fault_code(&f)), (400, "6000"), "{f}");
    r["Line"] = json!([sales_line("20", json!(5.0)), sales_line("21", json!(-2.0))]);
    let (status, ok) = q.post("refundreceipt", &r).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["RefundReceipt"]["TotalAmt"], json!(3.0));
    assert_eq!(q.sb.created_sales_receipts(&q.realm).len(), 1);
}

/// One restaurant day as a SalesReceipt: food, beverage, a service charge,
/// tips, a negative refund line, a discount, two tax lines.
fn day_receipt() -> Value {
    json!({
        "TxnDate": "2025-06-02",
        "DocNumber": "LOC1-20250602",
        "GlobalTaxCalculation": "TaxExcluded",
        "DepositToAccountRef": {"value": "98"},
        "Line": [
            sales_line("20", json!(100.0)),
            sales_line("21", json!(40.0)),
            sales_line("31", json!(10.0)),
            sales_line("33", json!(15.0)),
            sales_line("36", json!(-12.0)),
            {"DetailType": "DiscountLineDetail", "Amount": 5.0, "DiscountLineDetail": {"PercentBased": false}},
        ],
        "TxnTaxDetail": {"TaxLine": [
            {"Amount": 6.25, "DetailType": "TaxLineDetail", "TaxLineDetail": {"TaxRateRef": {"value": "1"}, "PercentBased": true, "TaxPercent": 6.25, "NetAmountTaxable": 100}},
            {"Amount": 2.5, "DetailType": "TaxLineDetail", "TaxLineDetail": {"TaxRateRef": {"value": "2"}, "PercentBased": true, "TaxPercent": 2.5, "NetAmountTaxable": 100}},
        ]},
    })
}

#[tokio::test]
async fn tax_lines_name_seeded_rates_and_add_to_the_total() {
    let q = Qbo::start(QuickBooksConfig::seeded(3)).await;
    let (_, rates) = q.query("select * from TaxRate").await;
    let rates = rates["QueryResponse"]["TaxRate"].as_array().unwrap();
    assert_eq!(rates.len(), hub_sandboxes::quickbooks::TAX_RATES.len());
    assert_eq!(rates[0]["RateValue"], json!(6.25));
    let (status, sr) = q.post("salesreceipt", &day_receipt()).await;
    assert_eq!(status, 200, "{sr}");
    let sr = &sr["SalesReceipt"];
    assert_eq!(sr["TotalAmt"], json!(156.75), "153 - 5 + 8.75");
    assert_eq!(sr["TxnTaxDetail"]["TotalTax"], json!(8.75));
    assert_eq!(
        sr["TxnTaxDetail"]["TaxLine"][1]["TaxLineDetail"]["TaxRateRef"],
        json!({"value": "2", "name": "City Sales Tax"})
    );
    assert_eq!(sr["GlobalTaxCalculation"], "TaxExcluded");
    assert_eq!(
        sr["Line"][5]["DiscountLineDetail"]["DiscountAccountRef"]["value"],
        "92"
    );
    assert_eq!(sr["Line"][6]["Amount"], json!(153.0), "the subtotal line");

    let mut bad = day_receipt();
    bad["TxnTaxDetail"]["TaxLine"][0]["TaxLineDetail"]["TaxRateRef"]["value"] = json!("9");
    let (status, f) = q.post("salesreceipt", &bad).await;
    assert_eq!((status, fault_code(&f)), (400, "610"));
    let mut bad = day_receipt();
    bad["TxnTaxDetail"]["TotalTax"] = json!(9.0);
    let (status, f) = q.post("salesreceipt", &bad).await;
    assert_eq!(
        (status, fault_code(&f)),
        (400, "2010"),
        "TotalTax must match"
    );
    let mut bad = day_receipt();
    bad["GlobalTaxCalculation"] = json!("TaxInclusive");
    let (status, f) = q.post("salesreceipt", &bad).await;
    assert_eq!((status, fault_code(&f)), (400, "2010"));
    let mut bad = day_receipt();
    bad["Line"][5]["DiscountLineDetail"]["DiscountAccountRef"] = json!({"value": "555"});
    let (status, f) = q.post("salesreceipt", &bad).await;
    assert_eq!((status, fault_code(&f)), (400, "610"));
    // The same tax on a refund receipt.
    let mut r = refund("99");
    r["TxnTaxDetail"] = day_receipt()["TxnTaxDetail"].clone();
    let (status, rr) = q.post("refundreceipt", &r).await;
    assert_eq!(status, 200, "{rr}");
    assert_eq!(rr["RefundReceipt"]["TotalAmt"], json!(28.75));
}

#[tokio::test]
async fn account_totals_balance_per_day_and_land_in_the_role_accounts() {
    use rust_decimal::Decimal;
    use std::collections::BTreeMap;
    let q = Qbo::start(QuickBooksConfig::seeded(3)).await;
    // Each role item books to its own account.
    let items = q.sb.entities(&q.realm, QboEntity::Item);
    let income = |id: &str| {
        items.iter().find(|i| i["Id"] == id).unwrap()["IncomeAccountRef"]["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        [
            "20", "21", "22", "23", "31", "33", "34", "35", "36", "37", "38", "39", "40", "41",
            "42"
        ]
        .map(income),
        [
            "79", "93", "95", "91", "94", "90", "96", "92", "97", "98", "99", "100", "101", "102",
            "103"
        ]
    );
    let (status, sr) = q.post("salesreceipt", &day_receipt()).await;
    assert_eq!(status, 200, "{sr}");
    let day: jiff::civil::Date = "2025-06-02".parse().unwrap();
    let d = |s: &str| s.parse::<Decimal>().unwrap();
    let expected: BTreeMap<(jiff::civil::Date, String), Decimal> = [
        ("79", "-100"),
        ("90", "-15"),
        ("91", "-8.75"),
        ("92", "5"),
        ("93", "-40"),
        ("94", "-10"),
        ("97", "12"),
        ("98", "156.75"),
    ]
    .into_iter()
    .map(|(a, v)| ((day, a.to_string()), d(v)))
    .collect();
    assert_eq!(q.sb.account_totals(&q.realm), expected);
    assert!(expected.values().copied().sum::<Decimal>().is_zero());

    // A refund the same day mirrors a sale; TotalTax without tax lines goes
    // to 91. A purchase on another day balances on its own.
    let (status, _) = q.post("refundreceipt", &refund("99")).await;
    assert_eq!(status, 200);
    let mut purchase: Value = serde_json::from_str(PURCHASE).unwrap();
    purchase["TxnDate"] = json!("2025-06-03");
    let (status, _) = q.post("purchase", &purchase).await;
    assert_eq!(status, 200);
    // A deleted receipt counts for nothing.
    let (_, gone) = q.post("salesreceipt", &day_receipt()).await;
    let gone_id = gone["SalesReceipt"]["Id"].as_str().unwrap();
    let (status, _) = q
        .post(
            "salesreceipt?operation=delete",
            &json!({"Id": gone_id, "SyncToken": "0"}),
        )
        .await;
    assert_eq!(status, 200);

    let totals = q.sb.account_totals(&q.realm);
    let at = |date: &str, account: &str| {
        totals
            .get(&(date.parse().unwrap(), account.to_string()))
            .copied()
            .unwrap_or_default()
    };
    assert_eq!(at("2025-06-02", "79"), d("-80"));
    assert_eq!(at("2025-06-02", "91"), d("-7.5"));
    assert_eq!(at("2025-06-02", "99"), d("-21.25"));
    assert_eq!(at("2025-06-02", "98"), d("156.75"));
    assert_eq!(at("2025-06-03", "13"), d("10"));
    assert_eq!(at("2025-06-03", "42"), d("-10"));
    for date in ["2025-06-02", "2025-06-03"] {
        let date: jiff::civil::Date = date.parse().unwrap();
        let net: Decimal = totals
            .iter()
            .filter(|((d, _), _)| *d == date)
            .map(|(_, v)| *v)
            .sum();
        assert!(net.is_zero(), "{date}: {net}");
    }
    assert_eq!(totals.len(), 11, "{totals:?}");
}

/// A journal line: `Debit` or `Credit` `amount` to `account`, optionally at
/// a department (location).
fn je_line(posting: &str, account: &str, amount: f64, department: Option<&str>) -> Value {
    let mut detail = json!({"PostingType": posting, "AccountRef": {"value": account}});
    if let Some(d) = department {
        detail["DepartmentRef"] = json!({"value": d});
    }
    json!({
        "DetailType": "JournalEntryLineDetail",
        "Amount": amount,
        "Description": format!("{posting} {account}"),
        "JournalEntryLineDetail": detail,
    })
}

/// One location's daily sales journal (books.md, "The day's journal"):
/// tenders and discounts debited, sales, tax and tips credited.
fn day_journal(date: &str, doc: &str, department: Option<&str>) -> Value {
    json!({
        "TxnDate": date,
        "DocNumber": doc,
        "PrivateNote": "Daily sales, Downtown",
        "Line": [
            je_line("Debit", "98", 120.0, department),
            je_line("Debit", "99", 30.0, department),
            je_line("Debit", "92", 5.0, department),
            je_line("Credit", "79", 100.0, department),
            je_line("Credit", "93", 40.0, department),
            je_line("Credit", "91", 8.0, department),
            je_line("Credit", "90", 7.0, department),
        ],
    })
}

#[tokio::test]
async fn journal_entries_are_created_read_queried_sparse_updated_and_batched() {
    use hub_sandboxes::quickbooks::{Dimension, PostingType};
    use rust_decimal::Decimal;
    let q = Qbo::start(QuickBooksConfig::seeded(3)).await;
    // The locations the journal names, and the preference saying they are tracked.
    let (_, departments) = q.query("select * from Department").await;
    let departments = departments["QueryResponse"]["Department"]
        .as_array()
        .unwrap();
    assert_eq!(
        departments.len(),
        hub_sandboxes::quickbooks::DEPARTMENTS.len()
    );
    assert_eq!(departments[0]["Name"], "Downtown");
    let prefs: Value = client()
        .get(q.url("preferences?minorversion=75"))
        .bearer_auth(&q.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let accounting = &prefs["Preferences"]["AccountingInfoPrefs"];
    assert_eq!(accounting["TrackDepartments"], true);
    assert_eq!(accounting["ClassTrackingPerTxnLine"], false);
    assert!(accounting.get("BookCloseDate").is_none(), "{prefs}");
    let (_, by_query) = q.query("select * from Preferences").await;
    assert_eq!(
        by_query["QueryResponse"]["Preferences"][0],
        prefs["Preferences"]
    );

    let body = day_journal("2025-06-02", "LOC1-20250602", Some("1"));
    let (status, first) = q
        .post("journalentry?requestid=je-0001&minorversion=75", &body)
        .await;
    assert_eq!(status, 200, "{first}");
    let je = &first["JournalEntry"];
    assert_eq!(je["SyncToken"], "0");
    assert_eq!(je["DocNumber"], "LOC1-20250602");
    assert_eq!(je["TxnDate"], "2025-06-02");
    assert_eq!(je["TotalAmt"], json!(155.0));
    assert_eq!(je["Adjustment"], false);
    let line = &je["Line"][0];
    assert_eq!(line["Id"], "0");
    assert_eq!(
        line["JournalEntryLineDetail"]["AccountRef"],
        json!({"value": "98", "name": "Card Clearing"})
    );
    assert_eq!(
        line["JournalEntryLineDetail"]["DepartmentRef"],
        json!({"value": "1", "name": "Downtown"})
    );
    let id = je["Id"].as_str().unwrap().to_string();

    // requestid: the original answer, nothing created twice.
    let (s2, again) = q
        .post("journalentry?requestid=je-0001&minorversion=75", &body)
        .await;
    assert_eq!((s2, &again), (200, &first));
    assert_eq!(q.sb.journal_entries(&q.realm).len(), 1);
    let c = q.sb.counters();
    assert_eq!(
        (c.creates_for("je-0001"), c.requests_for("je-0001")),
        (1, 2)
    );

    // Read back; found by DocNumber and by a TxnDate range.
    let read: Value = client()
        .get(q.url(&format!("journalentry/{id}")))
        .bearer_auth(&q.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["JournalEntry"], *je);
    let (_, found) = q
        .query("select * from JournalEntry where DocNumber = 'LOC1-20250602'")
        .await;
    assert_eq!(found["QueryResponse"]["JournalEntry"][0], *je);
    let (_, in_range) = q
        .query(
            "select * from JournalEntry where TxnDate >= '2025-06-01' AND TxnDate <= '2025-06-02'",
        )
        .await;
    assert_eq!(
        in_range["QueryResponse"]["JournalEntry"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (_, out_of_range) = q
        .query("select * from JournalEntry where TxnDate > '2025-06-02'")
        .await;
    assert_eq!(out_of_range["QueryResponse"], json!({}));

    // A late refund: the day is recomputed and the entry updated in place
    // (sparse: the lines sent replace the lines; the rest is kept).
    let update = json!({
        "sparse": true, "Id": id, "SyncToken": "0",
        "PrivateNote": "Daily sales, Downtown (recomputed)",
        "Line": [
            je_line("Debit", "98", 110.0, Some("1")),
            je_line("Debit", "97", 10.0, Some("1")),
            je_line("Credit", "79", 120.0, Some("1")),
        ],
    });
    let (status, updated) = q.post("journalentry", &update).await;
    assert_eq!(status, 200, "{updated}");
    let je = &updated["JournalEntry"];
    assert_eq!(je["SyncToken"], "1");
    assert_eq!(je["DocNumber"], "LOC1-20250602", "kept");
    assert_eq!(je["TotalAmt"], json!(120.0));
    assert_eq!(je["Line"].as_array().unwrap().len(), 3);

    // The same SyncToken again is stale; so is the hub's after someone
    // else edits the entry.
    let (status, stale) = q.post("journalentry", &update).await;
    assert_eq!((status, fault_code(&stale)), (400, "5010"));
    assert_eq!(stale["Fault"]["Error"][0]["Message"], "Stale Object Error");
    assert_eq!(
        q.sb.touch(&q.realm, QboEntity::JournalEntry, &id)
            .as_deref(),
        Some("2")
    );
    let mut late = update.clone();
    late["SyncToken"] = json!("1");
    let (status, stale) = q.post("journalentry", &late).await;
    assert_eq!((status, fault_code(&stale)), (400, "5010"));

    // What tests read: one entry, its SyncToken, date and lines.
    let entries = q.sb.journal_entries(&q.realm);
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!((e.id.as_str(), e.sync_token.as_str()), (id.as_str(), "2"));
    assert_eq!(e.doc_number.as_deref(), Some("LOC1-20250602"));
    assert_eq!(e.txn_date, jiff::civil::date(2025, 6, 2));
    assert_eq!(e.lines.len(), 3);
    assert_eq!(e.lines[1].posting, PostingType::Debit);
    assert_eq!(e.lines[1].account, "97");
    assert_eq!(e.lines[2].amount, Decimal::new(120, 0));
    assert_eq!(e.lines[2].department.as_deref(), Some("1"));

    // The books: the entry's lines, debit positive, per account and per location.
    let day = jiff::civil::date(2025, 6, 2);
    let d = |s: &str| s.parse::<Decimal>().unwrap();
    let totals = q.sb.account_totals(&q.realm);
    assert_eq!(
        totals,
        [("79", "-120"), ("97", "10"), ("98", "110")]
            .into_iter()
            .map(|(a, v)| ((day, a.to_string()), d(v)))
            .collect()
    );
    let by_location = q.sb.account_totals_by(&q.realm, Dimension::Department);
    assert_eq!(
        by_location[&(day, Some("1".to_string()), "98".to_string())],
        d("110")
    );
    assert!(
        q.sb.account_totals_by(&q.realm, Dimension::Class)
            .keys()
            .all(|(_, class, _)| class.is_none())
    );

    // In a batch: a create, an unbalanced create, a query.
    let mut unbalanced = day_journal("2025-06-03", "LOC2-20250603", Some("2"));
    unbalanced["Line"][0]["Amount"] = json!(121.0);
    let request = json!({"BatchItemRequest": [
        {"bId": "j1", "operation": "create", "JournalEntry": day_journal("2025-06-03", "LOC2-20250603", Some("2"))},
        {"bId": "j2", "operation": "create", "JournalEntry": unbalanced},
        {"bId": "j3", "Query": "select * from JournalEntry where TxnDate = '2025-06-03'"},
    ]});
    let (status, resp) = q.post("batch?requestid=jbatch-1", &request).await;
    assert_eq!(status, 200, "{resp}");
    let items = resp["BatchItemResponse"].as_array().unwrap();
    assert_eq!(items[0]["JournalEntry"]["TotalAmt"], json!(155.0));
    assert_eq!(fault_code(&items[1]), "2300");
    assert_eq!(
        items[2]["QueryResponse"]["JournalEntry"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(q.sb.journal_entries(&q.realm).len(), 2);
    assert_eq!(q.sb.created_journal_entries(&q.realm).len(), 2);
}

#[tokio::test]
async fn unbalanced_and_invalid_journal_entries_are_validation_faults() {
    use hub_sandboxes::quickbooks::ClassTracking;
    let q = Qbo::start(QuickBooksConfig::seeded(3)).await;
    let refused = |body: Value| {
        let q = &q;
        async move {
            let (status, f) = q.post("journalentry", &body).await;
            assert_eq!(status, 400, "{f}");
            assert_eq!(f["Fault"]["type"], "ValidationFault", "{f}");
            f
        }
    };

    let mut body = day_journal("2025-06-02", "LOC1-20250602", None);
    body["Line"][6]["Amount"] = json!(6.0);
    let f = refused(body).await;
    assert_eq!(fault_code(&f), "2300");
    assert_eq!(
        f["Fault"]["Error"][0]["Message"],
        "Amount on debits not equal to credits"
    );
    assert!(
        f["Fault"]["Error"][0]["Detail"]
            .as_str()
            .unwrap()
            .contains("Debits 155.00, Credits 154.00"),
        "{f}"
    );

    let mut body = day_journal("2025-06-02", "D", None);
    body["Line"][0]["JournalEntryLineDetail"]
        .as_object_mut()
        .unwrap()
        .remove("PostingType");
    assert_eq!(fault_code(&refused(body).await), "2260");
    let mut body = day_journal("2025-06-02", "D", None);
    body["Line"][0]["JournalEntryLineDetail"]["PostingType"] = json!("debit");
    assert_eq!(fault_code(&refused(body).await), "2170");
    let mut body = day_journal("2025-06-02", "D", None);
    body["Line"][0]["JournalEntryLineDetail"]["AccountRef"]["value"] = json!("4040");
    assert_eq!(fault_code(&refused(body).await), "610");
    let mut body = day_journal("2025-06-02", "D", None);
    body["Line"][0]["Amount"] = json!(-120.0);
    body["Line"][0]["JournalEntryLineDetail"]["PostingType"] = json!("Credit");
    assert_eq!(fault_code(&refused(body).await), "2290");
    let mut body = day_journal("2025-06-02", "D", None);
    body["Line"][0]["DetailType"] = json!("SalesItemLineDetail");
    assert_eq!(fault_code(&refused(body).await), "2010");
    assert_eq!(
        fault_code(&refused(day_journal("2025-06-02", "D", Some("77"))).await),
        "610",
        "an unknown department"
    );
    assert_eq!(
        fault_code(&refused(day_journal("2025-06-02", &"X".repeat(22), None)).await),
        "2050",
        "DocNumber is at most 21 characters"
    );

    // A ClassRef needs class tracking; a DepartmentRef needs location tracking.
    let mut with_class = day_journal("2025-06-02", "C", None);
    for l in with_class["Line"].as_array_mut().unwrap() {
        l["JournalEntryLineDetail"]["ClassRef"] = json!({"value": "2"});
    }
    assert_eq!(fault_code(&refused(with_class.clone()).await), "2010");
    assert!(q.sb.set_class_tracking(&q.realm, ClassTracking::PerLine));
    let (status, ok) = q.post("journalentry", &with_class).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(
        ok["JournalEntry"]["Line"][0]["JournalEntryLineDetail"]["ClassRef"]["name"],
        "Uptown"
    );
    assert!(q.sb.set_track_departments(&q.realm, false));
    assert_eq!(
        fault_code(&refused(day_journal("2025-06-02", "D", Some("1"))).await),
        "2010"
    );
    let airport = q.sb.add_class(&q.realm, "Harbor").unwrap();
    let mut harbor = day_journal("2025-06-02", "H", None);
    for l in harbor["Line"].as_array_mut().unwrap() {
        l["JournalEntryLineDetail"]["ClassRef"] = json!({"value": airport});
    }
    let (status, ok) = q.post("journalentry", &harbor).await;
    assert_eq!(status, 200, "{ok}");
    let by_class =
        q.sb.account_totals_by(&q.realm, hub_sandboxes::quickbooks::Dimension::Class);
    assert_eq!(
        by_class[&(
            jiff::civil::date(2025, 6, 2),
            Some(airport.clone()),
            "79".to_string()
        )],
        rust_decimal::Decimal::new(-100, 0)
    );
    let prefs = q.sb.entities(&q.realm, QboEntity::Preferences);
    assert_eq!(prefs[0]["AccountingInfoPrefs"]["TrackDepartments"], false);
    assert_eq!(
        prefs[0]["AccountingInfoPrefs"]["ClassTrackingPerTxnLine"],
        true
    );
    assert_eq!(
        prefs[0]["SyncToken"], "2",
        "each settings change is an edit"
    );
    assert_eq!(
        q.sb.journal_entries(&q.realm).len(),
        2,
        "only the valid ones"
    );
}

#[tokio::test]
async fn a_closed_period_refuses_every_transaction_dated_on_or_before_the_book_close_date() {
    let q = Qbo::start(QuickBooksConfig::seeded(3)).await;
    let (status, open) = q
        .post(
            "journalentry",
            &day_journal("2025-06-02", "LOC1-20250602", Some("1")),
        )
        .await;
    assert_eq!(status, 200, "{open}");
    let closed_id = open["JournalEntry"]["Id"].as_str().unwrap().to_string();
    let (status, sr) = q.post("salesreceipt", &day_receipt()).await;
    assert_eq!(status, 200, "{sr}");
    let sr_id = sr["SalesReceipt"]["Id"].as_str().unwrap().to_string();

    assert!(q.sb.set_book_close_date(&q.realm, jiff::civil::date(2025, 6, 2)));
    assert_eq!(
        q.sb.book_close_date(&q.realm),
        Some(jiff::civil::date(2025, 6, 2))
    );
    let (_, prefs) = q.query("select * from Preferences").await;
    assert_eq!(
        prefs["QueryResponse"]["Preferences"][0]["AccountingInfoPrefs"]["BookCloseDate"],
        "2025-06-02"
    );

    let closed = |f: &Value| {
        assert_eq!(fault_code(f), "6210", "{f}");
        assert_eq!(f["Fault"]["type"], "ValidationFault");
        assert!(
            f["Fault"]["Error"][0]["Message"]
                .as_str()
                .unwrap()
                .starts_with("Account Period Closed"),
            "{f}"
        );
    };
    // A create on the closing date, or before it, is refused (idempotently).
    let (status, f) = q
        .post(
            "journalentry?requestid=late-1",
            &day_journal("2025-06-02", "LOC2-20250602", Some("2")),
        )
        .await;
    assert_eq!(status, 400);
    closed(&f);
    assert_eq!(q.sb.counters().creates_for("late-1"), 0);
    let (status, f) = q
        .post(
            "journalentry",
            &day_journal("2025-05-31", "LOC2-20250531", None),
        )
        .await;
    assert_eq!(status, 400);
    closed(&f);
    // The first open day is open.
    let (status, adjustment) = q
        .post(
            "journalentry",
            &day_journal("2025-06-03", "LOC1-20250602-A", Some("1")),
        )
        .await;
    assert_eq!(status, 200, "{adjustment}");
    let open_id = adjustment["JournalEntry"]["Id"]
        .as_str()
        .unwrap()
        .to_string();

    // A transaction in the closed period cannot change or go; one cannot move into it.
    let (status, f) = q
        .post(
            "journalentry",
            &json!({"sparse": true, "Id": closed_id, "SyncToken": "0", "PrivateNote": "late"}),
        )
        .await;
    assert_eq!(status, 400);
    closed(&f);
    let (status, f) = q
        .post(
            "journalentry",
            &json!({"sparse": true, "Id": open_id, "SyncToken": "0", "TxnDate": "2025-06-01"}),
        )
        .await;
    assert_eq!(status, 400);
    closed(&f);
    let (status, f) = q
        .post(
            "journalentry?operation=delete",
            &json!({"Id": closed_id, "SyncToken": "0"}),
        )
        .await;
    assert_eq!(status, 400);
    closed(&f);
    let (status, f) = q
        .post(
            "salesreceipt",
            &json!({"sparse": true, "Id": sr_id, "SyncToken": "0", "PrivateNote": "late"}),
        )
        .await;
    assert_eq!(status, 400);
    closed(&f);
    let (status, f) = q.post("refundreceipt", &refund("99")).await;
    assert_eq!(status, 400);
    closed(&f);
    let mut purchase: Value = serde_json::from_str(PURCHASE).unwrap();
    purchase["TxnDate"] = json!("2025-01-15");
    let (status, f) = q.post("purchase", &purchase).await;
    assert_eq!(status, 400);
    closed(&f);
    // In a batch, per item.
    let request = json!({"BatchItemRequest": [
        {"bId": "c1", "operation": "create", "JournalEntry": day_journal("2025-06-01", "B1", None)},
        {"bId": "c2", "operation": "create", "JournalEntry": day_journal("2025-06-04", "B2", None)},
    ]});
    let (status, resp) = q.post("batch", &request).await;
    assert_eq!(status, 200, "{resp}");
    closed(&resp["BatchItemResponse"][0]);
    assert_eq!(
        resp["BatchItemResponse"][1]["JournalEntry"]["SyncToken"],
        "0"
    );
    let entries = q.sb.journal_entries(&q.realm);
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].sync_token, "0", "the closed one is unchanged");

    // Reopened, the entry can be edited again.
    assert!(q.sb.clear_book_close_date(&q.realm));
    assert_eq!(q.sb.book_close_date(&q.realm), None);
    let (status, edited) = q
        .post(
            "journalentry",
            &json!({"sparse": true, "Id": closed_id, "SyncToken": "0", "PrivateNote": "late"}),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["JournalEntry"]["SyncToken"], "1");
}
