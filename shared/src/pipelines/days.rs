//! When the daily journal is posted: each source's business day, for each
//! destination booking daily summaries, once the day is final.
//!
//! - A day is **final** at its close (the source connection's business-day
//!   close, in its time zone) plus the destination's settling window
//!   (`settle_minutes`), when late tips, voids and the last settlements are
//!   in. For Toast the day also waits while any of its checks is not fully
//!   paid (held by the transform), for at most [`OPEN_CHECK_WAIT`] past
//!   final; then it is posted without them, naming them, and their closing
//!   later is a late change like any other.
//! - The POS pull schedule calls [`close_due_days`]: every day that became
//!   final since the last tick is queued as a [`DayJob`] on the push queue.
//! - A record that arrives or changes for a day already final (a refund, a
//!   tip adjustment, a void, a late order) queues that day again
//!   ([`late_jobs`], from the ingest of records).
//! - The push function runs each job ([`run_day`]): the day's entry posted,
//!   updated in place or adjusted (`journal::post_day`), or held for
//!   mapping, and the destination's [`JournalBook`] says which.
//!
//! Every outcome is kept per (destination, source) in a [`JournalBook`] in
//! the cursor store (compare-and-set): the days closed through, each posted
//! day, each day held with its unmapped keys, each over/short beyond the
//! alert threshold. `hub status`, `hub reconcile` and a new mapping version
//! read it.

use super::journal::{DayLocation, DayOutcome, JournalError, PostOptions, post_day_with};
use crate::Stores;
use crate::ids::{ConnectionId, StreamName, TenantId};
use crate::model::journal::{DestinationBooks, PostingMode};
use crate::model::{Connection, Provider};
use crate::ports::{CasOutcome, CursorKey, OutgoingMessage, StoreError};
use crate::providers::ProviderClients;
use crate::providers::quickbooks::journal::LocationRef;
use crate::providers::xero::journal::Tracking;
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp, ToSpan};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The longest a Toast day waits past final for its open checks.
pub const OPEN_CHECK_WAIT: SignedDuration = SignedDuration::from_hours(24);

/// How many final days a pair with no history closes on its first tick,
/// the last final one included (a destination connected today books the
/// last week).
pub const FIRST_LOOKBACK_DAYS: i64 = 7;

/// A day to post or bring up to date: a message on the push queue.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DayJob {
    /// Whose.
    pub tenant: TenantId,
    /// The destination connection (QuickBooks, Xero) booking daily.
    pub destination: ConnectionId,
    /// The source connection whose sales the day holds.
    pub source: ConnectionId,
    /// The business date.
    pub day: Date,
}

impl DayJob {
    /// As a queue message.
    pub fn to_message(&self) -> OutgoingMessage {
        OutgoingMessage::new(serde_json::to_string(self).unwrap_or_default())
    }
}

/// What the books of one (destination, source) pair hold, day by day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalBook {
    /// Every day through this one has been queued for posting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_through: Option<Date>,
    /// Days with an entry in the books.
    #[serde(default)]
    pub posted: BTreeSet<Date>,
    /// Days held for mapping, with the keys that have no account.
    #[serde(default)]
    pub held: BTreeMap<Date, Vec<String>>,
    /// Days whose over/short was beyond the alert threshold, and by how much.
    #[serde(default)]
    pub over_short: BTreeMap<Date, Decimal>,
    /// Days with a job queued and not yet begun, and since when: a change
    /// to such a day queues nothing more (that job reads it), so a busy day
    /// costs one posting, not one per record.
    #[serde(default)]
    pub queued: BTreeMap<Date, Timestamp>,
}

/// How long a queued day counts as queued: a job not begun by then (parked,
/// or lost with its process) no longer holds back new ones.
pub const QUEUED_FOR: SignedDuration = SignedDuration::from_hours(1);

fn book_key(dest: &Connection, source: &ConnectionId) -> CursorKey {
    CursorKey {
        tenant: dest.tenant.clone(),
        provider: dest.provider,
        stream: StreamName::new(format!("journal-book.{}.{}", dest.id, source))
            .unwrap_or_else(|_| StreamName::new("journal-book").unwrap_or_else(|_| unreachable!())),
    }
}

/// The book of `dest` for `source`.
pub async fn book(
    stores: &Stores,
    dest: &Connection,
    source: &ConnectionId,
) -> Result<JournalBook, StoreError> {
    Ok(read_book(stores, &book_key(dest, source)).await?.0)
}

async fn read_book(
    stores: &Stores,
    key: &CursorKey,
) -> Result<(JournalBook, Option<u64>), StoreError> {
    match stores.cursors.get(key).await? {
        Some(c) => Ok((
            serde_json::from_str(&c.value).map_err(|e| StoreError::corrupt("journal book", e))?,
            Some(c.version),
        )),
        None => Ok((JournalBook::default(), None)),
    }
}

