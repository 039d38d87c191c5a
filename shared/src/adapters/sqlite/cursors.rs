use super::{SqliteStore, q};
use crate::adapters::{from_millis, millis};
use crate::ports::{CasOutcome, Cursor, CursorKey, CursorStore, StoreResult};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};

fn read(tx: &Transaction<'_>, key: &str) -> StoreResult<Option<Cursor>> {
    let row: Option<(String, i64, i64)> = tx
        .query_row(
            "SELECT value, version, updated_at_ms FROM cursors WHERE key = ?1",
            params![key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(q("cursors.get"))?;
    row.map(|(value, version, at)| {
        Ok(Cursor {
            value,
            version: version as u64,
            updated_at: from_millis(at)?,
        })
    })
    .transpose()
}

#[async_trait]
impl CursorStore for SqliteStore {
    async fn get(&self, key: &CursorKey) -> StoreResult<Option<Cursor>> {
        let key = key.storage_key();
        self.tx("cursors.get", move |tx| read(tx, &key)).await
    }

    async fn compare_and_set(
        &self,
        key: &CursorKey,
        expected: Option<u64>,
        value: &str,
    ) -> StoreResult<CasOutcome> {
        let (key, value) = (key.storage_key(), value.to_string());
        self.tx_at("cursors.compare_and_set", move |tx, now| {
            let current = read(tx, &key)?;
            if current.as_ref().map(|c| c.version) != expected {
                return Ok(CasOutcome::Conflict { current });
            }
            let cursor = Cursor {
                value,
                version: expected.map_or(1, |v| v + 1),
                updated_at: now,
            };
            tx.execute(
                "INSERT INTO cursors (key, value, version, updated_at_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET value = ?2, version = ?3, updated_at_ms = ?4",
                params![
                    key,
                    cursor.value,
                    cursor.version as i64,
                    millis(cursor.updated_at)
                ],
            )
            .map_err(q("cursors.compare_and_set"))?;
            Ok(CasOutcome::Set(cursor))
        })
        .await
    }
}
