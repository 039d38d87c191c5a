//! The OAuth connect flow as an operator and a provider drive it: start at
//! `GET /connect/{provider}` with a link the hub signed, follow the
//! redirect's `state` back to the callback with a code, and find the
//! connection registered and its tokens stored. Unsigned, tampered, expired
//! and reused links, bad states and unknown tenants are refused with the
//! reason; a connection is moved to another account only when the link said
//! so.

use crate::backends::{Backend, conformance};
use hub::serve::{AppState, run};
use serde_json::json;
use shared::Stores;
use shared::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
use shared::model::{Provider, Tenant};
use shared::providers::Endpoints;
use shared::providers::auth::Credentials;
use shared::providers::connect::{ConnectService, PendingConnect};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

conformance!(
    quickbooks_is_connected_through_the_code_flow,
    xero_tenants_come_from_its_connections_endpoint,
    bad_connect_requests_are_refused_with_the_reason,
    the_start_needs_a_link_the_hub_signed_and_it_works_once,
    a_connection_moves_to_another_account_only_when_the_link_says_replace,
);

struct Setup {
    base: String,
    stores: Stores,
    service: ConnectService,
    provider: MockServer,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
    _backend: Backend,
}

/// The scopes the test's Xero app asks for instead of the defaults.
const XERO_SCOPES: &[&str] = &[
    "offline_access",
    "openid",
    "accounting.transactions",
    "accounting.settings.read",
];

async fn setup(b: Backend) -> Setup {
    let provider = MockServer::start().await;
    let stores = b.stores(5).await;
    stores
        .connections
        .put_tenant(&Tenant {
            id: TenantId::new("bistro").unwrap(),
            name: "Bistro".into(),
        })
        .await
        .unwrap();
    for p in ["quickbooks", "xero"] {
        let mut app = json!({"client_id": format!("{p}-client"), "client_secret": "app-secret"});
        if p == "xero" {
            // The scopes are the app's to choose (Xero's granular scopes for
            // new apps); QuickBooks keeps the default.
            app["scopes"] = json!(XERO_SCOPES);
        }
        stores
            .secrets
            .put(
                &SecretName::new(format!("apps/{p}")).unwrap(),
                &app.to_string().into(),
            )
            .await
            .unwrap();
    }
    let endpoints = Endpoints {
        quickbooks_token: format!("{}/oauth2/v1/tokens/bearer", provider.uri()),
        xero_token: format!("{}/connect/token", provider.uri()),
        xero: provider.uri(),
        ..Endpoints::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let service = ConnectService::new(
        stores.clone(),
        stores.provider_http(),
        endpoints.clone(),
        &base,
    );
    let state = AppState::with_connect(stores.clone(), Default::default(), endpoints, &base);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run(listener, state, async {
        let _ = stopped.await;
    }));
    Setup {
        base,
        stores,
        service,
        provider,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _stop: stop,
        _backend: b,
    }
}

impl Setup {
    async fn get(&self, path_and_query: &str) -> (u16, Option<String>, String) {
        let r = self
            .http
            .get(format!("{}{path_and_query}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let loc = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        (status, loc, r.text().await.unwrap())
    }

    /// A signed link (its path and query) starting `provider` for
    /// bistro/books, as `hub connect --link` issues it.
    async fn link(&self, provider: &str, replace: bool) -> String {
        let pending = PendingConnect {
            provider: provider.parse().unwrap(),
            tenant: TenantId::new("bistro").unwrap(),
            connection: ConnectionId::new("books").unwrap(),
            time_zone: shared::model::TimeZoneName::new("America/New_York").unwrap(),
            business_day_close: shared::model::BusinessDayClose("04:00".parse().unwrap()),
            replace,
        };
        let url = self
            .service
            .issue_link(&pending, jiff::SignedDuration::from_mins(15))
            .await
            .unwrap();
        url.strip_prefix(&self.base).unwrap().to_string()
    }

    /// Starts a flow and returns the `state` from the authorize redirect.
    async fn start(&self, provider: &str) -> String {
        self.start_with(provider, false).await
    }

    /// A QuickBooks flow from its signed start to the callback with `code`
    /// for `realm`: the callback's status and body.
    async fn authorize_quickbooks(&self, code: &str, realm: &str, replace: bool) -> (u16, String) {
        let state = self.start_with("quickbooks", replace).await;
        let (status, _, body) = self
            .get(&format!(
                "/connect/quickbooks/callback?code={code}&state={state}&realmId={realm}"
            ))
            .await;
        (status, body)
    }

    async fn start_with(&self, provider: &str, replace: bool) -> String {
        let link = self.link(provider, replace).await;
        let (status, loc, body) = self.get(&link).await;
        assert_eq!(status, 302, "{body}");
        let url = url::Url::parse(&loc.unwrap()).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["client_id"], format!("{provider}-client"));
        assert_eq!(
            q["redirect_uri"],
            format!("{}/connect/{provider}/callback", self.base)
        );
        assert_eq!(q["response_type"], "code");
        let scope = match provider {
            "xero" => XERO_SCOPES.join(" "),
            _ => "com.intuit.quickbooks.accounting".to_string(),
        };
        assert_eq!(q["scope"], scope);
        q["state"].clone()
    }
}

fn token_response(access: &str, refresh: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"access_token": access, "refresh_token": refresh, "expires_in": 3600, "x_refresh_token_expires_in": 8_726_400, "token_type": "bearer"}))
}

