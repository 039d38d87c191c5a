//! Reconciliation: for one tenant and business date, per location (source
//! connection), the POS total in the ledger against what is posted to each
//! accounting destination, to the cent, with every record not posted, failed,
//! or posted at an older version listed.

use crate::Stores;
use crate::ids::TenantId;
use crate::model::{Direction, Provider, Record};
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
    /// `unposted`, `failed`, `mismatched` (posted at an older version) or
    /// `unreadable` (a ledger row that is not a record: its amount unknown).
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
    let rows = stores.ledger.list_for_business_date(tenant, date).await?;
    let mut locations: BTreeMap<String, LocationDay> = BTreeMap::new();
    let mut issues = Vec::new();
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
                        problem: "unreadable".into(),
                        amount: Decimal::ZERO,
                        reason: Some(format!("the ledger row is not a record: {e}")),
                    });
                }
                if row.destinations.is_empty() {
                    issues.push(Issue {
                        key: row.key.storage_key(),
                        destination: row.key.provider,
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
                problem: problem.into(),
                amount: signed,
                reason: state.last_error.clone(),
            });
        }
    }
    let mut locations: Vec<LocationDay> = locations.into_values().collect();
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
