//! Cursors: how far a pull has read a provider's stream. Advanced only by
//! compare-and-set on a version, so two pullers cannot both move one cursor.

use super::StoreResult;
use crate::ids::{StreamName, TenantId};
use crate::model::Provider;
use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Which cursor: one per tenant, provider and stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CursorKey {
    /// Whose.
    pub tenant: TenantId,
    /// Which provider.
    pub provider: Provider,
    /// Which stream of it.
    pub stream: StreamName,
}

impl CursorKey {
    /// The key as one string, `tenant#provider#stream`.
    pub fn storage_key(&self) -> String {
        format!("{}#{}#{}", self.tenant, self.provider, self.stream)
    }
}

/// A stored cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The position, in whatever form the stream needs (a timestamp, a page token).
    pub value: String,
    /// Bumped by every successful set; what the next set must expect.
    pub version: u64,
    /// When it was last set.
    pub updated_at: Timestamp,
}

/// The answer to a compare-and-set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CasOutcome {
    /// Set; here is the new cursor.
    Set(Cursor),
    /// Someone else moved it first; here is what is stored now.
    Conflict {
        /// The current cursor, `None` if there is none.
        current: Option<Cursor>,
    },
}

/// Reads and advances cursors.
#[async_trait]
pub trait CursorStore: Send + Sync + std::fmt::Debug {
    /// The cursor, if one was ever set.
    async fn get(&self, key: &CursorKey) -> StoreResult<Option<Cursor>>;

    /// Sets the cursor to `value` if its version is still `expected`
    /// (`None`: only if no cursor exists yet).
    async fn compare_and_set(
        &self,
        key: &CursorKey,
        expected: Option<u64>,
        value: &str,
    ) -> StoreResult<CasOutcome>;
}
