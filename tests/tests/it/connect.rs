//! The OAuth connect flow as an operator and a provider drive it: start at
//! `GET /connect/{provider}`, follow the redirect's `state` back to the
//! callback with a code, and find the connection registered and its tokens
//! stored. Bad states and unknown tenants are refused with the reason.

use crate::backends::{Backend, conformance};
use hub::serve::{AppState, run};
use serde_json::json;
use shared::Stores;
use shared::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
use shared::model::{Provider, Tenant};
use shared::providers::Endpoints;
use shared::providers::auth::Credentials;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

conformance!(
    quickbooks_is_connected_through_the_code_flow,
    xero_tenants_come_from_its_connections_endpoint,
    bad_connect_requests_are_refused_with_the_reason,
);

struct Setup {
    base: String,
    stores: Stores,
    provider: MockServer,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
    _backend: Backend,
}

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
        stores
            .secrets
            .put(
                &SecretName::new(format!("apps/{p}")).unwrap(),
                &json!({"client_id": format!("{p}-client"), "client_secret": "app-secret"})
                    .to_string()
                    .into(),
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
    let state = AppState::with_connect(stores.clone(), Default::default(), endpoints, &base);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run(listener, state, async {
        let _ = stopped.await;
    }));
    Setup {
        base,
        stores,
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

    /// Starts a flow and returns the `state` from the authorize redirect.
    async fn start(&self, provider: &str) -> String {
        let (status, loc, body) = self
            .get(&format!("/connect/{provider}?tenant=bistro&connection=books&time_zone=America/New_York&close=04:00"))
            .await;
        assert_eq!(status, 302, "{body}");
        let url = url::Url::parse(&loc.unwrap()).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["client_id"], format!("{provider}-client"));
        assert_eq!(
            q["redirect_uri"],
            format!("{}/connect/{provider}/callback", self.base)
        );
        assert_eq!(q["response_type"], "code");
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
    let (status, _, body) = s
        .get("/connect/quickbooks?tenant=nobody&connection=books&time_zone=UTC")
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("tenant nobody does not exist"), "{body}");
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
