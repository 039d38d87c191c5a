//! Posting a location-day's journal ([`crate::model::journal`]) exactly once
//! to QuickBooks (a JournalEntry) or Xero (a ManualJournal), and keeping it
//! true when the day changes after it was posted:
//!
//! - first post: a create under an idempotency key derived from the day and
//!   the version (QuickBooks `requestid`, Xero `Idempotency-Key`), so a
//!   retry after a lost answer or a crash before the state is saved books
//!   nothing twice;
//! - a later change, the period open: the same entry updated in place
//!   (QuickBooks `Id` + `SyncToken`, a stale token re-read once; Xero
//!   `ManualJournalID` with POST). Never a second entry for the day;
//! - a later change, the books closed for the day (QuickBooks' closing
//!   date read from the books before writing; Xero's lock dates recognized
//!   in its refusal, then read, and in either the refusal when a lock
//!   appears between the read and the write): an adjustment holding only the
//!   difference, dated the first open day and naming the original date.
//!   Nothing is ever unlocked. A further change adjusts again, by the new
//!   difference only;
//! - a day whose records carry a role with no account is held, every such
//!   key named, and nothing is sent.
//!
//! What was posted for each day is kept in the cursor store (compare-and-set),
//! under `journal.<destination>.<source>.<location>.<yyyymmdd>`.

use crate::Stores;
use crate::ids::StreamName;
use crate::model::journal::{
    DayTotals, DraftError, EntryLine, JournalMappings, day_totals, difference, draft,
    first_open_day,
};
use crate::model::{Connection, Provider, Record};
use crate::ports::{CasOutcome, CursorKey, StoreError};
use crate::providers::quickbooks::journal::{LocationRef, is_period_closed, journal_entry};
use crate::providers::xero::journal::{Tracking, is_lock_date_refusal, manual_journal};
use crate::providers::xero::{Collection, ItemResult};
use crate::providers::{ProviderClients, ProviderError};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where a location's lines go in the books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayLocation {
    /// The location's name, in the entry's number and narration.
    pub name: String,
    /// QuickBooks: the Department or Class the lines carry.
    pub quickbooks: LocationRef,
    /// Xero: the tracking option the lines carry.
    pub xero: Option<Tracking>,
}

/// What was booked for one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayState {
    /// The day's entry in the books.
    pub entry_id: String,
    /// QuickBooks: its SyncToken as last written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_token: Option<String>,
    /// Its number.
    pub doc_number: String,
    /// What the entry itself holds.
    pub entry_lines: Vec<EntryLine>,
    /// Adjustments posted after the books closed, in order.
    #[serde(default)]
    pub adjustments: Vec<PostedAdjustment>,
    /// Writes made for the day (the create is 1).
    pub version: u32,
}

impl DayState {
    /// What the books hold for the day: the entry and its adjustments.
    pub fn booked(&self) -> Vec<EntryLine> {
        // Lines summed per account: the difference from nothing.
        let all: Vec<EntryLine> = self
            .adjustments
            .iter()
            .flat_map(|a| a.lines.iter().cloned())
            .chain(self.entry_lines.iter().cloned())
            .collect();
        difference(&[], &all)
    }
}

/// An adjustment in the books.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostedAdjustment {
    /// Its id.
    pub id: String,
    /// The first open day it is dated.
    pub date: Date,
    /// Only the difference it books.
    pub lines: Vec<EntryLine>,
}

/// What posting a day did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DayOutcome {
    /// The day has no records.
    NothingToPost,
    /// Held: these keys have no account on the day's mapping.
    Held(Vec<String>),
    /// Posted for the first time.
    Posted {
        /// The entry's id.
        id: String,
    },
    /// The books already hold the day as it is.
    Unchanged,
    /// The entry was updated in place.
    Updated {
        /// The entry's id (the same as before).
        id: String,
    },
    /// The books are closed for the day: an adjustment was posted.
    Adjusted {
        /// The adjustment's id.
        id: String,
        /// The day it is dated.
        on: Date,
    },
    /// Not posted yet: records of the day are held by the source (a Toast
    /// check not fully paid), named here, and the caller asked to wait.
    Waiting(Vec<String>),
}

