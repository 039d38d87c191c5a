//! The unrouted queue: correctly signed events for provider accounts no
//! tenant owns. They were answered 200 (so the provider keeps the
//! subscription) and are kept here until an operator registers the
//! connection and reroutes them onto the work queue.

use super::intake::{UnroutedItem, WorkItem};
use crate::Stores;
use crate::ids::MessageId;
use crate::ports::{OutgoingMessage, ReceivedMessage, StoreResult};
use std::time::Duration;

/// How long messages stay hidden while being looked at.
const HOLD: Duration = Duration::from_secs(30);
/// Upper bound on receive rounds in one call.
const MAX_ROUNDS: usize = 1_000;

/// An unrouted event and its message id.
#[derive(Debug, Clone, PartialEq)]
pub struct Unrouted {
    /// The message id.
    pub id: MessageId,
    /// The event, or `None` if the message could not be read.
    pub item: Option<UnroutedItem>,
    /// The raw message.
    pub body: String,
}

/// Receives every visible message (hiding each for a while), applies `f`, and
/// makes visible again the ones `f` did not consume.
async fn walk<F>(stores: &Stores, max: usize, mut f: F) -> StoreResult<()>
where
    F: AsyncFnMut(&ReceivedMessage) -> StoreResult<bool>,
{
    let q = &stores.unrouted_queue;
    let mut keep = Vec::new();
    let mut seen = 0;
    for _ in 0..MAX_ROUNDS {
        if seen >= max {
            break;
        }
        let batch = q.receive(10, HOLD, Duration::ZERO).await?;
        if batch.is_empty() {
            break;
        }
        for m in batch {
            seen += 1;
            if f(&m).await? {
                q.delete(&m.receipt).await?;
            } else {
                keep.push(m.receipt);
            }
        }
    }
    for r in keep {
        q.change_visibility(&r, Duration::ZERO).await?;
    }
    Ok(())
}

/// Up to `max` unrouted events, left in place.
pub async fn list(stores: &Stores, max: usize) -> StoreResult<Vec<Unrouted>> {
    let mut out = Vec::new();
    walk(stores, max, async |m: &ReceivedMessage| {
        out.push(Unrouted {
            id: m.id.clone(),
            item: serde_json::from_str(&m.body).ok(),
            body: m.body.clone(),
        });
        Ok(false)
    })
    .await?;
    Ok(out)
}

/// Moves every unrouted event whose account now has a connection onto the
/// work queue. Returns (moved, still unrouted).
pub async fn reroute(stores: &Stores) -> StoreResult<(usize, usize)> {
    let (mut moved, mut left) = (0, 0);
    walk(stores, usize::MAX, async |m: &ReceivedMessage| {
        let Ok(item) = serde_json::from_str::<UnroutedItem>(&m.body) else {
            left += 1;
            return Ok(false);
        };
        let owner = match &item.event.account {
            Some(a) => {
                stores
                    .connections
                    .find_by_account(item.event.provider, a)
                    .await?
            }
            None => None,
        };
        let Some(c) = owner else {
            left += 1;
            return Ok(false);
        };
        let work = WorkItem {
            tenant: c.tenant,
            connection: c.id,
            event: item.event,
            received_at: item.received_at,
        };
        let body = serde_json::to_string(&work).unwrap_or_default();
        stores
            .work_queue
            .send_batch(&[OutgoingMessage::new(body)])
            .await?;
        moved += 1;
        Ok(true)
    })
    .await?;
    Ok((moved, left))
}
