//! Webhook intake: verify the signature on the raw bytes, split the envelope
//! into events, claim each event's dedupe key, route it to its tenant by the
//! provider account id, and enqueue it; all well inside each provider's
//! deadline, with no provider API call on the request path. Each provider's
//! scheme and envelope live in its folder (`providers/<name>/webhook.rs`).

pub mod events;
pub mod intake;
pub mod unrouted;
pub mod verify;

pub use events::{Envelope, EnvelopeError, WebhookEvent, parse_envelope};
pub use intake::{
    UnroutedItem, WebhookIntake, WebhookRequest, WebhookResponse, WebhookSettings, WorkItem,
    signing_key_secret,
};
pub use verify::{
    SignedParts, SigningKeys, VerifiedBody, VerifyError, sign, signature_header, signs_url, verify,
};