/// How [`post_day_with`] treats a day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PostOptions {
    /// A day with held records is not posted yet ([`DayOutcome::Waiting`]).
    pub wait_for_held: bool,
}

/// What [`post_day_with`] did, and the day's over/short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// What was done.
    pub outcome: DayOutcome,
    /// The over/short line of the day's entry as it stands (zero when it
    /// balances, or when nothing was drafted).
    pub over_short: rust_decimal::Decimal,
}

/// Why a day could not be posted.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A store failed, or another run moved the day's state first.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The destination failed or refused.
    #[error("{0}")]
    Provider(#[from] ProviderError),
    /// Not a destination the hub posts journals to, or no mapping in force.
    #[error("{0}")]
    Invalid(String),
}

fn state_key(dest: &Connection, source: &Connection, location: &str, date: Date) -> CursorKey {
    let stream = format!(
        "journal.{}.{}.{}.{}",
        dest.id,
        source.id,
        location,
        date.strftime("%Y%m%d")
    );
    CursorKey {
        tenant: dest.tenant.clone(),
        provider: dest.provider,
        stream: StreamName::new(stream)
            .unwrap_or_else(|_| StreamName::new("journal").unwrap_or_else(|_| unreachable!())),
    }
}

/// `source`'s sales and refunds of business `date`, from the ledger.
async fn day_records(
    stores: &Stores,
    source: &Connection,
    date: Date,
) -> Result<Vec<crate::model::Transaction>, StoreError> {
    let rows = stores
        .ledger
        .list_for_business_date(&source.tenant, date)
        .await?;
    Ok(source_records(
        rows.iter().map(|e| (e.key.provider, &e.payload)),
        source,
    ))
}

/// Of a day's ledger rows (each row's provider and payload), `source`'s
/// sales and refunds.
pub fn source_records<'a>(
    rows: impl IntoIterator<Item = (Provider, &'a serde_json::Value)>,
    source: &Connection,
) -> Vec<crate::model::Transaction> {
    rows.into_iter()
        .filter(|(provider, _)| *provider == source.provider)
        .filter_map(|(_, payload)| match Record::deserialize(payload) {
            Ok(Record::Transaction(t)) if t.connection == source.id => Some(t),
            _ => None,
        })
        .collect()
}

/// A day's totals (of `records`, `source`'s on `date`) and the state of its
/// journal in `dest`.
async fn load_day(
    stores: &Stores,
    dest: &Connection,
    source: &Connection,
    location: &DayLocation,
    date: Date,
    records: &[crate::model::Transaction],
) -> Result<(DayTotals, Option<DayState>), StoreError> {
    let key = state_key(dest, source, &location.name, date);
    let state = parse_state(stores.cursors.get(&key).await?.as_ref())?;
    Ok((day_totals(records), state))
}

fn parse_state(stored: Option<&crate::ports::Cursor>) -> Result<Option<DayState>, StoreError> {
    stored
        .map(|c| serde_json::from_str(&c.value))
        .transpose()
        .map_err(|e| StoreError::corrupt("journal day state", e))
}

/// Where a day stands in a destination booking daily summaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DayStanding {
    /// The day has no records and nothing was posted.
    Empty,
    /// The books hold the day as the ledger has it.
    Booked {
        /// The day's entry.
        entry_id: String,
        /// Adjustments posted after the books closed.
        adjustments: usize,
        /// Records in it.
        records: usize,
    },
    /// Held: these keys have no account on the day's mapping.
    Held(Vec<String>),
    /// Not (or no longer) what the books hold: not posted yet, or changed
    /// since (its job is queued or waits for the day to be final).
    Behind {
        /// The entry, if one was posted.
        entry_id: Option<String>,
        /// What the books lack, per account (the whole day when unposted).
        missing: Vec<EntryLine>,
    },
    /// No mapping version is in force on the day.
    NoMapping,
}