async fn quickbooks_is_connected_through_the_code_flow(b: Backend) {
    let s = setup(b).await;
    Mock::given(method("POST"))
        .and(path("/oauth2/v1/tokens/bearer"))
        .and(header(
            "authorization",
            "Basic cXVpY2tib29rcy1jbGllbnQ6YXBwLXNlY3JldA==",
        ))
        .and(body_string_contains("grant_type=authorization_code"))
        .and(body_string_contains("code=code-123"))
        .respond_with(token_response("qbo-access", "qbo-refresh"))
        .expect(1)
        .mount(&s.provider)
        .await;
    let state = s.start("quickbooks").await;
    let (status, _, body) = s
        .get(&format!(
            "/connect/quickbooks/callback?code=code-123&state={state}&realmId=9130"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["connected"][0]["account"], "9130");
    let c = s
        .stores
        .connections
        .find_by_account(
            Provider::QuickBooks,
            &ProviderAccountId::new("9130").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            c.tenant.as_str(),
            c.id.as_str(),
            c.business_day_close.0.to_string().as_str()
        ),
        ("bistro", "books", "04:00:00")
    );
    let creds = Credentials::parse(
        &s.stores.secrets.get(&c.credentials).await.unwrap(),
        &c.credentials,
    )
    .unwrap();
    assert_eq!(
        creds.token.unwrap().refresh_token.as_deref(),
        Some("qbo-refresh")
    );
    // A state belongs to its provider.
    let state = s.start("quickbooks").await;
    let (status, _, body) = s
        .get(&format!("/connect/xero/callback?code=c&state={state}"))
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("issued for quickbooks, not xero"), "{body}");
}

async fn xero_tenants_come_from_its_connections_endpoint(b: Backend) {
    let s = setup(b).await;
    Mock::given(method("POST"))
        .and(path("/connect/token"))
        .and(body_string_contains("code=xero-code"))
        .respond_with(token_response("xero-access", "xero-refresh"))
        .expect(1)
        .mount(&s.provider)
        .await;
    let mut connections: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/fixtures/xero/connections_response.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let tenant_id = connections[0]["tenantId"].as_str().unwrap().to_string();
    connections[0]["tenantType"] = "ORGANISATION".into();
    Mock::given(method("GET"))
        .and(path("/connections"))
        .and(header("authorization", "Bearer xero-access"))
        .respond_with(ResponseTemplate::new(200).set_body_json(&connections))
        .expect(1)
        .mount(&s.provider)
        .await;
    let state = s.start("xero").await;
    let (status, _, body) = s
        .get(&format!(
            "/connect/xero/callback?code=xero-code&state={state}"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let c = s
        .stores
        .connections
        .get(
            &TenantId::new("bistro").unwrap(),
            &ConnectionId::new("books").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.provider, c.account_id.as_str()),
        (Provider::Xero, tenant_id.as_str())
    );
}

async fn bad_connect_requests_are_refused_with_the_reason(b: Backend) {
    let s = setup(b).await;
    let (status, _, body) = s
        .get("/connect/quickbooks/callback?code=c&state=never-issued&realmId=1")
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("unknown or expired state"), "{body}");
    let nobody = PendingConnect {
        provider: Provider::QuickBooks,
        tenant: TenantId::new("nobody").unwrap(),
        connection: ConnectionId::new("books").unwrap(),
        time_zone: shared::model::TimeZoneName::new("UTC").unwrap(),
        business_day_close: Default::default(),
        replace: false,
    };
    let err = s
        .service
        .issue_link(&nobody, jiff::SignedDuration::from_mins(5))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("tenant nobody does not exist"),
        "{err}"
    );
    let (status, _, body) = s
        .get("/connect/quickbooks?tenant=bistro&connection=books")
        .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("missing query parameter `time_zone`"),
        "{body}"
    );
    let (status, _, body) = s
        .get("/connect/toast?tenant=bistro&connection=pos&time_zone=UTC")
        .await;
    assert_eq!(status, 404);
    assert!(
        body.contains("toast connections are not made through OAuth"),
        "{body}"
    );
    let (status, _, body) = s
        .get("/connect/quickbooks/callback?error=access_denied&state=x")
        .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("declined at quickbooks: access_denied"),
        "{body}"
    );
    let state = s.start("quickbooks").await;
    let (status, _, body) = s
        .get(&format!(
            "/connect/quickbooks/callback?code=c&state={state}"
        ))
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("no realmId"), "{body}");
}

