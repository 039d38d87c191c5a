//! Square webhooks: `x-square-hmacsha256-signature` is
//! base64(HMAC-SHA256(key, notification URL + body)); one event per
//! delivery, deduplicated on its `event_id`, routed by `merchant_id`.

use crate::model::Provider;
use crate::providers::kit::{
    EnvelopeError, Signed, SignedParts, VerifyError, WebhookEvent, Webhooks, account, dedupe_id,
    parse, required,
};
use serde::Deserialize;
use serde_json::Value;

/// Square's scheme.
#[derive(Debug)]
pub struct SquareWebhooks;

impl Webhooks for SquareWebhooks {
    fn signature_header(&self) -> &'static str {
        "x-square-hmacsha256-signature"
    }

    fn signs_url(&self) -> bool {
        true
    }

    fn signed<'a>(&self, parts: SignedParts<'a>) -> Result<Signed<'a>, VerifyError> {
        let url = parts
            .url
            .filter(|u| !u.is_empty())
            .ok_or(VerifyError::MissingUrl)?;
        Ok(Signed {
            prefix: url.as_bytes(),
            body: parts.body,
            suffix: Vec::new(),
        })
    }

    fn events(
        &self,
        bytes: &[u8],
        _account_header: Option<&str>,
    ) -> Result<Vec<WebhookEvent>, EnvelopeError> {
        #[derive(Deserialize)]
        struct Square {
            merchant_id: String,
            #[serde(rename = "type")]
            event_type: String,
            event_id: String,
            #[serde(default)]
            created_at: Option<String>,
            #[serde(default)]
            data: Value,
        }
        let p = Provider::Square;
        let payload: Value = parse(p, bytes)?;
        let s = Square::deserialize(&payload).map_err(|e| EnvelopeError {
            provider: p,
            detail: e.to_string(),
        })?;
        required(p, "event_id", &s.event_id)?;
        required(p, "merchant_id", &s.merchant_id)?;
        required(p, "type", &s.event_type)?;
        Ok(vec![WebhookEvent {
            provider: p,
            dedupe_key: dedupe_id(&s.event_id),
            account: Some(account(&s.merchant_id, p)?),
            resource_id: s.data["id"].as_str().map(str::to_string),
            event_type: s.event_type,
            occurred_at: s.created_at,
            payload,
        }])
    }
}