/// Changes the book by `f`, compare-and-set, read again on a conflict.
async fn update_book(
    stores: &Stores,
    dest: &Connection,
    source: &ConnectionId,
    f: impl Fn(&mut JournalBook),
) -> Result<JournalBook, StoreError> {
    let key = book_key(dest, source);
    for _ in 0..8 {
        let (mut b, version) = read_book(stores, &key).await?;
        let before = b.clone();
        f(&mut b);
        if b == before && version.is_some() {
            return Ok(b);
        }
        let value =
            serde_json::to_string(&b).map_err(|e| StoreError::corrupt("journal book", e))?;
        if let CasOutcome::Set(_) = stores
            .cursors
            .compare_and_set(&key, version, &value)
            .await?
        {
            return Ok(b);
        }
    }
    Err(StoreError::Conflict(format!(
        "the journal book {} kept changing under this run",
        key.storage_key()
    )))
}

/// The instant `source`'s business `day` ends: its close on the next date,
/// local time.
pub fn day_end(source: &Connection, day: Date) -> Timestamp {
    let next = day.tomorrow().unwrap_or(day);
    source
        .time_zone
        .zone()
        .to_ambiguous_timestamp(next.to_datetime(source.business_day_close.0))
        .compatible()
        .unwrap_or(Timestamp::MAX)
}

/// When `day` is final for a destination booking as `books`.
pub fn final_at(source: &Connection, books: &DestinationBooks, day: Date) -> Timestamp {
    day_end(source, day)
        .checked_add(SignedDuration::from_mins(i64::from(books.settle_minutes)))
        .unwrap_or(Timestamp::MAX)
}

/// The last business day of `source` final at `now`.
pub fn last_final_day(source: &Connection, books: &DestinationBooks, now: Timestamp) -> Date {
    let settled = now
        .checked_sub(SignedDuration::from_mins(i64::from(books.settle_minutes)))
        .unwrap_or(now);
    let current = source.business_date(settled);
    current.yesterday().unwrap_or(current)
}

fn is_source(c: &Connection) -> bool {
    matches!(c.provider, Provider::Toast | Provider::Square)
}

fn is_daily(c: &Connection) -> bool {
    c.provider.is_accounting() && c.books.mode == PostingMode::DailySummary
}

/// Every day of every (daily destination, `sources` connection) pair that became final
/// since the last close, queued on the push queue; the books' `closed_through`
/// moved on. Days are queued before the book moves, so a crash between the
/// two queues them again (a second job for a posted day finds it unchanged).
pub async fn close_due_days(
    stores: &Stores,
    sources: Provider,
    now: Timestamp,
) -> Result<Vec<DayJob>, StoreError> {
    let mut jobs = Vec::new();
    for tenant in stores.connections.list_tenants().await? {
        let conns = stores.connections.list_for_tenant(&tenant.id).await?;
        for dest in conns.iter().filter(|c| is_daily(c)) {
            for source in conns
                .iter()
                .filter(|c| c.provider == sources && is_source(c))
            {
                let through = last_final_day(source, &dest.books, now);
                let b = book(stores, dest, &source.id).await?;
                let mut day = match b.closed_through {
                    Some(d) => match d.tomorrow() {
                        Ok(t) => t,
                        Err(_) => continue,
                    },
                    None => through
                        .checked_sub((FIRST_LOOKBACK_DAYS - 1).days())
                        .unwrap_or(through),
                };
                let mut pair = Vec::new();
                while day <= through {
                    // A day whose job is already waiting needs no second.
                    if b.queued
                        .get(&day)
                        .is_none_or(|since| now >= *since + QUEUED_FOR)
                    {
                        pair.push(DayJob {
                            tenant: tenant.id.clone(),
                            destination: dest.id.clone(),
                            source: source.id.clone(),
                            day,
                        });
                    }
                    day = match day.tomorrow() {
                        Ok(t) => t,
                        Err(_) => break,
                    };
                }
                if b.closed_through.is_some_and(|c| c >= through) {
                    continue;
                }
                let msgs: Vec<_> = pair.iter().map(DayJob::to_message).collect();
                for chunk in msgs.chunks(10) {
                    stores.push_queue.send_batch(chunk).await?;
                }
                update_book(stores, dest, &source.id, |b| {
                    if b.closed_through.is_none_or(|c| c < through) {
                        b.closed_through = Some(through);
                    }
                    for j in &pair {
                        b.queued.insert(j.day, now);
                    }
                })
                .await?;
                jobs.extend(pair);
            }
        }
    }
    Ok(jobs)
}

