//! Sends a webhook to the hub signed exactly as the provider signs it, using
//! the hub's own signing code (`shared::webhooks::sign`) so the two cannot
//! drift apart.
//!
//! Headers per provider (providers.md §1.1, §2.1, §3.1, §4.1):
//! - Toast: `Toast-Signature` (over body + the body's `timestamp`),
//!   `Toast-Restaurant-External-ID` (the body's `details.restaurantGuid`),
//!   `Toast-Event-Type`, `Toast-Event-Category`, `Toast-Attempt-Number: 1`,
//!   and Toast's `User-Agent`.
//! - Square: `x-square-hmacsha256-signature` over the target URL + body,
//!   `square-environment: Sandbox`, `square-initial-delivery-timestamp`.
//! - QuickBooks: `intuit-signature` over the body.
//! - Xero: `x-xero-signature` over the body.
//! - MarketMan: no signature scheme is documented; the body is sent unsigned.

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use jiff::Timestamp;
use secrecy::SecretString;
use serde_json::Value;
use shared::model::Provider;
use shared::webhooks::{SignedParts, VerifyError, sign, signature_header};

/// Why a webhook could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The body cannot be signed the provider's way (e.g. a Toast body
    /// without a top-level `timestamp`).
    #[error("signing a {provider} webhook: {source}")]
    Sign {
        /// The provider.
        provider: Provider,
        /// Why.
        #[source]
        source: VerifyError,
    },
    /// The POST failed (no HTTP status).
    #[error("sending the webhook to {url}: {source}")]
    Send {
        /// The target.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// The headers a provider sends with `body` to `target_url`, signed with `key`.
pub fn signed_headers(
    provider: Provider,
    target_url: &str,
    body: &[u8],
    key: &str,
) -> Result<HeaderMap, WebhookError> {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(name) = signature_header(provider) {
        let secret: SecretString = key.to_string().into();
        let signature = sign(
            provider,
            SignedParts {
                body,
                url: Some(target_url),
            },
            &secret,
        )
        .map_err(|source| WebhookError::Sign { provider, source })?;
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&signature),
        ) {
            headers.insert(n, v);
        }
    }
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match provider {
        Provider::Toast => {
            if let Some(r) = parsed
                .pointer("/details/restaurantGuid")
                .and_then(Value::as_str)
            {
                insert(&mut headers, "toast-restaurant-external-id", r);
            }
            if let Some(t) = parsed.get("eventType").and_then(Value::as_str) {
                insert(&mut headers, "toast-event-type", t);
            }
            if let Some(c) = parsed.get("eventCategory").and_then(Value::as_str) {
                insert(&mut headers, "toast-event-category", c);
            }
            insert(&mut headers, "toast-attempt-number", "1");
            insert(
                &mut headers,
                "user-agent",
                "Apache-HttpClient/4.5.10 (Java/1.8.0_212)",
            );
        }
        Provider::Square => {
            insert(&mut headers, "square-environment", "Sandbox");
            insert(
                &mut headers,
                "square-initial-delivery-timestamp",
                &crate::common::time::rfc3339_ms(Timestamp::now()),
            );
        }
        Provider::QuickBooks | Provider::Xero | Provider::MarketMan | Provider::TimeTracking => {}
    }
    Ok(headers)
}

/// POSTs `body` to `target_url` as `provider` would, signed with `key`, and
/// returns the status the receiver answered.
pub async fn send_webhook(
    provider: Provider,
    target_url: &str,
    body: &[u8],
    key: &str,
) -> Result<StatusCode, WebhookError> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|source| WebhookError::Send {
            url: target_url.to_string(),
            source,
        })?;
    send_webhook_with(&client, provider, target_url, body, key).await
}

/// [`send_webhook`] with a client of the caller's (reuse one in loops).
pub async fn send_webhook_with(
    client: &reqwest::Client,
    provider: Provider,
    target_url: &str,
    body: &[u8],
    key: &str,
) -> Result<StatusCode, WebhookError> {
    let headers = signed_headers(provider, target_url, body, key)?;
    let response = client
        .post(target_url)
        .headers(headers)
        .body(body.to_vec())
        .send()
        .await
        .map_err(|source| WebhookError::Send {
            url: target_url.to_string(),
            source,
        })?;
    Ok(response.status())
}
