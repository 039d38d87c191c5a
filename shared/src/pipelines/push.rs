//! Posting ledger rows to QuickBooks Online and Xero, exactly once.
//!
//! A push message names a ledger row, a version and a destination. The row
//! is read; a message for a version the row has left behind is dropped (the
//! newer version has its own message); a version already posted is dropped.
//! Otherwise the transaction is booked with the tenant's mappings, each of
//! its parts (`model::parts`) on the item or account its role maps to (see
//! [`quickbooks_entity`], [`xero_entity`] and `docs/books.md`); a part with
//! no mapping, or a record held because its parts do not balance, is
//! refused before anything is sent and parked with the reason. A record
//! stored before parts existed is booked as it was, at its total.
//!
//! - QuickBooks: a sale is a SalesReceipt, a refund a RefundReceipt (a
//!   record without parts: a Purchase for a debit). New ones of
//!   one realm go 10 to a batch request while the realm's 40 batches a minute
//!   last, and one by one beyond that (both count against its 500 calls a
//!   minute). A single create carries the `requestid` of its attempt, so a
//!   retry after a lost answer replays instead of creating twice. A row
//!   posted before is a sparse update with the stored SyncToken; a stale one
//!   is re-read and the update tried again.
//! - Xero: a manual journal per record (without parts: a RECEIVE or SPEND
//!   bank transaction), up to 50 of one kind to a `POST` (update or
//!   create), sent with `summarizeErrors=false` (each item its own result)
//!   and an `Idempotency-Key` derived from the request's id and contents; a
//!   row posted before carries its `ManualJournalID` (`BankTransactionID`),
//!   so it is updated.
//!
//! A batch key names its contents, so a batch must never be regrouped: a
//! redelivered message whose rows went out in another grouping would carry a
//! new key and book them twice. So before anything is sent, each row is
//! promised to its request (a compare-and-set on the ledger row's send
//! marker; a row promised elsewhere is left to that request), and the batch
//! is written to the idempotency store. A redelivery of any member resends
//! that written batch with the same key, and the provider replays its first
//! answer. A promise whose batch was never written (the worker died between
//! the two writes) is declared abandoned in the store, after which no one can
//! write it, and its rows are sent afresh.
//!
//! Every attempt has a key of its own, kept only while its answer is
//! unknown. A definitive answer spends it: after a refusal the next attempt
//! (an operator's redrive after fixing a mapping, say) is built from the
//! ledger and the mappings as they are then, under a new key, because both
//! providers replay their first answer for a key they have seen. A refusal
//! that comes back to a *resend* (the first answer was lost) may be a replay
//! of what was said to the old body, so the row is sent afresh at once
//! rather than parked; only a fresh attempt's refusal parks it.
//!
//! What comes back decides each message's fate: posted (deleted); refused as
//! invalid or unauthorized (the ledger row marked failed with the provider's
//! message, its promise released, the message parked in the dead-letter
//! queue for an operator); rate limited or transient (delayed by the
//! `Retry-After` or a backoff that grows with each receive, then tried
//! again; after the queue's receive limit it lands in the dead-letter queue).

use super::records::PushItem;
use crate::Stores;
use crate::ids::IdempotencyKey;
use crate::model::parts::{self, JournalLine};
use crate::model::{AccountMapping, Connection, Direction, Provider, Record, Transaction};
use crate::ports::{
    ClaimOutcome, DestinationState, LedgerEntry, LedgerKey, ReceivedMessage, StoreError, WorkQueue,
};
use crate::providers::quickbooks::BatchResult;
use crate::providers::xero::{Collection, ItemResult};
use crate::providers::{ProviderClients, ProviderError};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
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

