//! Posting ledger rows to QuickBooks Online and Xero, exactly once.
//!
//! A push message names a ledger row, a version and a destination. The row
//! is read; a message for a version the row has left behind is dropped (the
//! newer version has its own message); a version already posted is dropped.
//! Otherwise the transaction is booked with the tenant's account mappings:
//!
//! - QuickBooks: a credit is a SalesReceipt, a debit a Purchase. A row never
//!   posted is created with `requestid` = a hash of the row's key and version,
//!   so a retry after a lost answer replays instead of creating twice. A row
//!   posted before is a sparse update with the stored SyncToken; a stale one is
//!   re-read and the update tried again.
//! - Xero: a credit is a RECEIVE, a debit a SPEND bank transaction, sent with
//!   `summarizeErrors=false` and an `Idempotency-Key` from the same hash; a row
//!   posted before carries its `BankTransactionID`, so it is updated.
//!
//! What comes back decides the message's fate: posted (deleted); refused as
//! invalid or unauthorized (the ledger row marked failed with the provider's
//! message, the message parked in the dead-letter queue for an operator);
//! rate limited or transient (delayed by the `Retry-After` or a backoff that
//! grows with each receive, then tried again; after the queue's receive limit
//! it lands in the dead-letter queue).

use super::records::PushItem;
use crate::Stores;
use crate::model::{AccountMapping, Connection, Direction, Provider, Record, Transaction};
use crate::ports::{LedgerEntry, ReceivedMessage, StoreError, WorkQueue};
use crate::providers::xero::ItemResult;
use crate::providers::{ProviderClients, ProviderError};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::str::FromStr;
use std::time::Duration;

/// What became of one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// Booked; the remote id.
    Posted(String),
    /// Nothing to do (superseded, or already posted).
    Skipped(String),
    /// Try again after this long.
    Retry(Duration, String),
    /// Permanent: parked for an operator.
    Park(String),
}

/// The idempotency key of one version of one row at one destination.
pub fn request_id(item: &PushItem) -> String {
    let h = Sha256::digest(
        format!(
            "{}:v{}:{}",
            item.key.storage_key(),
            item.version,
            item.destination
        )
        .as_bytes(),
    );
    hex::encode(&h[..16])
}

/// A decimal as a JSON number, refusing any amount whose number form would
/// not read back as exactly the same decimal.
pub fn money(d: Decimal) -> Result<Value, String> {
    let text = d.normalize().to_string();
    let n = serde_json::Number::from_str(&text).map_err(|e| format!("{text}: {e}"))?;
    match Decimal::from_str(&n.to_string()) {
        Ok(back) if back == d => Ok(Value::Number(n)),
        _ => Err(format!("{text} cannot be sent as an exact JSON number")),
    }
}

fn transaction(entry: &LedgerEntry) -> Result<Transaction, String> {
    match serde_json::from_value::<Record>(entry.payload.clone()) {
        Ok(Record::Transaction(t)) => Ok(t),
        Ok(other) => Err(format!(
            "a {} is not posted to accounting",
            other.kind().as_str()
        )),
        Err(e) => Err(format!("ledger payload is not a record: {e}")),
    }
}

fn need<'a>(
    v: &'a Option<String>,
    what: &str,
    dest: Provider,
    conn: &Connection,
) -> Result<&'a str, String> {
    v.as_deref().ok_or_else(|| {
        format!(
            "no {what} mapped for {dest} on connection {}/{}",
            conn.tenant, conn.id
        )
    })
}

