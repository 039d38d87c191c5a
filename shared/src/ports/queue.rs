//! Work queues with SQS semantics: batches, visibility timeouts, and a
//! dead-letter queue a message moves to after too many receives, where an
//! operator can list it and redrive it.

use super::StoreResult;
use crate::ids::{MessageId, ReceiptHandle};
use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    /// The body (JSON by convention).
    pub body: String,
    /// Keep it invisible this long after sending (SQS allows up to 15 minutes).
    pub delay: Option<Duration>,
}

impl OutgoingMessage {
    /// A message with no delay.
    pub fn new(body: impl Into<String>) -> Self {
        OutgoingMessage {
            body: body.into(),
            delay: None,
        }
    }
}

/// A received message: invisible to others until its visibility timeout ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The message's id.
    pub id: MessageId,
    /// What deletes or delays this receive of it.
    pub receipt: ReceiptHandle,
    /// The body.
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
    /// When it was first received, where the queue says (SQS's
    /// `ApproximateFirstReceiveTimestamp`).
    pub first_received_at: Option<Timestamp>,
}

/// The largest message a queue holds (SQS: 256 KiB, for one message and for
/// a batch together). The embedded queue keeps the same limit, so a
/// delivery refused in production is refused locally too.
pub const MAX_MESSAGE_BYTES: usize = 262_144;

/// How long SQS lets a message stay hidden, counted from its first receive:
/// 12 hours.
pub const MAX_HIDDEN: Duration = Duration::from_secs(12 * 3600);

impl ReceivedMessage {
    /// The longest this message may still be hidden (`change_visibility`)
    /// at `now`: 12 hours from its first receive, less a minute's margin for
    /// the clocks. Zero when that time has passed.
    pub fn max_delay(&self, now: Timestamp) -> Duration {
        let since = self
            .first_received_at
            .and_then(|t| Duration::try_from(now.duration_since(t)).ok())
            .unwrap_or(Duration::ZERO);
        MAX_HIDDEN
            .saturating_sub(since)
            .saturating_sub(Duration::from_secs(60))
    }
}

/// A message parked in the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Its id in the dead-letter queue.
    pub id: MessageId,
    /// The body.
    pub body: String,
    /// How many times it was received before it was parked (where known).
    pub receive_count: u32,
    /// When it was first sent, where known.
    pub sent_at: Option<Timestamp>,
}

/// How many messages a queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueueDepth {
    /// Waiting to be received (delayed ones included).
    pub visible: u64,
    /// Received and not yet deleted.
    pub in_flight: u64,
    /// Parked in the dead-letter queue.
    pub dead: u64,
}

/// One work queue and its dead-letter queue.
#[async_trait]
pub trait WorkQueue: Send + Sync + std::fmt::Debug {
    /// A name for logs and the CLI.
    fn name(&self) -> &str;

    /// Sends messages (any number; adapters split into the backend's batch size).
    /// Returns their ids in order.
    async fn send_batch(&self, messages: &[OutgoingMessage]) -> StoreResult<Vec<MessageId>>;

    /// Receives up to `max` (1..=10) messages, hiding them for `visibility`.
    /// Waits up to `wait` for one to arrive. A message received more times than
    /// the queue allows is moved to the dead-letter queue instead.
    async fn receive(
        &self,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> StoreResult<Vec<ReceivedMessage>>;

    /// Deletes a received message: the work is done.
    async fn delete(&self, receipt: &ReceiptHandle) -> StoreResult<()>;

    /// Changes how long a received message stays hidden (zero: visible now).
    /// This is how a worker backs off, e.g. until a `Retry-After`.
    async fn change_visibility(
        &self,
        receipt: &ReceiptHandle,
        timeout: Duration,
    ) -> StoreResult<()>;

    /// Moves a received message to the dead-letter queue at once: its failure
    /// is permanent and retrying cannot help (an operator fixes and redrives).
    async fn park(&self, message: &ReceivedMessage) -> StoreResult<()>;

    /// Up to `max` messages of the dead-letter queue, without removing them.
    async fn dead_letters(&self, max: u32) -> StoreResult<Vec<DeadLetter>>;

    /// Moves dead letters back to the queue (`None`: all of them) with a fresh
    /// receive count. Returns how many moved.
    async fn redrive(&self, ids: Option<&[MessageId]>) -> StoreResult<u32>;

    /// How many messages wait, are in flight, and are parked.
    async fn depth(&self) -> StoreResult<QueueDepth>;
}
