//! The ledger: one row per source record, versioned by content hash, with the
//! posting state of each destination. It makes posting exactly-once (the
//! destination's idempotency key derives from key and version), makes "update
//! instead of create" a lookup, and is what reconciliation reads.

use super::StoreResult;
use crate::ids::{ExternalId, TenantId};
use crate::model::{Provider, RecordKind};
use async_trait::async_trait;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Which source record: tenant, source provider, and the provider's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LedgerKey {
    /// Whose record.
    pub tenant: TenantId,
    /// Which provider it came from.
    pub provider: Provider,
    /// What kind of record (one provider id space per kind).
    pub kind: RecordKind,
    /// The provider's id of it.
    pub source_id: ExternalId,
}

impl LedgerKey {
    /// The key as one string, `tenant#provider#kind#source_id`.
    pub fn storage_key(&self) -> String {
        format!(
            "{}#{}#{}#{}",
            self.tenant,
            self.provider,
            self.kind.as_str(),
            self.source_id
        )
    }
}

/// SHA-256 of a record's canonical JSON, hex-encoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentHash(pub String);

impl ContentHash {
    /// Hashes a JSON value. Object keys are sorted (serde_json's map is ordered),
    /// so the same content always hashes the same.
    pub fn of(value: &serde_json::Value) -> Self {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        ContentHash(hex::encode(Sha256::digest(&bytes)))
    }
}

/// A normalized record to upsert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// Its key.
    pub key: LedgerKey,
    /// The business date it belongs to, where it has one.
    pub business_date: Option<Date>,
    /// The normalized record.
    pub payload: serde_json::Value,
}

impl SourceRecord {
    /// The hash the ledger versions it by: the payload and the business date
    /// (a record moved to another day is a change to post).
    pub fn content_hash(&self) -> ContentHash {
        ContentHash::of(&serde_json::json!({
            "business_date": self.business_date,
            "payload": self.payload,
        }))
    }
}

/// What an upsert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpsertOutcome {
    /// A record never seen before, now version 1.
    Created {
        /// The version (1).
        version: u32,
    },
    /// Same content as stored: nothing written.
    Unchanged {
        /// The stored version.
        version: u32,
        /// Destinations still pending (never attempted) at this version, and
        /// since when: a push pending long after its upsert may never have
        /// been queued (a crash between the upsert and the enqueue).
        pending: Vec<(Provider, Timestamp)>,
    },
    /// New content: a new version, pending again at every destination.
    Changed {
        /// The new version.
        version: u32,
    },
}

impl UpsertOutcome {
    /// The record's version after the upsert.
    pub fn version(&self) -> u32 {
        match *self {
            UpsertOutcome::Created { version }
            | UpsertOutcome::Unchanged { version, .. }
            | UpsertOutcome::Changed { version } => version,
        }
    }

    /// Whether destinations have something new to post.
    pub fn needs_push(&self) -> bool {
        !matches!(self, UpsertOutcome::Unchanged { .. })
    }
}

/// Where a record stands at one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationStatus {
    /// Not yet posted at its current version.
    Pending,
    /// Posted at `version`.
    Posted,
    /// Refused or failed; see `last_error`.
    Failed,
}

/// One destination's state for one ledger row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationState {
    /// Pending, posted or failed.
    pub status: DestinationStatus,
    /// The ledger version this state is about.
    pub version: u32,
    /// The destination's id of the posted record (kept across versions, so a
    /// new version is an update, not a second record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// QuickBooks' SyncToken for that record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_token: Option<String>,
    /// Failed attempts at this version.
    pub attempts: u32,
    /// The last failure's reason, as the destination gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The send this version is promised to (a batch id, or the single
    /// request's id), written before the request leaves. A redelivery sends
    /// that same request again instead of grouping the row into a new one,
    /// so a batch key always names the same contents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    /// When this state was written.
    pub updated_at: Timestamp,
}

/// A ledger row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Its key.
    pub key: LedgerKey,
    /// Bumped on each change of content.
    pub version: u32,
    /// The hash of the current content.
    pub content_hash: ContentHash,
    /// The business date, where the record has one.
    pub business_date: Option<Date>,
    /// The current normalized record.
    pub payload: serde_json::Value,
    /// When the current version was written.
    pub updated_at: Timestamp,
    /// Posting state per destination.
    pub destinations: BTreeMap<Provider, DestinationState>,
}

impl LedgerEntry {
    /// Applies an upsert to this row in memory: the rule both adapters share.
    /// Returns the outcome; `self` is changed only when it says so.
    pub fn apply_upsert(
        &mut self,
        record: &SourceRecord,
        hash: &ContentHash,
        destinations: &[Provider],
        now: Timestamp,
    ) -> UpsertOutcome {
        let mut added = false;
        for d in destinations {
            if !self.destinations.contains_key(d) {
                self.destinations
                    .insert(*d, DestinationState::pending(self.version, now));
                added = true;
            }
        }
        if &self.content_hash == hash {
            if added {
                self.updated_at = now;
            }
            let pending = self
                .destinations
                .iter()
                .filter(|(_, s)| {
                    s.status == DestinationStatus::Pending && s.version == self.version
                })
                .map(|(d, s)| (*d, s.updated_at))
                .collect();
            return UpsertOutcome::Unchanged {
                version: self.version,
                pending,
            };
        }
        self.version += 1;
        self.content_hash = hash.clone();
        self.payload = record.payload.clone();
        self.business_date = record.business_date;
        self.updated_at = now;
        for state in self.destinations.values_mut() {
            state.status = DestinationStatus::Pending;
            state.version = self.version;
            state.attempts = 0;
            state.last_error = None;
            state.send = None;
            state.updated_at = now;
        }
        UpsertOutcome::Changed {
            version: self.version,
        }
    }