/// Where `source`'s `date` stands in `dest`, from the ledger and what was
/// posted; no provider is called.
pub async fn standing(
    stores: &Stores,
    dest: &Connection,
    source: &Connection,
    location: &DayLocation,
    date: Date,
) -> Result<DayStanding, StoreError> {
    let records = day_records(stores, source, date).await?;
    standing_of(stores, dest, source, location, date, &records).await
}

/// [`standing`], given the day's records of `source` ([`source_records`]).
pub async fn standing_of(
    stores: &Stores,
    dest: &Connection,
    source: &Connection,
    location: &DayLocation,
    date: Date,
    records: &[crate::model::Transaction],
) -> Result<DayStanding, StoreError> {
    let (totals, state) = load_day(stores, dest, source, location, date, records).await?;
    if totals.records == 0 && state.is_none() {
        return Ok(DayStanding::Empty);
    }
    let entry = match draft(date, &totals, &dest.books.journal) {
        Ok(e) => e,
        Err(DraftError::Unmapped(keys)) => return Ok(DayStanding::Held(keys)),
        Err(DraftError::NoMapping(_)) => {
            return Ok(DayStanding::Held(totals.parts.keys().cloned().collect()));
        }
        Err(_) => return Ok(DayStanding::NoMapping),
    };
    let booked = state.as_ref().map(DayState::booked).unwrap_or_default();
    let missing = difference(&booked, &entry.lines);
    Ok(match state {
        Some(s) if missing.is_empty() => DayStanding::Booked {
            entry_id: s.entry_id,
            adjustments: s.adjustments.len(),
            records: totals.records,
        },
        s => DayStanding::Behind {
            entry_id: s.map(|s| s.entry_id),
            missing,
        },
    })
}

/// One account's line of a day: what the day's records come to now against
/// what the books hold (the entry and its adjustments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LineComparison {
    /// The destination's account.
    pub account: String,
    /// The roles behind it.
    pub roles: Vec<String>,
    /// From the day's records, through the mapping in force (debit
    /// positive); zero where the day no longer has the line.
    pub expected: rust_decimal::Decimal,
    /// What the books hold for it.
    pub posted: rust_decimal::Decimal,
    /// Expected minus posted.
    pub difference: rust_decimal::Decimal,
}

/// A day's journal, line by line, for a person to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayDetail {
    /// The entry's number.
    pub doc_number: String,
    /// The entry's id in the books, once posted.
    pub entry_id: Option<String>,
    /// Adjustments posted after the books closed.
    pub adjustments: Vec<PostedAdjustment>,
    /// Per account.
    pub lines: Vec<LineComparison>,
    /// Keys with no account in the mapping in force (the day is held).
    pub unmapped: Vec<String>,
    /// Records counted.
    pub records: usize,
    /// Records the source holds back, with why.
    pub held_records: Vec<String>,
}

/// `source`'s `date` in `dest`, line by line; no provider is called.
pub async fn day_detail(
    stores: &Stores,
    dest: &Connection,
    source: &Connection,
    location: &DayLocation,
    date: Date,
) -> Result<DayDetail, StoreError> {
    let records = day_records(stores, source, date).await?;
    let (totals, state) = load_day(stores, dest, source, location, date, &records).await?;
    let (expected, unmapped) = match draft(date, &totals, &dest.books.journal) {
        Ok(e) => (e.lines, Vec::new()),
        Err(DraftError::Unmapped(keys)) => (Vec::new(), keys),
        Err(_) => (Vec::new(), totals.parts.keys().cloned().collect()),
    };
    let booked = state.as_ref().map(DayState::booked).unwrap_or_default();
    let zero = rust_decimal::Decimal::ZERO;
    let mut by_account: std::collections::BTreeMap<String, LineComparison> =
        std::collections::BTreeMap::new();
    let sides = expected
        .iter()
        .map(|l| (l, true))
        .chain(booked.iter().map(|l| (l, false)));
    for (l, is_expected) in sides {
        let c = by_account
            .entry(l.account.clone())
            .or_insert_with(|| LineComparison {
                account: l.account.clone(),
                roles: l.roles.clone(),
                expected: zero,
                posted: zero,
                difference: zero,
            });
        if is_expected {
            c.expected += l.amount;
        } else {
            c.posted += l.amount;
        }
    }
    let mut lines: Vec<LineComparison> = by_account.into_values().collect();
    for l in &mut lines {
        l.difference = l.expected - l.posted;
    }
    Ok(DayDetail {
        doc_number: state.as_ref().map_or_else(
            || crate::model::journal::doc_number(&location.name, date),
            |s| s.doc_number.clone(),
        ),
        entry_id: state.as_ref().map(|s| s.entry_id.clone()),
        adjustments: state.map(|s| s.adjustments).unwrap_or_default(),
        lines,
        unmapped,
        records: totals.records,
        held_records: totals.held,
    })
}

