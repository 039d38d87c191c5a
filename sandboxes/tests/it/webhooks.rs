//! The webhook sender signs exactly as the providers do: its own signing code
//! is checked against known-answer vectors computed outside the hub (and the
//! providers' published ones), and its deliveries against the hub's verifier.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use http::HeaderMap;
use hub_sandboxes::toast::{ToastConfig, ToastSandbox};
use hub_sandboxes::webhook::{SignError, signature, signed_headers};
use hub_sandboxes::{Sandboxes, send_webhook};
use shared::model::Provider;
use shared::webhooks::{SignedParts, SigningKeys, verify};
use std::sync::{Arc, Mutex};

const SQUARE_BODY: &[u8] =
    include_bytes!("../../../tests/fixtures/square/webhook_test_notification.json");
const QBO_BODY: &[u8] =
    include_bytes!("../../../tests/fixtures/qbo/webhook_legacy_event_notifications.json");

/// One known-answer vector of `tests/fixtures/signatures/<provider>.json`
/// (see `generate.py` there: computed with Python's `hmac`, or copied from
/// the providers' SDK tests).
struct Vector {
    provider: Provider,
    name: String,
    body: Vec<u8>,
    url: String,
    key: String,
    signature: String,
    expect: String,
}

fn vectors(provider: Provider) -> Vec<Vector> {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures");
    let path = format!("{fixtures}/signatures/{provider}.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let text = |v: &serde_json::Value, field: &str| v[field].as_str().unwrap_or("").to_string();
    doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let mut body = match v["body"].as_str() {
                Some(b) => b.as_bytes().to_vec(),
                None => std::fs::read(format!("{fixtures}/{}", text(v, "body_file"))).unwrap(),
            };
            if let Some(edit) = v.get("edit") {
                let (old, new) = (text(edit, "replace"), text(edit, "with"));
                let s = String::from_utf8(body).unwrap();
                assert!(s.contains(&old), "{path}: edit of {}", text(v, "name"));
                body = s.replacen(&old, &new, 1).into_bytes();
            }
            Vector {
                provider,
                name: text(v, "name"),
                body,
                url: text(v, "url"),
                key: text(v, "key"),
                signature: text(v, "signature"),
                expect: text(v, "expect"),
            }
        })
        .collect()
}

#[test]
fn the_sandbox_signs_as_the_known_answer_vectors_say() {
    for provider in [
        Provider::Toast,
        Provider::Xero,
        Provider::Square,
        Provider::QuickBooks,
    ] {
        let vectors = vectors(provider);
        assert!(vectors.iter().any(|v| v.expect == "valid"), "{provider}");
        for v in vectors {
            let what = format!("{}: {}", v.provider, v.name);
            let signed = signature(v.provider, &v.url, &v.body, &v.key);
            match v.expect.as_str() {
                "valid" => {
                    assert_eq!(signed, Ok(Some(v.signature.clone())), "{what}");
                    let h = signed_headers(v.provider, &v.url, &v.body, &v.key).unwrap();
                    let name = hub_sandboxes::webhook::signature_header(v.provider).unwrap();
                    assert_eq!(h[name], v.signature.as_str(), "{what}: header");
                }
                "missing_timestamp" => {
                    assert_eq!(signed, Err(SignError::MissingTimestamp), "{what}")
                }
                _ => {
                    let signed = signed.unwrap().unwrap();
                    assert_ne!(signed, v.signature, "{what}: must not sign to this");
                }
            }
        }
    }
}

#[test]
fn the_sandbox_sends_the_providers_other_headers() {
    let h = signed_headers(
        Provider::Square,
        "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9",
        SQUARE_BODY,
        "Ibxx_5AKakO-3qeNVR61Dw",
    )
    .unwrap();
    assert_eq!(h["square-environment"], "Sandbox");
    assert!(h.contains_key("square-initial-delivery-timestamp"));
    // Toast signs the body's own timestamp; without one it cannot sign.
    assert!(signed_headers(Provider::Toast, "http://x", b"{}", "k").is_err());
    // Square signs the URL; without one it cannot sign.
    assert_eq!(
        signature(Provider::Square, "", SQUARE_BODY, "k"),
        Err(SignError::MissingUrl)
    );
    // MarketMan does not sign.
    assert_eq!(
        signature(Provider::MarketMan, "http://x", b"{}", "k"),
        Ok(None)
    );
}

