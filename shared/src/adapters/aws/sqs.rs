//! SQS adapter for work queues. The dead-letter queue is the one named in the
//! queue's `RedrivePolicy`; SQS itself moves a message there after
//! `maxReceiveCount` receives. Listing peeks at the DLQ by receiving with a
//! short visibility timeout and making what it saw visible again at once;
//! redrive sends each message back to the source queue, then deletes it from
//! the DLQ (at-least-once: a crash in between leaves a copy in both, which the
//! idempotency store absorbs).

use super::sdk_err;
use crate::ids::{MessageId, ReceiptHandle};
use crate::ports::{
    DeadLetter, MAX_MESSAGE_BYTES, OutgoingMessage, QueueDepth, ReceivedMessage, StoreError,
    StoreResult, WorkQueue,
};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::sync::OnceCell;

/// SQS's largest batch.
const SQS_BATCH: usize = 10;
/// How long a DLQ message stays hidden while it is being listed or redriven.
const PEEK_VISIBILITY_SECONDS: i32 = 30;
/// Upper bound on receive rounds when walking a DLQ.
const MAX_PEEK_ROUNDS: usize = 100;

/// An SQS queue and its dead-letter queue.
#[derive(Debug)]
pub struct SqsQueue {
    client: Client,
    name: String,
    url: String,
    dlq_url: OnceCell<String>,
}

fn secs(d: Duration) -> i32 {
    // SQS counts whole seconds; round up so a timeout is never shortened.
    i32::try_from(d.as_millis().div_ceil(1000)).unwrap_or(i32::MAX)
}

fn message_id(m: &Message) -> StoreResult<MessageId> {
    MessageId::new(m.message_id().unwrap_or_default())
        .map_err(|e| StoreError::corrupt("sqs message id", e))
}

