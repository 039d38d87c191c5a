//! Xero webhooks: `x-xero-signature` is base64(HMAC-SHA256(key, body)).
//! A delivery carries `events[]`, each keyed on
//! `tenantId:resourceId:CATEGORY:TYPE:eventDateUtc` (type upper-cased);
//! the intent-to-receive handshake carries none.

use crate::model::Provider;
use crate::providers::kit::{
    EnvelopeError, Signed, SignedParts, VerifyError, WebhookEvent, Webhooks, account, dedupe_id,
    parse, required,
};
use serde::Deserialize;
use serde_json::Value;

/// Xero's scheme.
#[derive(Debug)]
pub struct XeroWebhooks;

impl Webhooks for XeroWebhooks {
    fn signature_header(&self) -> &'static str {
        "x-xero-signature"
    }

    fn signed<'a>(&self, parts: SignedParts<'a>) -> Result<Signed<'a>, VerifyError> {
        Ok(Signed::body(parts))
    }

    fn events(
        &self,
        bytes: &[u8],
        _account_header: Option<&str>,
    ) -> Result<Vec<WebhookEvent>, EnvelopeError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Xero {
            events: Vec<Value>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Event {
            resource_id: String,
            event_date_utc: String,
            event_type: String,
            event_category: String,
            tenant_id: String,
        }
        let p = Provider::Xero;
        let x: Xero = parse(p, bytes)?;
        x.events
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                let e = Event::deserialize(&payload).map_err(|e| EnvelopeError {
                    provider: p,
                    detail: format!("events[{i}]: {e}"),
                })?;
                required(p, "tenantId", &e.tenant_id)?;
                // Xero's docs write "Update", its spec "UPDATE": compare upper-cased.
                let (category, kind) = (
                    e.event_category.to_ascii_uppercase(),
                    e.event_type.to_ascii_uppercase(),
                );
                let key = format!(
                    "{}:{}:{category}:{kind}:{}",
                    e.tenant_id, e.resource_id, e.event_date_utc
                );
                Ok(WebhookEvent {
                    provider: p,
                    dedupe_key: dedupe_id(&key),
                    account: Some(account(&e.tenant_id, p)?),
                    event_type: format!("{category}.{kind}"),
                    resource_id: Some(e.resource_id),
                    occurred_at: Some(e.event_date_utc),
                    payload,
                })
            })
            .collect()
    }
}