/// The idempotency key of write `version` of a day (at most 50 characters:
/// QuickBooks' `requestid`).
fn request_id(key: &CursorKey, version: u32) -> String {
    let digest = hex::encode(Sha256::digest(key.storage_key().as_bytes()));
    format!("journal-{}-v{version}", &digest[..32])
}

/// Posts (or brings up to date) `source`'s journal for `location` and
/// `date` in `dest`, with the mapping in force on `date`.
pub async fn post_day(
    stores: &Stores,
    clients: &ProviderClients,
    dest: &Connection,
    source: &Connection,
    location: &DayLocation,
    date: Date,
    mappings: &JournalMappings,
) -> Result<DayOutcome, JournalError> {
    post_day_with(
        stores,
        clients,
        dest,
        source,
        location,
        date,
        mappings,
        PostOptions::default(),
    )
    .await
    .map(|p| p.outcome)
}

/// [`post_day`] with `options`, saying the day's over/short too.
#[allow(clippy::too_many_arguments)] // the day's whole context
pub async fn post_day_with(
    stores: &Stores,
    clients: &ProviderClients,
    dest: &Connection,
    source: &Connection,
    location: &DayLocation,
    date: Date,
    mappings: &JournalMappings,
    options: PostOptions,
) -> Result<Posting, JournalError> {
    let nothing_drafted = |outcome| Posting {
        outcome,
        over_short: rust_decimal::Decimal::ZERO,
    };
    if !matches!(dest.provider, Provider::QuickBooks | Provider::Xero) {
        return Err(JournalError::Invalid(format!(
            "{} takes no journals",
            dest.provider
        )));
    }
    let totals = day_totals(&day_records(stores, source, date).await?);
    let key = state_key(dest, source, &location.name, date);
    let stored = stores.cursors.get(&key).await?;
    let state = parse_state(stored.as_ref())?;
    if options.wait_for_held && !totals.held.is_empty() {
        return Ok(nothing_drafted(DayOutcome::Waiting(totals.held)));
    }
    if totals.records == 0 && state.is_none() {
        return Ok(nothing_drafted(DayOutcome::NothingToPost));
    }
    let entry = match draft(date, &totals, mappings) {
        Ok(e) => e,
        Err(DraftError::Unmapped(keys)) => return Ok(nothing_drafted(DayOutcome::Held(keys))),
        // No version yet: every key of the day needs an account.
        Err(DraftError::NoMapping(_)) => {
            let keys = totals.parts.keys().cloned().collect();
            return Ok(nothing_drafted(DayOutcome::Held(keys)));
        }
        Err(e) => return Err(JournalError::Invalid(e.to_string())),
    };
    let over_short = entry.over_short;
    let posted = |outcome| Posting {
        outcome,
        over_short,
    };
    let doc = crate::model::journal::doc_number(&location.name, date);
    // Xero's ManualJournal has no number of its own: the narration leads
    // with it, so a person finds the day by the same `<location>-<yyyymmdd>`.
    let narration = format!("{doc}: daily sales, {}, {date}", location.name);
    let books = Books {
        clients,
        dest,
        location,
    };

    let Some(mut state) = state else {
        let (id, sync_token) = books
            .create(&doc, date, &entry.lines, &narration, &request_id(&key, 1))
            .await?;
        let state = DayState {
            entry_id: id.clone(),
            sync_token,
            doc_number: doc,
            entry_lines: entry.lines,
            adjustments: Vec::new(),
            version: 1,
        };
        save(stores, &key, None, &state).await?;
        return Ok(posted(DayOutcome::Posted { id }));
    };
    let booked = state.booked();
    let diff = difference(&booked, &entry.lines);
    if diff.is_empty() {
        return Ok(posted(DayOutcome::Unchanged));
    }
    let version = state.version + 1;
    // The lock, read from the books before writing. QuickBooks: always (a
    // closing date does not reliably refuse an API write, so it must be
    // known first). Xero refuses a write dated on or before its lock dates
    // with its documented validation error, so the update is tried and the
    // lock read only when refused, or when the day was already adjusted (the
    // next adjustment's date needs it): one call per late change.
    let read_first = dest.provider == Provider::QuickBooks || !state.adjustments.is_empty();
    let mut lock = if read_first {
        books.lock().await?
    } else {
        None
    };
    if state.adjustments.is_empty() && first_open_day(date, lock) == date {
        match books
            .update(
                &state,
                date,
                &entry.lines,
                &narration,
                &request_id(&key, version),
            )
            .await
        {
            Ok(sync_token) => {
                state.sync_token = sync_token;
                state.entry_lines = entry.lines;
                state.version = version;
                save(stores, &key, stored.map(|c| c.version), &state).await?;
                return Ok(posted(DayOutcome::Updated { id: state.entry_id }));
            }
            // A lock that appeared after the read: adjust instead.
            Err(Refusal::Closed) => lock = books.lock().await?,
            Err(Refusal::Other(e)) => return Err(e.into()),
        }
    }
    let on = first_open_day(date, lock.or(Some(date)));
    let n = state.adjustments.len() + 1;
    let adjustment_doc = adjustment_doc_number(&location.name, date, n);
    let note = format!(
        "{adjustment_doc}: adjustment {n} to the daily sales of {}, {date} (books closed through {})",
        location.name,
        lock.map_or_else(|| date.to_string(), |l| l.to_string())
    );
    let (id, _) = books
        .create(
            &adjustment_doc,
            on,
            &diff,
            &note,
            &request_id(&key, version),
        )
        .await?;
    state.adjustments.push(PostedAdjustment {
        id: id.clone(),
        date: on,
        lines: diff,
    });
    state.version = version;
    save(stores, &key, stored.map(|c| c.version), &state).await?;
    Ok(posted(DayOutcome::Adjusted { id, on }))
}

