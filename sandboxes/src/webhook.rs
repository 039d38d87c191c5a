//! Sends a webhook to the hub signed exactly as the provider signs it.
//!
//! The signing here is the sandbox's own, written from providers.md and not
//! shared with the hub's verifier: a round trip through both then checks two
//! implementations against each other, and both are checked against the
//! known-answer vectors in `tests/fixtures/signatures/` (computed outside
//! Rust, or published in the providers' SDK tests).
//!
//! Every scheme is base64 (standard alphabet, padded) of an HMAC-SHA256 with
//! the subscription's key, over (providers.md §1.1, §2.1, §3.1, §4.1):
//! - Toast, `Toast-Signature`: the body followed by the body's top-level
//!   `timestamp` string (Toast names no timestamp header; UNVERIFIED against
//!   a live delivery). Also sent: `Toast-Restaurant-External-ID` (the body's
//!   `details.restaurantGuid`), `Toast-Event-Type`, `Toast-Event-Category`,
//!   `Toast-Attempt-Number: 1`, and Toast's `User-Agent`.
//! - Square, `x-square-hmacsha256-signature`: the target URL followed by the
//!   body; also `square-environment: Sandbox`,
//!   `square-initial-delivery-timestamp`.
//! - QuickBooks, `intuit-signature`: the body.
//! - Xero, `x-xero-signature`: the body.
//! - MarketMan: no signature scheme is documented; the body is sent unsigned.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use jiff::Timestamp;
use serde_json::Value;
use sha2::Sha256;
use shared::model::Provider;

/// Why a body cannot be signed the provider's way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// Toast signs the body's top-level `timestamp`; this body has none.
    #[error("the body has no top-level \"timestamp\" string, which a Toast signature covers")]
    MissingTimestamp,
    /// Square signs the notification URL; none was given.
    #[error("a Square signature covers the notification URL, and it is empty")]
    MissingUrl,
}

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
        source: SignError,
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

/// The header each provider puts its signature in (lower case); `None` for
/// providers that do not sign.
pub fn signature_header(provider: Provider) -> Option<&'static str> {
    match provider {
        Provider::Toast => Some("toast-signature"),
        Provider::Square => Some("x-square-hmacsha256-signature"),
        Provider::QuickBooks => Some("intuit-signature"),
        Provider::Xero => Some("x-xero-signature"),
        Provider::MarketMan | Provider::TimeTracking => None,
    }
}

/// The signature header's value for `body` sent to `target_url` under
/// `key`; `Ok(None)` for providers that do not sign.
pub fn signature(
    provider: Provider,
    target_url: &str,
    body: &[u8],
    key: &str,
) -> Result<Option<String>, SignError> {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    match provider {
        Provider::Toast => {
            #[derive(serde::Deserialize)]
            struct Stamp {
                timestamp: Option<String>,
            }
            let stamp = serde_json::from_slice::<Stamp>(body)
                .ok()
                .and_then(|s| s.timestamp)
                .filter(|t| !t.is_empty())
                .ok_or(SignError::MissingTimestamp)?;
            mac.update(body);
            mac.update(stamp.as_bytes());
        }
        Provider::Square => {
            if target_url.is_empty() {
                return Err(SignError::MissingUrl);
            }
            mac.update(target_url.as_bytes());
            mac.update(body);
        }
        Provider::QuickBooks | Provider::Xero => mac.update(body),
        Provider::MarketMan | Provider::TimeTracking => return Ok(None),
    }
    Ok(Some(B64.encode(mac.finalize().into_bytes())))
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
    let signed = signature(provider, target_url, body, key)
        .map_err(|source| WebhookError::Sign { provider, source })?;
    if let (Some(name), Some(value)) = (signature_header(provider), signed)
        && let Ok(v) = HeaderValue::from_str(&value)
    {
        headers.insert(HeaderName::from_static(name), v);
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
