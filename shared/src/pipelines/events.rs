//! Processing webhook events from the work queue. Toast order events carry
//! the record itself; Square payment events carry the payment, which is
//! completed with its order, sibling payments and refunds through the
//! client. The records are normalized and ingested like
//! a pulled one (ledger, pushes, outbound events), so a webhook and a pull of
//! the same order meet in the same ledger row. Toast menu events carry no
//! menu: the menus are fetched. Accounting-side events (QuickBooks, Xero)
//! and unknown types are acknowledged and logged; the scheduled pulls remain
//! the source of completeness.

use super::records::{Tally, destinations, ingest};
use crate::Stores;
use crate::model::{Provider, Record};
use crate::ports::StoreError;
use crate::providers::{ProviderClients, ProviderError};
use crate::transforms::{self, TransformError};
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
    let connection = match (e.provider, e.event_type.as_str()) {
        (Provider::Toast, "order_updated" | "channel_order_updated") => {
            clients.with_currency(&connection).await?
        }
        _ => connection,
    };
    let records: Vec<Record> = match (e.provider, e.event_type.as_str()) {
        (Provider::Toast, "order_updated" | "channel_order_updated") => {
            transforms::toast::order_to_transactions(&e.payload["details"]["order"], &connection)?
                .into_iter()
                .map(Record::Transaction)
                .collect()
        }
        (Provider::Toast, "menus_updated") => {
            let menus = clients.toast(&connection)?.menus().await?;
            transforms::toast::menus_to_items(&menus, &connection)?
                .into_iter()
                .map(Record::MenuItem)
                .collect()
        }
        (Provider::Square, t) if t.starts_with("payment.") => {
            // The payment carries no tax, discount or category: fetch its
            // order (and the order's other payments, its refunds and their
            // return orders) so the records match a pull's.
            let payment = e.payload["data"]["object"]["payment"].clone();
            let batch = clients
                .square(&connection)
                .await?
                .sales_for(vec![payment])
                .await?;
            transforms::square::sales_to_transactions(
                &batch.payments,
                &batch.orders,
                &batch.refunds,
                &connection,
            )?
            .into_iter()
            .map(Record::Transaction)
            .collect()
        }
        (Provider::Square, "inventory.count.updated") => {
            let mut out = Vec::new();
            for c in e.payload["data"]["object"]["inventory_counts"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(l) = transforms::square::count_to_level(c, &connection)? {
                    out.push(Record::InventoryLevel(l));
                }
            }
            out
        }
        (provider, kind) => {
            tracing::info!(%provider, event_type = kind, event = %e.dedupe_key, "event acknowledged; nothing to ingest");
            return Ok(Tally::default());
        }
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
