use super::{SqliteStore, decode, encode, q};
use crate::adapters::millis;
use crate::ports::{Acquire, Budget, CallLog, CallRecord, Limit, RateLimitStore, StoreResult};
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use rusqlite::{OptionalExtension, Transaction, params};
use std::time::Duration;

/// How long call records are kept.
const CALL_RETENTION: SignedDuration = SignedDuration::from_hours(24 * 7);

fn read(tx: &Transaction<'_>, key: &str) -> StoreResult<Budget> {
    let body: Option<String> = tx
        .query_row(
            "SELECT body FROM budgets WHERE key = ?1",
            params![key],
            |r| r.get(0),
        )
        .optional()
        .map_err(q("budgets.read"))?;
    body.map_or(Ok(Budget::default()), |b| decode("rate budget", &b))
}

fn write(tx: &Transaction<'_>, key: &str, budget: &Budget) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO budgets (key, body) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET body = ?2",
        params![key, encode("rate budget", budget)?],
    )
    .map_err(q("budgets.write"))?;
    Ok(())
}

impl SqliteStore {
    async fn with_budget<T: Send + 'static>(
        &self,
        op: &'static str,
        key: &str,
        f: impl FnOnce(&mut Budget, i64) -> T + Send + 'static,
    ) -> StoreResult<T> {
        let key = key.to_string();
        self.tx_at(op, move |tx, now| {
            let mut budget = read(tx, &key)?;
            let before = budget.clone();
            let out = f(&mut budget, millis(now));
            if budget != before {
                write(tx, &key, &budget)?;
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl RateLimitStore for SqliteStore {
    async fn acquire(&self, key: &str, limits: &[Limit]) -> StoreResult<Acquire> {
        let limits = limits.to_vec();
        self.with_budget("budgets.acquire", key, move |b, now| {
            b.acquire(&limits, now)
        })
        .await
    }

    async fn block_until(&self, key: &str, until: Timestamp) -> StoreResult<()> {
        let until = millis(until);
        self.with_budget("budgets.block_until", key, move |b, _| {
            b.blocked_until_ms = b.blocked_until_ms.max(until);
        })
        .await
    }

    async fn take_slot(
        &self,
        key: &str,
        slot: &str,
        max: u32,
        lease: Duration,
    ) -> StoreResult<bool> {
        let slot = slot.to_string();
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        self.with_budget("budgets.take_slot", key, move |b, now| {
            b.take_slot(&slot, max, now.saturating_add(lease_ms), now)
        })
        .await
    }

    async fn release_slot(&self, key: &str, slot: &str) -> StoreResult<()> {
        let slot = slot.to_string();
        self.with_budget("budgets.release_slot", key, move |b, _| {
            b.slots.remove(&slot);
        })
        .await
    }
}

#[async_trait]
impl CallLog for SqliteStore {
    async fn record(&self, call: &CallRecord) -> StoreResult<()> {
        let (account, at, body) = (call.account.clone(), millis(call.at), encode("call", call)?);
        self.tx_at("calls.record", move |tx, now| {
            tx.execute(
                "INSERT INTO calls (account, at_ms, body) VALUES (?1, ?2, ?3)",
                params![account, at, body],
            )
            .map_err(q("calls.record"))?;
            let horizon = millis(now - CALL_RETENTION);
            tx.execute("DELETE FROM calls WHERE at_ms < ?1", params![horizon])
                .map_err(q("calls.record"))?;
            Ok(())
        })
        .await
    }

    async fn since(&self, account: &str, since: Timestamp) -> StoreResult<Vec<CallRecord>> {
        let (account, since) = (account.to_string(), millis(since));
        self.tx("calls.since", move |tx| {
            let mut stmt = tx
                .prepare_cached("SELECT body FROM calls WHERE account = ?1 AND at_ms >= ?2 ORDER BY at_ms, rowid")
                .map_err(q("calls.since"))?;
            let rows = stmt
                .query_map(params![account, since], |r| r.get::<_, String>(0))
                .map_err(q("calls.since"))?;
            let mut out = Vec::new();
            for r in rows {
                out.push(decode("call", &r.map_err(q("calls.since"))?)?);
            }
            Ok(out)
        })
        .await
    }
}
