//! The outcome and latency of every provider call, per provider account:
//! what connection health (success rate, latency percentiles) is computed from.

use super::StoreResult;
use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// 2xx.
    Ok,
    /// 429.
    RateLimited,
    /// 401/403.
    Unauthorized,
    /// 404.
    NotFound,
    /// Refused as invalid (400/422 and similar).
    Validation,
    /// 5xx, timeout or connection error.
    Transient,
    /// Any other failure.
    Permanent,
}

/// One call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// The budget key: `<provider>:<account>`.
    pub account: String,
    /// Which endpoint (`quickbooks.salesreceipt.create`, ...).
    pub endpoint: String,
    /// When it started.
    pub at: Timestamp,
    /// How long it took, in milliseconds.
    pub latency_ms: u64,
    /// How it ended.
    pub outcome: CallOutcome,
    /// The HTTP status, if one came back.
    pub status: Option<u16>,
}

/// Records calls and reads them back.
#[async_trait]
pub trait CallLog: Send + Sync + std::fmt::Debug {
    /// Records one call (kept for a week).
    async fn record(&self, call: &CallRecord) -> StoreResult<()>;

    /// An account's calls since `since`, oldest first.
    async fn since(&self, account: &str, since: Timestamp) -> StoreResult<Vec<CallRecord>>;
}
