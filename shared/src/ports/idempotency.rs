//! Idempotency: claim a key before doing work, so the same event is done once.
//!
//! Modelled on Powertools for AWS Lambda's idempotency utility. A claim writes an
//! in-progress record whose lease ends when the claimer's invocation would end;
//! completing it keeps it for a retention window. Expiry is judged by the
//! timestamps on the record at claim time, never by a TTL sweeper (DynamoDB's TTL
//! deletes up to 48 hours late). Every claim carries a token, so a claimer whose
//! lease ran out cannot complete or release the record of the one after it.

use super::StoreResult;
use crate::ids::IdempotencyKey;
use async_trait::async_trait;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Proof of a claim: needed to complete or release it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimToken(pub String);

impl ClaimToken {
    /// A fresh random token.
    pub fn generate() -> Self {
        ClaimToken(uuid::Uuid::new_v4().to_string())
    }
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The caller owns the key until its lease ends.
    Claimed(ClaimToken),
    /// Someone else holds a live lease on the key.
    InProgress {
        /// When that lease ends.
        lease_until: Timestamp,
    },
    /// The work was done; here is what it returned.
    Done {
        /// The result stored on completion, if any.
        result: Option<String>,
        /// When the completed record stops counting.
        retained_until: Timestamp,
    },
}

/// Claims, completes and releases idempotency keys.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + std::fmt::Debug {
    /// Claims `key` with a lease ending at `lease_until`. A key whose lease or
    /// retention has ended is free to claim again.
    async fn claim(
        &self,
        key: &IdempotencyKey,
        lease_until: Timestamp,
    ) -> StoreResult<ClaimOutcome>;

    /// Marks the claimed work done, keeping `result` until `retain_until`.
    /// Fails with `Conflict` if the claim is no longer the caller's.
    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: &ClaimToken,
        result: Option<&str>,
        retain_until: Timestamp,
    ) -> StoreResult<()>;

    /// Gives the key up after a failure, so a retry can claim it at once.
    /// Fails with `Conflict` if the claim is no longer the caller's.
    async fn release(&self, key: &IdempotencyKey, token: &ClaimToken) -> StoreResult<()>;
}
