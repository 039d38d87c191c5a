//! What the pipelines ask of a provider, as small traits each provider's
//! folder implements, and the types those traits speak:
//!
//! - [`Kit`]: every provider. Its [`Webhooks`] scheme (if it sends any), its
//!   [`Source`] side (if it is pulled), and the cheapest authenticated call
//!   the health check makes.
//! - [`Webhooks`]: the signature header, what is signed besides the body,
//!   and the envelope split into events with their dedupe keys.
//! - [`Source`]: the pull cadence, the streams a pull reads and the records a
//!   webhook event turns into.
//!
//! The registry ([`super::registry`]) maps a [`Provider`] to its kit; the
//! webhook intake, the pull, the event processor, the cadence planner and the
//! health monitor go through it and name no provider.

use super::ProviderClients;
use super::http::ProviderError;
use crate::ids::{EventId, ProviderAccountId};
use crate::model::{Connection, Provider, Record};
use crate::ports::{Limit, StoreError};
use crate::transforms::TransformError;
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One provider: what it sends, what is pulled from it, how it is checked.
#[async_trait]
pub trait Kit: Send + Sync {
    /// Which provider.
    fn provider(&self) -> Provider;

    /// Its webhook scheme; `None` for a provider that sends none the hub
    /// accepts.
    fn webhooks(&self) -> Option<&dyn Webhooks> {
        None
    }

    /// Its source side; `None` for a provider that is not pulled
    /// (destinations, time tracking).
    fn source(&self) -> Option<&dyn Source> {
        None
    }

    /// The cheapest authenticated call that shows the connection works (the
    /// health check's probe).
    async fn ping(&self, clients: &ProviderClients, c: &Connection) -> Result<(), ProviderError>;

    /// The account part of the rate budget `c`'s calls draw on: the
    /// account's own unless the provider shares one budget over several
    /// accounts (MarketMan: per API consumer).
    async fn budget_account(
        &self,
        _clients: &ProviderClients,
        c: &Connection,
    ) -> Result<String, ProviderError> {
        Ok(c.account_id.to_string())
    }
}

/// A provider's webhook scheme.
pub trait Webhooks: Send + Sync {
    /// The header carrying the signature (lower case).
    fn signature_header(&self) -> &'static str;

    /// Whether the notification URL is signed too (Square), so the intake
    /// must know the URL the provider was given.
    fn signs_url(&self) -> bool {
        false
    }

    /// A header naming the account where the body may not (Toast's
    /// `Toast-Restaurant-External-ID`), lower case.
    fn account_header(&self) -> Option<&'static str> {
        None
    }

    /// What is signed: `prefix + body + suffix`. Reads nothing of an
    /// unverified body beyond what the scheme covers.
    fn signed<'a>(&self, parts: SignedParts<'a>) -> Result<Signed<'a>, VerifyError>;

    /// A verified body split into events. `account_header` is the value of
    /// [`Webhooks::account_header`], where sent.
    fn events(
        &self,
        body: &[u8],
        account_header: Option<&str>,
    ) -> Result<Vec<WebhookEvent>, EnvelopeError>;
}

/// A provider the hub pulls from.
#[async_trait]
pub trait Source: Send + Sync {
    /// How its pulls are scheduled.
    fn cadence(&self) -> Cadence;

    /// The streams a pull reads, by name (their cursors are
    /// `<connection>.<name>`).
    fn stream_names(&self) -> &'static [&'static str];

    /// `c` ready to be read: with what the records need that only the
    /// provider knows (a Toast restaurant's currency), stored once.
    async fn prepare(
        &self,
        _clients: &ProviderClients,
        c: &Connection,
    ) -> Result<Connection, ProviderError> {
        Ok(c.clone())
    }

    /// The streams of one pull of `c` (prepared).
    async fn streams(
        &self,
        clients: &ProviderClients,
        c: &Connection,
    ) -> Result<Vec<Stream>, PullError>;

    /// The records `event` carries or points at; `None` for an event with
    /// nothing to ingest (acknowledged and logged).
    async fn event_records(
        &self,
        clients: &ProviderClients,
        c: &Connection,
        event: &WebhookEvent,
    ) -> Result<Option<Vec<Record>>, PullError>;
}

/// A stream of a pull.
pub enum Stream {
    /// Read in time windows, with a cursor (orders, payments).
    Windowed(Box<dyn WindowedStream>),
    /// Read whole (menus, inventory); skipped by a re-pull of a range.
    Snapshot(Box<dyn SnapshotStream>),
}

impl Stream {
    /// The stream's name.
    pub fn name(&self) -> &'static str {
        match self {
            Stream::Windowed(s) => s.name(),
            Stream::Snapshot(s) => s.name(),
        }
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Stream").field(&self.name()).finish()
    }
}

/// How a provider's pulls are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// How often the schedule fires.
    pub tick: SignedDuration,
    /// How fresh an account should be: the longest wait between its pulls.
    pub target: SignedDuration,
    /// Provider calls one pull of one connection makes, every stream.
    pub calls_per_pull: u64,
    /// The budget the accounts share, if the provider documents one.
    pub budget: Option<Limit>,
}

