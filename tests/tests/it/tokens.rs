//! The refresh-token race: twenty invocations (each with its own secret cache
//! and token manager, as separate Lambda invocations have) find the same
//! expired access token at once. Exactly one refresh reaches the token
//! endpoint, all twenty get the new token, and the stored refresh token is the
//! newest one. The token endpoint rotates refresh tokens and refuses a used one
//! with `invalid_grant`, as Intuit's and Xero's do.

use crate::backends::{Backend, conformance};
use jiff::{SignedDuration, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use shared::ids::SecretName;
use shared::model::Provider;
use shared::ports::{CachedSecrets, SecretStore};
use shared::providers::ProviderHttp;
use shared::providers::auth::{ClientAuth, Credentials, OAuthApp, StoredToken, TokenManager};
use std::sync::Arc;
use std::time::Duration;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

conformance!(twenty_racing_invocations_refresh_an_expired_token_once);

async fn twenty_racing_invocations_refresh_an_expired_token_once(b: Backend) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/v1/tokens/bearer"))
        .and(body_string_contains("refresh_token=refresh-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_millis(300))
                .set_body_json(json!({"access_token": "access-2", "refresh_token": "refresh-2", "expires_in": 3600, "token_type": "bearer"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth2/v1/tokens/bearer"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})))
        .expect(0)
        .mount(&server)
        .await;

    let name = SecretName::new(format!(
        "tenant-{}/quickbooks",
        uuid::Uuid::new_v4().simple()
    ))
    .unwrap();
    let expired = Credentials {
        token: Some(StoredToken {
            access_token: "access-1".into(),
            refresh_token: Some("refresh-1".into()),
            expires_at: Timestamp::now() - SignedDuration::from_secs(5),
            refresh_expires_at: None,
        }),
        login: Default::default(),
    };
    b.secrets().put(&name, &expired.to_secret()).await.unwrap();
    let app = OAuthApp {
        provider: Provider::QuickBooks,
        authorize_url: "https://appcenter.example/connect/oauth2".into(),
        token_url: format!("{}/oauth2/v1/tokens/bearer", server.uri()),
        client_id: "client".into(),
        client_secret: SecretString::from("secret"),
        redirect_uri: "http://127.0.0.1:8080/connect/quickbooks/callback".into(),
        scopes: vec!["com.intuit.quickbooks.accounting".into()],
        client_auth: ClientAuth::BasicForm,
    };

    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            // Each invocation: its own cache and manager, shared stores behind them.
            let secrets: Arc<dyn SecretStore> =
                Arc::new(CachedSecrets::new(b.secrets(), Duration::from_secs(300)));
            let http = ProviderHttp::new(b.rate_limits.clone(), b.calls.clone());
            let tokens = TokenManager::new(http, secrets, b.idempotency.clone());
            let (name, app, barrier) = (name.clone(), app.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                tokens.access_token(&name, &app).await
            })
        })
        .collect();
    for t in tasks {
        let token = t.await.unwrap().unwrap();
        assert_eq!(token.expose_secret(), "access-2");
    }
    let stored = Credentials::parse(&b.secrets().get(&name).await.unwrap(), &name).unwrap();
    let token = stored.token.unwrap();
    assert_eq!(
        (token.access_token.as_str(), token.refresh_token.as_deref()),
        ("access-2", Some("refresh-2"))
    );
    // `expect(1)` on the token endpoint is verified when the server drops.
}
