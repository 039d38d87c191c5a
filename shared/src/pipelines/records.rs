//! What happens to every normalized record, from a pull or a webhook: it is
//! upserted into the ledger (an unchanged one is a no-op); a new or changed
//! transaction is queued for each accounting destination of its tenant; and
//! every new or changed record is published on the outbound event stream for
//! the back office (schema: `docs/outbound-events.md`).

use crate::Stores;
use crate::ids::{ExternalId, TenantId};
use crate::model::{Provider, Record, RecordKind};
use crate::ports::{LedgerKey, OutgoingMessage, SourceRecord, StoreError, UpsertOutcome};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The outbound event schema's name and version.
pub const RECORD_EVENT_SCHEMA: &str = "integration-hub.record.v1";

/// A ledger row to post to one destination (the push queue's message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushItem {
    /// The row.
    pub key: LedgerKey,
    /// The version to post.
    pub version: u32,
    /// Where to post it.
    pub destination: Provider,
}

/// A record as the back office receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordEvent {
    /// Always [`RECORD_EVENT_SCHEMA`].
    pub schema: String,
    /// Unique per record version: `<ledger key>:v<version>` (consumers dedupe on it).
    pub event_id: String,
    /// `created` (version 1) or `updated`.
    pub change: String,
    /// Whose record.
    pub tenant: TenantId,
    /// Where it came from.
    pub source: Provider,
    /// Its ledger version.
    pub version: u32,
    /// The record, tagged with its kind.
    #[serde(flatten)]
    pub record: Record,
    /// When the hub emitted the event.
    pub emitted_at: Timestamp,
}

/// Tallies of one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Records read.
    pub records: u64,
    /// New to the ledger.
    pub created: u64,
    /// Changed since last seen.
    pub changed: u64,
    /// Seen before, same content.
    pub unchanged: u64,
    /// Push messages queued.
    pub pushes: u64,
    /// Events published.
    pub published: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.records += o.records;
        self.created += o.created;
        self.changed += o.changed;
        self.unchanged += o.unchanged;
        self.pushes += o.pushes;
        self.published += o.published;
    }
}

fn external_id(record: &Record) -> ExternalId {
    match record {
        Record::Transaction(t) => t.external_id.clone(),
        Record::MenuItem(m) => m.external_id.clone(),
        Record::InventoryLevel(l) => ExternalId::new(format!("{}:{}", l.location, l.item_id))
            .unwrap_or_else(|_| l.item_id.clone()),
        Record::PurchaseOrder(p) => p.id.clone(),
        Record::Delivery(d) => d.id.clone(),
        Record::TimeEntry(t) => t.id.clone(),
    }
}

/// The ledger row a record goes to.
pub fn source_record(tenant: &TenantId, source: Provider, record: &Record) -> SourceRecord {
    let business_date = match record {
        Record::Transaction(t) => Some(t.business_date),
        _ => None,
    };
    SourceRecord {
        key: LedgerKey {
            tenant: tenant.clone(),
            provider: source,
            kind: record.kind(),
            source_id: external_id(record),
        },
        business_date,
        payload: serde_json::to_value(record).unwrap_or_default(),
    }
}

/// The accounting destinations a tenant posts to record by record (those
/// booking daily summaries are given days, not records: `pipelines::days`).
pub async fn destinations(stores: &Stores, tenant: &TenantId) -> Result<Vec<Provider>, StoreError> {
    let mut d: Vec<Provider> = stores
        .connections
        .list_for_tenant(tenant)
        .await?
        .into_iter()
        .filter(|c| c.books.mode == crate::model::journal::PostingMode::PerOrder)
        .map(|c| c.provider)
        .filter(|p| p.is_accounting())
        .collect();
    d.sort();
    d.dedup();
    Ok(d)
}

/// How long a destination may stay pending (never attempted) before a
/// re-read of its record queues its push again: `HUB_REQUEUE_PENDING_AFTER_SECONDS`,
/// default 600 (pushes are normally attempted within seconds; a push still
/// untried after ten minutes was most likely never queued).
pub fn requeue_pending_after() -> jiff::SignedDuration {
    static AFTER: std::sync::OnceLock<jiff::SignedDuration> = std::sync::OnceLock::new();
    *AFTER.get_or_init(|| {
        let secs = std::env::var("HUB_REQUEUE_PENDING_AFTER_SECONDS")
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|s| *s >= 0)
            .unwrap_or(600);
        jiff::SignedDuration::from_secs(secs)
    })
}