    /// A new row at version 1.
    pub fn create(
        record: &SourceRecord,
        hash: &ContentHash,
        destinations: &[Provider],
        now: Timestamp,
    ) -> Self {
        LedgerEntry {
            key: record.key.clone(),
            version: 1,
            content_hash: hash.clone(),
            business_date: record.business_date,
            payload: record.payload.clone(),
            updated_at: now,
            destinations: destinations
                .iter()
                .map(|d| (*d, DestinationState::pending(1, now)))
                .collect(),
        }
    }

    /// Records a successful post of `version` at `destination`. Refused with
    /// `Conflict` if the row has moved on to a newer version meanwhile.
    pub fn apply_posted(
        &mut self,
        destination: Provider,
        version: u32,
        remote_id: &str,
        sync_token: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.check_version(destination, version)?;
        let state = self
            .destinations
            .entry(destination)
            .or_insert_with(|| DestinationState::pending(version, now));
        state.status = DestinationStatus::Posted;
        state.send = None;
        state.remote_id = Some(remote_id.to_string());
        state.sync_token = sync_token.map(str::to_string);
        state.last_error = None;
        state.updated_at = now;
        Ok(())
    }

    /// Records a failed attempt of `version` at `destination`.
    pub fn apply_failed(
        &mut self,
        destination: Provider,
        version: u32,
        reason: &str,
        now: Timestamp,
    ) -> StoreResult<u32> {
        self.check_version(destination, version)?;
        let state = self
            .destinations
            .entry(destination)
            .or_insert_with(|| DestinationState::pending(version, now));
        state.status = DestinationStatus::Failed;
        state.attempts += 1;
        state.last_error = Some(reason.to_string());
        state.updated_at = now;
        Ok(state.attempts)
    }

    /// Moves `version`'s send marker at `destination` from `expected` to
    /// `send`: refused with `Conflict` if the marker is not `expected` (another
    /// worker promised the row to another request) or the row moved on.
    pub fn apply_send(
        &mut self,
        destination: Provider,
        version: u32,
        send: Option<&str>,
        expected: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<()> {
        self.check_version(destination, version)?;
        let key = self.key.storage_key();
        let state = self
            .destinations
            .entry(destination)
            .or_insert_with(|| DestinationState::pending(version, now));
        if state.send.as_deref() != expected {
            return Err(super::StoreError::Conflict(format!(
                "ledger row {key} is promised to send {:?} at {destination}, not {expected:?}",
                state.send
            )));
        }
        state.send = send.map(str::to_string);
        state.updated_at = now;
        Ok(())
    }

    fn check_version(&self, destination: Provider, version: u32) -> StoreResult<()> {
        if self.version != version {
            return Err(super::StoreError::Conflict(format!(
                "ledger row {} is at version {}, not {version}: the {destination} result is stale",
                self.key.storage_key(),
                self.version
            )));
        }
        Ok(())
    }
}

impl DestinationState {
    fn pending(version: u32, now: Timestamp) -> Self {
        DestinationState {
            status: DestinationStatus::Pending,
            version,
            remote_id: None,
            sync_token: None,
            attempts: 0,
            last_error: None,
            send: None,
            updated_at: now,
        }
    }
}

/// Reads and writes ledger rows.
#[async_trait]
pub trait Ledger: Send + Sync + std::fmt::Debug {
    /// Inserts or versions a record; `destinations` are the accounting
    /// destinations that must receive it (added as pending where new).
    async fn upsert(
        &self,
        record: &SourceRecord,
        destinations: &[Provider],
    ) -> StoreResult<UpsertOutcome>;

    /// One row.
    async fn get(&self, key: &LedgerKey) -> StoreResult<Option<LedgerEntry>>;

    /// Marks `version` posted at `destination` with the remote id and SyncToken.
    async fn mark_posted(
        &self,
        key: &LedgerKey,
        destination: Provider,
        version: u32,
        remote_id: &str,
        sync_token: Option<&str>,
    ) -> StoreResult<()>;

    /// Records a failed attempt; returns the attempts so far at this version.
    async fn mark_failed(
        &self,
        key: &LedgerKey,
        destination: Provider,
        version: u32,
        reason: &str,
    ) -> StoreResult<u32>;

    /// Compare-and-set of `version`'s send marker at `destination` (see
    /// [`DestinationState::send`]).
    async fn mark_send(
        &self,
        key: &LedgerKey,
        destination: Provider,
        version: u32,
        send: Option<&str>,
        expected: Option<&str>,
    ) -> StoreResult<()>;

    /// A tenant's rows of `kind` that carry no business date (menu items,
    /// inventory levels: the latest version of each), by key.
    async fn list_undated(
        &self,
        tenant: &TenantId,
        kind: RecordKind,
    ) -> StoreResult<Vec<LedgerEntry>>;

    /// A tenant's rows for one business date, by key.
    async fn list_for_business_date(
        &self,
        tenant: &TenantId,
        date: Date,
    ) -> StoreResult<Vec<LedgerEntry>>;
}
