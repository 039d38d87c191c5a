//! Processing webhook events from the work queue. Each source provider
//! turns its events into records ([`crate::providers::kit::Source::event_records`]):
//! Toast order events carry the record itself; Square payment events carry
//! the payment, which is completed with its order, sibling payments and
//! refunds through the client. The records are normalized and ingested like
//! a pulled one (ledger, pushes, outbound events), so a webhook and a pull of
//! the same order meet in the same ledger row. Toast menu events carry no
//! menu: the menus are fetched. Accounting-side events (QuickBooks, Xero)
//! and unknown types are acknowledged and logged; the scheduled pulls remain
//! the source of completeness.

use super::records::{Tally, destinations, ingest};
use crate::Stores;
use crate::ports::StoreError;
use crate::providers::kit::PullError;
use crate::providers::{ProviderClients, ProviderError, registry};
use crate::transforms::TransformError;
use crate::webhooks::WorkItem;

/// Why an event could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The message is not a work item, or its connection is gone: retrying cannot help.
    #[error("unprocessable: {0}")]
    Unprocessable(String),
    /// The payload could not be normalized.
    #[error("transform: {0}")]
    Transform(#[from] TransformError),
    /// A provider call failed.
    #[error("provider: {0}")]
    Provider(#[from] ProviderError),
    /// A store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl From<PullError> for ProcessError {
    fn from(e: PullError) -> Self {
        match e {
            PullError::Provider(e) => ProcessError::Provider(e),
            PullError::Store(e) => ProcessError::Store(e),
            PullError::Transform(e) => ProcessError::Transform(e),
            e @ (PullError::Superseded(_) | PullError::Interrupted(_)) => {
                ProcessError::Unprocessable(e.to_string())
            }
        }
    }
}

impl ProcessError {
    /// Whether retrying later can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProcessError::Provider(e) => e.is_retryable(),
            ProcessError::Store(_) => true,
            _ => false,
        }
    }
}

/// Processes one work-queue message body.
pub async fn process(
    stores: &Stores,
    clients: &ProviderClients,
    body: &str,
) -> Result<Tally, ProcessError> {
    let item: WorkItem = serde_json::from_str(body)
        .map_err(|e| ProcessError::Unprocessable(format!("not a work item: {e}")))?;
    let connection = stores
        .connections
        .get(&item.tenant, &item.connection)
        .await?
        .ok_or_else(|| {
            ProcessError::Unprocessable(format!(
                "connection {}/{} no longer exists",
                item.tenant, item.connection
            ))
        })?;
    let e = &item.event;
    let records = match registry::source(e.provider) {
        Some(source) => source.event_records(clients, &connection, e).await?,
        None => None,
    };
    let Some(records) = records else {
        tracing::info!(provider = %e.provider, event_type = %e.event_type, event = %e.dedupe_key, "event acknowledged; nothing to ingest");
        return Ok(Tally::default());
    };
    let dests = destinations(stores, &connection.tenant).await?;
    Ok(ingest(
        stores,
        &connection.tenant,
        connection.provider,
        &dests,
        records,
    )
    .await?)
}

/// Processes everything visible on the work queue (local runs, tests):
/// deletes what was processed or cannot ever be, delays what may succeed later.
pub async fn drain(
    stores: &Stores,
    clients: &ProviderClients,
    max_rounds: usize,
) -> Result<Tally, StoreError> {
    let q = &stores.work_queue;
    let mut total = Tally::default();
    for _ in 0..max_rounds {
        let batch = q
            .receive(
                10,
                std::time::Duration::from_secs(60),
                std::time::Duration::ZERO,
            )
            .await?;
        if batch.is_empty() {
            break;
        }
        for m in &batch {
            match process(stores, clients, &m.body).await {
                Ok(t) => {
                    total += t;
                    q.delete(&m.receipt).await?;
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(message = %m.id, error = %e, "event will be retried");
                    q.change_visibility(&m.receipt, std::time::Duration::from_secs(30))
                        .await?;
                }
                Err(e) => {
                    tracing::error!(message = %m.id, error = %e, "event parked");
                    q.park(m).await?;
                }
            }
        }
    }
    Ok(total)
}
