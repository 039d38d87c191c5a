use super::{SqliteStore, q};
use crate::adapters::{from_millis, millis};
use crate::ids::IdempotencyKey;
use crate::ports::{ClaimOutcome, ClaimToken, IdempotencyStore, StoreError, StoreResult};
use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        lease_until: Timestamp,
    ) -> StoreResult<ClaimOutcome> {
        let key = key.to_string();
        self.tx_at("idempotency.claim", move |tx, now| {
            let now = millis(now);
            let existing: Option<(String, i64, Option<i64>, Option<String>)> = tx
                .query_row(
                    "SELECT status, lease_until_ms, retain_until_ms, result FROM idempotency WHERE key = ?1",
                    params![key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(q("idempotency.claim"))?;
            match existing {
                Some((status, lease, _, _)) if status == "in_progress" && lease > now => {
                    return Ok(ClaimOutcome::InProgress {
                        lease_until: from_millis(lease)?,
                    });
                }
                Some((status, _, Some(retain), result)) if status == "completed" && retain > now => {
                    return Ok(ClaimOutcome::Done {
                        result,
                        retained_until: from_millis(retain)?,
                    });
                }
                _ => {}
            }
            let token = ClaimToken::generate();
            tx.execute(
                "INSERT INTO idempotency (key, status, token, lease_until_ms, retain_until_ms, result)
                 VALUES (?1, 'in_progress', ?2, ?3, NULL, NULL)
                 ON CONFLICT (key) DO UPDATE SET status = 'in_progress', token = ?2,
                   lease_until_ms = ?3, retain_until_ms = NULL, result = NULL",
                params![key, token.0, millis(lease_until)],
            )
            .map_err(q("idempotency.claim"))?;
            Ok(ClaimOutcome::Claimed(token))
        })
        .await
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: &ClaimToken,
        result: Option<&str>,
        retain_until: Timestamp,
    ) -> StoreResult<()> {
        let (key, token, result) = (key.to_string(), token.0.clone(), result.map(str::to_string));
        self.tx("idempotency.complete", move |tx| {
            let n = tx
                .execute(
                    "UPDATE idempotency SET status = 'completed', retain_until_ms = ?3, result = ?4
                     WHERE key = ?1 AND token = ?2 AND status = 'in_progress'",
                    params![key, token, millis(retain_until), result],
                )
                .map_err(q("idempotency.complete"))?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "idempotency key {key} is no longer claimed by this caller"
                )));
            }
            Ok(())
        })
        .await
    }

    async fn release(&self, key: &IdempotencyKey, token: &ClaimToken) -> StoreResult<()> {
        let (key, token) = (key.to_string(), token.0.clone());
        self.tx("idempotency.release", move |tx| {
            let n = tx
                .execute(
                    "DELETE FROM idempotency WHERE key = ?1 AND token = ?2 AND status = 'in_progress'",
                    params![key, token],
                )
                .map_err(q("idempotency.release"))?;
            if n == 0 {
                return Err(StoreError::Conflict(format!(
                    "idempotency key {key} is no longer claimed by this caller"
                )));
            }
            Ok(())
        })
        .await
    }
}
