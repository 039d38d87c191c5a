use super::{SqliteStore, q};
use crate::adapters::{from_millis, millis};
use crate::ids::{MessageId, ReceiptHandle};
use crate::ports::{
    DeadLetter, OutgoingMessage, QueueDepth, ReceivedMessage, StoreError, StoreResult, WorkQueue,
};
use async_trait::async_trait;
use rusqlite::params;
use std::time::Duration;

/// How often a waiting `receive` looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A work queue in the embedded database, with SQS's semantics: a received
/// message is hidden for its visibility timeout, comes back if not deleted,
/// and is moved to the dead-letter queue when it would be received more than
/// `max_receives` times. Its time is its store's clock.
#[derive(Debug, Clone)]
pub struct SqliteQueue {
    store: SqliteStore,
    name: String,
    max_receives: u32,
}

impl SqliteQueue {
    /// The queue `name` in `store`, parking messages after `max_receives` receives.
    pub fn new(store: SqliteStore, name: impl Into<String>, max_receives: u32) -> Self {
        SqliteQueue {
            store,
            name: name.into(),
            max_receives: max_receives.max(1),
        }
    }

    async fn receive_now(
        &self,
        max: u32,
        visibility: Duration,
    ) -> StoreResult<Vec<ReceivedMessage>> {
        let (queue, max_receives) = (self.name.clone(), self.max_receives);
        let visibility_ms = i64::try_from(visibility.as_millis()).unwrap_or(i64::MAX);
        self.store
            .tx_at("queue.receive", move |tx, now| {
                let now = millis(now);
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT seq, id, body, receive_count FROM queue_messages
                         WHERE queue = ?1 AND dead_at_ms IS NULL AND visible_at_ms <= ?2
                         ORDER BY seq LIMIT ?3",
                    )
                    .map_err(q("queue.receive"))?;
                let candidates: Vec<(i64, String, String, u32)> = stmt
                    .query_map(params![queue, now, i64::from(max) * 4 + 16], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .map_err(q("queue.receive"))?
                    .collect::<Result<_, _>>()
                    .map_err(q("queue.receive"))?;
                let mut out = Vec::new();
                for (seq, id, body, count) in candidates {
                    if out.len() as u32 >= max {
                        break;
                    }
                    if count >= max_receives {
                        tx.execute(
                            "UPDATE queue_messages SET dead_at_ms = ?2, receipt = NULL WHERE seq = ?1",
                            params![seq, now],
                        )
                        .map_err(q("queue.receive"))?;
                        tracing::warn!(queue = %queue, message_id = %id, receives = count, "message moved to the dead-letter queue");
                        continue;
                    }
                    let receipt = format!("{id}:{}", uuid::Uuid::new_v4());
                    tx.execute(
                        "UPDATE queue_messages SET receive_count = receive_count + 1,
                         visible_at_ms = ?2, receipt = ?3 WHERE seq = ?1",
                        params![seq, now.saturating_add(visibility_ms), receipt],
                    )
                    .map_err(q("queue.receive"))?;
                    out.push(ReceivedMessage {
                        id: MessageId::new(id).map_err(|e| StoreError::corrupt("queue message id", e))?,
                        receipt: ReceiptHandle(receipt),
                        body,
                        receive_count: count + 1,
                        // The embedded queue has no limit on how long a
                        // message is hidden.
                        first_received_at: None,
                    });
                }
                Ok(out)
            })
            .await
    }
}