/// Upserts a batch of one tenant's records from `source`, then queues pushes
/// and publishes events for what is new or changed, each in one batch.
pub async fn ingest(
    stores: &Stores,
    tenant: &TenantId,
    source: Provider,
    destinations: &[Provider],
    records: Vec<Record>,
) -> Result<Tally, StoreError> {
    ingest_with(
        stores,
        tenant,
        source,
        destinations,
        records,
        requeue_pending_after(),
    )
    .await
}

/// [`ingest`] with the time after which an untried push is queued again.
pub async fn ingest_with(
    stores: &Stores,
    tenant: &TenantId,
    source: Provider,
    destinations: &[Provider],
    records: Vec<Record>,
    requeue_after: jiff::SignedDuration,
) -> Result<Tally, StoreError> {
    let mut tally = Tally::default();
    let mut pushes = Vec::new();
    let mut events = Vec::new();
    // Days a new or changed sale touched: a day already final is posted
    // again for the destinations booking daily.
    let mut days = std::collections::BTreeSet::new();
    let now = Timestamp::now();
    for record in records {
        tally.records += 1;
        let sr = source_record(tenant, source, &record);
        let dests: &[Provider] = match record.kind() {
            RecordKind::Transaction => destinations,
            RecordKind::PurchaseOrder | RecordKind::Delivery => &[Provider::MarketMan],
            RecordKind::TimeEntry => &[Provider::TimeTracking],
            RecordKind::MenuItem | RecordKind::InventoryLevel => &[],
        };
        let outcome = stores.ledger.upsert(&sr, dests).await?;
        let version = outcome.version();
        if let (
            Record::Transaction(t),
            UpsertOutcome::Created { .. } | UpsertOutcome::Changed { .. },
        ) = (&record, &outcome)
        {
            days.insert((t.connection.clone(), t.business_date));
        }
        let push_to: Vec<Provider> = match outcome {
            UpsertOutcome::Created { .. } => {
                tally.created += 1;
                dests.to_vec()
            }
            UpsertOutcome::Changed { .. } => {
                tally.changed += 1;
                dests.to_vec()
            }
            UpsertOutcome::Unchanged { pending, .. } => {
                tally.unchanged += 1;
                // Pending long after its upsert: its push may have been lost
                // with a process that died before queueing it; queue it (and
                // its event) again. A second message for a row is harmless.
                let stale = now - requeue_after;
                let again: Vec<Provider> = pending
                    .into_iter()
                    .filter(|(d, since)| dests.contains(d) && *since <= stale)
                    .map(|(d, _)| d)
                    .collect();
                if again.is_empty() {
                    continue;
                }
                again
            }
        };
        for d in &push_to {
            let item = PushItem {
                key: sr.key.clone(),
                version,
                destination: *d,
            };
            pushes.push(OutgoingMessage::new(
                serde_json::to_string(&item).unwrap_or_default(),
            ));
        }
        let event = RecordEvent {
            schema: RECORD_EVENT_SCHEMA.into(),
            event_id: format!("{}:v{version}", sr.key.storage_key()),
            change: if version == 1 {
                "created".into()
            } else {
                "updated".into()
            },
            tenant: tenant.clone(),
            source,
            version,
            record,
            emitted_at: now,
        };
        events.push(OutgoingMessage::new(
            serde_json::to_string(&event).unwrap_or_default(),
        ));
    }
    crate::chaos::point(crate::chaos::INGEST_LEDGER_WRITTEN);
    // The tenant's connections are read only when a sale changed.
    let conns = if days.is_empty() {
        Vec::new()
    } else {
        stores.connections.list_for_tenant(tenant).await?
    };
    let day_jobs = super::days::late_jobs(stores, tenant, &conns, &days, now).await?;
    pushes.extend(day_jobs.iter().map(super::days::DayJob::to_message));
    if !pushes.is_empty() {
        stores.push_queue.send_batch(&pushes).await?;
        tally.pushes = pushes.len() as u64;
    }
    super::days::mark_queued(stores, &conns, &day_jobs, now).await?;
    if !events.is_empty() {
        stores.outbound_queue.send_batch(&events).await?;
        tally.published = events.len() as u64;
    }
    Ok(tally)
}