// --- pulls -----------------------------------------------------------------

/// Why a pull stopped.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// A provider call failed (after its retries).
    #[error("provider: {0}")]
    Provider(#[from] ProviderError),
    /// A store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A payload could not be normalized (the page is not checkpointed).
    #[error("transform: {0}")]
    Transform(#[from] TransformError),
    /// Another puller moved the cursor: this one stops.
    #[error("another pull of {0} moved its cursor; this one stops")]
    Superseded(String),
    /// Stopped on purpose after a number of pages (tests of crash-resume).
    #[error("stopped after {0} page(s)")]
    Interrupted(u32),
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum PageToken {
    /// The first page.
    First,
    /// A 1-based page number (Toast), or an offset (MarketMan).
    Page(u32),
    /// An opaque cursor (Square).
    Cursor(String),
}

/// One page of normalized records and where the next starts.
#[derive(Debug)]
pub struct Page {
    /// The records.
    pub records: Vec<Record>,
    /// `None`: the slice is done.
    pub next: Option<PageToken>,
}

/// A provider stream read in time windows.
#[async_trait]
pub trait WindowedStream: Send + Sync {
    /// The stream's name (`orders`, `payments`).
    fn name(&self) -> &'static str;
    /// The longest window one request may cover.
    fn max_slice(&self) -> SignedDuration;
    /// One page of `[start, end)`.
    async fn page(
        &self,
        start: Timestamp,
        end: Timestamp,
        token: &PageToken,
    ) -> Result<Page, PullError>;
}

/// A provider stream read whole, page by page.
#[async_trait]
pub trait SnapshotStream: Send + Sync {
    /// The stream's name (`menus`, `inventory`).
    fn name(&self) -> &'static str;
    /// One page; `since` is the last successful run, for streams that can
    /// ask only for what changed.
    async fn page(&self, since: Option<Timestamp>, token: &PageToken) -> Result<Page, PullError>;
}

// --- webhooks --------------------------------------------------------------

/// Why a delivery's signature was refused. Never carries a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature header is absent or empty.
    #[error("missing {0} header")]
    MissingSignature(&'static str),
    /// The header is not base64 of a SHA-256 HMAC.
    #[error("{0} header is not a base64 HMAC-SHA256 signature")]
    MalformedSignature(&'static str),
    /// The signature does not match the body with any current key.
    #[error("{0} signature does not match the body")]
    Mismatch(&'static str),
    /// Toast: the body has no top-level string `timestamp` to check against.
    #[error("body has no top-level \"timestamp\" string, which the Toast signature covers")]
    MissingTimestamp,
    /// Square: no notification URL to check against.
    #[error("no notification URL configured for Square signatures")]
    MissingUrl,
    /// The provider does not sign webhooks.
    #[error("{0} webhooks are not signed")]
    Unsupported(Provider),
}

/// What the signature covers besides the body.
#[derive(Debug, Clone, Copy)]
pub struct SignedParts<'a> {
    /// The raw body.
    pub body: &'a [u8],
    /// Square: the subscription's notification URL, byte for byte.
    pub url: Option<&'a str>,
}

/// What is signed: `prefix + body + suffix`, without copying the body.
#[derive(Debug, Clone)]
pub struct Signed<'a> {
    /// Signed before the body.
    pub prefix: &'a [u8],
    /// The body.
    pub body: &'a [u8],
    /// Signed after the body.
    pub suffix: Vec<u8>,
}

impl<'a> Signed<'a> {
    /// The body alone.
    pub fn body(parts: SignedParts<'a>) -> Self {
        Signed {
            prefix: b"",
            body: parts.body,
            suffix: Vec::new(),
        }
    }
}

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

/// The key for a raw id: itself where it is a valid id of reasonable length,
/// else a SHA-256 of it (ids never carry the key separator `#`).
pub fn dedupe_id(raw: &str) -> EventId {
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

/// An envelope's account id.
pub fn account(raw: &str, provider: Provider) -> Result<ProviderAccountId, EnvelopeError> {
    ProviderAccountId::new(raw).map_err(|e| EnvelopeError {
        provider,
        detail: format!("account id {raw:?}: {e}"),
    })
}

/// An envelope's JSON.
pub fn parse<T: serde::de::DeserializeOwned>(
    provider: Provider,
    bytes: &[u8],
) -> Result<T, EnvelopeError> {
    serde_json::from_slice(bytes).map_err(|e| EnvelopeError {
        provider,
        detail: e.to_string(),
    })
}

/// A field an envelope must not leave empty.
pub fn required(provider: Provider, field: &str, value: &str) -> Result<(), EnvelopeError> {
    if value.trim().is_empty() {
        Err(EnvelopeError {
            provider,
            detail: format!("field `{field}` is empty"),
        })
    } else {
        Ok(())
    }
}
