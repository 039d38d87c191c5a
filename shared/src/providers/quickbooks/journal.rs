//! A day's journal entry as QuickBooks books it: a `JournalEntry`
//! (Finance.xsd) with one `JournalEntryLineDetail` line per account, its
//! `PostingType` from the line's sign and a positive `Amount`, the location
//! as a `DepartmentRef` or `ClassRef` on every line (as the company's
//! preferences track it), `DocNumber` `<location>-<yyyymmdd>`.

use crate::model::journal::EntryLine;
use crate::providers::http::ProviderError;
use crate::transforms::json_number;
use jiff::civil::Date;
use serde_json::{Value, json};

/// How the company tracks a location on journal lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationRef {
    /// `AccountingInfoPrefs.TrackDepartments`: a Department (Location) id.
    Department(String),
    /// Class tracking: a Class id.
    Class(String),
    /// Neither is tracked.
    None,
}

/// The `JournalEntry` body for `lines` on `date`. An update adds `Id` and
/// `SyncToken` (and `sparse: true`) to it.
pub fn journal_entry(
    doc_number: &str,
    date: Date,
    lines: &[EntryLine],
    location: &LocationRef,
    note: &str,
) -> Result<Value, String> {
    let mut out = Vec::with_capacity(lines.len());
    for l in lines {
        let mut detail = json!({
            "PostingType": if l.amount.is_sign_negative() { "Credit" } else { "Debit" },
            "AccountRef": {"value": l.account},
        });
        match location {
            LocationRef::Department(id) => detail["DepartmentRef"] = json!({"value": id}),
            LocationRef::Class(id) => detail["ClassRef"] = json!({"value": id}),
            LocationRef::None => {}
        }
        out.push(json!({
            "Description": describe(&l.roles),
            "Amount": json_number(l.amount.abs())?,
            "DetailType": "JournalEntryLineDetail",
            "JournalEntryLineDetail": detail,
        }));
    }
    Ok(json!({
        "DocNumber": doc_number,
        "TxnDate": date.to_string(),
        "PrivateNote": note,
        "Line": out,
    }))
}

/// Whether QuickBooks refused a write because the books are closed for its
/// date: "Account Period Closed" (6200, or 6210 where a closing-date
/// password is set), the answer when `BookCloseDate` moved on between
/// reading the preferences and writing.
pub fn is_period_closed(e: &ProviderError) -> bool {
    match e {
        ProviderError::Validation(messages) => messages
            .iter()
            .any(|m| matches!(m.code.as_deref(), Some("6200" | "6210"))),
        _ => false,
    }
}

/// A line's description: its roles, as a person reads them.
pub fn describe(roles: &[String]) -> String {
    roles
        .iter()
        .map(|r| match r.split_once(':') {
            Some((head, tail)) => format!("{}: {tail}", head.replace('_', " ")),
            None => r.replace('_', " "),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    fn line(account: &str, amount: &str, roles: &[&str]) -> EntryLine {
        EntryLine {
            account: account.into(),
            amount: Decimal::from_str(amount).unwrap(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn lines_carry_posting_type_positive_amounts_and_the_location() {
        let lines = [
            line("1210", "103.10", &["tender:card"]),
            line("4000", "-100.00", &["sales:food"]),
            line("6100", "-3.10", &["gift_cards_sold"]),
        ];
        let body = journal_entry(
            "Downtown-20260302",
            "2026-03-02".parse().unwrap(),
            &lines,
            &LocationRef::Department("2".into()),
            "Daily sales",
        )
        .unwrap();
        assert_eq!(body["TxnDate"], "2026-03-02");
        assert_eq!(body["DocNumber"], "Downtown-20260302");
        let l = body["Line"].as_array().unwrap();
        assert_eq!(l[0]["JournalEntryLineDetail"]["PostingType"], "Debit");
        assert_eq!(l[0]["Amount"], json!(103.1));
        assert_eq!(l[1]["JournalEntryLineDetail"]["PostingType"], "Credit");
        assert_eq!(l[1]["Amount"], json!(100));
        assert_eq!(
            l[1]["JournalEntryLineDetail"]["DepartmentRef"]["value"],
            "2"
        );
        assert_eq!(l[1]["Description"], "sales: food");
        assert_eq!(l[2]["Description"], "gift cards sold");
        let class = journal_entry(
            "x",
            "2026-03-02".parse().unwrap(),
            &lines,
            &LocationRef::Class("7".into()),
            "",
        )
        .unwrap();
        assert_eq!(
            class["Line"][0]["JournalEntryLineDetail"]["ClassRef"]["value"],
            "7"
        );
        assert!(
            class["Line"][0]["JournalEntryLineDetail"]
                .get("DepartmentRef")
                .is_none()
        );
    }
}