/// What a sweep for stranded pushes did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// Ledger rows read.
    pub rows: u64,
    /// Pushes queued again.
    pub requeued: u64,
}

fn sweep_key(
    tenant: &TenantId,
    destination: Provider,
) -> Result<crate::ports::CursorKey, StoreError> {
    Ok(crate::ports::CursorKey {
        tenant: tenant.clone(),
        provider: destination,
        stream: crate::ids::StreamName::new("stranded-push-sweep")
            .map_err(|e| StoreError::corrupt("stream name", e))?,
    })
}

/// Queues again the pushes a process may have died before queueing.
///
/// [`ingest_with`] writes the ledger, then the push queue: a process killed
/// between the two leaves rows pending with no message for them. A later
/// pull re-reading such a row re-queues it once it has been pending for
/// `requeue_after`; but a row re-read sooner, then left behind by the pull's
/// overlap, would never be read again. This sweep (the health monitor runs
/// it) finds every row of the last `days` business days (and every undated
/// purchase order, delivery and time entry) whose destination has been
/// pending, unsent, for longer than `requeue_after`, and queues its push.
/// A per tenant and destination mark records how far it has swept, so each
/// stranded row is queued once, not on every run; a second message for a
/// row would be harmless anyway (the pusher skips what is posted).
pub async fn requeue_stranded(
    stores: &Stores,
    now: Timestamp,
    requeue_after: jiff::SignedDuration,
    days: i64,
) -> Result<Swept, StoreError> {
    let mut swept = Swept::default();
    let stale = now - requeue_after;
    let today = now.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    for tenant in stores.connections.list_tenants().await? {
        let tenant = tenant.id;
        let dests: Vec<Provider> = stores
            .connections
            .list_for_tenant(&tenant)
            .await?
            .into_iter()
            .map(|c| c.provider)
            .filter(|p| {
                p.is_accounting() || matches!(p, Provider::MarketMan | Provider::TimeTracking)
            })
            .collect();
        let mut rows = Vec::new();
        // Business dates run up to a day either side of UTC's.
        for back in -1..=days {
            if let Ok(day) = today.checked_sub(jiff::Span::new().days(back)) {
                rows.extend(stores.ledger.list_for_business_date(&tenant, day).await?);
            }
        }
        for kind in [
            RecordKind::PurchaseOrder,
            RecordKind::Delivery,
            RecordKind::TimeEntry,
        ] {
            rows.extend(stores.ledger.list_undated(&tenant, kind).await?);
        }
        swept.rows += rows.len() as u64;
        let mut destinations: Vec<Provider> = dests;
        destinations.sort();
        destinations.dedup();
        for d in destinations {
            let key = sweep_key(&tenant, d)?;
            let mark = stores.cursors.get(&key).await?;
            let from = mark
                .as_ref()
                .and_then(|m| m.value.parse::<Timestamp>().ok())
                .unwrap_or(Timestamp::UNIX_EPOCH);
            if stale <= from {
                continue;
            }
            let pushes: Vec<OutgoingMessage> = rows
                .iter()
                .filter_map(|r| {
                    let s = r.destinations.get(&d)?;
                    let stranded = s.status == crate::ports::DestinationStatus::Pending
                        && s.send.is_none()
                        && s.updated_at > from
                        && s.updated_at <= stale;
                    stranded.then(|| {
                        OutgoingMessage::new(
                            serde_json::to_string(&PushItem {
                                key: r.key.clone(),
                                version: r.version,
                                destination: d,
                            })
                            .unwrap_or_default(),
                        )
                    })
                })
                .collect();
            if !pushes.is_empty() {
                tracing::warn!(tenant = %tenant, destination = %d, rows = pushes.len(), "pushes never queued (a process died after the ledger write): queued now");
                stores.push_queue.send_batch(&pushes).await?;
                swept.requeued += pushes.len() as u64;
            }
            // Advance the mark; a concurrent sweep that moved it first wins.
            let _ = stores
                .cursors
                .compare_and_set(&key, mark.map(|m| m.version), &stale.to_string())
                .await?;
        }
    }
    Ok(swept)
}