fn receive_count(m: &Message) -> u32 {
    m.attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// `messages` in `SendMessageBatch` requests: at most ten each, and at most
/// [`MAX_MESSAGE_BYTES`] together. A message over the limit on its own is
/// refused before anything is sent.
fn batches(messages: &[OutgoingMessage]) -> StoreResult<Vec<&[OutgoingMessage]>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        let size = m.body.len();
        if size > MAX_MESSAGE_BYTES {
            return Err(StoreError::backend(
                "sqs",
                "send_message_batch",
                format!("a message of {size} bytes is over SQS's {MAX_MESSAGE_BYTES}-byte limit"),
            ));
        }
        if i - start == SQS_BATCH || bytes + size > MAX_MESSAGE_BYTES {
            out.push(&messages[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < messages.len() {
        out.push(&messages[start..]);
    }
    Ok(out)
}

/// `ApproximateFirstReceiveTimestamp`: epoch milliseconds.
fn first_received_at(m: &Message) -> Option<jiff::Timestamp> {
    m.attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateFirstReceiveTimestamp))
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
}

impl SqsQueue {
    /// The queue at `url`, called `name` in logs.
    pub fn new(client: Client, name: impl Into<String>, url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            name: name.into(),
            url: url.into(),
            dlq_url: OnceCell::new(),
        }
    }

    /// Uses `url` as the dead-letter queue's URL (from the deployment's
    /// environment) instead of looking it up, so parking needs only
    /// `sqs:SendMessage` on it.
    pub fn with_dlq_url(self, url: Option<String>) -> Self {
        if let Some(u) = url {
            let _ = self.dlq_url.set(u);
        }
        self
    }

    async fn dlq_url(&self) -> StoreResult<&str> {
        self.dlq_url
            .get_or_try_init(|| async {
                let attrs = self
                    .client
                    .get_queue_attributes()
                    .queue_url(&self.url)
                    .attribute_names(QueueAttributeName::RedrivePolicy)
                    .send()
                    .await
                    .map_err(sdk_err("sqs", "get_queue_attributes"))?;
                let policy = attrs
                    .attributes()
                    .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
                    .ok_or_else(|| {
                        StoreError::NotFound(format!(
                            "queue {} has no dead-letter queue (no RedrivePolicy)",
                            self.name
                        ))
                    })?;
                // Parse, don't compare strings: emulators format it differently.
                let policy: serde_json::Value = serde_json::from_str(policy)
                    .map_err(|e| StoreError::corrupt("RedrivePolicy", e))?;
                let arn = policy["deadLetterTargetArn"].as_str().ok_or_else(|| {
                    StoreError::corrupt("RedrivePolicy", "no deadLetterTargetArn")
                })?;
                let dlq_name = arn.rsplit(':').next().unwrap_or(arn);
                let url = self
                    .client
                    .get_queue_url()
                    .queue_name(dlq_name)
                    .send()
                    .await
                    .map_err(sdk_err("sqs", "get_queue_url"))?;
                url.queue_url()
                    .map(str::to_string)
                    .ok_or_else(|| StoreError::backend("sqs", "get_queue_url", "no URL returned"))
            })
            .await
            .map(String::as_str)
    }

    /// Receives every DLQ message it can see (hiding each for a while) and
    /// hands them to `keep`; messages `keep` declines are made visible again.
    async fn walk_dlq(
        &self,
        limit: usize,
        mut keep: impl FnMut(&Message) -> bool,
    ) -> StoreResult<Vec<Message>> {
        let dlq = self.dlq_url().await?.to_string();
        let mut seen: HashSet<String> = HashSet::new();
        let mut kept = Vec::new();
        let mut declined: Vec<String> = Vec::new();
        for _ in 0..MAX_PEEK_ROUNDS {
            if kept.len() >= limit {
                break;
            }
            let out = self
                .client
                .receive_message()
                .queue_url(&dlq)
                .max_number_of_messages(SQS_BATCH as i32)
                .visibility_timeout(PEEK_VISIBILITY_SECONDS)
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .map_err(sdk_err("sqs", "receive_message"))?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                let id = m.message_id().unwrap_or_default().to_string();
                let receipt = m.receipt_handle().unwrap_or_default().to_string();
                if !seen.insert(id) || kept.len() >= limit || !keep(&m) {
                    declined.push(receipt);
                } else {
                    kept.push(m);
                }
            }
        }
        self.unhide(&dlq, declined).await?;
        Ok(kept)
    }

    async fn unhide(&self, queue_url: &str, receipts: Vec<String>) -> StoreResult<()> {
        for chunk in receipts.chunks(SQS_BATCH) {
            let mut req = self
                .client
                .change_message_visibility_batch()
                .queue_url(queue_url);
            for (i, r) in chunk.iter().enumerate() {
                req = req.entries(
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .visibility_timeout(0)
                        .build()
                        .map_err(|e| StoreError::backend("sqs", "build request", e))?,
                );
            }
            req.send()
                .await
                .map_err(sdk_err("sqs", "change_message_visibility_batch"))?;
        }
        Ok(())
    }

    async fn count(&self, url: &str, names: &[QueueAttributeName]) -> StoreResult<Vec<u64>> {
        let mut req = self.client.get_queue_attributes().queue_url(url);
        for n in names {
            req = req.attribute_names(n.clone());
        }
        let out = req
            .send()
            .await
            .map_err(sdk_err("sqs", "get_queue_attributes"))?;
        let attrs = out.attributes().cloned().unwrap_or_default();
        Ok(names
            .iter()
            .map(|n| attrs.get(n).and_then(|v| v.parse().ok()).unwrap_or(0))
            .collect())
    }
}

