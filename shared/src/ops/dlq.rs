//! Why a parked message is parked, for the person who has to decide what to
//! do with it (`hub dlq list`, `hub dlq show`).
//!
//! A push message names a ledger row, a version and a destination; the row
//! keeps what happened at that destination: the last error in the
//! provider's own words, when it was written, and the attempts. Other
//! queues' messages carry no such record: what is known is how often the
//! message was received before it was parked.

use crate::Stores;
use crate::model::Provider;
use crate::pipelines::records::PushItem;
use crate::ports::{DeadLetter, DestinationStatus, StoreError};
use jiff::Timestamp;
use serde::Serialize;

/// Why one message is parked.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ParkedReason {
    /// One line for a person.
    pub summary: String,
    /// The ledger row's key, for a push message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<String>,
    /// Where it was to be posted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<Provider>,
    /// The version the message is about, and the row's current one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u32>,
    /// pending, posted or failed, at that destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<DestinationStatus>,
    /// The last error, as the destination (or the hub) gave it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When that state was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// Failed attempts at this version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Receives before it was parked.
    pub receive_count: u32,
    /// Whether a redrive would still post something: false when the row
    /// has been posted or has moved on to a newer version since.
    pub still_needed: bool,
}

/// Why `d`, parked in the queue named `queue`, is parked.
pub async fn explain(
    stores: &Stores,
    queue: &str,
    d: &DeadLetter,
) -> Result<ParkedReason, StoreError> {
    let bare = |summary: String| ParkedReason {
        summary,
        receive_count: d.receive_count,
        still_needed: true,
        ..ParkedReason::default()
    };
    let item = match serde_json::from_str::<PushItem>(&d.body) {
        Ok(item) if queue == "push" => item,
        Ok(_) | Err(_) if queue == "push" => {
            return Ok(bare(
                "not a push message the hub can read: it cannot be posted as it is".into(),
            ));
        }
        _ => {
            return Ok(bare(format!(
                "parked after {} receive(s): it failed each time it was handled \
                 (the handler's log has each failure)",
                d.receive_count
            )));
        }
    };
    let row_key = Some(item.key.storage_key());
    let Some(row) = stores.ledger.get(&item.key).await? else {
        return Ok(ParkedReason {
            row: row_key,
            destination: Some(item.destination),
            version: Some(item.version),
            still_needed: false,
            ..bare(format!(
                "ledger row {} does not exist",
                item.key.storage_key()
            ))
        });
    };
    let state = row.destinations.get(&item.destination);
    let superseded = row.version != item.version;
    let posted = state.is_some_and(|s| s.status == DestinationStatus::Posted);
    let summary = if superseded {
        format!(
            "superseded: the row is at version {}, which has its own push",
            row.version
        )
    } else if posted {
        format!("already posted to {} since it was parked", item.destination)
    } else {
        match state.and_then(|s| s.last_error.as_ref().map(|e| (e, s.attempts))) {
            Some((e, n)) => format!(
                "{} refused or failed it {n} time(s); last: {e}",
                item.destination
            ),
            None => format!(
                "parked after {} receive(s) with no failure recorded on its row",
                d.receive_count
            ),
        }
    };
    let r = ParkedReason {
        row: row_key,
        destination: Some(item.destination),
        version: Some(item.version),
        current_version: Some(row.version),
        status: state.map(|s| s.status),
        last_error: state.and_then(|s| s.last_error.clone()),
        at: state.map(|s| s.updated_at),
        attempts: state.map(|s| s.attempts),
        still_needed: !superseded && !posted,
        ..bare(summary)
    };
    Ok(r)
}
