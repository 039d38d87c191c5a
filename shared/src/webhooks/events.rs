//! A verified delivery's envelope, split into events. One delivery may carry
//! several (Xero `events[]`, QuickBooks entities). Each event gets a dedupe
//! key: the provider's event id where it has one; where it has none, a key
//! derived from the fields that identify the change:
//!
//! | provider | dedupe key |
//! |---|---|
//! | Toast | `guid` |
//! | Square | `event_id` |
//! | QuickBooks CloudEvents | `id` |
//! | QuickBooks legacy | `realmId:name:id:operation:lastUpdated` |
//! | Xero | `tenantId:resourceId:CATEGORY:TYPE:eventDateUtc` (type upper-cased) |

use super::verify::VerifiedBody;
use crate::ids::{EventId, ProviderAccountId};
use crate::model::Provider;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One event of a delivery, routed by `account`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// Who sent it.
    pub provider: Provider,
    /// The key it is deduplicated on.
    pub dedupe_key: EventId,
    /// The provider account it concerns (restaurant GUID, merchant id, realm
    /// id, Xero tenant id); `None` for events tied to no account.
    pub account: Option<ProviderAccountId>,
    /// The provider's event type (`order_updated`, `payment.updated`,
    /// `qbo.salesreceipt.updated.v1`, `Customer.Create`, `CONTACT.UPDATE`).
    pub event_type: String,
    /// The id of the changed resource, where the event names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// When it happened, as the provider wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<String>,
    /// The event's own JSON.
    pub payload: Value,
}

/// A verified body that is not the envelope the provider documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {provider} webhook: {detail}")]
pub struct EnvelopeError {
    /// Whose envelope.
    pub provider: Provider,
    /// What is wrong, with the field's name and position where known.
    pub detail: String,
}

/// The events of a delivery. Xero's intent-to-receive handshake has none.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The events.
    pub events: Vec<WebhookEvent>,
}

/// The key for a raw id: itself where it is a valid id of reasonable length,
/// else a SHA-256 of it (ids never carry the key separator `#`).
fn dedupe_id(raw: &str) -> EventId {
    if raw.len() <= 200
        && let Ok(id) = EventId::new(raw)
    {
        return id;
    }
    EventId::new(format!(
        "sha256:{}",
        hex::encode(Sha256::digest(raw.as_bytes()))
    ))
    .unwrap_or_else(|_| unreachable!("a hex digest is a valid id"))
}

fn account(raw: &str, provider: Provider) -> Result<ProviderAccountId, EnvelopeError> {
    ProviderAccountId::new(raw).map_err(|e| EnvelopeError {
        provider,
        detail: format!("account id {raw:?}: {e}"),
    })
}

fn parse<T: serde::de::DeserializeOwned>(
    provider: Provider,
    bytes: &[u8],
) -> Result<T, EnvelopeError> {
    serde_json::from_slice(bytes).map_err(|e| EnvelopeError {
        provider,
        detail: e.to_string(),
    })
}

fn required(provider: Provider, field: &str, value: &str) -> Result<(), EnvelopeError> {
    if value.trim().is_empty() {
        Err(EnvelopeError {
            provider,
            detail: format!("field `{field}` is empty"),
        })
    } else {
        Ok(())
    }
}

/// Splits a verified body into events. `toast_restaurant` is the
/// `Toast-Restaurant-External-ID` header, where sent.
pub fn parse_envelope(
    body: &VerifiedBody<'_>,
    toast_restaurant: Option<&str>,
) -> Result<Envelope, EnvelopeError> {
    let provider = body.provider();
    let bytes = body.bytes();
    let events = match provider {
        Provider::Toast => vec![toast(bytes, toast_restaurant)?],
        Provider::Square => vec![square(bytes)?],
        Provider::QuickBooks => quickbooks(bytes)?,
        Provider::Xero => xero(bytes)?,
        Provider::MarketMan | Provider::TimeTracking => {
            return Err(EnvelopeError {
                provider,
                detail: "MarketMan webhooks are not accepted".into(),
            });
        }
    };
    Ok(Envelope { events })
}

fn toast(bytes: &[u8], header_restaurant: Option<&str>) -> Result<WebhookEvent, EnvelopeError> {
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
    Ok(WebhookEvent {
        provider: p,
        dedupe_key: dedupe_id(&t.guid),
        account: restaurant.map(|r| account(&r, p)).transpose()?,
        resource_id: t.details["order"]["guid"].as_str().map(str::to_string),
        event_type: t.event_type,
        occurred_at: Some(t.timestamp),
        payload,
    })
}

fn square(bytes: &[u8]) -> Result<WebhookEvent, EnvelopeError> {
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
    Ok(WebhookEvent {
        provider: p,
        dedupe_key: dedupe_id(&s.event_id),
        account: Some(account(&s.merchant_id, p)?),
        resource_id: s.data["id"].as_str().map(str::to_string),
        event_type: s.event_type,
        occurred_at: s.created_at,
        payload,
    })
}