#[async_trait]
impl WorkQueue for SqsQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send_batch(&self, messages: &[OutgoingMessage]) -> StoreResult<Vec<MessageId>> {
        let mut ids = Vec::with_capacity(messages.len());
        for chunk in batches(messages)? {
            let mut req = self.client.send_message_batch().queue_url(&self.url);
            for (i, m) in chunk.iter().enumerate() {
                let mut entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&m.body);
                if let Some(d) = m.delay {
                    entry = entry.delay_seconds(secs(d).min(900));
                }
                req = req.entries(
                    entry
                        .build()
                        .map_err(|e| StoreError::backend("sqs", "build request", e))?,
                );
            }
            let out = req
                .send()
                .await
                .map_err(sdk_err("sqs", "send_message_batch"))?;
            if let Some(f) = out.failed().first() {
                return Err(StoreError::backend(
                    "sqs",
                    "send_message_batch",
                    format!(
                        "{} of {} messages refused, first: {} {}",
                        out.failed().len(),
                        chunk.len(),
                        f.code(),
                        f.message().unwrap_or_default()
                    ),
                ));
            }
            let by_entry: HashMap<&str, &str> = out
                .successful()
                .iter()
                .map(|s| (s.id(), s.message_id()))
                .collect();
            for i in 0..chunk.len() {
                let id = by_entry.get(i.to_string().as_str()).ok_or_else(|| {
                    StoreError::backend("sqs", "send_message_batch", "an entry has no result")
                })?;
                ids.push(
                    MessageId::new(*id).map_err(|e| StoreError::corrupt("sqs message id", e))?,
                );
            }
        }
        Ok(ids)
    }

    async fn receive(
        &self,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> StoreResult<Vec<ReceivedMessage>> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(secs(visibility))
            .wait_time_seconds(secs(wait).min(20))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(
                MessageSystemAttributeName::ApproximateFirstReceiveTimestamp,
            )
            .send()
            .await
            .map_err(sdk_err("sqs", "receive_message"))?;
        out.messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                Ok(ReceivedMessage {
                    id: message_id(&m)?,
                    receive_count: receive_count(&m),
                    first_received_at: first_received_at(&m),
                    receipt: ReceiptHandle(m.receipt_handle.clone().unwrap_or_default()),
                    body: m.body.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn delete(&self, receipt: &ReceiptHandle) -> StoreResult<()> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt.as_str())
            .send()
            .await
            .map_err(sdk_err("sqs", "delete_message"))?;
        Ok(())
    }

    async fn change_visibility(
        &self,
        receipt: &ReceiptHandle,
        timeout: Duration,
    ) -> StoreResult<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt.as_str())
            .visibility_timeout(secs(timeout).min(43_200))
            .send()
            .await
            .map_err(sdk_err("sqs", "change_message_visibility"))?;
        Ok(())
    }

    async fn park(&self, message: &ReceivedMessage) -> StoreResult<()> {
        let dlq = self.dlq_url().await?.to_string();
        self.client
            .send_message()
            .queue_url(&dlq)
            .message_body(&message.body)
            .send()
            .await
            .map_err(sdk_err("sqs", "send_message"))?;
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(message.receipt.as_str())
            .send()
            .await
            .map_err(sdk_err("sqs", "delete_message"))?;
        Ok(())
    }

    async fn dead_letters(&self, max: u32) -> StoreResult<Vec<DeadLetter>> {
        let messages = self.walk_dlq(max as usize, |_| true).await?;
        let dlq = self.dlq_url().await?.to_string();
        let receipts = messages
            .iter()
            .map(|m| m.receipt_handle().unwrap_or_default().to_string())
            .collect();
        self.unhide(&dlq, receipts).await?;
        messages
            .iter()
            .map(|m| {
                let sent_at = m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|t| t.parse::<i64>().ok())
                    .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok());
                Ok(DeadLetter {
                    id: message_id(m)?,
                    body: m.body().unwrap_or_default().to_string(),
                    receive_count: receive_count(m),
                    sent_at,
                })
            })
            .collect()
    }

    async fn redrive(&self, ids: Option<&[MessageId]>) -> StoreResult<u32> {
        let wanted: Option<HashSet<&str>> = ids.map(|ids| ids.iter().map(|i| i.as_str()).collect());
        let limit = wanted.as_ref().map_or(usize::MAX, HashSet::len);
        let messages = self
            .walk_dlq(limit, |m| {
                wanted
                    .as_ref()
                    .is_none_or(|w| w.contains(m.message_id().unwrap_or_default()))
            })
            .await?;
        let dlq = self.dlq_url().await?.to_string();
        let mut moved = 0;
        for m in &messages {
            self.client
                .send_message()
                .queue_url(&self.url)
                .message_body(m.body().unwrap_or_default())
                .send()
                .await
                .map_err(sdk_err("sqs", "send_message"))?;
            self.client
                .delete_message()
                .queue_url(&dlq)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .map_err(sdk_err("sqs", "delete_message"))?;
            moved += 1;
        }
        Ok(moved)
    }

    async fn depth(&self) -> StoreResult<QueueDepth> {
        let main = self
            .count(
                &self.url,
                &[
                    QueueAttributeName::ApproximateNumberOfMessages,
                    QueueAttributeName::ApproximateNumberOfMessagesDelayed,
                    QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                ],
            )
            .await?;
        // A queue without a dead-letter queue (the unrouted queue) parks nothing.
        let dead = match self.dlq_url().await {
            Ok(dlq) => {
                let dlq = dlq.to_string();
                let n = self
                    .count(
                        &dlq,
                        &[
                            QueueAttributeName::ApproximateNumberOfMessages,
                            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                        ],
                    )
                    .await?;
                n[0] + n[1]
            }
            Err(StoreError::NotFound(_)) => 0,
            Err(e) => return Err(e),
        };
        Ok(QueueDepth {
            visible: main[0] + main[1],
            in_flight: main[2],
            dead,
        })
    }
}
