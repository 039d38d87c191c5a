//! The daily sales journal: one balanced entry per location and business
//! date (`books.md`, "The day's journal"), worked out from the day's
//! records with the mapping in force on that day.
//!
//! - [`JournalMappings`]: a destination's account mapping, versioned, each
//!   version in force from its date until the next one's.
//! - [`DayTotals`]: a location-day's parts, summed over its records; held
//!   records (not money yet, or not readable) are named and left out.
//! - [`draft`]: the entry: one line per account, debit positive, and an
//!   over/short line for what does not balance (rounding, an order the POS
//!   itself left unbalanced). A role with no account holds the whole day,
//!   with every such key named: nothing goes to a guessed account.
//! - [`difference`]: what a late change adds to a posted entry, per account
//!   (the adjustment posted when the posted day's period is closed).
//!
//! Money is `Decimal` throughout; an entry's lines sum to zero exactly.

use super::Transaction;
use super::parts;
use jiff::civil::Date;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// The mapping key of the over/short account.
pub const OVER_SHORT: &str = "over_short";

/// One version of a destination's journal mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingVersion {
    /// The first business date it applies to.
    pub effective_from: Date,
    /// Account by role (`sales:food`, `tax:State`, `tender:card`, `tips`,
    /// `fees`, `over_short`, ...): QuickBooks account ids, Xero account
    /// codes. A key may end in `:*` to cover a family (`sales:*`), the
    /// operator's explicit choice.
    pub accounts: BTreeMap<String, String>,
}

/// A destination's journal mapping over time. Versions are kept in date
/// order, one per date.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalMappings {
    versions: Vec<MappingVersion>,
}

impl JournalMappings {
    /// Every version, oldest first.
    pub fn versions(&self) -> &[MappingVersion] {
        &self.versions
    }

    /// Adds `accounts` as the version in force from `from`, replacing a
    /// version of the same date.
    pub fn set(&mut self, from: Date, accounts: BTreeMap<String, String>) {
        self.versions.retain(|v| v.effective_from != from);
        let at = self.versions.partition_point(|v| v.effective_from < from);
        self.versions.insert(
            at,
            MappingVersion {
                effective_from: from,
                accounts,
            },
        );
    }

    /// The version in force on `day`: the latest taking effect on or before
    /// it.
    pub fn in_force(&self, day: Date) -> Option<&MappingVersion> {
        let n = self.versions.partition_point(|v| v.effective_from <= day);
        n.checked_sub(1).map(|i| &self.versions[i])
    }
}

/// How a destination books the sales it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostingMode {
    /// One balanced journal entry per location and business day, posted
    /// when the day is final (the default for a new connection).
    DailySummary,
    /// Each sale and refund its own document as it arrives.
    PerOrder,
}

impl PostingMode {
    /// As the CLI and the JSON spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            PostingMode::DailySummary => "daily_summary",
            PostingMode::PerOrder => "per_order",
        }
    }
}

impl std::fmt::Display for PostingMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PostingMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "daily_summary" => Ok(PostingMode::DailySummary),
            "per_order" => Ok(PostingMode::PerOrder),
            other => Err(format!(
                "{other:?} is not a posting mode (daily_summary or per_order)"
            )),
        }
    }
}

/// Where one location's journal lines are tracked in the books.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationBooking {
    /// The location's name in the entry's number and narration (default:
    /// the tenant's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// QuickBooks: the Department (Location) id the lines carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// QuickBooks: the Class id, where the company tracks classes instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Xero: the tracking category's name and option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<(String, String)>,
}

/// The minutes after a business day's close before its journal is posted,
/// unless the destination says otherwise: late tips, voids and the last
/// card settlements land in them.
pub const DEFAULT_SETTLE_MINUTES: u32 = 120;

/// The over/short amount on one day above which an alert is raised, unless
/// the destination says otherwise.
pub fn default_over_short_alert() -> Decimal {
    Decimal::new(100, 2)
}

fn default_settle() -> u32 {
    DEFAULT_SETTLE_MINUTES
}

fn per_order() -> PostingMode {
    PostingMode::PerOrder
}

