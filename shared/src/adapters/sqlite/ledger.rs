use super::{SqliteStore, decode, encode, q};
use crate::ids::TenantId;
use crate::model::{Provider, RecordKind};
use crate::ports::{
    Ledger, LedgerEntry, LedgerKey, SourceRecord, StoreError, StoreResult, UpsertOutcome,
};
use async_trait::async_trait;
use jiff::Timestamp;
use jiff::civil::Date;
use rusqlite::{OptionalExtension, Transaction, params};

fn read(tx: &Transaction<'_>, key: &str) -> StoreResult<Option<LedgerEntry>> {
    let json: Option<String> = tx
        .query_row(
            "SELECT entry FROM ledger WHERE key = ?1",
            params![key],
            |r| r.get(0),
        )
        .optional()
        .map_err(q("ledger.get"))?;
    json.map(|j| decode(&format!("ledger row {key}"), &j))
        .transpose()
}

fn write(tx: &Transaction<'_>, entry: &LedgerEntry) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO ledger (key, tenant, business_date, entry) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key) DO UPDATE SET business_date = ?3, entry = ?4",
        params![
            entry.key.storage_key(),
            entry.key.tenant.as_str(),
            entry.business_date.map(|d| d.to_string()),
            encode("ledger row", entry)?
        ],
    )
    .map_err(q("ledger.write"))?;
    Ok(())
}

impl SqliteStore {
    async fn modify<T, F>(&self, op: &'static str, key: &LedgerKey, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut LedgerEntry, Timestamp) -> StoreResult<T> + Send + 'static,
    {
        let key = key.storage_key();
        self.tx_at(op, move |tx, now| {
            let mut entry =
                read(tx, &key)?.ok_or_else(|| StoreError::NotFound(format!("ledger row {key}")))?;
            let out = f(&mut entry, now)?;
            write(tx, &entry)?;
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl Ledger for SqliteStore {
    async fn upsert(
        &self,
        record: &SourceRecord,
        destinations: &[Provider],
    ) -> StoreResult<UpsertOutcome> {
        let record = record.clone();
        let destinations = destinations.to_vec();
        self.tx_at("ledger.upsert", move |tx, now| {
            let hash = record.content_hash();
            let key = record.key.storage_key();
            match read(tx, &key)? {
                None => {
                    let entry = LedgerEntry::create(&record, &hash, &destinations, now);
                    write(tx, &entry)?;
                    Ok(UpsertOutcome::Created { version: 1 })
                }
                Some(mut entry) => {
                    let before = entry.clone();
                    let outcome = entry.apply_upsert(&record, &hash, &destinations, now);
                    if entry != before {
                        write(tx, &entry)?;
                    }
                    Ok(outcome)
                }
            }
        })
        .await
    }

    async fn get(&self, key: &LedgerKey) -> StoreResult<Option<LedgerEntry>> {
        let key = key.storage_key();
        self.tx("ledger.get", move |tx| read(tx, &key)).await
    }

    async fn mark_posted(
        &self,
        key: &LedgerKey,
        destination: Provider,
        version: u32,
        remote_id: &str,
        sync_token: Option<&str>,
    ) -> StoreResult<()> {
        let (remote_id, sync_token) = (remote_id.to_string(), sync_token.map(str::to_string));
        self.modify("ledger.mark_posted", key, move |e, now| {
            e.apply_posted(destination, version, &remote_id, sync_token.as_deref(), now)
        })
        .await
    }

    async fn mark_failed(
        &self,
        key: &LedgerKey,
        destination: Provider,
        version: u32,
        reason: &str,
    ) -> StoreResult<u32> {
        let reason = reason.to_string();
        self.modify("ledger.mark_failed", key, move |e, now| {
            e.apply_failed(destination, version, &reason, now)
        })
        .await
    }

    async fn mark_send(
        &self,
        key: &LedgerKey,
        destination: Provider,
        version: u32,
        send: Option<&str>,
        expected: Option<&str>,
    ) -> StoreResult<()> {
        let (send, expected) = (send.map(str::to_string), expected.map(str::to_string));
        self.modify("ledger.mark_send", key, move |e, now| {
            e.apply_send(
                destination,
                version,
                send.as_deref(),
                expected.as_deref(),
                now,
            )
        })
        .await
    }

    async fn list_undated(
        &self,
        tenant: &TenantId,
        kind: RecordKind,
    ) -> StoreResult<Vec<LedgerEntry>> {
        let (tenant, kind) = (tenant.to_string(), kind.as_str());
        self.tx("ledger.list_undated", move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT key, entry FROM ledger WHERE tenant = ?1 AND business_date IS NULL
                     AND json_extract(entry, '$.key.kind') = ?2 ORDER BY key",
                )
                .map_err(q("ledger.list_undated"))?;
            let rows = stmt
                .query_map(params![tenant, kind], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(q("ledger.list_undated"))?;
            let mut out = Vec::new();
            for row in rows {
                let (key, json) = row.map_err(q("ledger.list_undated"))?;
                out.push(decode(&format!("ledger row {key}"), &json)?);
            }
            Ok(out)
        })
        .await
    }

    async fn list_for_business_date(
        &self,
        tenant: &TenantId,
        date: Date,
    ) -> StoreResult<Vec<LedgerEntry>> {
        let (tenant, date) = (tenant.to_string(), date.to_string());
        self.tx("ledger.list_for_business_date", move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT key, entry FROM ledger WHERE tenant = ?1 AND business_date = ?2 ORDER BY key",
                )
                .map_err(q("ledger.list_for_business_date"))?;
            let rows = stmt
                .query_map(params![tenant, date], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(q("ledger.list_for_business_date"))?;
            let mut out = Vec::new();
            for row in rows {
                let (key, json) = row.map_err(q("ledger.list_for_business_date"))?;
                out.push(decode(&format!("ledger row {key}"), &json)?);
            }
            Ok(out)
        })
        .await
    }
}
