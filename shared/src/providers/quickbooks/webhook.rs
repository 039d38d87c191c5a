//! QuickBooks webhooks: `intuit-signature` is base64(HMAC-SHA256(key,
//! body)). Two envelopes: CloudEvents (an array, each event with its `id`)
//! and the legacy `eventNotifications` (one event per entity, keyed on
//! `realmId:name:id:operation:lastUpdated`).

use crate::model::Provider;
use crate::providers::kit::{
    EnvelopeError, Signed, SignedParts, VerifyError, WebhookEvent, Webhooks, account, dedupe_id,
    parse, required,
};
use serde::Deserialize;
use serde_json::Value;

/// QuickBooks' scheme.
#[derive(Debug)]
pub struct QuickBooksWebhooks;

impl Webhooks for QuickBooksWebhooks {
    fn signature_header(&self) -> &'static str {
        "intuit-signature"
    }

    fn signed<'a>(&self, parts: SignedParts<'a>) -> Result<Signed<'a>, VerifyError> {
        Ok(Signed::body(parts))
    }

    fn events(
        &self,
        bytes: &[u8],
        _account_header: Option<&str>,
    ) -> Result<Vec<WebhookEvent>, EnvelopeError> {
        let p = Provider::QuickBooks;
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            #[derive(Deserialize)]
            struct CloudEvent {
                id: String,
                #[serde(rename = "type")]
                event_type: String,
                intuitaccountid: String,
                #[serde(default)]
                intuitentityid: Option<String>,
                #[serde(default)]
                time: Option<String>,
            }
            let raw: Vec<Value> = parse(p, bytes)?;
            raw.into_iter()
                .enumerate()
                .map(|(i, payload)| {
                    let e = CloudEvent::deserialize(&payload).map_err(|e| EnvelopeError {
                        provider: p,
                        detail: format!("event {i}: {e}"),
                    })?;
                    required(p, "id", &e.id)?;
                    required(p, "intuitaccountid", &e.intuitaccountid)?;
                    Ok(WebhookEvent {
                        provider: p,
                        dedupe_key: dedupe_id(&e.id),
                        account: Some(account(&e.intuitaccountid, p)?),
                        event_type: e.event_type,
                        resource_id: e.intuitentityid,
                        occurred_at: e.time,
                        payload,
                    })
                })
                .collect()
        } else {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Legacy {
                event_notifications: Vec<Notification>,
            }
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Notification {
                realm_id: String,
                data_change_event: DataChange,
            }
            #[derive(Deserialize)]
            struct DataChange {
                entities: Vec<Value>,
            }
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Entity {
                name: String,
                id: String,
                operation: String,
                last_updated: String,
            }
            let legacy: Legacy = parse(p, bytes)?;
            let mut out = Vec::new();
            for n in legacy.event_notifications {
                required(p, "realmId", &n.realm_id)?;
                for payload in n.data_change_event.entities {
                    let e = Entity::deserialize(&payload).map_err(|e| EnvelopeError {
                        provider: p,
                        detail: format!("realm {} entity: {e}", n.realm_id),
                    })?;
                    let key = format!(
                        "{}:{}:{}:{}:{}",
                        n.realm_id, e.name, e.id, e.operation, e.last_updated
                    );
                    out.push(WebhookEvent {
                        provider: p,
                        dedupe_key: dedupe_id(&key),
                        account: Some(account(&n.realm_id, p)?),
                        event_type: format!("{}.{}", e.name, e.operation),
                        resource_id: Some(e.id),
                        occurred_at: Some(e.last_updated),
                        payload,
                    });
                }
            }
            Ok(out)
        }
    }
}