/// How an accounting destination books what its tenant's sources send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationBooks {
    /// Daily summary or per order. A connection stored before the modes
    /// existed reads as `per_order`, as it was posting; a new one is
    /// created `daily_summary` ([`DestinationBooks::new_connection`]).
    #[serde(default = "per_order")]
    pub mode: PostingMode,
    /// The journal's account mapping, by version.
    #[serde(default)]
    pub journal: JournalMappings,
    /// Where each location's lines are tracked, by location key (a source
    /// connection id, or `<connection>/<location id>` for a source with
    /// several locations). A location not listed is booked untracked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub locations: BTreeMap<String, LocationBooking>,
    /// Minutes after a day's close before it is final.
    #[serde(default = "default_settle")]
    pub settle_minutes: u32,
    /// A day's over/short above this (either way) raises an alert.
    #[serde(default = "default_over_short_alert")]
    pub over_short_alert: Decimal,
}

impl Default for DestinationBooks {
    /// As a connection stored before posting modes existed reads.
    fn default() -> Self {
        DestinationBooks {
            mode: PostingMode::PerOrder,
            journal: JournalMappings::default(),
            locations: BTreeMap::new(),
            settle_minutes: DEFAULT_SETTLE_MINUTES,
            over_short_alert: default_over_short_alert(),
        }
    }
}

impl DestinationBooks {
    /// A new connection's: daily summary.
    pub fn new_connection() -> Self {
        DestinationBooks {
            mode: PostingMode::DailySummary,
            ..Self::default()
        }
    }

    /// Whether it is what [`Default`] gives (left out of the stored form).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A location-day's money: its records' parts summed by role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayTotals {
    /// The parts, zero sums dropped.
    pub parts: BTreeMap<String, Decimal>,
    /// Records counted.
    pub records: usize,
    /// Records left out, with why (`<external id>: <reason>`).
    pub held: Vec<String>,
}

/// The totals of `records` (one location's, one business date's).
pub fn day_totals<'a>(records: impl IntoIterator<Item = &'a Transaction>) -> DayTotals {
    let mut all = Vec::new();
    let mut totals = DayTotals::default();
    for t in records {
        match &t.hold {
            Some(why) => totals.held.push(format!("{}: {why}", t.external_id)),
            None => {
                totals.records += 1;
                all.extend(t.parts.iter());
            }
        }
    }
    totals.parts = parts::sum_parts(all);
    totals
}

/// One line of an entry: an account and its signed amount (debit positive),
/// with the roles booked to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryLine {
    /// The destination's account (QuickBooks id, Xero code).
    pub account: String,
    /// Debit positive, credit negative; never zero.
    pub amount: Decimal,
    /// The roles behind it, for the line's description.
    pub roles: Vec<String>,
}

/// A location-day's journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The business date.
    pub date: Date,
    /// The mapping version it was worked out with.
    pub mapping_from: Date,
    /// One line per account, in account order; they sum to zero.
    pub lines: Vec<EntryLine>,
    /// The over/short amount (debit positive), zero when the day balanced.
    pub over_short: Decimal,
}

impl Entry {
    /// The sum of the debit lines.
    pub fn debits(&self) -> Decimal {
        self.lines
            .iter()
            .map(|l| l.amount)
            .filter(|a| a.is_sign_positive())
            .sum()
    }

    /// The sum of the credit lines, as a positive amount.
    pub fn credits(&self) -> Decimal {
        -self
            .lines
            .iter()
            .map(|l| l.amount)
            .filter(|a| a.is_sign_negative())
            .sum::<Decimal>()
    }

    /// A digest of the lines (accounts and amounts, normalized), for "did
    /// anything change".
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.lines)
    }
}

/// A digest of `lines`' accounts and amounts.
pub fn fingerprint(lines: &[EntryLine]) -> String {
    let mut h = Sha256::new();
    for l in lines {
        h.update(l.account.as_bytes());
        h.update(b"=");
        h.update(l.amount.normalize().to_string().as_bytes());
        h.update(b";");
    }
    hex::encode(h.finalize())
}

/// Why a day cannot be drafted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DraftError {
    /// No mapping version is in force on the day.
    #[error("no journal mapping is in force on {0}")]
    NoMapping(Date),
    /// These roles have no account: the day is held until they are mapped.
    #[error("needs mapping: no account for {}", .0.join(", "))]
    Unmapped(Vec<String>),
    /// A part's role is not a role.
    #[error("{0} is not a part's role")]
    UnknownRole(String),
}

