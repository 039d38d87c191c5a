//! Each provider client's requests pinned with wiremock (method, path, query,
//! headers, body), and the HTTP foundation's retry rules against real HTTP.

use jiff::{SignedDuration, Timestamp};
use secrecy::SecretString;
use serde_json::{Value, json};
use shared::adapters::file_secrets::FileSecrets;
use shared::adapters::sqlite::SqliteStore;
use shared::ids::{ProviderAccountId, SecretName};
use shared::model::Provider;
use shared::ports::{CachedSecrets, CallLog, CallOutcome, SecretStore};
use shared::providers::auth::{ClientAuth, Credentials, OAuthApp, StoredToken, TokenManager};
use shared::providers::http::{Idempotence, RetryPolicy};
use shared::providers::marketman::{MarketManClient, OrderLine};
use shared::providers::quickbooks::{BatchResult, QuickBooksClient};
use shared::providers::square::{SquareAuth, SquareClient};
use shared::providers::timetracking::TimeTrackingClient;
use shared::providers::toast::ToastClient;
use shared::providers::xero::{Collection, ItemResult, XeroClient};
use shared::providers::{ProviderError, ProviderHttp, RateScope};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{body_json, body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fixture(p: &str) -> Value {
    let s = std::fs::read_to_string(format!(
        "{}/../tests/fixtures/{p}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    serde_json::from_str(&s).unwrap()
}

struct Env {
    http: ProviderHttp,
    tokens: TokenManager,
    secrets: Arc<dyn SecretStore>,
    db: Arc<SqliteStore>,
}

async fn env() -> Env {
    let db = Arc::new(SqliteStore::in_memory().unwrap());
    let dir = std::env::temp_dir().join(format!("hub-clients-{}", uuid::Uuid::new_v4().simple()));
    let secrets: Arc<dyn SecretStore> = Arc::new(CachedSecrets::new(
        FileSecrets::new(dir.join("s.json")),
        Duration::from_secs(300),
    ));
    let http = ProviderHttp::new(db.clone(), db.clone()).with_policy(RetryPolicy {
        base_delay: Duration::from_millis(10),
        ..RetryPolicy::default()
    });
    let tokens = TokenManager::new(http.clone(), secrets.clone(), db.clone());
    Env {
        http,
        tokens,
        secrets,
        db,
    }
}

impl Env {
    async fn credentials(
        &self,
        name: &str,
        token: Option<(&str, i64)>,
        login: &[(&str, &str)],
    ) -> SecretName {
        let name = SecretName::new(name).unwrap();
        let creds = Credentials {
            token: token.map(|(t, secs)| StoredToken {
                access_token: t.into(),
                refresh_token: Some("refresh-1".into()),
                expires_at: Timestamp::now() + SignedDuration::from_secs(secs),
                refresh_expires_at: None,
            }),
            login: login
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        self.secrets.put(&name, &creds.to_secret()).await.unwrap();
        name
    }

    async fn stored(&self, name: &SecretName) -> Credentials {
        self.secrets.invalidate(name).await;
        Credentials::parse(&self.secrets.get(name).await.unwrap(), name).unwrap()
    }
}

fn app(provider: Provider, token_url: String) -> OAuthApp {
    OAuthApp {
        provider,
        authorize_url: "https://auth.example/authorize".into(),
        token_url,
        client_id: "client-1".into(),
        client_secret: SecretString::from("client-secret-1"),
        redirect_uri: "http://127.0.0.1:8080/connect/callback".into(),
        scopes: vec!["accounting".into()],
        client_auth: ClientAuth::BasicForm,
    }
}

#[tokio::test]
async fn toast_orders_bulk_walks_every_page_with_the_restaurant_header() {
    let server = MockServer::start().await;
    let e = env().await;
    let secret = e
        .credentials("t/toast", Some(("toast-token", 3600)), &[])
        .await;
    let order = fixture("toast/orders_bulk_order.json");
    let start: Timestamp = "2026-11-01T00:00:00Z".parse().unwrap();
    let end: Timestamp = "2026-11-02T00:00:00Z".parse().unwrap();
    let base = || {
        Mock::given(method("GET"))
            .and(path("/orders/v2/ordersBulk"))
            .and(query_param("startDate", "2026-11-01T00:00:00.000+0000"))
            .and(query_param("endDate", "2026-11-02T00:00:00.000+0000"))
            .and(query_param("pageSize", "100"))
            .and(header("authorization", "Bearer toast-token"))
            .and(header("toast-restaurant-external-id", "rest-1"))
    };
    base()
        .and(query_param("page", "1"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header(
                    "link",
                    "<https://x/orders/v2/ordersBulk?page=2>; rel=\"next\"",
                )
                .set_body_json(json!([order, order])),
        )
        .expect(1)
        .mount(&server)
        .await;
    base()
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([order])))
        .expect(1)
        .mount(&server)
        .await;
    let client = ToastClient::new(
        e.http.clone(),
        e.tokens.clone(),
        &server.uri(),
        ProviderAccountId::new("rest-1").unwrap(),
        secret,
    );
    let orders = client.orders_bulk(start, end).await.unwrap();
    assert_eq!(orders.len(), 3);
    // A window over a month is refused before any call.
    let err = client
        .orders_bulk(start, start + SignedDuration::from_hours(24 * 31))
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Validation(_)), "{err}");
}

#[tokio::test]
async fn toast_logs_in_once_and_stores_the_token_for_every_invocation() {
    let server = MockServer::start().await;
    let e = env().await;
    let secret = e
        .credentials(
            "t/toast",
            None,
            &[("client_id", "cid"), ("client_secret", "csecret")],
        )
        .await;
    let login = fixture("toast/auth_login_response.json");
    let token = login["token"]["accessToken"].as_str().unwrap().to_string();
    Mock::given(method("POST"))
        .and(path("/authentication/v1/authentication/login"))
        .and(body_json(json!({"clientId": "cid", "clientSecret": "csecret", "userAccessType": "TOAST_MACHINE_CLIENT"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(&login))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/menus/v2/metadata"))
        .and(header("authorization", format!("Bearer {token}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"restaurantGuid": "rest-1", "lastUpdated": "2026-11-28T10:00:00.000+0000"}),
        ))
        .expect(3)
        .mount(&server)
        .await;
    let client = ToastClient::new(
        e.http.clone(),
        e.tokens.clone(),
        &server.uri(),
        ProviderAccountId::new("rest-1").unwrap(),
        secret.clone(),
    );
    for _ in 0..3 {
        client.menus_metadata().await.unwrap();
    }
    assert_eq!(e.stored(&secret).await.token.unwrap().access_token, token);
}

#[tokio::test]
async fn square_payments_and_inventory_counts_follow_cursors() {
    let server = MockServer::start().await;
    let e = env().await;
    let secret = e
        .credentials("t/square", Some(("sq-token", 3600)), &[])
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/payments"))
        .and(query_param("begin_time", "2026-11-01T00:00:00Z"))
        .and(query_param("end_time", "2026-11-02T00:00:00Z"))
        .and(query_param("sort_order", "ASC"))
        .and(query_param("limit", "100"))
        .and(query_param("cursor", "c1"))
        .and(header("authorization", "Bearer sq-token"))
        .and(header(
            "square-version",
            shared::providers::square::SQUARE_VERSION,
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("square/list_payments_response_with_cursor.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/inventory/counts/batch-retrieve"))
        .and(body_json(
            json!({"location_ids": ["L1"], "updated_after": "2026-11-01T00:00:00Z"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture(
            "square/batch_retrieve_inventory_counts_response.json",
        )))
        .expect(1)
        .mount(&server)
        .await;
    let client = SquareClient::new(
        e.http.clone(),
        e.tokens.clone(),
        &server.uri(),
        &ProviderAccountId::new("M1").unwrap(),
        secret,
        SquareAuth::Personal,
    );
    let page = client
        .list_payments(
            "2026-11-01T00:00:00Z".parse().unwrap(),
            "2026-11-02T00:00:00Z".parse().unwrap(),
            None,
            Some("c1"),
        )
        .await
        .unwrap();
    assert!(!page.items.is_empty());
    assert!(page.cursor.is_some());
    let counts = client
        .batch_retrieve_inventory_counts(
            &["L1".into()],
            Some("2026-11-01T00:00:00Z".parse().unwrap()),
            None,
        )
        .await
        .unwrap();
    assert!(!counts.items.is_empty());
}

#[tokio::test]
async fn marketman_gets_a_token_posts_with_it_and_reads_max_calls_as_a_rate_limit() {
    let server = MockServer::start().await;
    let e = env().await;
    let secret = e
        .credentials(
            "t/marketman",
            None,
            &[("api_key", "key-1"), ("api_password", "pw-1")],
        )
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/buyers/auth/GetToken"))
        .and(body_json(json!({"APIKey": "key-1", "APIPassword": "pw-1"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"Token": "mm-token", "ExpireDateUTC": "2099/01/01 00:00:00", "IsSuccess": true, "ErrorMessage": null})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/buyers/inventory/GetInventoryItems"))
        .and(header("AUTH_TOKEN", "mm-token"))
        .and(body_json(json!({"BuyerGuid": "buyer-1"})))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"IsSuccess": true, "Items": [{"ID": "i1", "Name": "Flour"}]}),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/buyers/orders/CreateOrder"))
        .and(body_string_contains("\"CatalogItemCode\":\"FLOUR-25\""))
        // A JSON number: MarketMan refuses a quantity sent as a string.
        .and(body_string_contains("\"Quantity\":2.5"))
        .and(body_string_contains(
            "\"deliveryDateUTC\":\"2026/12/01 09:00:00\"",
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"IsSuccess": false, "ErrorMessage": "Reached max calls"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = MarketManClient::new(
        e.http.clone(),
        e.tokens.clone(),
        &server.uri(),
        ProviderAccountId::new("buyer-1").unwrap(),
        secret,
        &shared::providers::marketman::consumer("key"),
    );
    assert_eq!(client.inventory_items().await.unwrap()[0]["Name"], "Flour");
    let err = client
        .create_order(
            "vendor-1",
            "2026-12-01T09:00:00Z".parse().unwrap(),
            "weekly",
            &[OrderLine {
                catalog_item_code: "FLOUR-25".into(),
                quantity: "2.5".parse().unwrap(),
            }],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::RateLimited {
                retry_after: Some(_)
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn quickbooks_creates_with_requestid_and_turns_a_stale_synctoken_into_a_conflict() {
    let server = MockServer::start().await;
    let e = env().await;
    let secret = e.credentials("t/qbo", Some(("qbo-token", 3600)), &[]).await;
    let body = fixture("qbo/salesreceipt_create_request.json");
    Mock::given(method("POST"))
        .and(path("/v3/company/9130/salesreceipt"))
        .and(query_param("requestid", "ledger-key-v1"))
        .and(query_param("minorversion", "75"))
        .and(header("authorization", "Bearer qbo-token"))
        .and(body_json(&body))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("qbo/salesreceipt_create_response.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut fault = fixture("qbo/fault_template.json");
    fault["Fault"]["Error"][0] = json!({"Message": "Stale Object Error", "Detail": "You and root were working on this at the same time.", "code": "5010"});
    Mock::given(method("POST"))
        .and(path("/v3/company/9130/salesreceipt"))
        .and(query_param("requestid", "ledger-key-v2"))
        .and(body_string_contains("\"sparse\":true"))
        .and(body_string_contains("\"SyncToken\":\"0\""))
        .respond_with(ResponseTemplate::new(400).set_body_json(&fault))
        .expect(1)
        .mount(&server)
        .await;
    let client = QuickBooksClient::new(
        e.http.clone(),
        e.tokens.clone(),
        &server.uri(),
        ProviderAccountId::new("9130").unwrap(),
        secret,
        app(Provider::QuickBooks, format!("{}/token", server.uri())),
    );
    let saved = client
        .create("SalesReceipt", &body, "ledger-key-v1")
        .await
        .unwrap();
    assert_eq!(saved.sync_token, "0");
    assert!(!saved.id.is_empty());
    let err = client
        .sparse_update(
            "SalesReceipt",
            &saved.id,
            "0",
            &json!({"PrivateNote": "tip adjusted"}),
            "ledger-key-v2",
        )
        .await
        .unwrap_err();
    match err {
        ProviderError::Conflict(m) => assert_eq!(m[0].code.as_deref(), Some("5010")),
        other => panic!("expected a conflict, got {other}"),
    }
}

#[tokio::test]
async fn quickbooks_batches_and_queries_page_by_page() {
    let server = MockServer::start().await;
    let e = env().await;
    let secret = e.credentials("t/qbo", Some(("qbo-token", 3600)), &[]).await;
    Mock::given(method("POST"))
        .and(path("/v3/company/9130/batch"))
        .and(body_string_contains("\"operation\":\"create\""))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"BatchItemResponse": [
            {"bId": "a", "SalesReceipt": {"Id": "11", "SyncToken": "0"}},
            {"bId": "b", "Fault": {"type": "ValidationFault", "Error": [{"Message": "Invalid account", "code": "2500", "Detail": "AccountRef 99"}]}}
        ]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v3/company/9130/query"))
        .and(query_param(
            "query",
            "select * from Account STARTPOSITION 1 MAXRESULTS 1000",
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("qbo/account_query_response.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = QuickBooksClient::new(
        e.http.clone(),
        e.tokens.clone(),
        &server.uri(),
        ProviderAccountId::new("9130").unwrap(),
        secret,
        app(Provider::QuickBooks, format!("{}/token", server.uri())),
    );
    let items = vec![
        (
            "a".to_string(),
            "SalesReceipt".to_string(),
            json!({"Line": []}),
        ),
        (
            "b".to_string(),
            "SalesReceipt".to_string(),
            json!({"Line": []}),
        ),
    ];
    let results = client.batch_create(&items, "batch-1").await.unwrap();
    assert!(matches!(&results[0].1, BatchResult::Saved(s) if s.id == "11"));
    assert!(
        matches!(&results[1].1, BatchResult::Failed(ProviderError::Validation(m)) if m[0].message == "Invalid account: AccountRef 99")
    );
    assert!(!client.accounts().await.unwrap().is_empty());
}

#[tokio::test]
async fn xero_posts_bank_transactions_with_idempotency_key_and_reads_per_item_errors() {
    let server = MockServer::start().await;
    let e = env().await;
    let secret = e
        .credentials("t/xero", Some(("xero-token", 3600)), &[])
        .await;
    // The published example holds one refused item; add an accepted one beside it.
    let mut response = fixture("xero/bank_transactions_response_summarize_errors_false.json");
    let mut ok = response["BankTransactions"][0].clone();
    ok["StatusAttributeString"] = "OK".into();
    ok["ValidationErrors"] = json!([]);
    ok["BankTransactionID"] = "bt-ok".into();
    response["BankTransactions"]
        .as_array_mut()
        .unwrap()
        .insert(0, ok);
    let n = 2;
    // POST is Xero's update-or-create; PUT would never update a posted row.
    Mock::given(method("POST"))
        .and(path("/api.xro/2.0/BankTransactions"))
        .and(query_param("summarizeErrors", "false"))
        .and(header("idempotency-key", "batch-abc"))
        .and(header("xero-tenant-id", "tenant-1"))
        .and(header("authorization", "Bearer xero-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&response))
        .expect(1)
        .mount(&server)
        .await;
    let client = XeroClient::new(
        e.http.clone(),
        e.tokens.clone(),
        &server.uri(),
        ProviderAccountId::new("tenant-1").unwrap(),
        secret,
        app(Provider::Xero, format!("{}/token", server.uri())),
    );
    let items = vec![json!({"Type": "RECEIVE"}); n];
    let results = client
        .save(Collection::BankTransactions, &items, "batch-abc")
        .await
        .unwrap();
    assert!(matches!(&results[0], ItemResult::Saved { id, .. } if id == "bt-ok"));
    assert!(
        matches!(&results[1], ItemResult::Invalid(m) if m[0].message.starts_with("The Contact must contain"))
    );
}

#[tokio::test]
async fn time_entries_are_posted_with_the_bearer_token() {
    let server = MockServer::start().await;
    let e = env().await;
    let secret = e
        .credentials("t/time", None, &[("api_token", "tt-token")])
        .await;
    let entry = json!({"employee_id": "e1", "clock_in": "2026-11-28T22:00:00Z", "clock_out": "2026-11-29T02:30:00Z", "hours": "4.50"});
    Mock::given(method("POST"))
        .and(path("/api/timeentries"))
        .and(header("authorization", "Bearer tt-token"))
        .and(body_json(&entry))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "te-1"})))
        .expect(1)
        .mount(&server)
        .await;
    let client = TimeTrackingClient::new(e.http.clone(), e.secrets.clone(), &server.uri(), secret);
    assert_eq!(client.create(&entry, None).await.unwrap()["id"], "te-1");
}

#[tokio::test]
async fn an_expired_oauth_token_is_refreshed_and_the_rotated_refresh_token_stored() {
    let server = MockServer::start().await;
    let e = env().await;
    let secret = e.credentials("t/qbo", Some(("old-token", -10)), &[]).await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(header("authorization", "Basic Y2xpZW50LTE6Y2xpZW50LXNlY3JldC0x"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=refresh-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": "new-token", "refresh_token": "refresh-2", "expires_in": 3600, "x_refresh_token_expires_in": 8_726_400, "token_type": "bearer"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v3/company/9130/query"))
        .and(header("authorization", "Bearer new-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"QueryResponse": {}})))
        .expect(1)
        .mount(&server)
        .await;
    let client = QuickBooksClient::new(
        e.http.clone(),
        e.tokens.clone(),
        &server.uri(),
        ProviderAccountId::new("9130").unwrap(),
        secret.clone(),
        app(Provider::QuickBooks, format!("{}/token", server.uri())),
    );
    client.accounts().await.unwrap();
    let stored = e.stored(&secret).await.token.unwrap();
    assert_eq!(
        (
            stored.access_token.as_str(),
            stored.refresh_token.as_deref()
        ),
        ("new-token", Some("refresh-2"))
    );
    assert!(stored.refresh_expires_at.is_some());
}

fn scope() -> RateScope {
    RateScope::new(Provider::Xero, "tenant-r", Vec::new(), None)
}

#[tokio::test]
async fn a_429_is_waited_out_5xx_retried_and_other_4xx_not() {
    let server = MockServer::start().await;
    let e = env().await;
    Mock::given(method("GET"))
        .and(path("/limited"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .insert_header("x-rate-limit-problem", "minute"),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/limited"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/flaky"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/flaky"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/invalid"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"Message": "A validation exception occurred", "Type": "ValidationException"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let get = |p: &'static str| {
        let url = format!("{}{p}", server.uri());
        let http = e.http.clone();
        async move {
            http.send(
                &scope(),
                p,
                Idempotence::Safe,
                shared::providers::xero::errors,
                || http.client().get(&url),
            )
            .await
        }
    };
    get("/limited").await.unwrap();
    // The retry started no sooner than the 429's answer plus its Retry-After
    // (1 s): an ordering of the two calls the log recorded, not a stopwatch.
    let limited =
        e.db.since(
            "xero:tenant-r",
            Timestamp::now() - SignedDuration::from_mins(1),
        )
        .await
        .unwrap();
    let [refused, retried] = &limited[..] else {
        panic!("expected the 429 and its retry: {limited:?}");
    };
    assert_eq!(
        (refused.status, retried.status),
        (Some(429), Some(200)),
        "{limited:?}"
    );
    let answered = refused.at + SignedDuration::from_millis(refused.latency_ms as i64);
    assert!(
        retried.at >= answered + SignedDuration::from_secs(1),
        "Retry-After was not waited out: answered {answered}, retried {}",
        retried.at
    );
    get("/flaky").await.unwrap();
    match get("/invalid").await.unwrap_err() {
        ProviderError::Validation(m) => assert_eq!(m[0].message, "A validation exception occurred"),
        other => panic!("{other}"),
    }
    let calls =
        e.db.since(
            "xero:tenant-r",
            Timestamp::now() - SignedDuration::from_mins(1),
        )
        .await
        .unwrap();
    let outcomes: Vec<CallOutcome> = calls.iter().map(|c| c.outcome).collect();
    assert_eq!(
        outcomes,
        [
            CallOutcome::RateLimited,
            CallOutcome::Ok,
            CallOutcome::Transient,
            CallOutcome::Transient,
            CallOutcome::Ok,
            CallOutcome::Validation
        ]
    );
}

#[tokio::test]
async fn a_write_without_idempotency_key_is_not_retried_after_a_500() {
    let server = MockServer::start().await;
    let e = env().await;
    Mock::given(method("POST"))
        .and(path("/create"))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&server)
        .await;
    let url = format!("{}/create", server.uri());
    let err = e
        .http
        .send(
            &scope(),
            "create",
            Idempotence::Unsafe,
            shared::providers::xero::errors,
            || e.http.client().post(&url),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Transient(_)), "{err}");
}