/// The QuickBooks entity for a transaction: (entity name, body).
pub fn quickbooks_entity(
    t: &Transaction,
    m: &AccountMapping,
    source: &Connection,
) -> Result<(&'static str, Value), String> {
    let amount = money(t.amount)?;
    let deposit = t
        .payment_method
        .as_ref()
        .and_then(|p| m.by_payment_method.get(p))
        .map(String::as_str)
        .or(m.deposit_account.as_deref());
    let note = format!("{} ({} {})", t.description, t.source, t.external_id);
    match t.direction {
        Direction::Credit => {
            let item = need(&m.sales_item, "sales item", Provider::QuickBooks, source)?;
            let mut body = json!({
                "TxnDate": t.business_date.to_string(),
                "DocNumber": t.reference.chars().take(21).collect::<String>(),
                "PrivateNote": note,
                "Line": [{
                    "Amount": amount,
                    "DetailType": "SalesItemLineDetail",
                    "Description": t.description,
                    "SalesItemLineDetail": {"ItemRef": {"value": item}, "Qty": 1, "UnitPrice": amount},
                }],
            });
            if let Some(d) = deposit {
                body["DepositToAccountRef"] = json!({"value": d});
            }
            Ok(("SalesReceipt", body))
        }
        Direction::Debit => {
            let expense = need(
                &m.expense_account,
                "expense account",
                Provider::QuickBooks,
                source,
            )?;
            let bank = deposit.ok_or_else(|| {
                format!(
                    "no deposit account mapped for quickbooks on connection {}/{}",
                    source.tenant, source.id
                )
            })?;
            Ok((
                "Purchase",
                json!({
                    "PaymentType": "Cash",
                    "AccountRef": {"value": bank},
                    "TxnDate": t.business_date.to_string(),
                    "DocNumber": t.reference.chars().take(21).collect::<String>(),
                    "PrivateNote": note,
                    "Line": [{
                        "Amount": amount,
                        "DetailType": "AccountBasedExpenseLineDetail",
                        "Description": t.description,
                        "AccountBasedExpenseLineDetail": {"AccountRef": {"value": expense}},
                    }],
                }),
            ))
        }
    }
}

/// The Xero bank transaction for a transaction.
pub fn xero_entity(
    t: &Transaction,
    m: &AccountMapping,
    source: &Connection,
    remote_id: Option<&str>,
) -> Result<Value, String> {
    let (kind, account) = match t.direction {
        Direction::Credit => (
            "RECEIVE",
            need(&m.sales_account, "sales account", Provider::Xero, source)?,
        ),
        Direction::Debit => (
            "SPEND",
            need(
                &m.expense_account,
                "expense account",
                Provider::Xero,
                source,
            )?,
        ),
    };
    let bank = t
        .payment_method
        .as_ref()
        .and_then(|p| m.by_payment_method.get(p))
        .map(String::as_str)
        .or(m.deposit_account.as_deref())
        .ok_or_else(|| {
            format!(
                "no bank account mapped for xero on connection {}/{}",
                source.tenant, source.id
            )
        })?;
    let mut body = json!({
        "Type": kind,
        "Contact": {"Name": format!("{} sales", source.provider)},
        "BankAccount": {"Code": bank},
        "Date": t.business_date.to_string(),
        "Reference": t.reference,
        "LineAmountTypes": "Inclusive",
        "LineItems": [{
            "Description": t.description,
            "Quantity": 1,
            "UnitAmount": money(t.amount)?,
            "AccountCode": account,
        }],
    });
    if let Some(id) = remote_id {
        body["BankTransactionID"] = id.into();
    }
    Ok(body)
}

/// Posts push messages.
#[derive(Debug, Clone)]
pub struct Pusher {
    stores: Stores,
    clients: ProviderClients,
    /// The first retry's delay; doubled per receive, at most 15 minutes.
    pub retry_base: Duration,
}

impl Pusher {
    /// A pusher on `stores`, calling providers through `clients`.
    pub fn new(stores: Stores, clients: ProviderClients) -> Self {
        Pusher {
            stores,
            clients,
            retry_base: Duration::from_secs(5),
        }
    }

    fn backoff(&self, receive_count: u32) -> Duration {
        self.retry_base
            .saturating_mul(1 << receive_count.min(8))
            .min(Duration::from_secs(900))
    }

    /// Handles one received message and settles it on `queue`: deletes it,
    /// delays it, or parks it.
    pub async fn handle(
        &self,
        queue: &dyn WorkQueue,
        m: &ReceivedMessage,
    ) -> Result<PushOutcome, StoreError> {
        let outcome = match serde_json::from_str::<PushItem>(&m.body) {
            Ok(item) => self.push(&item, m.receive_count).await?,
            Err(e) => PushOutcome::Park(format!("unreadable push message: {e}")),
        };
        match &outcome {
            PushOutcome::Posted(_) | PushOutcome::Skipped(_) => queue.delete(&m.receipt).await?,
            PushOutcome::Retry(after, _) => queue.change_visibility(&m.receipt, *after).await?,
            PushOutcome::Park(_) => queue.park(m).await?,
        }
        Ok(outcome)
    }