/// The entry for a location-day: each part's journal line on the account
/// its role maps to (on `date`'s mapping), lines summed per account, and an
/// over/short line for what does not balance.
pub fn draft(
    date: Date,
    totals: &DayTotals,
    mappings: &JournalMappings,
) -> Result<Entry, DraftError> {
    let version = mappings.in_force(date).ok_or(DraftError::NoMapping(date))?;
    let map = &version.accounts;
    let mut missing = BTreeSet::new();
    let mut by_account: BTreeMap<String, (Decimal, BTreeSet<String>)> = BTreeMap::new();
    let mut post = |account: &str, role: &str, amount: Decimal| {
        let e = by_account.entry(account.to_string()).or_default();
        e.0 += amount;
        e.1.insert(role.to_string());
    };
    let mut sum = Decimal::ZERO;
    for line in parts::journal(&totals.parts) {
        if parts::side(&line.role).is_none() {
            return Err(DraftError::UnknownRole(line.role));
        }
        sum += line.amount;
        match parts::resolve(map, &line.role) {
            Some(account) => post(account, &line.role, line.amount),
            None => {
                missing.insert(line.role);
            }
        }
    }
    let over_short = -sum;
    if !over_short.is_zero() {
        match parts::resolve(map, OVER_SHORT) {
            Some(account) => post(account, OVER_SHORT, over_short),
            None => {
                missing.insert(OVER_SHORT.to_string());
            }
        }
    }
    if !missing.is_empty() {
        return Err(DraftError::Unmapped(missing.into_iter().collect()));
    }
    let lines = by_account
        .into_iter()
        .filter(|(_, (amount, _))| !amount.is_zero())
        .map(|(account, (amount, roles))| EntryLine {
            account,
            amount,
            roles: roles.into_iter().collect(),
        })
        .collect();
    Ok(Entry {
        date,
        mapping_from: version.effective_from,
        lines,
        over_short,
    })
}

/// What turns `posted` into `now`, per account: `now − posted`, zero lines
/// dropped. Sums to zero when both do.
pub fn difference(posted: &[EntryLine], now: &[EntryLine]) -> Vec<EntryLine> {
    let mut by_account: BTreeMap<&str, (Decimal, BTreeSet<&str>)> = BTreeMap::new();
    for (lines, sign) in [(posted, -Decimal::ONE), (now, Decimal::ONE)] {
        for l in lines {
            let e = by_account.entry(&l.account).or_default();
            e.0 += l.amount * sign;
            e.1.extend(l.roles.iter().map(String::as_str));
        }
    }
    by_account
        .into_iter()
        .filter(|(_, (amount, _))| !amount.is_zero())
        .map(|(account, (amount, roles))| EntryLine {
            account: account.to_string(),
            amount,
            roles: roles.into_iter().map(str::to_string).collect(),
        })
        .collect()
}

/// The first day a journal may be dated when the books are locked through
/// `lock`: `day` itself while it is open, else the day after the lock.
pub fn first_open_day(day: Date, lock: Option<Date>) -> Date {
    match lock {
        Some(l) if l >= day => l.tomorrow().unwrap_or(l),
        _ => day,
    }
}

/// The entry's number, for a person to find it: `<location>-<yyyymmdd>`,
/// at most 21 characters (QuickBooks' `DocNumber`), the location's letters
/// and digits kept.
pub fn doc_number(location: &str, date: Date) -> String {
    doc_number_with(location, date, "")
}