type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

async fn receiver() -> (String, Seen, tokio::task::JoinHandle<()>) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(seen): State<Seen>, headers: HeaderMap, body: Bytes| async move {
                    seen.lock().unwrap().push((headers, body.to_vec()));
                    http::StatusCode::ACCEPTED
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, seen, task)
}

#[tokio::test]
async fn every_provider_webhook_verifies_with_the_hub_verifier() {
    let (url, seen, task) = receiver().await;
    let toast = ToastSandbox::start(ToastConfig {
        days: 1,
        orders_per_day: 1,
        ..ToastConfig::seeded(2)
    })
    .await
    .unwrap();
    let restaurant = toast.restaurant_guids()[0].clone();
    let order = toast.orders(&restaurant)[0].guid.clone();
    let toast_body = toast.order_updated_event(&restaurant, &order).unwrap();
    let xero_body =
        include_bytes!("../../../tests/fixtures/xero/webhook_contact_update.json").to_vec();
    let cases = [
        (Provider::Toast, toast_body),
        (Provider::Square, SQUARE_BODY.to_vec()),
        (Provider::QuickBooks, QBO_BODY.to_vec()),
        (Provider::Xero, xero_body),
    ];
    for (provider, body) in &cases {
        let status = send_webhook(*provider, &url, body, "sandbox-signing-key")
            .await
            .unwrap();
        assert_eq!(status, 202);
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    for ((provider, body), (headers, received)) in cases.iter().zip(&seen) {
        assert_eq!(received, body, "{provider}: raw bytes unchanged");
        let name = shared::webhooks::signature_header(*provider).unwrap();
        let signature = headers.get(name).and_then(|v| v.to_str().ok());
        let keys = SigningKeys {
            current: "sandbox-signing-key".to_string().into(),
            previous: None,
        };
        let parts = SignedParts {
            body: received,
            url: Some(&url),
        };
        assert!(
            verify(*provider, signature, parts, &keys).is_ok(),
            "{provider} verifies"
        );
        let wrong = SigningKeys {
            current: "other".to_string().into(),
            previous: None,
        };
        assert!(
            verify(*provider, signature, parts, &wrong).is_err(),
            "{provider} with another key fails"
        );
    }
    assert_eq!(
        seen[0].0["toast-restaurant-external-id"],
        restaurant.as_str()
    );
    assert_eq!(seen[0].0["toast-event-type"], "order_updated");
    task.abort();
}

#[tokio::test]
async fn start_all_starts_six_sandboxes_on_distinct_ports() {
    let all = Sandboxes::start_all(11).await.unwrap();
    let urls = [
        all.toast.base_url(),
        all.square.base_url(),
        all.marketman.base_url(),
        all.quickbooks.base_url(),
        all.xero.base_url(),
        all.timetracking.base_url(),
    ];
    assert_eq!(
        urls.iter().collect::<std::collections::BTreeSet<_>>().len(),
        6
    );
    assert!(urls.iter().all(|u| u.starts_with("http://127.0.0.1:")));
    // Same seed, same data.
    let again = Sandboxes::start_all(11).await.unwrap();
    assert_eq!(all.toast.restaurant_guids(), again.toast.restaurant_guids());
    let r = &all.toast.restaurant_guids()[0];
    assert_eq!(all.toast.orders(r), again.toast.orders(r));
    assert_eq!(all.square.payments(), again.square.payments());
    assert_eq!(all.quickbooks.realm_id(), again.quickbooks.realm_id());
    assert_eq!(all.xero.tenant_id(), again.xero.tenant_id());
    assert_eq!(all.marketman.buyer_guids(), again.marketman.buyer_guids());
    let other = Sandboxes::start_all(12).await.unwrap();
    assert_ne!(all.toast.restaurant_guids(), other.toast.restaurant_guids());
    let addr = all.toast.addr();
    all.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "stopped sandboxes refuse connections"
    );
}