/// The jobs for days already final that `changed` (source connection,
/// business date) touched, for each of the tenant's daily destinations
/// among `conns` (the tenant's connections).
pub async fn late_jobs(
    stores: &Stores,
    tenant: &TenantId,
    conns: &[Connection],
    changed: &BTreeSet<(ConnectionId, Date)>,
    now: Timestamp,
) -> Result<Vec<DayJob>, StoreError> {
    let mut jobs = Vec::new();
    for dest in conns.iter().filter(|c| is_daily(c)) {
        for (source_id, day) in changed {
            let Some(source) = conns.iter().find(|c| &c.id == source_id) else {
                continue;
            };
            if final_at(source, &dest.books, *day) > now {
                continue;
            }
            let b = book(stores, dest, &source.id).await?;
            if b.queued
                .get(day)
                .is_some_and(|since| now < *since + QUEUED_FOR)
            {
                // A job for the day is waiting: it will read this change.
                continue;
            }
            jobs.push(DayJob {
                tenant: tenant.clone(),
                destination: dest.id.clone(),
                source: source.id.clone(),
                day: *day,
            });
        }
    }
    Ok(jobs)
}

/// Notes `jobs` as queued (after they are on the queue: a crash between
/// the two leaves a job too many, never a day without one).
pub async fn mark_queued(
    stores: &Stores,
    conns: &[Connection],
    jobs: &[DayJob],
    now: Timestamp,
) -> Result<(), StoreError> {
    for job in jobs {
        let Some(dest) = conns.iter().find(|c| c.id == job.destination) else {
            continue;
        };
        let day = job.day;
        update_book(stores, dest, &job.source, |b| {
            b.queued.insert(day, now);
        })
        .await?;
    }
    Ok(())
}

/// Where `source`'s lines are tracked in `dest`, and the location's name.
pub fn day_location(dest: &Connection, source: &Connection) -> DayLocation {
    let booking = dest.books.locations.get(source.id.as_str());
    let quickbooks = match booking {
        Some(b) if b.department.is_some() => {
            LocationRef::Department(b.department.clone().unwrap_or_default())
        }
        Some(b) if b.class.is_some() => LocationRef::Class(b.class.clone().unwrap_or_default()),
        _ => LocationRef::None,
    };
    let xero = booking
        .and_then(|b| b.tracking.clone())
        .map(|(name, option)| Tracking { name, option });
    DayLocation {
        name: booking
            .and_then(|b| b.name.clone())
            .unwrap_or_else(|| source.tenant.to_string()),
        quickbooks,
        xero,
    }
}

/// What running a job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// The day was posted, updated or adjusted, or found as booked.
    Done(DayOutcome),
    /// Held: these keys need an account; nothing was sent.
    Held(Vec<String>),
    /// A Toast day with checks still open: try again after this long.
    Waiting(SignedDuration, Vec<String>),
    /// Nothing to do: the connections are gone, or the destination no
    /// longer books daily.
    Dropped(String),
}

/// Runs one day job at `now`: the day posted or brought up to date, and the
/// destination's book updated to say so.
pub async fn run_day(
    stores: &Stores,
    clients: &ProviderClients,
    job: &DayJob,
    now: Timestamp,
) -> Result<JobOutcome, JournalError> {
    let Some(dest) = stores
        .connections
        .get(&job.tenant, &job.destination)
        .await?
    else {
        return Ok(JobOutcome::Dropped(format!(
            "destination {}/{} no longer exists",
            job.tenant, job.destination
        )));
    };
    if !is_daily(&dest) {
        return Ok(JobOutcome::Dropped(format!(
            "{}/{} books per order now",
            job.tenant, job.destination
        )));
    }
    let Some(source) = stores.connections.get(&job.tenant, &job.source).await? else {
        return Ok(JobOutcome::Dropped(format!(
            "source {}/{} no longer exists",
            job.tenant, job.source
        )));
    };
    let open_checks_until = (source.provider == Provider::Toast)
        .then(|| final_at(&source, &dest.books, job.day).checked_add(OPEN_CHECK_WAIT))
        .and_then(Result::ok)
        .filter(|until| now < *until);
    // Begun: a change from now on queues the day again (this run may read
    // the ledger before it lands).
    let day = job.day;
    update_book(stores, &dest, &source.id, |b| {
        b.queued.remove(&day);
    })
    .await?;
    let location = day_location(&dest, &source);
    let posting = post_day_with(
        stores,
        clients,
        &dest,
        &source,
        &location,
        job.day,
        &dest.books.journal,
        PostOptions {
            wait_for_held: open_checks_until.is_some(),
        },
    )
    .await?;
    let (outcome, over_short) = (posting.outcome, posting.over_short);
    let threshold = dest.books.over_short_alert;
    match outcome {
        DayOutcome::Waiting(held) => {
            let until = open_checks_until.unwrap_or(now);
            let wait = now.duration_until(until).min(SignedDuration::from_hours(1));
            Ok(JobOutcome::Waiting(wait, held))
        }
        DayOutcome::Held(keys) => {
            let k = keys.clone();
            update_book(stores, &dest, &source.id, move |b| {
                b.held.insert(day, k.clone());
            })
            .await?;
            tracing::warn!(tenant = %job.tenant, destination = %job.destination, source = %job.source, %day, keys = ?keys, "day held: needs mapping");
            Ok(JobOutcome::Held(keys))
        }
        DayOutcome::NothingToPost => {
            update_book(stores, &dest, &source.id, |b| {
                b.held.remove(&day);
            })
            .await?;
            Ok(JobOutcome::Done(outcome))
        }
        _ => {
            let alert = over_short.abs() > threshold;
            if alert {
                tracing::warn!(tenant = %job.tenant, destination = %job.destination, source = %job.source, %day, %over_short, %threshold, "over/short beyond the alert threshold");
            }
            update_book(stores, &dest, &source.id, move |b| {
                b.held.remove(&day);
                b.posted.insert(day);
                if alert {
                    b.over_short.insert(day, over_short);
                } else {
                    b.over_short.remove(&day);
                }
            })
            .await?;
            Ok(JobOutcome::Done(outcome))
        }
    }
}