    /// Receives and handles until the queue has nothing visible (local runs, tests).
    pub async fn drain(
        &self,
        queue: &dyn WorkQueue,
        max_rounds: usize,
    ) -> Result<Vec<PushOutcome>, StoreError> {
        let mut out = Vec::new();
        for _ in 0..max_rounds {
            let batch = queue
                .receive(10, Duration::from_secs(60), Duration::ZERO)
                .await?;
            if batch.is_empty() {
                break;
            }
            for m in &batch {
                out.push(self.handle(queue, m).await?);
            }
        }
        Ok(out)
    }

    /// Posts one version of one row; records the result in the ledger.
    pub async fn push(
        &self,
        item: &PushItem,
        receive_count: u32,
    ) -> Result<PushOutcome, StoreError> {
        let Some(entry) = self.stores.ledger.get(&item.key).await? else {
            return Ok(PushOutcome::Park(format!(
                "ledger row {} does not exist",
                item.key.storage_key()
            )));
        };
        if entry.version != item.version {
            return Ok(PushOutcome::Skipped(format!(
                "superseded by version {}",
                entry.version
            )));
        }
        let state = entry.destinations.get(&item.destination).cloned();
        if let Some(s) = &state
            && s.status == crate::ports::DestinationStatus::Posted
            && s.version == entry.version
        {
            return Ok(PushOutcome::Skipped("already posted".into()));
        }
        let result = self.post(item, &entry, state.as_ref()).await;
        let reason = match result {
            Ok((remote_id, sync_token)) => {
                return match self
                    .stores
                    .ledger
                    .mark_posted(
                        &item.key,
                        item.destination,
                        item.version,
                        &remote_id,
                        sync_token.as_deref(),
                    )
                    .await
                {
                    Ok(()) => Ok(PushOutcome::Posted(remote_id)),
                    Err(StoreError::Conflict(why)) => Ok(PushOutcome::Skipped(why)),
                    Err(e) => Err(e),
                };
            }
            Err(e) => e,
        };
        let outcome = match &reason {
            // Nothing was attempted: nothing to record.
            Failure::Held(why) => return Ok(PushOutcome::Skipped(why.clone())),
            Failure::Invalid(why) => PushOutcome::Park(why.clone()),
            Failure::Provider(ProviderError::RateLimited { retry_after }) => PushOutcome::Retry(
                retry_after.unwrap_or(Duration::from_secs(30)),
                reason.to_string(),
            ),
            Failure::Provider(ProviderError::Transient(_) | ProviderError::Conflict(_)) => {
                PushOutcome::Retry(self.backoff(receive_count), reason.to_string())
            }
            Failure::Provider(_) => PushOutcome::Park(reason.to_string()),
        };
        match self
            .stores
            .ledger
            .mark_failed(
                &item.key,
                item.destination,
                item.version,
                &reason.to_string(),
            )
            .await
        {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
        tracing::warn!(key = %item.key.storage_key(), version = item.version, destination = %item.destination, reason = %reason, ?outcome, "push not posted");
        Ok(outcome)
    }

    async fn post(
        &self,
        item: &PushItem,
        entry: &LedgerEntry,
        state: Option<&crate::ports::DestinationState>,
    ) -> Result<(String, Option<String>), Failure> {
        let record: Record = serde_json::from_value(entry.payload.clone())
            .map_err(|e| Failure::Invalid(format!("ledger payload is not a record: {e}")))?;
        match (&record, item.destination) {
            (Record::PurchaseOrder(_) | Record::Delivery(_), Provider::MarketMan) => {
                return self.post_marketman(item, &record, state).await;
            }
            (Record::TimeEntry(e), Provider::TimeTracking) => {
                return self.post_time_entry(item, e, state).await;
            }
            _ => {}
        }
        let t = transaction(entry).map_err(Failure::Invalid)?;
        let source = self
            .stores
            .connections
            .get(&t.tenant, &t.connection)
            .await
            .map_err(|e| Failure::Provider(ProviderError::Transient(e.to_string())))?
            .ok_or_else(|| {
                Failure::Invalid(format!(
                    "source connection {}/{} no longer exists",
                    t.tenant, t.connection
                ))
            })?;
        let mapping = source
            .mappings
            .get(&item.destination)
            .cloned()
            .unwrap_or_default();
        let dest = self.destination(&t.tenant, item.destination).await?;
        let rid = request_id(item);
        let remote = state.and_then(|s| s.remote_id.clone());
        match item.destination {
            Provider::QuickBooks => {
                let client = self
                    .clients
                    .quickbooks(&dest)
                    .await
                    .map_err(Failure::Provider)?;
                let (entity, body) =
                    quickbooks_entity(&t, &mapping, &source).map_err(Failure::Invalid)?;
                let saved = match remote {
                    None => client.create(entity, &body, &rid).await,
                    Some(id) => {
                        let token = match state.and_then(|s| s.sync_token.clone()) {
                            Some(tok) => tok,
                            None => {
                                client
                                    .read(entity, &id)
                                    .await
                                    .map_err(Failure::Provider)?
                                    .sync_token
                            }
                        };
                        match client.sparse_update(entity, &id, &token, &body, &rid).await {
                            Err(ProviderError::Conflict(_)) => {
                                // Someone else edited it: take the current SyncToken and try once more.
                                let fresh =
                                    client.read(entity, &id).await.map_err(Failure::Provider)?;
                                client
                                    .sparse_update(
                                        entity,
                                        &id,
                                        &fresh.sync_token,
                                        &body,
                                        &format!("{rid}-r"),
                                    )
                                    .await
                            }
                            other => other,
                        }
                    }
                }
                .map_err(Failure::Provider)?;
                Ok((saved.id, Some(saved.sync_token)))
            }
            Provider::Xero => {
                let client = self.clients.xero(&dest).await.map_err(Failure::Provider)?;
                let body = xero_entity(&t, &mapping, &source, remote.as_deref())
                    .map_err(Failure::Invalid)?;
                let results = client
                    .put_bank_transactions(&[body], &rid)
                    .await
                    .map_err(Failure::Provider)?;
                match results.into_iter().next() {
                    Some(ItemResult::Saved { id, .. }) => Ok((id, None)),
                    Some(ItemResult::Invalid(m)) => {
                        Err(Failure::Provider(ProviderError::Validation(m)))
                    }
                    None => Err(Failure::Provider(ProviderError::Permanent(
                        "Xero answered no result".into(),
                    ))),
                }
            }
            other => Err(Failure::Invalid(format!(
                "{other} is not an accounting destination"
            ))),
        }
    }
}

impl Pusher {
    async fn destination(
        &self,
        tenant: &crate::ids::TenantId,
        provider: Provider,
    ) -> Result<Connection, Failure> {
        self.stores
            .connections
            .list_for_tenant(tenant)
            .await
            .map_err(|e| Failure::Provider(ProviderError::Transient(e.to_string())))?
            .into_iter()
            .find(|c| c.provider == provider)
            .ok_or_else(|| {
                Failure::Invalid(format!("tenant {tenant} has no {provider} connection"))
            })
    }

