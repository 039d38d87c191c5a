//! Reconciliation: for one tenant and business date, per location (source
//! connection), the POS total in the ledger against what is posted to each
//! accounting destination, to the cent, with every record not posted, failed,
//! or posted at an older version listed. A destination booking daily
//! summaries is reconciled by the day: its journal as posted against the
//! day's records now, a day held for mapping listed with its keys.

use crate::Stores;
use crate::ids::TenantId;
use crate::model::{Direction, Provider, Record, Transaction};
use crate::ports::{DestinationStatus, StoreError};
use jiff::civil::Date;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A record that is not (correctly) in a destination's books.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    /// The ledger key.
    pub key: String,
    /// The destination.
    pub destination: Provider,
    /// The location (source connection) it belongs to; none for a ledger
    /// row the hub cannot read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// `unposted`, `failed`, `mismatched` (posted at an older version) or
    /// `unreadable` (a ledger row that is not a record: its amount unknown);
    /// for a daily journal, `needs mapping` (the keys in `reason`), `day
    /// unposted`, `day changed since posted`, `no mapping` or `held record`.
    pub problem: String,
    /// The signed amount at stake.
    pub amount: Decimal,
    /// The destination's last error, for failed rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One destination's side of a location's day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationTotals {
    /// Which destination.
    pub destination: Provider,
    /// Net of what is posted at the current version (credits minus debits).
    pub posted_total: Decimal,
    /// POS total minus posted total.
    pub difference: Decimal,
    /// Rows posted at their current version.
    pub posted: u64,
    /// Rows not posted, failed or stale.
    pub issues: u64,
    /// A daily journal: adjustments posted after the books closed.
    #[serde(default)]
    pub adjustments: u64,
}

/// One location's day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationDay {
    /// The source connection (the location).
    pub location: String,
    /// Its provider.
    pub source: Provider,
    /// Net of its transactions (credits minus debits).
    pub pos_total: Decimal,
    /// How many transactions.
    pub records: u64,
    /// Per destination.
    pub destinations: Vec<DestinationTotals>,
}

/// A tenant's business day, reconciled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciliation {
    /// Whose.
    pub tenant: TenantId,
    /// Which business date.
    pub date: Date,
    /// Per location.
    pub locations: Vec<LocationDay>,
    /// Everything not in the books as it should be.
    pub issues: Vec<Issue>,
    /// True when every difference is zero and there are no issues.
    pub reconciled: bool,
}

/// Reconciles one tenant's business date from the ledger.
pub async fn reconcile(
    stores: &Stores,
    tenant: &TenantId,
    date: Date,
) -> Result<Reconciliation, StoreError> {
    let conns = stores.connections.list_for_tenant(tenant).await?;
    reconcile_with(stores, &conns, tenant, date).await
}

/// Reconciles each of `dates` of one tenant, its connections read once.
pub async fn reconcile_days(
    stores: &Stores,
    tenant: &TenantId,
    dates: &[Date],
) -> Result<Vec<Reconciliation>, StoreError> {
    let conns = stores.connections.list_for_tenant(tenant).await?;
    let mut out = Vec::with_capacity(dates.len());
    for date in dates {
        out.push(reconcile_with(stores, &conns, tenant, *date).await?);
    }
    Ok(out)
}

/// Reconciles one business date of a tenant whose connections are `conns`:
/// one read of the day's ledger rows, each parsed once, and one read of
/// each daily journal's state.
async fn reconcile_with(
    stores: &Stores,
    conns: &[crate::model::Connection],
    tenant: &TenantId,
    date: Date,
) -> Result<Reconciliation, StoreError> {
    let rows = stores.ledger.list_for_business_date(tenant, date).await?;
    // Per location: its transactions as a daily journal reads them.
    let mut by_location: BTreeMap<String, Vec<(Provider, Transaction)>> = BTreeMap::new();
    let mut locations: BTreeMap<String, LocationDay> = BTreeMap::new();
    let mut issues = Vec::new();
    // Per location: the records a daily journal leaves out (held), and
    // their net.
    let mut held: BTreeMap<String, (Decimal, Vec<String>)> = BTreeMap::new();
    for row in rows {
        let t = match serde_json::from_value::<Record>(row.payload.clone()) {
            Ok(Record::Transaction(t)) => t,
            // Not money (a time entry, a delivery): not reconciled here.
            Ok(_) => continue,
            // A row the hub cannot read is an issue, never a zero.
            Err(e) => {
                for dest in row.destinations.keys() {
                    issues.push(Issue {
                        key: row.key.storage_key(),
                        destination: *dest,
                        location: None,
                        problem: "unreadable".into(),
                        amount: Decimal::ZERO,
                        reason: Some(format!("the ledger row is not a record: {e}")),
                    });
                }
                if row.destinations.is_empty() {
                    issues.push(Issue {
                        key: row.key.storage_key(),
                        destination: row.key.provider,
                        location: None,
                        problem: "unreadable".into(),
                        amount: Decimal::ZERO,
                        reason: Some(format!("the ledger row is not a record: {e}")),
                    });
                }
                continue;
            }
        };
        let signed = match t.direction {
            Direction::Credit => t.amount,
            Direction::Debit => -t.amount,
        };
        let loc = locations
            .entry(t.connection.to_string())
            .or_insert_with(|| LocationDay {
                location: t.connection.to_string(),
                source: t.source,
                pos_total: Decimal::ZERO,
                records: 0,
                destinations: Vec::new(),
            });
        loc.pos_total += signed;
        loc.records += 1;
        if let Some(why) = &t.hold {
            let h = held.entry(t.connection.to_string()).or_default();
            h.0 += signed;
            h.1.push(format!("{}: {why}", row.key.storage_key()));
        }
        let row_provider = row.key.provider;
        for (dest, state) in &row.destinations {
            let totals = match loc.destinations.iter_mut().find(|d| d.destination == *dest) {
                Some(d) => d,
                None => {
                    loc.destinations.push(DestinationTotals {
                        destination: *dest,
                        posted_total: Decimal::ZERO,
                        difference: Decimal::ZERO,
                        posted: 0,
                        issues: 0,
                        adjustments: 0,
                    });
                    loc.destinations
                        .last_mut()
                        .unwrap_or_else(|| unreachable!())
                }
            };
            let problem = match state.status {
                DestinationStatus::Posted if state.version == row.version => {
                    totals.posted_total += signed;
                    totals.posted += 1;
                    continue;
                }
                DestinationStatus::Posted => "mismatched",
                DestinationStatus::Failed => "failed",
                DestinationStatus::Pending => "unposted",
            };
            totals.issues += 1;
            issues.push(Issue {
                key: row.key.storage_key(),
                destination: *dest,
                location: Some(loc.location.clone()),
                problem: problem.into(),
                amount: signed,
                reason: state.last_error.clone(),
            });
        }
        by_location
            .entry(t.connection.to_string())
            .or_default()
            .push((row_provider, t));
    }
    let mut locations: Vec<LocationDay> = locations.into_values().collect();
    let day = Day {
        conns,
        date,
        held: &held,
        records: &by_location,
    };
    daily_journals(stores, &day, &mut locations, &mut issues).await?;
    for l in &mut locations {
        for d in &mut l.destinations {
            d.difference = l.pos_total - d.posted_total;
        }
    }
    let reconciled = issues.is_empty()
        && locations
            .iter()
            .all(|l| l.destinations.iter().all(|d| d.difference.is_zero()));
    Ok(Reconciliation {
        tenant: tenant.clone(),
        date,
        locations,
        issues,
        reconciled,
    })
}

