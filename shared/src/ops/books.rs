//! `hub books preview`: a sale's parts and the lines that would be posted,
//! for a tenant's business date (from the ledger) or for raw provider
//! payloads (no store, no network). The JSON is documented in
//! `docs/books.md`.

use crate::model::parts::{self, JournalLine, Part};
use crate::model::{AccountMapping, Connection, Direction, Provider, Transaction};
use crate::pipelines::push::{quickbooks_entity, xero_entity};
use crate::transforms::TransformError;
use jiff::civil::Date;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One location's business day: its parts summed, and the journal lines
/// they make (by role; debit positive).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayParts {
    /// The business date.
    pub business_date: Date,
    /// The location (source connection).
    pub location: String,
    /// The records counted (held ones excluded).
    pub records: u64,
    /// Each role's amount.
    pub parts: Vec<Part>,
    /// The journal lines by role.
    pub lines: Vec<JournalLine>,
    /// Credits minus debits: zero when the day balances.
    pub imbalance: Decimal,
}

/// What one destination would be sent for a record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Posting {
    /// The destination.
    pub destination: Provider,
    /// The entity (`SalesReceipt`, `RefundReceipt`, `ManualJournals`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// Its body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Why it would not be sent (a part without a mapping, a hold).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// One record: a sale or a refund.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordParts {
    /// The provider's id.
    pub id: String,
    /// `sale` or `refund`.
    pub kind: &'static str,
    /// Its business date.
    pub business_date: Date,
    /// Its location.
    pub location: String,
    /// Its parts.
    pub parts: Vec<Part>,
    /// Why it is held, if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// Per destination, what would be posted (tenant previews only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub postings: Vec<Posting>,
}

/// A preview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Preview {
    /// Per business date and location.
    pub days: Vec<DayParts>,
    /// Per record.
    pub records: Vec<RecordParts>,
    /// The records held, with why.
    pub held: Vec<Held>,
}

/// A record held back from the books.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Held {
    /// The provider's id.
    pub id: String,
    /// Why.
    pub why: String,
}

/// The preview of `records`; with `sources`, each record's postings to the
/// destinations its connection maps.
pub fn preview(records: &[Transaction], sources: &BTreeMap<String, Connection>) -> Preview {
    let mut days: BTreeMap<(Date, String), (u64, Vec<Part>)> = BTreeMap::new();
    let mut out = Vec::new();
    let mut held = Vec::new();
    for t in records {
        let location = t.connection.to_string();
        if let Some(why) = &t.hold {
            held.push(Held {
                id: t.external_id.to_string(),
                why: why.clone(),
            });
        } else {
            let day = days.entry((t.business_date, location.clone())).or_default();
            day.0 += 1;
            day.1.extend(t.parts.iter().cloned());
        }
        let postings = sources
            .get(&location)
            .map(|source| {
                source
                    .mappings
                    .iter()
                    .map(|(dest, m)| posting(t, *dest, m, source))
                    .collect()
            })
            .unwrap_or_default();
        out.push(RecordParts {
            id: t.external_id.to_string(),
            kind: match t.direction {
                Direction::Credit => "sale",
                Direction::Debit => "refund",
            },
            business_date: t.business_date,
            location,
            parts: t.parts.clone(),
            held: t.hold.clone(),
            postings,
        });
    }
    Preview {
        days: days
            .into_iter()
            .map(|((business_date, location), (records, all))| {
                let sums = parts::sum_parts(&all);
                DayParts {
                    business_date,
                    location,
                    records,
                    imbalance: parts::imbalance(&all),
                    lines: parts::journal(&sums),
                    parts: sums
                        .into_iter()
                        .map(|(role, amount)| Part { role, amount })
                        .collect(),
                }
            })
            .collect(),
        records: out,
        held,
    }
}

fn posting(t: &Transaction, dest: Provider, m: &AccountMapping, source: &Connection) -> Posting {
    let built = match dest {
        Provider::QuickBooks => quickbooks_entity(t, m, source).map(|(e, b)| (e.to_string(), b)),
        Provider::Xero => xero_entity(t, m, source, None).map(|(c, b)| (c.name().to_string(), b)),
        other => Err(format!("{other} is not an accounting destination")),
    };
    match built {
        Ok((entity, body)) => Posting {
            destination: dest,
            entity: Some(entity),
            body: Some(body),
            refused: None,
        },
        Err(why) => Posting {
            destination: dest,
            entity: None,
            body: None,
            refused: Some(why),
        },
    }
}

/// Raw provider payloads to records: Toast, the orders of an `ordersBulk`
/// page (an array of orders, or one order); Square, `{"payments": [...],
/// "orders": [...], "refunds": [...]}`.
pub fn records_from_payloads(
    source: Provider,
    payload: &Value,
    connection: &Connection,
) -> Result<Vec<Transaction>, String> {
    let err = |e: TransformError| e.to_string();
    match source {
        Provider::Toast => {
            let orders: Vec<Value> = match payload {
                Value::Array(a) => a.clone(),
                Value::Object(o) if o.contains_key("orders") => {
                    payload["orders"].as_array().cloned().unwrap_or_default()
                }
                Value::Object(_) => vec![payload.clone()],
                _ => return Err("a Toast file holds an array of orders".into()),
            };
            let mut out = Vec::new();
            for o in &orders {
                out.extend(
                    crate::providers::toast::transform::order_to_transactions(o, connection)
                        .map_err(err)?,
                );
            }
            Ok(out)
        }
        Provider::Square => {
            let list = |k: &str| payload[k].as_array().cloned().unwrap_or_default();
            if !payload.is_object() {
                return Err(
                    "a Square file holds {\"payments\": [...], \"orders\": [...], \"refunds\": [...]}"
                        .into(),
                );
            }
            crate::providers::square::transform::sales_to_transactions(
                &list("payments"),
                &list("orders"),
                &list("refunds"),
                connection,
            )
            .map_err(err)
        }
        other => Err(format!("{other} payloads hold no sales (toast or square)")),
    }
}