/// The days a mapping version taking effect `from` may change: the posted
/// and held days of every source of `dest` from that date until the next
/// version's, as jobs.
pub async fn remap_jobs(
    stores: &Stores,
    dest: &Connection,
    from: Date,
) -> Result<Vec<DayJob>, StoreError> {
    let until = dest
        .books
        .journal
        .versions()
        .iter()
        .map(|v| v.effective_from)
        .find(|d| *d > from);
    let mut jobs = Vec::new();
    for source in stores.connections.list_for_tenant(&dest.tenant).await? {
        if !is_source(&source) {
            continue;
        }
        let b = book(stores, dest, &source.id).await?;
        let days: BTreeSet<Date> = b
            .posted
            .iter()
            .chain(b.held.keys())
            .copied()
            .filter(|d| *d >= from && until.is_none_or(|u| *d < u))
            .collect();
        jobs.extend(days.into_iter().map(|day| DayJob {
            tenant: dest.tenant.clone(),
            destination: dest.id.clone(),
            source: source.id.clone(),
            day,
        }));
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BusinessDayClose, TimeZoneName};
    use jiff::civil::{date, time};

    fn bar(close: jiff::civil::Time) -> Connection {
        serde_json::from_value(serde_json::json!({
            "id": "pos", "tenant": "bistro", "provider": "toast", "account_id": "r1",
            "time_zone": "America/New_York", "credentials": "tenants/bistro/pos",
        }))
        .map(|mut c: Connection| {
            c.business_day_close = BusinessDayClose(close);
            c.time_zone = TimeZoneName::new("America/New_York").unwrap();
            c
        })
        .unwrap()
    }

    #[test]
    fn a_day_is_final_at_its_close_on_the_next_date_plus_the_settling_window() {
        let pos = bar(time(4, 0, 0, 0));
        let books = DestinationBooks::new_connection();
        // Oct 31 closes at 04:00 EST on Nov 1 (the clocks went back at
        // 02:00), 09:00Z; two hours later it is final.
        let day = date(2026, 10, 31);
        assert_eq!(day_end(&pos, day), "2026-11-01T09:00:00Z".parse().unwrap());
        assert_eq!(
            final_at(&pos, &books, day),
            "2026-11-01T11:00:00Z".parse().unwrap()
        );
        let just_before: Timestamp = "2026-11-01T10:59:59Z".parse().unwrap();
        assert_eq!(
            last_final_day(&pos, &books, just_before),
            date(2026, 10, 30)
        );
        let at: Timestamp = "2026-11-01T11:00:00Z".parse().unwrap();
        assert_eq!(last_final_day(&pos, &books, at), day);
    }

    #[test]
    fn a_stored_destination_without_a_mode_books_per_order_and_a_new_one_daily() {
        let stored: DestinationBooks = serde_json::from_str("{}").unwrap();
        assert_eq!(stored.mode, PostingMode::PerOrder);
        assert_eq!(
            DestinationBooks::new_connection().mode,
            PostingMode::DailySummary
        );
        let round: DestinationBooks = serde_json::from_str(
            &serde_json::to_string(&DestinationBooks::new_connection()).unwrap(),
        )
        .unwrap();
        assert_eq!(round, DestinationBooks::new_connection());
    }
}