    async fn post_marketman(
        &self,
        item: &PushItem,
        record: &Record,
        state: Option<&crate::ports::DestinationState>,
    ) -> Result<(String, Option<String>), Failure> {
        if let Some(id) = state.and_then(|s| s.remote_id.clone()) {
            // MarketMan has no update for orders or documents: a changed one
            // is left as sent, and said so.
            return Err(Failure::Invalid(format!(
                "already sent to MarketMan as {id}; MarketMan cannot update it"
            )));
        }
        let dest = self
            .destination(&item.key.tenant, Provider::MarketMan)
            .await?;
        let client = self.clients.marketman(&dest).map_err(Failure::Provider)?;
        let code = |kind: &str, id: &str| {
            dest.codes
                .get(&format!("{kind}:{id}"))
                .cloned()
                .ok_or_else(|| {
                    Failure::Invalid(format!(
                        "no MarketMan {kind} code mapped for {id} on connection {}/{}",
                        dest.tenant, dest.id
                    ))
                })
        };
        match record {
            Record::PurchaseOrder(po) => {
                let vendor = code("supplier", &po.supplier_id)?;
                let mut lines = Vec::new();
                for l in &po.lines {
                    lines.push(crate::providers::marketman::OrderLine {
                        catalog_item_code: code("item", &l.item_id)?,
                        quantity: l.quantity,
                    });
                }
                let delivery = po
                    .delivery_date
                    .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                    .map_err(|e| Failure::Invalid(format!("delivery_date: {e}")))?
                    .timestamp();
                let v = client
                    .create_order(
                        &vendor,
                        delivery,
                        po.notes.as_deref().unwrap_or(po.id.as_str()),
                        &lines,
                    )
                    .await
                    .map_err(Failure::Provider)?;
                let number = v["OrderNumber"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| v["OrderNumber"].as_i64().map(|n| n.to_string()));
                Ok((number.unwrap_or_else(|| po.id.to_string()), None))
            }
            Record::Delivery(d) => {
                // The vendor is the order's supplier; the order number, MarketMan's.
                let po_row = match &d.purchase_order {
                    Some(po) => self
                        .stores
                        .ledger
                        .get(&crate::ports::LedgerKey {
                            kind: crate::model::RecordKind::PurchaseOrder,
                            source_id: po.clone(),
                            ..item.key.clone()
                        })
                        .await
                        .map_err(|e| Failure::Provider(ProviderError::Transient(e.to_string())))?,
                    None => None,
                };
                let po: Option<crate::model::PurchaseOrder> = po_row.as_ref().and_then(|r| {
                    match serde_json::from_value::<Record>(r.payload.clone()) {
                        Ok(Record::PurchaseOrder(p)) => Some(p),
                        _ => None,
                    }
                });
                let Some(po) = po else {
                    return Err(Failure::Invalid(format!(
                        "delivery {}: its purchase order is not known to the hub",
                        d.id
                    )));
                };
                let order_number = po_row.and_then(|r| {
                    r.destinations
                        .get(&Provider::MarketMan)
                        .and_then(|s| s.remote_id.clone())
                });
                let vendor = code("supplier", &po.supplier_id)?;
                let mut items = Vec::new();
                for l in &d.lines {
                    items.push((code("item", &l.item_id)?, l.quantity_received, l.unit_cost));
                }
                let doc = d.invoice_number.clone().unwrap_or_else(|| d.id.to_string());
                client
                    .set_docs(
                        &vendor,
                        &doc,
                        d.received_at,
                        order_number.as_deref(),
                        &items,
                    )
                    .await
                    .map_err(Failure::Provider)?;
                Ok((doc, None))
            }
            _ => Err(Failure::Invalid("not a MarketMan record".into())),
        }
    }

