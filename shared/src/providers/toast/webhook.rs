//! Toast webhooks: `Toast-Signature` is base64(HMAC-SHA256(key, body +
//! the body's top-level `timestamp`)); one event per delivery, deduplicated
//! on its `guid`, routed by the `Toast-Restaurant-External-ID` header or
//! `details.restaurantGuid`.
//!
//! Toast names no timestamp header; its doc says the body and timestamp are
//! signed and its envelope has a top-level `timestamp`, so that is what is
//! appended (UNVERIFIED against a live delivery; see providers.md §1.1). Only
//! that one string is read from the unverified body; nothing else is parsed
//! before the signature holds.

use crate::model::Provider;
use crate::providers::kit::{
    EnvelopeError, Signed, SignedParts, VerifyError, WebhookEvent, Webhooks, account, dedupe_id,
    parse, required,
};
use serde::Deserialize;
use serde_json::Value;

/// Toast's scheme.
#[derive(Debug)]
pub struct ToastWebhooks;

impl Webhooks for ToastWebhooks {
    fn signature_header(&self) -> &'static str {
        "toast-signature"
    }

    fn account_header(&self) -> Option<&'static str> {
        Some("toast-restaurant-external-id")
    }

    fn signed<'a>(&self, parts: SignedParts<'a>) -> Result<Signed<'a>, VerifyError> {
        let ts = timestamp(parts.body).ok_or(VerifyError::MissingTimestamp)?;
        Ok(Signed {
            prefix: b"",
            body: parts.body,
            suffix: ts.into_bytes(),
        })
    }

    fn events(
        &self,
        bytes: &[u8],
        header_restaurant: Option<&str>,
    ) -> Result<Vec<WebhookEvent>, EnvelopeError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Toast {
            timestamp: String,
            event_type: String,
            guid: String,
            #[serde(default)]
            details: Value,
        }
        let p = Provider::Toast;
        let payload: Value = parse(p, bytes)?;
        let t = Toast::deserialize(&payload).map_err(|e| EnvelopeError {
            provider: p,
            detail: e.to_string(),
        })?;
        required(p, "guid", &t.guid)?;
        required(p, "eventType", &t.event_type)?;
        let restaurant = header_restaurant
            .filter(|h| !h.trim().is_empty())
            .map(str::to_string)
            .or_else(|| t.details["restaurantGuid"].as_str().map(str::to_string));
        Ok(vec![WebhookEvent {
            provider: p,
            dedupe_key: dedupe_id(&t.guid),
            account: restaurant.map(|r| account(&r, p)).transpose()?,
            resource_id: t.details["order"]["guid"].as_str().map(str::to_string),
            event_type: t.event_type,
            occurred_at: Some(t.timestamp),
            payload,
        }])
    }
}

/// The top-level `timestamp` string of a Toast body, read without touching
/// anything else.
fn timestamp(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct OnlyTimestamp {
        timestamp: Option<String>,
    }
    serde_json::from_slice::<OnlyTimestamp>(body)
        .ok()?
        .timestamp
        .filter(|t| !t.is_empty())
}