/// [`doc_number`] followed by `suffix` (`-A1`), the location shortened so
/// the whole stays within 21 characters.
pub fn doc_number_with(location: &str, date: Date, suffix: &str) -> String {
    let day = date.strftime("%Y%m%d").to_string();
    let room = 21usize.saturating_sub(day.len() + 1 + suffix.len());
    let keep: String = location
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(room)
        .collect();
    if keep.is_empty() {
        format!("{day}{suffix}")
    } else {
        format!("{keep}-{day}{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Part;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn date(s: &str) -> Date {
        s.parse().unwrap()
    }

    fn accounts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn totals(parts: &[(&str, &str)]) -> DayTotals {
        let parts: Vec<Part> = parts
            .iter()
            .map(|(r, a)| Part {
                role: r.to_string(),
                amount: d(a),
            })
            .collect();
        DayTotals {
            parts: parts::sum_parts(&parts),
            records: 1,
            held: Vec::new(),
        }
    }

    fn full_mapping() -> BTreeMap<String, String> {
        accounts(&[
            ("sales:*", "4000"),
            ("sales:drinks", "4010"),
            ("discounts", "4900"),
            ("tax:*", "2200"),
            ("tips", "2300"),
            ("tender:card", "1210"),
            ("tender:cash", "1000"),
            ("fees", "6100"),
            ("refunds", "4950"),
            ("over_short", "6999"),
        ])
    }

    #[test]
    fn a_day_balances_per_account_with_fees_netted_on_card_clearing() {
        let mut m = JournalMappings::default();
        m.set(date("2026-01-01"), full_mapping());
        let t = totals(&[
            ("sales:food", "100.00"),
            ("sales:drinks", "20.00"),
            ("discounts", "5.00"),
            ("tax:State", "9.20"),
            ("tips", "12.00"),
            ("tender:card", "106.20"),
            ("tender:cash", "30.00"),
            ("fees", "3.10"),
        ]);
        let e = draft(date("2026-03-02"), &t, &m).unwrap();
        let by: BTreeMap<&str, Decimal> = e
            .lines
            .iter()
            .map(|l| (l.account.as_str(), l.amount))
            .collect();
        assert_eq!(by["4000"], d("-100.00"));
        assert_eq!(by["4010"], d("-20.00"));
        assert_eq!(by["4900"], d("5.00"));
        assert_eq!(by["2200"], d("-9.20"));
        assert_eq!(by["2300"], d("-12.00"));
        assert_eq!(by["1210"], d("103.10"), "card clearing net of the fee");
        assert_eq!(by["1000"], d("30.00"));
        assert_eq!(by["6100"], d("3.10"));
        assert!(!by.contains_key("6999"), "no over/short on a balanced day");
        assert_eq!(e.over_short, Decimal::ZERO);
        assert_eq!(e.debits(), e.credits());
        assert_eq!(e.debits(), d("141.20"));
    }

    #[test]
    fn what_does_not_balance_goes_to_over_short_only() {
        let mut m = JournalMappings::default();
        m.set(date("2026-01-01"), full_mapping());
        let t = totals(&[("sales:food", "10.00"), ("tender:cash", "9.99")]);
        let e = draft(date("2026-03-02"), &t, &m).unwrap();
        assert_eq!(e.over_short, d("0.01"));
        let os: Vec<_> = e.lines.iter().filter(|l| l.account == "6999").collect();
        assert_eq!(os.len(), 1);
        assert_eq!(os[0].amount, d("0.01"));
        assert_eq!(
            e.lines.iter().map(|l| l.amount).sum::<Decimal>(),
            Decimal::ZERO
        );
    }

    #[test]
    fn an_unmapped_role_holds_the_day_naming_every_key() {
        let mut m = JournalMappings::default();
        m.set(
            date("2026-01-01"),
            accounts(&[("sales:food", "4000"), ("tender:cash", "1000")]),
        );
        let t = totals(&[
            ("sales:food", "10.00"),
            ("sales:brunch", "5.00"),
            ("tips", "1.00"),
            ("tender:cash", "15.00"),
        ]);
        let err = draft(date("2026-03-02"), &t, &m).unwrap_err();
        assert_eq!(
            err,
            DraftError::Unmapped(vec![
                "over_short".into(),
                "sales:brunch".into(),
                "tips".into()
            ]),
            "the imbalance the missing lines leave is no over/short guess either"
        );
        assert!(err.to_string().contains("sales:brunch"), "{err}");
        assert_eq!(
            draft(date("2025-12-31"), &t, &m).unwrap_err(),
            DraftError::NoMapping(date("2025-12-31"))
        );
    }

    #[test]
    fn a_day_is_drafted_with_the_mapping_in_force_on_it() {
        let mut m = JournalMappings::default();
        m.set(
            date("2026-01-01"),
            accounts(&[("sales:*", "4000"), ("tender:*", "1000")]),
        );
        m.set(
            date("2026-03-01"),
            accounts(&[("sales:*", "4100"), ("tender:*", "1000")]),
        );
        m.set(
            date("2026-02-01"),
            accounts(&[("sales:*", "4050"), ("tender:*", "1000")]),
        );
        let froms: Vec<_> = m.versions().iter().map(|v| v.effective_from).collect();
        assert_eq!(
            froms,
            [date("2026-01-01"), date("2026-02-01"), date("2026-03-01")]
        );
        let t = totals(&[("sales:food", "10.00"), ("tender:cash", "10.00")]);
        let sales = |m: &JournalMappings, day: &str| {
            let e = draft(date(day), &t, m).unwrap();
            e.lines
                .iter()
                .find(|l| l.amount.is_sign_negative())
                .unwrap()
                .account
                .clone()
        };
        assert_eq!(sales(&m, "2026-01-31"), "4000");
        assert_eq!(sales(&m, "2026-02-01"), "4050");
        assert_eq!(sales(&m, "2026-02-28"), "4050");
        assert_eq!(sales(&m, "2026-03-01"), "4100");
        // The same date again replaces that version.
        m.set(
            date("2026-02-01"),
            accounts(&[("sales:*", "4060"), ("tender:*", "1000")]),
        );
        assert_eq!(m.versions().len(), 3);
        assert_eq!(sales(&m, "2026-02-10"), "4060");
    }

    #[test]
    fn the_difference_of_a_late_refund_is_only_what_changed() {
        let mut m = JournalMappings::default();
        m.set(date("2026-01-01"), full_mapping());
        let day = date("2026-03-02");
        let before = draft(
            day,
            &totals(&[
                ("sales:food", "50.00"),
                ("tax:State", "4.00"),
                ("tender:card", "54.00"),
            ]),
            &m,
        )
        .unwrap();
        let after = draft(
            day,
            &totals(&[
                ("sales:food", "50.00"),
                ("tax:State", "4.00"),
                ("tender:card", "54.00"),
                ("refunds", "10.00"),
                ("tax:State", "-0.80"),
                ("tender:card", "-10.80"),
            ]),
            &m,
        )
        .unwrap();
        assert_ne!(before.fingerprint(), after.fingerprint());
        let diff = difference(&before.lines, &after.lines);
        let by: BTreeMap<&str, Decimal> = diff
            .iter()
            .map(|l| (l.account.as_str(), l.amount))
            .collect();
        assert_eq!(by.len(), 3, "{diff:?}");
        assert_eq!(by["4950"], d("10.00"));
        assert_eq!(by["2200"], d("0.80"));
        assert_eq!(by["1210"], d("-10.80"));
        assert_eq!(
            diff.iter().map(|l| l.amount).sum::<Decimal>(),
            Decimal::ZERO
        );
        assert!(difference(&after.lines, &after.lines).is_empty());
    }

    #[test]
    fn held_records_are_named_and_left_out() {
        let mk = |id: &str, hold: Option<&str>, amount: &str| -> Transaction {
            serde_json::from_value(serde_json::json!({
                "tenant": "t", "connection": "c", "source": "square",
                "external_id": id, "amount": amount, "currency": "USD",
                "direction": "credit", "description": "", "business_date": "2026-03-02",
                "occurred_at": "2026-03-02T18:00:00Z", "reference": id,
                "line_items": [],
                "parts": [
                    {"role": "sales:food", "amount": amount},
                    {"role": "tender:card", "amount": amount}
                ],
                "hold": hold,
            }))
            .unwrap()
        };
        let records = [
            mk("a", None, "10.00"),
            mk("b", Some("APPROVED, not money yet"), "5.00"),
        ];
        let t = day_totals(&records);
        assert_eq!(t.records, 1);
        assert_eq!(t.parts["sales:food"], d("10.00"));
        assert_eq!(t.held, ["b: APPROVED, not money yet"]);
    }

    #[test]
    fn a_locked_day_moves_to_the_day_after_the_lock() {
        let day = date("2026-03-02");
        assert_eq!(first_open_day(day, None), day);
        assert_eq!(first_open_day(day, Some(date("2026-03-01"))), day);
        assert_eq!(first_open_day(day, Some(day)), date("2026-03-03"));
        assert_eq!(
            first_open_day(day, Some(date("2026-03-31"))),
            date("2026-04-01")
        );
    }

    #[test]
    fn doc_numbers_are_findable_and_fit_quickbooks() {
        assert_eq!(
            doc_number("Downtown", date("2026-03-02")),
            "Downtown-20260302"
        );
        let long = doc_number("L-9f3a2c1e-5b7d-4e8a", date("2026-03-02"));
        assert!(long.len() <= 21, "{long}");
        assert!(long.ends_with("-20260302"));
        assert_eq!(doc_number("--", date("2026-03-02")), "20260302");
    }
}
