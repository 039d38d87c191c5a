//! Ports: one small trait per role the pipelines need from the outside world.
//! Each has an embedded adapter (SQLite, a local file) and an AWS adapter
//! (DynamoDB, SQS, Secrets Manager); one conformance suite holds both to the
//! same contract. The stores read the time from a [`Clock`], so that suite
//! moves time by hand instead of sleeping.

mod call_log;
mod clock;
mod connections;
mod cursors;
mod idempotency;
mod ledger;
mod queue;
mod rate_limit;
mod secrets;

pub use call_log::{CallLog, CallOutcome, CallRecord};
pub(crate) use clock::system_clock;
pub use clock::{Clock, ManualClock, SystemClock};
pub use connections::ConnectionStore;
pub use cursors::{CasOutcome, Cursor, CursorKey, CursorStore};
pub use idempotency::{ClaimOutcome, ClaimToken, IdempotencyStore};
pub use ledger::{
    ContentHash, DestinationState, DestinationStatus, Ledger, LedgerEntry, LedgerKey, SourceRecord,
    UpsertOutcome,
};
pub use queue::{
    DeadLetter, MAX_HIDDEN, MAX_MESSAGE_BYTES, OutgoingMessage, QueueDepth, ReceivedMessage,
    WorkQueue,
};
pub use rate_limit::{Acquire, Bucket, Budget, Limit, RateLimitStore};
pub(crate) use secrets::secrets_not_found;
pub use secrets::{CachedSecrets, SecretStore, SecretVersion};

/// What went wrong in a store, queue or secret adapter.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A write lost to a concurrent one, or broke a uniqueness rule.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Stored data could not be read back (a bug or a hand-edited row).
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// Which row or item.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The backend failed (I/O, network, throttling).
    #[error("{backend} {operation} failed: {source}")]
    Backend {
        /// `sqlite`, `dynamodb`, `sqs`, `secretsmanager`, `file`.
        backend: &'static str,
        /// The call that failed.
        operation: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// Wraps a backend error with the backend's name and the operation.
    pub fn backend(
        backend: &'static str,
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Backend {
            backend,
            operation,
            source: source.into(),
        }
    }

    /// A row that failed to decode.
    pub fn corrupt(what: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;