#[async_trait]
impl WorkQueue for SqliteQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send_batch(&self, messages: &[OutgoingMessage]) -> StoreResult<Vec<MessageId>> {
        if let Some(m) = messages
            .iter()
            .find(|m| m.body.len() > crate::ports::MAX_MESSAGE_BYTES)
        {
            return Err(StoreError::backend(
                "sqlite",
                "queue.send_batch",
                format!(
                    "a message of {} bytes is over the queue's {}-byte limit (SQS's)",
                    m.body.len(),
                    crate::ports::MAX_MESSAGE_BYTES
                ),
            ));
        }
        let queue = self.name.clone();
        let messages = messages.to_vec();
        self.store
            .tx_at("queue.send_batch", move |tx, now| {
                let now = millis(now);
                let mut ids = Vec::with_capacity(messages.len());
                for m in messages {
                    let id = uuid::Uuid::new_v4().to_string();
                    let delay = m
                        .delay
                        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                    tx.execute(
                        "INSERT INTO queue_messages (queue, id, body, sent_at_ms, visible_at_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![queue, id, m.body, now, now.saturating_add(delay)],
                    )
                    .map_err(q("queue.send_batch"))?;
                    ids.push(
                        MessageId::new(id)
                            .map_err(|e| StoreError::corrupt("queue message id", e))?,
                    );
                }
                Ok(ids)
            })
            .await
    }

    async fn receive(
        &self,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> StoreResult<Vec<ReceivedMessage>> {
        let max = max.clamp(1, 10);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let got = self.receive_now(max, visibility).await?;
            if !got.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(got);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn delete(&self, receipt: &ReceiptHandle) -> StoreResult<()> {
        let (queue, receipt) = (self.name.clone(), receipt.0.clone());
        self.store
            .tx("queue.delete", move |tx| {
                let n = tx
                    .execute(
                        "DELETE FROM queue_messages WHERE queue = ?1 AND receipt = ?2 AND dead_at_ms IS NULL",
                        params![queue, receipt],
                    )
                    .map_err(q("queue.delete"))?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!(
                        "message with receipt {receipt} in queue {queue} (deleted, or received again since)"
                    )));
                }
                Ok(())
            })
            .await
    }

    async fn change_visibility(
        &self,
        receipt: &ReceiptHandle,
        timeout: Duration,
    ) -> StoreResult<()> {
        let (queue, receipt) = (self.name.clone(), receipt.0.clone());
        let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        self.store
            .tx_at("queue.change_visibility", move |tx, now| {
                let now = millis(now);
                let n = tx
                    .execute(
                        "UPDATE queue_messages SET visible_at_ms = ?3
                         WHERE queue = ?1 AND receipt = ?2 AND dead_at_ms IS NULL",
                        params![queue, receipt, now.saturating_add(timeout_ms)],
                    )
                    .map_err(q("queue.change_visibility"))?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!(
                        "message with receipt {receipt} in queue {queue}"
                    )));
                }
                Ok(())
            })
            .await
    }

    async fn park(&self, message: &ReceivedMessage) -> StoreResult<()> {
        let (queue, receipt) = (self.name.clone(), message.receipt.0.clone());
        self.store
            .tx_at("queue.park", move |tx, now| {
                let now = millis(now);
                let n = tx
                    .execute(
                        "UPDATE queue_messages SET dead_at_ms = ?3, receipt = NULL
                         WHERE queue = ?1 AND receipt = ?2 AND dead_at_ms IS NULL",
                        params![queue, receipt, now],
                    )
                    .map_err(q("queue.park"))?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!(
                        "message with receipt {receipt} in queue {queue}"
                    )));
                }
                Ok(())
            })
            .await
    }

    async fn dead_letters(&self, max: u32) -> StoreResult<Vec<DeadLetter>> {
        let queue = self.name.clone();
        self.store
            .tx("queue.dead_letters", move |tx| {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT id, body, receive_count, sent_at_ms FROM queue_messages
                         WHERE queue = ?1 AND dead_at_ms IS NOT NULL ORDER BY seq LIMIT ?2",
                    )
                    .map_err(q("queue.dead_letters"))?;
                let rows: Vec<(String, String, u32, i64)> = stmt
                    .query_map(params![queue, max], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .map_err(q("queue.dead_letters"))?
                    .collect::<Result<_, _>>()
                    .map_err(q("queue.dead_letters"))?;
                rows.into_iter()
                    .map(|(id, body, receive_count, sent)| {
                        Ok(DeadLetter {
                            id: MessageId::new(id)
                                .map_err(|e| StoreError::corrupt("queue message id", e))?,
                            body,
                            receive_count,
                            sent_at: Some(from_millis(sent)?),
                        })
                    })
                    .collect()
            })
            .await
    }

    async fn redrive(&self, ids: Option<&[MessageId]>) -> StoreResult<u32> {
        let queue = self.name.clone();
        let ids: Option<Vec<String>> = ids.map(|ids| ids.iter().map(|i| i.to_string()).collect());
        self.store
            .tx_at("queue.redrive", move |tx, now| {
                let now = millis(now);
                let sql = "UPDATE queue_messages SET dead_at_ms = NULL, receive_count = 0,
                           visible_at_ms = ?2, receipt = NULL
                           WHERE queue = ?1 AND dead_at_ms IS NOT NULL";
                let n = match ids {
                    None => tx
                        .execute(sql, params![queue, now])
                        .map_err(q("queue.redrive"))?,
                    Some(ids) => {
                        let mut n = 0;
                        for id in ids {
                            n += tx
                                .execute(&format!("{sql} AND id = ?3"), params![queue, now, id])
                                .map_err(q("queue.redrive"))?;
                        }
                        n
                    }
                };
                Ok(n as u32)
            })
            .await
    }

    async fn depth(&self) -> StoreResult<QueueDepth> {
        let queue = self.name.clone();
        self.store
            .tx_at("queue.depth", move |tx, now| {
                let now = millis(now);
                tx.query_row(
                    "SELECT
                       COALESCE(SUM(dead_at_ms IS NULL AND visible_at_ms <= ?2), 0)
                         + COALESCE(SUM(dead_at_ms IS NULL AND visible_at_ms > ?2 AND receipt IS NULL), 0),
                       COALESCE(SUM(dead_at_ms IS NULL AND visible_at_ms > ?2 AND receipt IS NOT NULL), 0),
                       COALESCE(SUM(dead_at_ms IS NOT NULL), 0)
                     FROM queue_messages WHERE queue = ?1",
                    params![queue, now],
                    |r| {
                        Ok(QueueDepth {
                            visible: r.get::<_, i64>(0)? as u64,
                            in_flight: r.get::<_, i64>(1)? as u64,
                            dead: r.get::<_, i64>(2)? as u64,
                        })
                    },
                )
                .map_err(q("queue.depth"))
            })
            .await
    }
}
