//! Webhook functions fed real Lambda event payloads (API Gateway HTTP API and
//! Function URL, format 2.0), as the Lambda runtime hands them over.

use base64::Engine;
use hub_lambda::webhook::handle;
use lambda_http::Body;
use shared::adapters::file_secrets::FileSecrets;
use shared::adapters::sqlite::SqliteStore;
use shared::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
use shared::model::{Connection, Provider, Tenant, TimeZoneName};
use shared::webhooks::{
    SignedParts, WebhookIntake, WebhookSettings, WorkItem, sign, signing_key_secret,
};
use shared::{Config, Stores};
use std::time::Duration;

const BODY: &[u8] = include_bytes!("../../../tests/fixtures/square/webhook_test_notification.json");
const KEY: &str = "square-signature-key";

async fn intake(notification_url: Option<&str>) -> WebhookIntake {
    let dir = std::env::temp_dir().join(format!(
        "hub-lambda-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let config = Config::from_lookup(|_| None).unwrap();
    let stores = Stores::embedded(
        SqliteStore::in_memory().unwrap(),
        FileSecrets::new(dir.join("s.json")),
        5,
        &config,
    );
    stores
        .secrets
        .put(
            &signing_key_secret(Provider::Square),
            &KEY.to_string().into(),
        )
        .await
        .unwrap();
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
        .connections
        .register(&Connection {
            id: ConnectionId::new("square").unwrap(),
            tenant,
            provider: Provider::Square,
            account_id: ProviderAccountId::new("MLEFBHHSJGVHD").unwrap(),
            time_zone: TimeZoneName::new("America/Los_Angeles").unwrap(),
            business_day_close: Default::default(),
            credentials: SecretName::new("bistro/square").unwrap(),
            mappings: Default::default(),
            codes: Default::default(),
            currency: None,
            books: Default::default(),
        })
        .await
        .unwrap();
    let settings = WebhookSettings {
        square_notification_url: notification_url.map(str::to_string),
        ..Default::default()
    };
    WebhookIntake::new(stores, settings)
}

/// A payload-format-2.0 event as API Gateway or a Function URL sends it.
fn event(domain: &str, signature: &str, base64_body: bool) -> String {
    let body = if base64_body {
        base64::engine::general_purpose::STANDARD.encode(BODY)
    } else {
        String::from_utf8(BODY.to_vec()).unwrap()
    };
    serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/webhooks/square",
        "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "host": domain,
            "x-square-hmacsha256-signature": signature,
            "square-environment": "Production"
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": domain,
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": "/webhooks/square",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "Square Connect v2"
            },
            "requestId": "req-lambda-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "29/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1_795_946_400_000u64
        },
        "body": body,
        "isBase64Encoded": base64_body
    })
    .to_string()
}

async fn queued(intake: &WebhookIntake) -> Vec<WorkItem> {
    intake
        .stores()
        .work_queue
        .receive(10, Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap()
        .into_iter()
        .map(|m| serde_json::from_str(&m.body).unwrap())
        .collect()
}

#[tokio::test]
async fn a_base64_encoded_http_api_delivery_is_verified_and_enqueued() {
    let url = "https://hooks.example.com/webhooks/square";
    let intake = intake(Some(url)).await;
    let sig = sign(
        Provider::Square,
        SignedParts {
            body: BODY,
            url: Some(url),
        },
        &KEY.to_string().into(),
    )
    .unwrap();
    let req = lambda_http::request::from_str(&event(
        "abc123.execute-api.us-east-1.amazonaws.com",
        &sig,
        true,
    ))
    .unwrap();
    let resp = handle(&intake, Provider::Square, req).await;
    assert_eq!(resp.status(), 200);
    let Body::Text(text) = resp.body() else {
        panic!("expected a JSON body")
    };
    assert!(text.contains("\"accepted\":1"), "{text}");
    let items = queued(&intake).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].tenant.as_str(), "bistro");
}

#[tokio::test]
async fn a_function_url_delivery_signs_its_own_url_when_none_is_configured() {
    // With no configured URL the function checks the URL it was called on.
    let domain = "abcdefghij.lambda-url.us-east-1.on.aws";
    let url = format!("https://{domain}/webhooks/square");
    let intake = intake(None).await;
    let sig = sign(
        Provider::Square,
        SignedParts {
            body: BODY,
            url: Some(&url),
        },
        &KEY.to_string().into(),
    )
    .unwrap();
    let req = lambda_http::request::from_str(&event(domain, &sig, false)).unwrap();
    assert_eq!(handle(&intake, Provider::Square, req).await.status(), 200);

    let forged = sign(
        Provider::Square,
        SignedParts {
            body: BODY,
            url: Some(&url),
        },
        &"other".to_string().into(),
    )
    .unwrap();
    let req = lambda_http::request::from_str(&event(domain, &forged, false)).unwrap();
    let resp = handle(&intake, Provider::Square, req).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        queued(&intake).await.len(),
        1,
        "the forged copy stored nothing"
    );
}
