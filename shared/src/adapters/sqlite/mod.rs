//! The embedded backend's stores: one SQLite database file (WAL mode) holding
//! idempotency records, cursors, the ledger, connections and the work queues.
//! Every operation runs in its own transaction on a blocking thread; a
//! `BEGIN IMMEDIATE` transaction makes each read-check-write atomic, also
//! against other processes using the same file (`hub serve` and a `hub` command).
//! The time (leases, retention, budgets, visibility) is the store's [`Clock`],
//! read inside the transaction: the system's unless given another.

mod connections;
mod cursors;
mod idempotency;
mod ledger;
mod queue;
mod rate_limit;

pub use queue::SqliteQueue;

use crate::ports::{Clock, StoreError, StoreResult, system_clock};
use jiff::Timestamp;
use rusqlite::{Connection, TransactionBehavior};
use std::path::Path;
use std::sync::{Arc, Mutex};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS idempotency (
    key            TEXT PRIMARY KEY,
    status         TEXT NOT NULL,
    token          TEXT NOT NULL,
    lease_until_ms INTEGER NOT NULL,
    retain_until_ms INTEGER,
    result         TEXT
);
CREATE TABLE IF NOT EXISTS cursors (
    key           TEXT PRIMARY KEY,
    value         TEXT NOT NULL,
    version       INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    key           TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    business_date TEXT,
    entry         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_by_date ON ledger (tenant, business_date, key);
CREATE TABLE IF NOT EXISTS tenants (
    id   TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS connections (
    tenant   TEXT NOT NULL,
    id       TEXT NOT NULL,
    provider TEXT NOT NULL,
    account  TEXT NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (tenant, id),
    UNIQUE (provider, account)
);
CREATE TABLE IF NOT EXISTS queue_messages (
    queue           TEXT NOT NULL,
    id              TEXT NOT NULL,
    body            TEXT NOT NULL,
    sent_at_ms      INTEGER NOT NULL,
    visible_at_ms   INTEGER NOT NULL,
    receive_count   INTEGER NOT NULL DEFAULT 0,
    receipt         TEXT,
    dead_at_ms      INTEGER,
    seq             INTEGER PRIMARY KEY AUTOINCREMENT
);
CREATE INDEX IF NOT EXISTS queue_ready ON queue_messages (queue, dead_at_ms, visible_at_ms);
CREATE UNIQUE INDEX IF NOT EXISTS queue_ids ON queue_messages (queue, id);
CREATE TABLE IF NOT EXISTS budgets (
    key  TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    account TEXT NOT NULL,
    at_ms   INTEGER NOT NULL,
    body    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_by_account ON calls (account, at_ms);
"#;

/// A handle on the embedded database. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

fn sql_err(operation: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend("sqlite", operation, e)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and its schema.
    pub fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::backend("sqlite", "open", e))?;
        }
        let conn = Connection::open(path).map_err(sql_err("open"))?;
        Self::init(conn)
    }

    /// A private in-memory database (tests, one-off runs).
    pub fn in_memory() -> StoreResult<Self> {
        let conn = Connection::open_in_memory().map_err(sql_err("open"))?;
        Self::init(conn)
    }

    fn init(conn: Connection) -> StoreResult<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(sql_err("open"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql_err("open"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql_err("open"))?;
        conn.execute_batch(SCHEMA).map_err(sql_err("migrate"))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            clock: system_clock(),
        })
    }

    /// The same database, going by `clock` instead of the system's (queues
    /// made from this handle too).
    pub fn with_clock(self, clock: impl Clock + 'static) -> Self {
        SqliteStore {
            clock: Arc::new(clock),
            ..self
        }
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction on a blocking thread and
    /// commits if it returns `Ok`.
    pub(crate) async fn tx<T, F>(&self, operation: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.tx_at(operation, move |tx, _| f(tx)).await
    }

    /// [`tx`](Self::tx), handing `f` the store's time, read once the
    /// transaction holds the database (so concurrent writers see it in order).
    pub(crate) async fn tx_at<T, F>(&self, operation: &'static str, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>, Timestamp) -> StoreResult<T> + Send + 'static,
    {
        let (conn, clock) = (self.conn.clone(), self.clock.clone());
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| {
                StoreError::backend("sqlite", operation, "connection lock poisoned")
            })?;
            let tx = guard
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err(operation))?;
            let out = f(&tx, clock.now())?;
            tx.commit().map_err(sql_err(operation))?;
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::backend("sqlite", operation, e))?
    }
}

/// Maps a rusqlite error inside a transaction closure.
pub(crate) fn q(operation: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    sql_err(operation)
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> StoreResult<T> {
    serde_json::from_str(json).map_err(|e| StoreError::corrupt(what, e))
}

pub(crate) fn encode<T: serde::Serialize>(what: &str, value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::corrupt(what, e))
}
