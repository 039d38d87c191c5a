//! A verified delivery's envelope, split into events. One delivery may carry
//! several (Xero `events[]`, QuickBooks entities). Each event gets a dedupe
//! key: the provider's event id where it has one; where it has none, a key
//! derived from the fields that identify the change. Each provider's
//! envelope is read by its folder (`providers/<name>/webhook.rs`):
//!
//! | provider | dedupe key |
//! |---|---|
//! | Toast | `guid` |
//! | Square | `event_id` |
//! | QuickBooks CloudEvents | `id` |
//! | QuickBooks legacy | `realmId:name:id:operation:lastUpdated` |
//! | Xero | `tenantId:resourceId:CATEGORY:TYPE:eventDateUtc` (type upper-cased) |

use super::verify::VerifiedBody;
use crate::providers::registry;

pub use crate::providers::kit::{EnvelopeError, WebhookEvent};

/// The events of a delivery. Xero's intent-to-receive handshake has none.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The events.
    pub events: Vec<WebhookEvent>,
}

/// Splits a verified body into events; `headers` are the delivery's (a
/// provider may name the account in one).
pub fn parse_envelope(
    body: &VerifiedBody<'_>,
    headers: &http::HeaderMap,
) -> Result<Envelope, EnvelopeError> {
    let provider = body.provider();
    let Some(webhooks) = registry::kit(provider).webhooks() else {
        return Err(EnvelopeError {
            provider,
            detail: format!("{provider} webhooks are not accepted"),
        });
    };
    let account_header = webhooks
        .account_header()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok());
    Ok(Envelope {
        events: webhooks.events(body.bytes(), account_header)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Provider;
    use crate::providers::kit::dedupe_id;
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
        let mut headers = http::HeaderMap::new();
        if let Some(h) = header {
            headers.insert("toast-restaurant-external-id", h.parse().unwrap());
        }
        parse_envelope(&verified, &headers).map(|e| e.events)
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