async fn the_start_needs_a_link_the_hub_signed_and_it_works_once(b: Backend) {
    let s = setup(b).await;
    // No link: the door that let anyone point a tenant's books elsewhere.
    let (status, loc, body) = s
        .get("/connect/quickbooks?tenant=bistro&connection=books&time_zone=UTC")
        .await;
    assert_eq!((status, loc), (401, None), "{body}");
    assert!(body.contains("needs a link signed by the hub"), "{body}");

    let link = s.link("quickbooks", false).await;
    // Any parameter changed: the signature no longer holds.
    for (from, to) in [
        ("tenant=bistro", "tenant=bistro2"),
        ("connection=books", "connection=other"),
        ("replace=false", "replace=true"),
        ("close=04%3A00", "close=05%3A00"),
    ] {
        assert!(link.contains(from), "{link}");
        let (status, _, body) = s.get(&link.replace(from, to)).await;
        assert_eq!(status, 401, "{from} -> {to}: {body}");
        assert!(
            body.contains("does not match") || body.contains("tenant bistro2"),
            "{body}"
        );
    }
    // The expiry is signed too: moved later, it no longer matches; moved
    // into the past, it has expired.
    let expires: i64 = url::form_urlencoded::parse(link.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "expires")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let later = link.replace(
        &format!("expires={expires}"),
        &format!("expires={}", expires + 60),
    );
    let (status, _, body) = s.get(&later).await;
    assert_eq!(status, 401);
    assert!(body.contains("does not match"), "{body}");
    let past = link.replace(
        &format!("expires={expires}"),
        &format!("expires={}", jiff::Timestamp::now().as_second() - 1),
    );
    let (status, _, body) = s.get(&past).await;
    assert_eq!(status, 401);
    assert!(body.contains("expired"), "{body}");

    // As issued: it starts the flow, once.
    let (status, loc, body) = s.get(&link).await;
    assert_eq!(status, 302, "{body}");
    assert!(loc.unwrap().contains("state="));
    let (status, _, body) = s.get(&link).await;
    assert_eq!(status, 401);
    assert!(body.contains("already used"), "{body}");
}

async fn a_connection_moves_to_another_account_only_when_the_link_says_replace(b: Backend) {
    let s = setup(b).await;
    Mock::given(method("POST"))
        .and(path("/oauth2/v1/tokens/bearer"))
        .and(body_string_contains("grant_type=authorization_code"))
        .respond_with(token_response("qbo-access", "qbo-refresh"))
        .mount(&s.provider)
        .await;
    let books = |s: &Setup| {
        let stores = s.stores.clone();
        async move {
            stores
                .connections
                .get(
                    &TenantId::new("bistro").unwrap(),
                    &ConnectionId::new("books").unwrap(),
                )
                .await
                .unwrap()
                .unwrap()
        }
    };
    let (status, body) = s.authorize_quickbooks("c1", "9130", false).await;
    assert_eq!(status, 200, "{body}");
    let first = books(&s).await;
    assert_eq!(first.account_id.as_str(), "9130");
    assert_eq!(first.credentials.as_str(), "tenants/bistro/books");

    // Someone authorizes another company on a link without --replace.
    let (status, body) = s.authorize_quickbooks("c2", "6666", false).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("linked to quickbooks account 9130") && body.contains("--replace"),
        "{body}"
    );
    assert_eq!(books(&s).await, first, "nothing changed");

    // The same company again renews the connection's tokens.
    let (status, body) = s.authorize_quickbooks("c3", "9130", false).await;
    assert_eq!(status, 200, "{body}");

    // The operator decided: the link says replace.
    let (status, body) = s.authorize_quickbooks("c4", "6666", true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(books(&s).await.account_id.as_str(), "6666");
}