/// What a day's daily journals are reconciled from.
struct Day<'a> {
    conns: &'a [crate::model::Connection],
    date: Date,
    /// Per location: the net of its held records, and why each is held.
    held: &'a BTreeMap<String, (Decimal, Vec<String>)>,
    /// Per location: its transactions, with their ledger row's provider.
    records: &'a BTreeMap<String, Vec<(Provider, Transaction)>>,
}

/// Each daily-summary destination's side of each location's day: booked
/// (the day's records as they are now, held ones aside), or an issue.
async fn daily_journals(
    stores: &Stores,
    day: &Day<'_>,
    locations: &mut [LocationDay],
    issues: &mut Vec<Issue>,
) -> Result<(), StoreError> {
    use super::journal::DayStanding;
    let Day {
        conns,
        date,
        held,
        records,
    } = *day;
    let daily = conns.iter().filter(|c| {
        c.provider.is_accounting()
            && c.books.mode == crate::model::journal::PostingMode::DailySummary
    });
    for dest in daily {
        for loc in locations.iter_mut() {
            let Some(source) = conns.iter().find(|c| c.id.as_str() == loc.location) else {
                continue;
            };
            let location = super::days::day_location(dest, source);
            // The location's records from `source` (as the journal reads them).
            let mine: Vec<Transaction> = records
                .get(&loc.location)
                .into_iter()
                .flatten()
                .filter(|(p, _)| *p == source.provider)
                .map(|(_, t)| t.clone())
                .collect();
            let standing =
                super::journal::standing_of(stores, dest, source, &location, date, &mine).await?;
            let (held_total, held_why) = held.get(&loc.location).cloned().unwrap_or_default();
            let key = format!("journal:{}:{}:{}", dest.id, source.id, date);
            let mut totals = DestinationTotals {
                destination: dest.provider,
                posted_total: Decimal::ZERO,
                difference: Decimal::ZERO,
                posted: 0,
                issues: 0,
                adjustments: 0,
            };
            let mut issue = |problem: &str, amount: Decimal, reason: Option<String>| {
                totals.issues += 1;
                issues.push(Issue {
                    key: key.clone(),
                    destination: dest.provider,
                    location: Some(loc.location.clone()),
                    problem: problem.into(),
                    amount,
                    reason,
                });
            };
            match standing {
                DayStanding::Empty => continue,
                DayStanding::Booked {
                    records,
                    adjustments,
                    ..
                } => {
                    totals.posted_total = loc.pos_total - held_total;
                    totals.posted = records as u64;
                    totals.adjustments = adjustments as u64;
                    for why in &held_why {
                        issue("held record", Decimal::ZERO, Some(why.clone()));
                    }
                }
                DayStanding::Held(keys) => issue(
                    "needs mapping",
                    loc.pos_total,
                    Some(format!("no account for {}", keys.join(", "))),
                ),
                DayStanding::Behind { entry_id: None, .. } => {
                    issue("day unposted", loc.pos_total, None)
                }
                DayStanding::Behind {
                    entry_id: Some(id),
                    missing,
                } => issue(
                    "day changed since posted",
                    Decimal::ZERO,
                    Some(format!(
                        "entry {id} lacks {}",
                        missing
                            .iter()
                            .map(|l| format!("{} {}", l.account, l.amount))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                ),
                DayStanding::NoMapping => issue(
                    "no mapping",
                    loc.pos_total,
                    Some(format!(
                        "no journal mapping of {} is in force on {date}",
                        dest.id
                    )),
                ),
            }
            loc.destinations.push(totals);
        }
    }
    Ok(())
}