/// An adjustment's number: the day's, with `-A<n>`, within 21 characters.
fn adjustment_doc_number(location: &str, date: Date, n: usize) -> String {
    crate::model::journal::doc_number_with(location, date, &format!("-A{n}"))
}

async fn save(
    stores: &Stores,
    key: &CursorKey,
    expected: Option<u64>,
    state: &DayState,
) -> Result<(), JournalError> {
    let value =
        serde_json::to_string(state).map_err(|e| StoreError::corrupt("journal day state", e))?;
    match stores
        .cursors
        .compare_and_set(key, expected, &value)
        .await?
    {
        CasOutcome::Set(_) => Ok(()),
        CasOutcome::Conflict { .. } => Err(JournalError::Store(StoreError::Conflict(format!(
            "another run posted {} first",
            key.storage_key()
        )))),
    }
}

/// Why an update in place did not happen.
enum Refusal {
    /// The books are closed for the entry's date.
    Closed,
    /// Anything else.
    Other(ProviderError),
}

/// The destination's books, for one connection and location.
struct Books<'a> {
    clients: &'a ProviderClients,
    dest: &'a Connection,
    location: &'a DayLocation,
}

impl Books<'_> {
    /// The date the books are closed through, if any.
    async fn lock(&self) -> Result<Option<Date>, ProviderError> {
        match self.dest.provider {
            Provider::QuickBooks => {
                self.clients
                    .quickbooks(self.dest)
                    .await?
                    .book_close_date()
                    .await
            }
            _ => self.clients.xero(self.dest).await?.lock_date().await,
        }
    }

    /// Creates an entry; its id and (QuickBooks) SyncToken.
    async fn create(
        &self,
        doc: &str,
        date: Date,
        lines: &[EntryLine],
        note: &str,
        request_id: &str,
    ) -> Result<(String, Option<String>), ProviderError> {
        match self.dest.provider {
            Provider::QuickBooks => {
                let body = journal_entry(doc, date, lines, &self.location.quickbooks, note)
                    .map_err(ProviderError::Permanent)?;
                let saved = self
                    .clients
                    .quickbooks(self.dest)
                    .await?
                    .create("JournalEntry", &body, request_id)
                    .await?;
                Ok((saved.id, Some(saved.sync_token)))
            }
            _ => {
                let body = manual_journal(note, date, lines, self.location.xero.as_ref())
                    .map_err(ProviderError::Permanent)?;
                let id = xero_saved(
                    self.clients
                        .xero(self.dest)
                        .await?
                        .save(Collection::ManualJournals, &[body], request_id)
                        .await?,
                )
                .map_err(ProviderError::Validation)?;
                Ok((id, None))
            }
        }
    }

    /// Updates the day's entry in place; its new SyncToken (QuickBooks).
    async fn update(
        &self,
        state: &DayState,
        date: Date,
        lines: &[EntryLine],
        narration: &str,
        request_id: &str,
    ) -> Result<Option<String>, Refusal> {
        match self.dest.provider {
            Provider::QuickBooks => {
                let client = self
                    .clients
                    .quickbooks(self.dest)
                    .await
                    .map_err(Refusal::Other)?;
                let body = journal_entry(
                    &state.doc_number,
                    date,
                    lines,
                    &self.location.quickbooks,
                    narration,
                )
                .map_err(|e| Refusal::Other(ProviderError::Permanent(e)))?;
                let token = state.sync_token.clone().unwrap_or_else(|| "0".into());
                let attempt = client
                    .sparse_update("JournalEntry", &state.entry_id, &token, &body, request_id)
                    .await;
                let attempt = match attempt {
                    // Someone edited the entry since: take its SyncToken once.
                    Err(ProviderError::Conflict(_)) => {
                        let current = client
                            .read("JournalEntry", &state.entry_id)
                            .await
                            .map_err(Refusal::Other)?;
                        client
                            .sparse_update(
                                "JournalEntry",
                                &state.entry_id,
                                &current.sync_token,
                                &body,
                                &format!("{request_id}r"),
                            )
                            .await
                    }
                    other => other,
                };
                match attempt {
                    Ok(saved) => Ok(Some(saved.sync_token)),
                    Err(e) if is_period_closed(&e) => Err(Refusal::Closed),
                    Err(e) => Err(Refusal::Other(e)),
                }
            }
            _ => {
                let mut body = manual_journal(narration, date, lines, self.location.xero.as_ref())
                    .map_err(|e| Refusal::Other(ProviderError::Permanent(e)))?;
                body["ManualJournalID"] = state.entry_id.clone().into();
                let client = self.clients.xero(self.dest).await.map_err(Refusal::Other)?;
                match client
                    .save(Collection::ManualJournals, &[body], request_id)
                    .await
                {
                    Ok(r) => match xero_saved(r) {
                        Ok(_) => Ok(None),
                        Err(m) if is_lock_date_refusal(&m) => Err(Refusal::Closed),
                        Err(m) => Err(Refusal::Other(ProviderError::Validation(m))),
                    },
                    Err(ProviderError::Validation(m)) if is_lock_date_refusal(&m) => {
                        Err(Refusal::Closed)
                    }
                    Err(e) => Err(Refusal::Other(e)),
                }
            }
        }
    }
}

/// The one journal's id, or Xero's messages refusing it.
fn xero_saved(results: Vec<ItemResult>) -> Result<String, Vec<crate::providers::ProviderMessage>> {
    match results.into_iter().next() {
        Some(ItemResult::Saved { id, .. }) => Ok(id),
        Some(ItemResult::Invalid(m)) => Err(m),
        None => Err(Vec::new()),
    }
}