/// A fresh idempotency key for one attempt: 32 hex characters (QuickBooks
/// takes 50 for a single call and 36 for a batch, Xero 128).
///
/// An attempt keeps its key only while its answer is unknown (lost on the
/// way back): resending it then replays what the provider did with it. Once
/// the provider has answered (posted, or refused for good) the key is spent,
/// because both QuickBooks and Xero replay their first answer for a key they
/// have seen: the next attempt, built from the ledger and mappings as they
/// are then, carries a new one.
fn fresh_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A decimal as a JSON number, refusing any amount whose number form would
/// not read back as exactly the same decimal.
pub fn money(d: Decimal) -> Result<Value, String> {
    crate::transforms::json_number(d)
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

/// The destination's id of what a row booked there, if it booked anything
/// (a row with nothing to book is marked posted with no id).
fn booked(state: Option<&DestinationState>) -> Option<&str> {
    state
        .and_then(|s| s.remote_id.as_deref())
        .filter(|id| !id.is_empty())
}

/// A sale with no money at all (a voided, deleted or cancelled order): where
/// nothing was booked, nothing is sent; where something was, it is set to
/// nothing (a zero receipt, a voided journal).
fn nothing_to_book(t: &Transaction) -> bool {
    t.hold.is_none() && t.parts.is_empty() && t.amount.is_zero()
}

/// A held record's refusal, before any body is built.
fn held(t: &Transaction) -> Result<(), String> {
    match &t.hold {
        Some(why) => Err(format!(
            "held, not booked: {why} ({} {})",
            t.source, t.external_id
        )),
        None => Ok(()),
    }
}

/// Each part's mapped value (an item for QuickBooks, an account for Xero)
/// with the part's journal line, or every role that has none, named.
fn mapped_lines(
    t: &Transaction,
    m: &AccountMapping,
    dest: Provider,
    what: &str,
    source: &Connection,
) -> Result<Vec<(JournalLine, String)>, String> {
    let lines = parts::journal(&parts::sum_parts(&t.parts));
    let mut missing = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for line in lines {
        if parts::side(&line.role).is_none() {
            return Err(format!("{} is not a part's role", line.role));
        }
        match parts::resolve(&m.parts, &line.role) {
            Some(v) => out.push((line, v.to_string())),
            None => {
                missing.insert(line.role.clone());
            }
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(format!(
            "no {dest} {what} mapped for part(s) {} on connection {}/{} (a part with no mapping is held, never booked to a guess)",
            missing.into_iter().collect::<Vec<_>>().join(", "),
            source.tenant,
            source.id
        ))
    }
}

/// The missing keys a refusal for unmapped parts names (as
/// [`quickbooks_entity`] and [`xero_entity`] word it), for `hub status`.
pub fn unmapped_keys(error: &str) -> Option<Vec<String>> {
    let (_, rest) = error.split_once(" mapped for part(s) ")?;
    let (keys, _) = rest.split_once(" on connection ")?;
    Some(keys.split(", ").map(str::to_string).collect())
}

/// A human label for a part's line.
fn part_label(role: &str) -> String {
    match role.split_once(':') {
        Some((head, tail)) => format!("{head}: {tail}"),
        None => role.replace('_', " "),
    }
}

/// The QuickBooks entity for a transaction: (entity name, body). A record
/// with parts is a SalesReceipt (a sale) or a RefundReceipt (a refund) with
/// a line per part, each on the item its role maps to (the item's account
/// takes the part): credits (sales, charges, tips, gift cards sold, tax) as
/// positive lines, debits (discounts, tenders, gift cards redeemed) as
/// negative ones, a fee as a negative line on the fees item and a positive
/// one on the card tender's. A SalesReceipt has a single deposit account,
/// and a split tender needs one per tender type, so every tender is its own
/// line and the receipt nets to zero in `DepositToAccountRef` (the
/// mapping's `deposit_account`, QuickBooks' Undeposited Funds if unset). A
/// tax role mapped to `taxrate:<id>` goes through the company's own sales
/// tax (`TxnTaxDetail` with `GlobalTaxCalculation: TaxExcluded`) instead of
/// a liability line. A RefundReceipt is the mirror, refunded from
/// `deposit_account` (its `DepositToAccountRef`, as Finance.xsd has it).
pub fn quickbooks_entity(
    t: &Transaction,
    m: &AccountMapping,
    source: &Connection,
) -> Result<(&'static str, Value), String> {
    held(t)?;
    if nothing_to_book(t) {
        // Updates what was booked to nothing: one description line, no money.
        return Ok((
            if t.direction == Direction::Debit {
                "RefundReceipt"
            } else {
                "SalesReceipt"
            },
            json!({
                "TxnDate": t.business_date.to_string(),
                "PrivateNote": format!("{} ({} {})", t.description, t.source, t.external_id),
                "Line": [{"DetailType": "DescriptionOnly", "Description": t.description, "DescriptionLineDetail": {}}],
            }),
        ));
    }
    if t.parts.is_empty() {
        return legacy_quickbooks_entity(t, m, source);
    }
    let refund = t.direction == Direction::Debit;
    let lines = mapped_lines(t, m, Provider::QuickBooks, "item", source)?;
    let (mut body_lines, mut tax_lines, mut total_tax) = (Vec::new(), Vec::new(), Decimal::ZERO);
    for (line, value) in lines {
        // SalesReceipt lines are credits; RefundReceipt lines are debits.
        let amount = if refund { line.amount } else { -line.amount };
        if let Some(rate) = value.strip_prefix("taxrate:") {
            total_tax += amount;
            tax_lines.push(json!({
                "Amount": money(amount)?,
                "DetailType": "TaxLineDetail",
                "TaxLineDetail": {"TaxRateRef": {"value": rate}, "PercentBased": false},
            }));
            continue;
        }
        body_lines.push(json!({
            "Amount": money(amount)?,
            "DetailType": "SalesItemLineDetail",
            "Description": part_label(&line.role),
            "SalesItemLineDetail": {"ItemRef": {"value": value}, "Qty": 1, "UnitPrice": money(amount)?},
        }));
    }
    let doc: String = if refund {
        format!("{}-R", t.reference.chars().take(19).collect::<String>())
    } else {
        t.reference.chars().take(21).collect()
    };
    let mut body = json!({
        "TxnDate": t.business_date.to_string(),
        "DocNumber": doc,
        "PrivateNote": format!("{} ({} {})", t.description, t.source, t.external_id),
        "Line": body_lines,
    });
    if !tax_lines.is_empty() {
        body["TxnTaxDetail"] = json!({"TotalTax": money(total_tax)?, "TaxLine": tax_lines});
        body["GlobalTaxCalculation"] = json!("TaxExcluded");
    }
    if refund {
        let from = m.deposit_account.as_deref().ok_or_else(|| {
            format!(
                "no deposit account mapped for quickbooks on connection {}/{}: a RefundReceipt names the account it refunds from",
                source.tenant, source.id
            )
        })?;
        // A RefundReceipt is a SalesTransaction: the account it refunds
        // from is its DepositToAccountRef (Finance.xsd has no other).
        body["DepositToAccountRef"] = json!({"value": from});
        Ok(("RefundReceipt", body))
    } else {
        if let Some(d) = m.deposit_account.as_deref() {
            body["DepositToAccountRef"] = json!({"value": d});
        }
        Ok(("SalesReceipt", body))
    }
}

/// A record stored before parts existed: one line at its total.
fn legacy_quickbooks_entity(
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

/// What Xero is sent for a transaction: (collection, body). A record with
/// parts is a manual journal with a line per account (debit positive,
/// credit negative), `LineAmountTypes: NoTax` and `TaxType: NONE` on every
/// line, since the tax is a part of its own on its liability account. Why a
/// journal and not a bank transaction: a bank transaction has one bank
/// account, and a split tender debits several clearing accounts; and Xero
/// posts no manual journal to a bank account, so tenders go to clearing
/// accounts (current assets, as Xero advises), which the payout later moves
/// to the bank. A mapping value `id:<AccountID>` names an account by id (bank
/// and clearing accounts often have no code). A row posted before carries
/// its `ManualJournalID`, so it is updated in place.
pub fn xero_entity(
    t: &Transaction,
    m: &AccountMapping,
    source: &Connection,
    remote_id: Option<&str>,
) -> Result<(Collection, Value), String> {
    held(t)?;
    if let (true, Some(id)) = (nothing_to_book(t), remote_id) {
        return Ok((
            Collection::ManualJournals,
            // Narration is required of every ManualJournal (the definition).
            json!({
                "ManualJournalID": id,
                "Narration": format!("{} ({} {})", t.description, t.source, t.external_id),
                "Status": "VOIDED",
            }),
        ));
    }
    if t.parts.is_empty() {
        return legacy_xero_entity(t, m, source, remote_id)
            .map(|b| (Collection::BankTransactions, b));
    }
    let lines = mapped_lines(t, m, Provider::Xero, "account", source)?;
    let mut journal_lines = Vec::new();
    for (line, value) in lines {
        let mut l = json!({
            "LineAmount": money(line.amount)?,
            "Description": part_label(&line.role),
            "TaxType": "NONE",
        });
        match value.strip_prefix("id:") {
            Some(id) => l["AccountID"] = id.into(),
            None => l["AccountCode"] = value.into(),
        }
        journal_lines.push(l);
    }
    let mut body = json!({
        "Narration": format!("{} ({} {})", t.description, t.source, t.external_id),
        "Date": t.business_date.to_string(),
        "LineAmountTypes": "NoTax",
        "Status": "POSTED",
        "JournalLines": journal_lines,
    });
    if let Some(id) = remote_id {
        body["ManualJournalID"] = id.into();
    }
    Ok((Collection::ManualJournals, body))
}

/// A record stored before parts existed: a bank transaction at its total.
fn legacy_xero_entity(
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
        "BankAccount": match bank.strip_prefix("id:") {
            Some(id) => json!({"AccountID": id}),
            None => json!({"Code": bank}),
        },
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

/// A written Xero batch's collection and bodies: `[[collection, body], ...]`,
/// or, as batches were written before manual journals, bare bank
/// transactions.
fn xero_request(request: &Value) -> Result<(Collection, Vec<Value>), Failure> {
    let mut collection = None;
    let mut bodies = Vec::new();
    for v in request.as_array().into_iter().flatten() {
        let (c, body) = match v.as_array() {
            Some(pair) if pair.len() == 2 => (
                serde_json::from_value::<Collection>(pair[0].clone()).map_err(|e| {
                    Failure::Invalid(format!("a written Xero batch names no collection: {e}"))
                })?,
                pair[1].clone(),
            ),
            _ => (Collection::BankTransactions, v.clone()),
        };
        if collection.is_some_and(|seen| seen != c) {
            return Err(Failure::Invalid(
                "a written Xero batch mixes collections".into(),
            ));
        }
        collection = Some(c);
        bodies.push(body);
    }
    Ok((collection.unwrap_or(Collection::BankTransactions), bodies))
}

/// The account mapping a source connection gives for `destination`.
fn mapping(source: &Connection, destination: Provider) -> AccountMapping {
    source
        .mappings
        .get(&destination)
        .cloned()
        .unwrap_or_default()
}

/// Posts push messages.
#[derive(Debug, Clone)]
pub struct Pusher {
    stores: Stores,
    clients: ProviderClients,
    /// The first retry's delay; doubled per receive, at most 15 minutes.
    pub retry_base: Duration,
    /// How long a message [`Pusher::drain`] receives stays hidden from other
    /// workers: if this worker dies, the message comes back after it.
    pub visibility: Duration,
    /// When the invocation must be done (a Lambda's deadline): a request is
    /// begun only while `per_request` of time is left; the rest are given
    /// back untried for the next invocation.
    pub deadline: Option<std::time::Instant>,
    /// The longest one request can take: its wait for the provider's rate
    /// budget (at most 60 s) and the call itself (at most 30 s).
    pub per_request: Duration,
}

/// The idempotency-store key a batch's contents are kept under.
fn batch_store_key(batch: &str) -> Result<IdempotencyKey, StoreError> {
    IdempotencyKey::new(format!("push-batch:{batch}")).map_err(|e| StoreError::Corrupt {
        what: "batch key".into(),
        detail: e.to_string(),
    })
}

/// What a batch send marker holds in place of contents when a worker found
/// it promised but never written (its writer died before sending it).
const ABANDONED: &str = "abandoned";

/// How long a batch's contents are kept: as long as a message can live in
/// a queue or its dead-letter queue (SQS keeps them at most 14 days).
const BATCH_RETENTION: Duration = Duration::from_secs(14 * 86_400);

/// A short delay for a message whose row another worker is sending now.
const BUSY: Duration = Duration::from_secs(2);

/// A push message read and checked against its ledger row.
#[derive(Debug, Clone)]
struct Ready {
    /// Its index in the receive.
    msg: usize,
    receive_count: u32,
    item: PushItem,
    entry: LedgerEntry,
    state: Option<DestinationState>,
}

/// One member of a batch: which row version, and its id in the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Member {
    key: LedgerKey,
    version: u32,
    bid: String,
}

/// A batch exactly as sent (and as resent after a lost answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SentBatch {
    /// Its id (the `b:` promise); written batches from before ids were kept
    /// have none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    id: String,
    destination: Provider,
    tenant: crate::ids::TenantId,
    members: Vec<Member>,
    /// QuickBooks: `[[bId, entity, body], ...]`; Xero: `[[collection, body], ...]`.
    request: Value,
}

impl SentBatch {
    /// The provider's idempotency key: derived from the batch's id and
    /// contents (members and bodies), at most 32 characters (QuickBooks
    /// takes 36 for a batch). A batch built afresh has a new id, so a new
    /// key, even where its contents repeat an answered one.
    fn key(&self) -> String {
        let bytes = if self.id.is_empty() {
            serde_json::to_vec(&(&self.members, &self.request))
        } else {
            serde_json::to_vec(&(&self.id, &self.members, &self.request))
        }
        .unwrap_or_default();
        hex::encode(&Sha256::digest(&bytes)[..16])
    }
}

type Posted = (String, Option<String>);

impl Pusher {
    /// A pusher on `stores`, calling providers through `clients`.
    pub fn new(stores: Stores, clients: ProviderClients) -> Self {
        Pusher {
            stores,
            clients,
            retry_base: Duration::from_secs(5),
            visibility: Duration::from_secs(120),
            deadline: None,
            per_request: Duration::from_secs(90),
        }
    }

    /// This pusher, finishing by `deadline`.
    pub fn until(&self, deadline: std::time::Instant) -> Self {
        Pusher {
            deadline: Some(deadline),
            ..self.clone()
        }
    }

    /// Whether a request begun now might not finish before the deadline.
    fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| {
            d.saturating_duration_since(std::time::Instant::now()) < self.per_request
        })
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
        let mut out = self.handle_many(queue, std::slice::from_ref(m)).await?;
        Ok(out.remove(0))
    }

    /// Handles messages received together, grouping what one request can
    /// carry (QuickBooks creates of one realm, 10 to a batch while the
    /// realm's batch budget lasts; Xero bank transactions of one tenant, 50 to
    /// a request), and settles each on `queue`. Outcomes are in message order.
    pub async fn handle_many(
        &self,
        queue: &dyn WorkQueue,
        messages: &[ReceivedMessage],
    ) -> Result<Vec<PushOutcome>, StoreError> {
        let mut outcomes = self.push_many(messages).await?;
        let now = jiff::Timestamp::now();
        for (m, outcome) in messages.iter().zip(outcomes.iter_mut()) {
            // SQS hides a message at most 12 hours from its first receive: a
            // wait beyond that is parked, saying why, rather than refused.
            if let PushOutcome::Retry(after, why) = outcome
                && *after > m.max_delay(now)
            {
                *outcome = PushOutcome::Park(format!(
                    "{why}; waiting {}s more is longer than the queue can hold the message \
                     ({}s left of its 12 hours): parked for a redrive",
                    after.as_secs(),
                    m.max_delay(now).as_secs()
                ));
            }
            match outcome {
                PushOutcome::Posted(_) | PushOutcome::Skipped(_) => {
                    queue.delete(&m.receipt).await?
                }
                PushOutcome::Retry(after, _) => queue.change_visibility(&m.receipt, *after).await?,
                PushOutcome::Park(_) => queue.park(m).await?,
            }
        }
        Ok(outcomes)
    }

    /// Receives and handles until the queue has nothing visible (local runs,
    /// tests), up to 50 messages at a time as the push function gets them.
    pub async fn drain(
        &self,
        queue: &dyn WorkQueue,
        max_rounds: usize,
    ) -> Result<Vec<PushOutcome>, StoreError> {
        let mut out = Vec::new();
        for _ in 0..max_rounds {
            let mut batch = Vec::new();
            while batch.len() < 50 {
                let got = queue.receive(10, self.visibility, Duration::ZERO).await?;
                if got.is_empty() {
                    break;
                }
                batch.extend(got);
            }
            if batch.is_empty() {
                break;
            }
            out.extend(self.handle_many(queue, &batch).await?);
        }
        Ok(out)
    }

    async fn push_many(
        &self,
        messages: &[ReceivedMessage],
    ) -> Result<Vec<PushOutcome>, StoreError> {
        let mut out: Vec<Option<PushOutcome>> = vec![None; messages.len()];
        let mut seen = std::collections::HashSet::new();
        let mut seen_days = std::collections::BTreeSet::new();
        let mut readies = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if let Ok(job) = serde_json::from_str::<super::days::DayJob>(&m.body) {
                out[i] = Some(if seen_days.insert(job.clone()) {
                    self.day(&job, m.receive_count).await?
                } else {
                    PushOutcome::Skipped("the same day twice in one receive".into())
                });
                continue;
            }
            let item = match serde_json::from_str::<PushItem>(&m.body) {
                Ok(item) => item,
                Err(e) => {
                    out[i] = Some(PushOutcome::Park(format!("unreadable push message: {e}")));
                    continue;
                }
            };
            if !seen.insert((item.key.clone(), item.version, item.destination)) {
                out[i] = Some(PushOutcome::Skipped(
                    "the same push twice in one receive".into(),
                ));
                continue;
            }
            match self.prepare(i, item, m.receive_count).await? {
                Ok(ready) => readies.push(ready),
                Err(outcome) => out[i] = Some(outcome),
            }
        }
        self.route(readies, &mut out).await?;
        Ok(out
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| PushOutcome::Retry(BUSY, "no outcome for the push".into()))
            })
            .collect())
    }

    /// Posts a day of a destination booking daily summaries.
    async fn day(
        &self,
        job: &super::days::DayJob,
        receive_count: u32,
    ) -> Result<PushOutcome, StoreError> {
        use super::days::JobOutcome;
        use super::journal::{DayOutcome, JournalError};
        if self.out_of_time() {
            return Ok(PushOutcome::Retry(
                Duration::ZERO,
                "left for the next invocation: too little time to post a day".into(),
            ));
        }
        let what = format!("{} {} from {}", job.destination, job.day, job.source);
        match super::days::run_day(&self.stores, &self.clients, job, jiff::Timestamp::now()).await {
            Ok(JobOutcome::Done(
                DayOutcome::Posted { id }
                | DayOutcome::Updated { id }
                | DayOutcome::Adjusted { id, .. },
            )) => Ok(PushOutcome::Posted(id)),
            Ok(JobOutcome::Done(d)) => Ok(PushOutcome::Skipped(format!("{what}: {d:?}"))),
            Ok(JobOutcome::Held(keys)) => Ok(PushOutcome::Skipped(format!(
                "{what}: held, needs mapping: {}",
                keys.join(", ")
            ))),
            Ok(JobOutcome::Waiting(wait, held)) => Ok(PushOutcome::Retry(
                wait.unsigned_abs(),
                format!("{what}: waiting for {} open check(s)", held.len()),
            )),
            Ok(JobOutcome::Dropped(why)) => Ok(PushOutcome::Skipped(why)),
            Err(JournalError::Store(StoreError::Conflict(why))) => {
                Ok(PushOutcome::Retry(BUSY, format!("{what}: {why}")))
            }
            Err(JournalError::Store(e)) => Err(e),
            Err(JournalError::Provider(ProviderError::RateLimited { retry_after })) => {
                Ok(PushOutcome::Retry(
                    retry_after.unwrap_or(Duration::from_secs(30)),
                    format!("{what}: rate limited"),
                ))
            }
            Err(JournalError::Provider(
                e @ (ProviderError::Transient(_) | ProviderError::Conflict(_)),
            )) => Ok(PushOutcome::Retry(
                self.backoff(receive_count),
                format!("{what}: {e}"),
            )),
            Err(e) => Ok(PushOutcome::Park(format!("{what}: {e}"))),
        }
    }

    /// Reads the row a push names; an outcome where nothing is to be sent.
    async fn prepare(
        &self,
        msg: usize,
        item: PushItem,
        receive_count: u32,
    ) -> Result<Result<Ready, PushOutcome>, StoreError> {
        let Some(entry) = self.stores.ledger.get(&item.key).await? else {
            return Ok(Err(PushOutcome::Park(format!(
                "ledger row {} does not exist",
                item.key.storage_key()
            ))));
        };
        if entry.version != item.version {
            return Ok(Err(PushOutcome::Skipped(format!(
                "superseded by version {}",
                entry.version
            ))));
        }
        let state = entry.destinations.get(&item.destination).cloned();
        if let Some(s) = &state
            && s.status == crate::ports::DestinationStatus::Posted
            && s.version == entry.version
        {
            return Ok(Err(PushOutcome::Skipped("already posted".into())));
        }
        Ok(Ok(Ready {
            msg,
            receive_count,
            item,
            entry,
            state,
        }))
    }

    /// Sends what is ready: resends of promised requests first, then new
    /// batches per account, then the rest one by one.
    async fn route(
        &self,
        readies: Vec<Ready>,
        out: &mut [Option<PushOutcome>],
    ) -> Result<(), StoreError> {
        let mut resends: BTreeMap<String, Vec<Ready>> = BTreeMap::new();
        let mut groups: BTreeMap<(crate::ids::TenantId, Provider), Vec<Ready>> = BTreeMap::new();
        let mut singles = Vec::new();
        for r in readies {
            let remote = booked(r.state.as_ref());
            if let Some(send) = r.state.as_ref().and_then(|s| s.send.clone()) {
                resends.entry(send).or_default().push(r);
            } else if r.item.destination == Provider::Xero
                || (r.item.destination == Provider::QuickBooks && remote.is_none())
            {
                groups
                    .entry((r.item.key.tenant.clone(), r.item.destination))
                    .or_default()
                    .push(r);
            } else {
                singles.push(r);
            }
        }
        for (send, rs) in resends {
            if self.out_of_time() {
                Self::later(&rs, out);
                continue;
            }
            self.resend(&send, rs, out).await?;
        }
        for ((tenant, destination), rs) in groups {
            self.send_group(&tenant, destination, rs, out).await?;
        }
        for r in singles {
            if self.out_of_time() {
                Self::later(std::slice::from_ref(&r), out);
                continue;
            }
            self.send_single(&r, None, out).await?;
        }
        Ok(())
    }

    /// Gives messages back untried: the invocation's time is nearly up.
    fn later(readies: &[Ready], out: &mut [Option<PushOutcome>]) {
        for r in readies {
            out[r.msg] = Some(PushOutcome::Retry(
                Duration::ZERO,
                "not begun: this invocation's time is nearly up; left for the next".into(),
            ));
        }
    }

    /// Records what a post came to in the ledger; the message's outcome.
    ///
    /// `send` is the promise the attempt went out under. A definitive answer
    /// (posted, or refused for good) ends it, so the next attempt is built
    /// afresh, with a new key, from the ledger and the mappings as they are
    /// then. An answer that never came keeps it: the attempt may have been
    /// saved, and only its own key can tell.
    ///
    /// `resend`: the attempt repeats one whose answer was lost. A refusal
    /// then may be the provider replaying what it said to the body sent
    /// before (QuickBooks answers a seen `requestid` with its first answer),
    /// and what would be sent now may differ (a mapping fixed since): the
    /// promise ends and the row is sent afresh at once, not parked. The
    /// fresh attempt's own refusal parks it.
    async fn record(
        &self,
        item: &PushItem,
        result: Result<Posted, Failure>,
        receive_count: u32,
        send: Option<&str>,
        resend: bool,
    ) -> Result<PushOutcome, StoreError> {
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
        let (outcome, release) = match &reason {
            // Nothing was sent: nothing to record, and no promise to keep.
            Failure::Held(why) => {
                self.release(item, send).await?;
                return Ok(PushOutcome::Skipped(why.clone()));
            }
            // The hub could not build the request. A fresh attempt sent
            // nothing; a resend's earlier attempt may have been saved, so its
            // promise (and key) stays for when the operator has fixed it.
            Failure::Invalid(why) => (PushOutcome::Park(why.clone()), !resend),
            Failure::Provider(ProviderError::RateLimited { retry_after })
            | Failure::Unsent(ProviderError::RateLimited { retry_after }) => (
                PushOutcome::Retry(
                    retry_after.unwrap_or(Duration::from_secs(30)),
                    reason.to_string(),
                ),
                false,
            ),
            Failure::Provider(ProviderError::Transient(_) | ProviderError::Conflict(_))
            | Failure::Unsent(ProviderError::Transient(_) | ProviderError::Conflict(_)) => (
                PushOutcome::Retry(self.backoff(receive_count), reason.to_string()),
                false,
            ),
            Failure::Provider(_) if resend && send.is_some() => (
                PushOutcome::Retry(
                    Duration::ZERO,
                    format!(
                        "{reason} (refused on resending an attempt whose answer was lost: \
                         sending the row as it is now, with a new key)"
                    ),
                ),
                true,
            ),
            Failure::Provider(_) => (PushOutcome::Park(reason.to_string()), true),
            Failure::Unsent(_) => (PushOutcome::Park(reason.to_string()), !resend),
        };
        if release {
            self.release(item, send).await?;
        }
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

    /// Promises a row that holds no promise to `send`. False when another
    /// worker promised it first: its message is then retried shortly.
    async fn promise(
        &self,
        r: &Ready,
        send: &str,
        out: &mut [Option<PushOutcome>],
    ) -> Result<bool, StoreError> {
        match self
            .stores
            .ledger
            .mark_send(
                &r.item.key,
                r.item.destination,
                r.item.version,
                Some(send),
                None,
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(why)) => {
                out[r.msg] = Some(PushOutcome::Retry(BUSY, why));
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Ends a row's promise to `send` (if it still holds it).
    async fn release(&self, item: &PushItem, send: Option<&str>) -> Result<(), StoreError> {
        let Some(send) = send else { return Ok(()) };
        match self
            .stores
            .ledger
            .mark_send(&item.key, item.destination, item.version, None, Some(send))
            .await
        {
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The connection a transaction came from.
    async fn source(&self, t: &Transaction) -> Result<Connection, Failure> {
        self.stores
            .connections
            .get(&t.tenant, &t.connection)
            .await
            .map_err(|e| Failure::Unsent(ProviderError::Transient(e.to_string())))?
            .ok_or_else(|| {
                Failure::Invalid(format!(
                    "source connection {}/{} no longer exists",
                    t.tenant, t.connection
                ))
            })
    }

    /// What one accounting post needs: the transaction, its source
    /// connection's mapping, and the destination connection.
    async fn accounting(
        &self,
        item: &PushItem,
        entry: &LedgerEntry,
    ) -> Result<(Transaction, AccountMapping, Connection, Connection), Failure> {
        let t = transaction(entry).map_err(Failure::Invalid)?;
        let source = self.source(&t).await?;
        let mapping = mapping(&source, item.destination);
        let dest = self.destination(&t.tenant, item.destination).await?;
        Ok((t, mapping, source, dest))
    }

    /// New creates (QuickBooks) or bank transactions (Xero) of one account.
    async fn send_group(
        &self,
        tenant: &crate::ids::TenantId,
        destination: Provider,
        readies: Vec<Ready>,
        out: &mut [Option<PushOutcome>],
    ) -> Result<(), StoreError> {
        // One destination and one read per source connection for the group.
        let dest = match self.destination(tenant, destination).await {
            Ok(d) => d,
            Err(e) => {
                for r in readies {
                    out[r.msg] = Some(
                        self.record(&r.item, Err(e.clone()), r.receive_count, None, false)
                            .await?,
                    );
                }
                return Ok(());
            }
        };
        let mut sources: std::collections::HashMap<crate::ids::ConnectionId, Connection> =
            std::collections::HashMap::new();
        // Bodies first: a row that cannot be built fails alone.
        let mut built = Vec::new();
        for r in readies {
            let body = async {
                let t = transaction(&r.entry).map_err(Failure::Invalid)?;
                if nothing_to_book(&t) && booked(r.state.as_ref()).is_none() {
                    return Ok(Value::Null);
                }
                let source = match sources.get(&t.connection) {
                    Some(c) => c.clone(),
                    None => {
                        let c = self.source(&t).await?;
                        sources.insert(t.connection.clone(), c.clone());
                        c
                    }
                };
                let mapping = mapping(&source, destination);
                match destination {
                    Provider::QuickBooks => quickbooks_entity(&t, &mapping, &source)
                        .map(|(entity, body)| json!([entity, body])),
                    _ => {
                        let remote = booked(r.state.as_ref());
                        xero_entity(&t, &mapping, &source, remote)
                            .map(|(collection, body)| json!([collection, body]))
                    }
                }
                .map_err(Failure::Invalid)
            }
            .await;
            match body {
                // Nothing to book and nothing booked: done without a call.
                Ok(Value::Null) => {
                    out[r.msg] = Some(
                        self.record(
                            &r.item,
                            Ok((String::new(), None)),
                            r.receive_count,
                            None,
                            false,
                        )
                        .await?,
                    )
                }
                Ok(body) => built.push((r, body)),
                Err(e) => {
                    out[r.msg] = Some(
                        self.record(&r.item, Err(e), r.receive_count, None, false)
                            .await?,
                    )
                }
            }
        }
        let per_request = match destination {
            Provider::QuickBooks => crate::providers::quickbooks::MAX_BATCH,
            _ => crate::providers::xero::MAX_BATCH,
        };
        // A Xero request writes one collection: bank transactions and
        // manual journals go in requests of their own.
        let mut rest = built;
        if destination == Provider::Xero {
            rest.sort_by_key(|(_, b)| b[0].as_str().unwrap_or_default().to_string());
        }
        while !rest.is_empty() {
            let same = match destination {
                Provider::Xero => {
                    let first = rest[0].1[0].clone();
                    rest.iter().take_while(|(_, b)| b[0] == first).count()
                }
                _ => rest.len(),
            };
            let chunk: Vec<_> = rest.drain(..same.min(per_request)).collect();
            if self.out_of_time() {
                let untried: Vec<Ready> = chunk.into_iter().map(|(r, _)| r).collect();
                Self::later(&untried, out);
                continue;
            }
            let batch = match destination {
                // A batch of one is a single call spent from a smaller budget.
                Provider::QuickBooks if chunk.len() < 2 => false,
                Provider::QuickBooks => match self.clients.quickbooks(&dest).await {
                    Ok(c) => c.try_batch_budget().await.unwrap_or(false),
                    Err(_) => false,
                },
                _ => true,
            };
            if batch {
                self.send_new_batch(tenant, destination, &dest, chunk, out)
                    .await?;
            } else {
                for (r, _) in chunk {
                    if self.out_of_time() {
                        Self::later(std::slice::from_ref(&r), out);
                        continue;
                    }
                    self.send_single(&r, None, out).await?;
                }
            }
        }
        Ok(())
    }

    /// One request on its own (a QuickBooks create or update, a MarketMan
    /// order or delivery, a time entry), promised first under a fresh key so
    /// no other worker sends or batches the same row meanwhile. `promised`:
    /// the promise an earlier attempt made and never heard back about; it is
    /// sent again under that key.
    async fn send_single(
        &self,
        r: &Ready,
        promised: Option<&str>,
        out: &mut [Option<PushOutcome>],
    ) -> Result<(), StoreError> {
        let send = match promised {
            Some(send) => send.to_string(),
            None => {
                let send = format!("s:{}", fresh_key());
                if !self.promise(r, &send, out).await? {
                    return Ok(());
                }
                send
            }
        };
        let key = send.trim_start_matches("s:");
        let result = self.post(&r.item, &r.entry, r.state.as_ref(), key).await;
        crate::chaos::point(crate::chaos::PUSH_POSTED);
        out[r.msg] = Some(
            self.record(
                &r.item,
                result,
                r.receive_count,
                Some(&send),
                promised.is_some(),
            )
            .await?,
        );
        Ok(())
    }

    /// Promises rows to a new batch, writes the batch down, then sends it.
    async fn send_new_batch(
        &self,
        tenant: &crate::ids::TenantId,
        destination: Provider,
        dest: &Connection,
        chunk: Vec<(Ready, Value)>,
        out: &mut [Option<PushOutcome>],
    ) -> Result<(), StoreError> {
        let id = fresh_key();
        let send = format!("b:{id}");
        let mut members = Vec::new();
        for (r, body) in chunk {
            if self.promise(&r, &send, out).await? {
                members.push((r, body));
            }
        }
        if members.is_empty() {
            return Ok(());
        }
        let request = match destination {
            Provider::QuickBooks => Value::Array(
                members
                    .iter()
                    .enumerate()
                    .map(|(i, (_, b))| json!([format!("b{i}"), b[0], b[1]]))
                    .collect(),
            ),
            _ => Value::Array(members.iter().map(|(_, b)| b.clone()).collect()),
        };
        let batch = SentBatch {
            id: id.clone(),
            destination,
            tenant: tenant.clone(),
            members: members
                .iter()
                .enumerate()
                .map(|(i, (r, _))| Member {
                    key: r.item.key.clone(),
                    version: r.item.version,
                    bid: format!("b{i}"),
                })
                .collect(),
            request,
        };
        // Written before it is sent: a redelivery resends exactly this.
        let key = batch_store_key(&id)?;
        let now = jiff::Timestamp::now();
        let written = match self.stores.idempotency.claim(&key, now + BUSY * 60).await? {
            ClaimOutcome::Claimed(token) => {
                let text = serde_json::to_string(&batch).map_err(|e| StoreError::Corrupt {
                    what: format!("batch {id}"),
                    detail: e.to_string(),
                })?;
                self.stores
                    .idempotency
                    .complete(&key, &token, Some(&text), now + BATCH_RETENTION)
                    .await
                    .is_ok()
            }
            _ => false,
        };
        let readies: Vec<Ready> = members.into_iter().map(|(r, _)| r).collect();
        if !written {
            // Another worker declared it abandoned: each row is sent afresh
            // on its next delivery.
            for r in &readies {
                out[r.msg] = Some(PushOutcome::Retry(
                    BUSY,
                    "batch abandoned before it was sent".into(),
                ));
            }
            return Ok(());
        }
        self.send_batch(&batch, dest, &send, false, &readies, out)
            .await
    }

    /// Sends a written batch and records every member's result. The
    /// messages in `readies` get their outcome; members received elsewhere
    /// are recorded in the ledger and skipped when their message comes.
    async fn send_batch(
        &self,
        batch: &SentBatch,
        dest: &Connection,
        send: &str,
        resend: bool,
        readies: &[Ready],
        out: &mut [Option<PushOutcome>],
    ) -> Result<(), StoreError> {
        let key = batch.key();
        let results: Result<Vec<Result<Posted, Failure>>, Failure> = match batch.destination {
            Provider::QuickBooks => {
                async {
                    let client = self
                        .clients
                        .quickbooks(dest)
                        .await
                        .map_err(Failure::Unsent)?;
                    let items: Vec<(String, String, Value)> = batch
                        .request
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|v| {
                            (
                                v[0].as_str().unwrap_or_default().to_string(),
                                v[1].as_str().unwrap_or_default().to_string(),
                                v[2].clone(),
                            )
                        })
                        .collect();
                    let answers = client
                        .batch_create(&items, &key)
                        .await
                        .map_err(Failure::Provider)?;
                    Ok(batch
                        .members
                        .iter()
                        .map(|m| {
                            match answers
                                .iter()
                                .find(|(bid, _)| *bid == m.bid)
                                .map(|(_, r)| r)
                            {
                                Some(BatchResult::Saved(s)) => {
                                    Ok((s.id.clone(), Some(s.sync_token.clone())))
                                }
                                Some(BatchResult::Failed(e)) => Err(Failure::Provider(e.clone())),
                                None => Err(Failure::Provider(ProviderError::Transient(format!(
                                    "the batch answered nothing for {}",
                                    m.bid
                                )))),
                            }
                        })
                        .collect())
                }
                .await
            }
            _ => {
                async {
                    let client = self.clients.xero(dest).await.map_err(Failure::Unsent)?;
                    let (collection, bodies) = xero_request(&batch.request)?;
                    let answers = client
                        .save(collection, &bodies, &key)
                        .await
                        .map_err(Failure::Provider)?;
                    Ok(answers
                        .into_iter()
                        .map(|a| match a {
                            ItemResult::Saved { id, .. } => Ok((id, None)),
                            ItemResult::Invalid(m) => {
                                Err(Failure::Provider(ProviderError::Validation(m)))
                            }
                        })
                        .collect())
                }
                .await
            }
        };
        crate::chaos::point(crate::chaos::PUSH_POSTED);
        let per_member: Vec<Result<Posted, Failure>> = match results {
            Ok(r) => r,
            Err(e) => batch.members.iter().map(|_| Err(e.clone())).collect(),
        };
        for (m, result) in batch.members.iter().zip(per_member) {
            let item = PushItem {
                key: m.key.clone(),
                version: m.version,
                destination: batch.destination,
            };
            let mine = readies.iter().find(|r| r.item == item);
            let receive_count = mine.map_or(1, |r| r.receive_count);
            let outcome = self
                .record(&item, result, receive_count, Some(send), resend)
                .await?;
            if let Some(r) = mine {
                out[r.msg] = Some(outcome);
            }
        }
        Ok(())
    }

    /// Resends what rows were promised to: the same single request, or the
    /// same batch as written. A batch promised but never written was
    /// abandoned by a worker that died: it is declared so (no one can write
    /// it after that), the promise released, and the rows sent afresh.
    async fn resend(
        &self,
        send: &str,
        readies: Vec<Ready>,
        out: &mut [Option<PushOutcome>],
    ) -> Result<(), StoreError> {
        if send.starts_with("s:") {
            for r in &readies {
                self.send_single(r, Some(send), out).await?;
            }
            return Ok(());
        }
        let id = send.trim_start_matches("b:");
        let key = batch_store_key(id)?;
        let now = jiff::Timestamp::now();
        let written = match self.stores.idempotency.claim(&key, now + BUSY * 60).await? {
            ClaimOutcome::Done {
                result: Some(text), ..
            } if text != ABANDONED => serde_json::from_str::<SentBatch>(&text).ok(),
            ClaimOutcome::Done { .. } => None,
            ClaimOutcome::Claimed(token) => {
                match self
                    .stores
                    .idempotency
                    .complete(&key, &token, Some(ABANDONED), now + BATCH_RETENTION)
                    .await
                {
                    Ok(()) | Err(StoreError::Conflict(_)) => None,
                    Err(e) => return Err(e),
                }
            }
            ClaimOutcome::InProgress { lease_until } => {
                let wait = Duration::try_from(lease_until.duration_since(now)).unwrap_or(BUSY);
                for r in &readies {
                    out[r.msg] = Some(PushOutcome::Retry(
                        wait.max(BUSY),
                        "its batch is being written".into(),
                    ));
                }
                return Ok(());
            }
        };
        match written {
            Some(batch) => {
                let dest = match self.destination(&batch.tenant, batch.destination).await {
                    Ok(d) => d,
                    Err(e) => {
                        for r in &readies {
                            out[r.msg] = Some(
                                self.record(
                                    &r.item,
                                    Err(e.clone()),
                                    r.receive_count,
                                    Some(send),
                                    true,
                                )
                                .await?,
                            );
                        }
                        return Ok(());
                    }
                };
                if batch.destination == Provider::QuickBooks {
                    let budget = match self.clients.quickbooks(&dest).await {
                        Ok(c) => c.wait_batch_budget().await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = budget {
                        for r in &readies {
                            out[r.msg] = Some(
                                self.record(
                                    &r.item,
                                    Err(Failure::Unsent(e.clone())),
                                    r.receive_count,
                                    Some(send),
                                    true,
                                )
                                .await?,
                            );
                        }
                        return Ok(());
                    }
                }
                self.send_batch(&batch, &dest, send, true, &readies, out)
                    .await
            }
            None => {
                for r in &readies {
                    match self
                        .stores
                        .ledger
                        .mark_send(
                            &r.item.key,
                            r.item.destination,
                            r.item.version,
                            None,
                            Some(send),
                        )
                        .await
                    {
                        Ok(()) | Err(StoreError::Conflict(_)) => {}
                        Err(e) => return Err(e),
                    }
                    out[r.msg] = Some(PushOutcome::Retry(
                        Duration::from_secs(1),
                        "its batch was abandoned before it was sent; sending afresh".into(),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Sends one row on its own under the idempotency key `rid`.
    async fn post(
        &self,
        item: &PushItem,
        entry: &LedgerEntry,
        state: Option<&crate::ports::DestinationState>,
        rid: &str,
    ) -> Result<Posted, Failure> {
        let record: Record = serde_json::from_value(entry.payload.clone())
            .map_err(|e| Failure::Invalid(format!("ledger payload is not a record: {e}")))?;
        match (&record, item.destination) {
            (Record::PurchaseOrder(_) | Record::Delivery(_), Provider::MarketMan) => {
                return self.post_marketman(item, &record, state).await;
            }
            (Record::TimeEntry(e), Provider::TimeTracking) => {
                return self.post_time_entry(item, e, state, rid).await;
            }
            _ => {}
        }
        let (t, mapping, source, dest) = self.accounting(item, entry).await?;
        let remote = booked(state).map(str::to_string);
        if nothing_to_book(&t) && remote.is_none() {
            return Ok((String::new(), None));
        }
        match item.destination {
            Provider::QuickBooks => {
                let client = self
                    .clients
                    .quickbooks(&dest)
                    .await
                    .map_err(Failure::Unsent)?;
                let (entity, body) =
                    quickbooks_entity(&t, &mapping, &source).map_err(Failure::Invalid)?;
                let saved = match remote {
                    None => client.create(entity, &body, rid).await,
                    Some(id) => {
                        let token = match state.and_then(|s| s.sync_token.clone()) {
                            Some(tok) => tok,
                            None => {
                                client
                                    .read(entity, &id)
                                    .await
                                    .map_err(Failure::Unsent)?
                                    .sync_token
                            }
                        };
                        match client.sparse_update(entity, &id, &token, &body, rid).await {
                            Err(ProviderError::Conflict(_)) => {
                                // Someone else edited it: take the current SyncToken and try once more.
                                let fresh =
                                    client.read(entity, &id).await.map_err(Failure::Unsent)?;
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
                let client = self.clients.xero(&dest).await.map_err(Failure::Unsent)?;
                let (collection, body) = xero_entity(&t, &mapping, &source, remote.as_deref())
                    .map_err(Failure::Invalid)?;
                let results = client
                    .save(collection, &[body], rid)
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
            .map_err(|e| Failure::Unsent(ProviderError::Transient(e.to_string())))?
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
    ) -> Result<Posted, Failure> {
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
        let client = self
            .clients
            .marketman(&dest)
            .await
            .map_err(Failure::Unsent)?;
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
                        .map_err(|e| Failure::Unsent(ProviderError::Transient(e.to_string())))?,
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
        rid: &str,
    ) -> Result<Posted, Failure> {
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
            .map_err(Failure::Unsent)?;
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
            None => client.create(&body, Some(rid)).await,
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
#[derive(Debug, Clone)]
enum Failure {
    /// The hub cannot build a valid request (mapping missing, wrong record).
    Invalid(String),
    /// The provider refused or failed the request.
    Provider(ProviderError),
    /// Failed before the request left (a token, a read, a store): nothing
    /// was sent this time, so an earlier attempt's promise stays.
    Unsent(ProviderError),
    /// Not to be sent yet (an open shift): dropped until a new version comes.
    Held(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Invalid(s) => f.write_str(s),
            Failure::Provider(e) | Failure::Unsent(e) => write!(f, "{e}"),
            Failure::Held(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConnectionId, ExternalId, ProviderAccountId, SecretName, TenantId};
    use crate::model::{BusinessDayClose, Currency, Part, TimeZoneName};
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn source() -> Connection {
        Connection {
            id: ConnectionId::new("pos").unwrap(),
            tenant: TenantId::new("bistro").unwrap(),
            provider: Provider::Toast,
            account_id: ProviderAccountId::new("r1").unwrap(),
            time_zone: TimeZoneName::new("America/New_York").unwrap(),
            business_day_close: BusinessDayClose(jiff::civil::time(4, 0, 0, 0)),
            credentials: SecretName::new("tenants/bistro/pos").unwrap(),
            mappings: Default::default(),
            codes: Default::default(),
            currency: None,
            books: Default::default(),
        }
    }

    fn record(direction: Direction, parts: &[(&str, &str)]) -> Transaction {
        Transaction {
            tenant: TenantId::new("bistro").unwrap(),
            connection: ConnectionId::new("pos").unwrap(),
            source: Provider::Toast,
            external_id: ExternalId::new("o1").unwrap(),
            amount: d("50"),
            currency: Currency::usd(),
            direction,
            description: "Toast Order #7".into(),
            business_date: jiff::civil::date(2026, 3, 2),
            occurred_at: "2026-03-02T18:00:00Z".parse().unwrap(),
            reference: "TOAST-7".into(),
            payment_method: Some("CREDIT".into()),
            line_items: Vec::new(),
            parts: parts
                .iter()
                .map(|(r, a)| Part {
                    role: r.to_string(),
                    amount: d(a),
                })
                .collect(),
            hold: None,
        }
    }

    fn mapping(pairs: &[(&str, &str)]) -> AccountMapping {
        AccountMapping {
            deposit_account: Some("4".into()),
            parts: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..AccountMapping::default()
        }
    }

    const SALE: &[(&str, &str)] = &[
        ("sales:food", "40"),
        ("discounts", "4"),
        ("tax:State", "3.20"),
        ("tips", "6"),
        ("tender:card", "30.20"),
        ("tender:cash", "15"),
        ("fees", "0.90"),
    ];

    fn line_sum(body: &Value, lines: &str, field: &str) -> Decimal {
        body[lines]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| Decimal::from_str(&l[field].to_string()).unwrap())
            .sum()
    }

    #[test]
    fn a_quickbooks_sale_has_a_line_per_part_and_nets_to_zero() {
        let m = mapping(&[
            ("sales:*", "20"),
            ("discounts", "35"),
            ("tax:State", "23"),
            ("tips", "33"),
            ("tender:card", "37"),
            ("tender:cash", "38"),
            ("fees", "41"),
        ]);
        let (entity, body) =
            quickbooks_entity(&record(Direction::Credit, SALE), &m, &source()).unwrap();
        assert_eq!(entity, "SalesReceipt");
        assert_eq!(body["DepositToAccountRef"]["value"], "4");
        // 6 parts + the fee's two sides.
        assert_eq!(body["Line"].as_array().unwrap().len(), 8);
        assert_eq!(line_sum(&body, "Line", "Amount"), Decimal::ZERO);
        let card: Decimal = body["Line"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["SalesItemLineDetail"]["ItemRef"]["value"] == "37")
            .map(|l| Decimal::from_str(&l["Amount"].to_string()).unwrap())
            .sum();
        assert_eq!(
            card,
            d("-29.30"),
            "card clearing takes the tender less its fee"
        );
    }

    #[test]
    fn a_refund_is_a_refund_receipt_and_tax_may_go_through_the_company_setup() {
        let m = mapping(&[
            ("refunds", "36"),
            ("tax:State", "taxrate:3"),
            ("tips", "33"),
            ("tender:card", "37"),
        ]);
        let r = record(
            Direction::Debit,
            &[
                ("refunds", "10"),
                ("tax:State", "-0.80"),
                ("tips", "-1"),
                ("tender:card", "-11.80"),
            ],
        );
        let (entity, body) = quickbooks_entity(&r, &m, &source()).unwrap();
        assert_eq!(entity, "RefundReceipt");
        assert_eq!(body["DepositToAccountRef"]["value"], "4");
        assert!(
            body.get("RefundFromAccountRef").is_none(),
            "not in Finance.xsd"
        );
        assert_eq!(body["DocNumber"], "TOAST-7-R");
        assert_eq!(body["GlobalTaxCalculation"], "TaxExcluded");
        assert_eq!(body["TxnTaxDetail"]["TotalTax"], serde_json::json!(0.8));
        assert_eq!(
            line_sum(&body, "Line", "Amount") + d("0.8"),
            Decimal::ZERO,
            "lines and tax net to zero"
        );
    }

    #[test]
    fn unmapped_parts_hold_the_record_naming_every_missing_key() {
        let m = mapping(&[("sales:food", "20"), ("tender:*", "37")]);
        let err = quickbooks_entity(&record(Direction::Credit, SALE), &m, &source()).unwrap_err();
        assert!(
            err.contains("part(s) discounts, fees, tax:State, tips on connection bistro/pos"),
            "{err}"
        );
        assert_eq!(
            unmapped_keys(&err).unwrap(),
            ["discounts", "fees", "tax:State", "tips"]
        );
        let err = xero_entity(&record(Direction::Credit, SALE), &m, &source(), None).unwrap_err();
        assert!(err.contains("no xero account mapped"), "{err}");
        assert_eq!(unmapped_keys("refused as invalid: Object Not Found"), None);
        let mut held = record(Direction::Credit, SALE);
        held.hold = Some("parts do not balance by 1.00".into());
        let err = quickbooks_entity(&held, &m, &source()).unwrap_err();
        assert!(
            err.starts_with("held, not booked: parts do not balance"),
            "{err}"
        );
    }

    #[test]
    fn a_record_without_parts_names_its_xero_bank_by_code_or_by_id() {
        let m = AccountMapping {
            sales_account: Some("200".into()),
            deposit_account: Some("id:3d8f-bank".into()),
            ..AccountMapping::default()
        };
        let (collection, body) =
            xero_entity(&record(Direction::Credit, &[]), &m, &source(), None).unwrap();
        assert_eq!(collection, Collection::BankTransactions);
        assert_eq!(
            body["BankAccount"],
            serde_json::json!({"AccountID": "3d8f-bank"})
        );
        let m = AccountMapping {
            deposit_account: Some("090".into()),
            ..m
        };
        let (_, body) = xero_entity(&record(Direction::Credit, &[]), &m, &source(), None).unwrap();
        assert_eq!(body["BankAccount"], serde_json::json!({"Code": "090"}));
    }

    #[test]
    fn a_xero_sale_is_a_balanced_manual_journal_updated_by_its_id() {
        let m = mapping(&[
            ("sales:food", "200"),
            ("discounts", "204"),
            ("tax:*", "820"),
            ("tips", "822"),
            ("tender:card", "id:6f0a-card-clearing"),
            ("tender:cash", "611"),
            ("fees", "404"),
        ]);
        let (collection, body) = xero_entity(
            &record(Direction::Credit, SALE),
            &m,
            &source(),
            Some("mj-1"),
        )
        .unwrap();
        assert_eq!(collection, Collection::ManualJournals);
        assert_eq!(body["ManualJournalID"], "mj-1");
        assert_eq!(body["LineAmountTypes"], "NoTax");
        assert_eq!(line_sum(&body, "JournalLines", "LineAmount"), Decimal::ZERO);
        let lines = body["JournalLines"].as_array().unwrap();
        assert!(lines.iter().all(|l| l["TaxType"] == "NONE"));
        let sales = lines.iter().find(|l| l["AccountCode"] == "200").unwrap();
        assert_eq!(
            sales["LineAmount"],
            serde_json::json!(-40),
            "a credit is negative"
        );
        assert!(
            lines
                .iter()
                .any(|l| l["AccountID"] == "6f0a-card-clearing" && l.get("AccountCode").is_none())
        );
    }
}
