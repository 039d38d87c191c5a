//! A day's journal entry as Xero books it: a `ManualJournal`
//! (xero_accounting.yaml) with signed `LineAmount`s (debit positive),
//! `LineAmountTypes` set explicitly (`NoTax`: tax is its own liability
//! line), `Status: POSTED`, and the location as a tracking option on every
//! line. Created and updated with POST (an update names its
//! `ManualJournalID`).

use crate::model::journal::EntryLine;
use crate::providers::ProviderMessage;
use crate::providers::quickbooks::journal::describe;
use crate::transforms::json_number;
use jiff::civil::Date;
use serde_json::{Value, json};

/// A tracking category and option (`Location` / `Downtown`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    /// The category's name.
    pub name: String,
    /// The option's name.
    pub option: String,
}

/// The `ManualJournal` for `lines` on `date`.
pub fn manual_journal(
    narration: &str,
    date: Date,
    lines: &[EntryLine],
    tracking: Option<&Tracking>,
) -> Result<Value, String> {
    let mut out = Vec::with_capacity(lines.len());
    for l in lines {
        let mut line = json!({
            "LineAmount": json_number(l.amount)?,
            "AccountCode": l.account,
            "Description": describe(&l.roles),
        });
        if let Some(t) = tracking {
            line["Tracking"] = json!([{"Name": t.name, "Option": t.option}]);
        }
        out.push(line);
    }
    Ok(json!({
        "Narration": narration,
        "Date": date.to_string(),
        "LineAmountTypes": "NoTax",
        "Status": "POSTED",
        "JournalLines": out,
    }))
}

/// Whether Xero refused a journal because its date is inside a lock: "The
/// document date cannot be before the period lock date" (or the end of
/// year lock date), its answer when a lock appears between reading the
/// organisation and writing.
pub fn is_lock_date_refusal(messages: &[ProviderMessage]) -> bool {
    messages
        .iter()
        .any(|m| m.message.contains("cannot be before the") && m.message.contains("lock date"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    #[test]
    fn lines_are_signed_with_tax_handling_and_tracking_explicit() {
        let lines = [
            EntryLine {
                account: "090".into(),
                amount: Decimal::from_str("54.00").unwrap(),
                roles: vec!["tender:card".into()],
            },
            EntryLine {
                account: "200".into(),
                amount: Decimal::from_str("-54.00").unwrap(),
                roles: vec!["sales:food".into(), "tax:State".into()],
            },
        ];
        let t = Tracking {
            name: "Location".into(),
            option: "Downtown".into(),
        };
        let j = manual_journal(
            "Daily sales Downtown 2026-03-02",
            "2026-03-02".parse().unwrap(),
            &lines,
            Some(&t),
        )
        .unwrap();
        assert_eq!(j["LineAmountTypes"], "NoTax");
        assert_eq!(j["Status"], "POSTED");
        assert_eq!(j["JournalLines"][0]["LineAmount"], json!(54));
        assert_eq!(j["JournalLines"][1]["LineAmount"], json!(-54));
        assert_eq!(
            j["JournalLines"][1]["Description"],
            "sales: food, tax: State"
        );
        assert_eq!(j["JournalLines"][1]["Tracking"][0]["Option"], "Downtown");
    }
}