    async fn post_time_entry(
        &self,
        item: &PushItem,
        e: &crate::model::TimeEntry,
        state: Option<&crate::ports::DestinationState>,
    ) -> Result<(String, Option<String>), Failure> {
        let Some(hours) = crate::ops::hours::worked_hours(e).map_err(Failure::Invalid)? else {
            return Err(Failure::Held(
                "the shift is open: held until it closes".into(),
            ));
        };
        let dest = self
            .destination(&item.key.tenant, Provider::TimeTracking)
            .await?;
        let client = self
            .clients
            .timetracking(&dest)
            .await
            .map_err(Failure::Provider)?;
        let minutes = (hours * rust_decimal::Decimal::from(60)).round();
        let body = json!({
            "externalId": e.id,
            "employeeId": e.employee_id,
            "location": e.location,
            "job": e.job,
            "start": e.clock_in,
            "end": e.clock_out,
            "breaks": e.breaks,
            "hours": format!("{hours:.2}"),
            "workedMinutes": minutes.to_string(),
            "businessDate": dest.business_date(e.clock_in),
        });
        let saved = match state.and_then(|s| s.remote_id.clone()) {
            Some(id) => client.update(&id, &body).await,
            None => client.create(&body, Some(&request_id(item))).await,
        }
        .map_err(Failure::Provider)?;
        let id = saved["id"]
            .as_str()
            .map(str::to_string)
            .or_else(|| saved["id"].as_i64().map(|n| n.to_string()));
        id.map(|id| (id, None)).ok_or_else(|| {
            Failure::Provider(ProviderError::Permanent(
                "the time-tracking system answered no id".into(),
            ))
        })
    }
}

/// Why a post failed.
#[derive(Debug)]
enum Failure {
    /// The hub cannot build a valid request (mapping missing, wrong record).
    Invalid(String),
    /// The provider refused or failed.
    Provider(ProviderError),
    /// Not to be sent yet (an open shift): dropped until a new version comes.
    Held(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Invalid(s) => f.write_str(s),
            Failure::Provider(e) => write!(f, "{e}"),
            Failure::Held(s) => f.write_str(s),
        }
    }
}