fn quickbooks(bytes: &[u8]) -> Result<Vec<WebhookEvent>, EnvelopeError> {
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

fn xero(bytes: &[u8]) -> Result<Vec<WebhookEvent>, EnvelopeError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::verify::{SignedParts, SigningKeys, sign, verify};

    /// Signs and verifies `body` with a test key, so the parser is reached
    /// the only way it can be: through the verifier.
    fn events(
        provider: Provider,
        body: &[u8],
        header: Option<&str>,
    ) -> Result<Vec<WebhookEvent>, EnvelopeError> {
        let key: secrecy::SecretString = "k".to_string().into();
        let url = Some("https://hub.example/webhooks/square");
        let parts = SignedParts { body, url };
        let sig = sign(provider, parts, &key).unwrap();
        let keys = SigningKeys {
            current: key,
            previous: None,
        };
        let verified = verify(provider, Some(&sig), parts, &keys).unwrap();
        parse_envelope(&verified, header).map(|e| e.events)
    }

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../tests/fixtures/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn toast_order_routes_by_header_or_details() {
        let body = fixture("toast/webhook_order_updated.json");
        let e = events(Provider::Toast, &body, None).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].dedupe_key.as_str(),
            "534bf25a-b657-45aa-9a63-47f8f35400d6"
        );
        assert_eq!(
            e[0].account.as_ref().unwrap().as_str(),
            "0cd990c9-fd74-461d-8468-de2a0919ccbba"
        );
        assert_eq!(
            e[0].resource_id.as_deref(),
            Some("f6d98b95-2816-4f54-b1ab-7a5d71e83769")
        );
        let e = events(Provider::Toast, &body, Some("header-guid")).unwrap();
        assert_eq!(e[0].account.as_ref().unwrap().as_str(), "header-guid");
    }

    #[test]
    fn square_test_notification_parses() {
        let e = events(
            Provider::Square,
            &fixture("square/webhook_test_notification.json"),
            None,
        )
        .unwrap();
        assert_eq!(
            e[0].dedupe_key.as_str(),
            "ac3ac95b-f97d-458c-a6e6-18981597e05f"
        );
        assert_eq!(e[0].account.as_ref().unwrap().as_str(), "MLEFBHHSJGVHD");
        assert_eq!(e[0].event_type, "webhooks.test_notification");
    }

    #[test]
    fn quickbooks_both_formats_parse() {
        let legacy = events(
            Provider::QuickBooks,
            &fixture("qbo/webhook_legacy_event_notifications.json"),
            None,
        )
        .unwrap();
        assert_eq!(legacy.len(), 1);
        assert_eq!(legacy[0].account.as_ref().unwrap().as_str(), "1185883450");
        assert_eq!(
            legacy[0].dedupe_key.as_str(),
            "1185883450:Customer:1:Create:2015-10-05T14:42:19-0700"
        );
        assert_eq!(legacy[0].event_type, "Customer.Create");
        let ce = events(
            Provider::QuickBooks,
            &fixture("qbo/webhook_cloudevents_salesreceipt_updated.json"),
            None,
        )
        .unwrap();
        assert_eq!(ce[0].event_type, "qbo.salesreceipt.updated.v1");
        assert_eq!(ce[0].resource_id.as_deref(), Some("150"));
        assert_eq!(ce[0].account.as_ref().unwrap().as_str(), "9341455*********");
    }

    #[test]
    fn xero_events_get_derived_keys_and_the_handshake_has_none() {
        let e = events(
            Provider::Xero,
            &fixture("xero/webhook_contact_update.json"),
            None,
        )
        .unwrap();
        assert_eq!(
            e[0].dedupe_key.as_str(),
            "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f:717f2bfc-c6d4-41fd-b238-3f2f0c0cf777:CONTACT:UPDATE:2024-06-21T01:15:39.902"
        );
        let mixed = String::from_utf8(fixture("xero/webhook_contact_update.json"))
            .unwrap()
            .replace("\"UPDATE\"", "\"Update\"");
        assert_eq!(
            events(Provider::Xero, mixed.as_bytes(), None).unwrap()[0].dedupe_key,
            e[0].dedupe_key
        );
        let itr = br#"{"events":[],"lastEventSequence":0,"firstEventSequence":0,"entropy":"S0m3r4Nd0mt3xt"}"#;
        assert!(events(Provider::Xero, itr, None).unwrap().is_empty());
    }

    #[test]
    fn bad_envelopes_name_what_is_wrong() {
        let err = events(
            Provider::Square,
            br#"{"merchant_id":"M","type":"payment.updated"}"#,
            None,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("missing field `event_id`"),
            "{err}"
        );
        let err = events(Provider::Square, b"{not json", None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("malformed square webhook: key must be a string"),
            "{err}"
        );
        let err = events(Provider::Xero, br#"{"events":[{"resourceId":"r"}]}"#, None).unwrap_err();
        assert!(
            err.to_string().contains("events[0]: missing field"),
            "{err}"
        );
        let err = events(
            Provider::Square,
            br#"{"merchant_id":"","type":"t","event_id":"e"}"#,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("`merchant_id` is empty"), "{err}");
    }

    #[test]
    fn overlong_or_separator_ids_are_hashed_into_valid_keys() {
        let k = dedupe_id(&"x".repeat(500));
        assert!(k.as_str().starts_with("sha256:"));
        assert!(dedupe_id("a#b").as_str().starts_with("sha256:"));
    }
}
