//! A sale's parts: every part of the money in its own role, so each can be
//! booked to its own account (`books.md`, "The day's journal").
//!
//! Roles, and the side of the books each is on when its amount is positive:
//!
//! | role | side | what |
//! |---|---|---|
//! | `sales:<category>` | credit | gross sales (before discounts) of one sales category |
//! | `service_charges` | credit | service charges that are not gratuity |
//! | `gratuity` | credit | gratuity service charges (auto-gratuity), owed to staff |
//! | `tax:<rate name>` | credit | sales tax of one rate, owed to the state |
//! | `tips` | credit | tips, owed to staff |
//! | `gift_cards_sold` | credit | gift cards sold or reloaded (a liability) |
//! | `discounts` | debit | discounts and comps |
//! | `refunds` | debit | money refunded, net of its tax and tip |
//! | `tender:<type>` | debit | money taken: `cash`, `card`, `house_account`, `other:<id>` |
//! | `gift_cards_redeemed` | debit | gift cards taken as payment (against the liability) |
//! | `fees` | debit | processing fees: a debit to the fees account and a credit to `tender:card`'s |
//!
//! A refund is its own record on the refund's business date: `refunds` (the
//! net), and its tax and tip as *negative* `tax:*` and `tips`, against a
//! negative tender. A record balances when its credits equal its debits
//! (fees aside, which balance themselves):
//! sales + service charges + gratuity + tax + tips + gift cards sold −
//! discounts − refunds = tenders + gift cards redeemed.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The role that takes the offset of `fees`.
pub const FEES_OFFSET: &str = "tender:card";

/// One part of a record's money.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Its role (see the module's table).
    pub role: String,
    /// Its amount; positive on the role's own side.
    pub amount: Decimal,
}

/// Which side of the books a role is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Credits: sales, charges, tax, tips, gift cards sold.
    Credit,
    /// Debits: discounts, refunds, tenders, gift cards redeemed.
    Debit,
    /// Fees: a debit to the fees account and a credit to [`FEES_OFFSET`]'s.
    Fee,
}

/// The side of `role`, or `None` for a name that is not a role.
pub fn side(role: &str) -> Option<Side> {
    let (head, tail) = match role.split_once(':') {
        Some((h, t)) => (h, Some(t)),
        None => (role, None),
    };
    match (head, tail) {
        ("sales" | "tax", Some(t)) if !t.is_empty() => Some(Side::Credit),
        ("tender", Some(t)) if !t.is_empty() => Some(Side::Debit),
        ("service_charges" | "gratuity" | "tips" | "gift_cards_sold", None) => Some(Side::Credit),
        ("discounts" | "refunds" | "gift_cards_redeemed", None) => Some(Side::Debit),
        ("fees", None) => Some(Side::Fee),
        _ => None,
    }
}

/// Parts summed per role, zero sums dropped, in role order.
pub fn sum_parts<'a>(parts: impl IntoIterator<Item = &'a Part>) -> BTreeMap<String, Decimal> {
    let mut out: BTreeMap<String, Decimal> = BTreeMap::new();
    for p in parts {
        *out.entry(p.role.clone()).or_default() += p.amount;
    }
    out.retain(|_, v| !v.is_zero());
    out
}

/// Credits minus debits (fees aside): zero when the parts balance. An
/// unknown role counts as unbalanced by its whole amount.
pub fn imbalance<'a>(parts: impl IntoIterator<Item = &'a Part>) -> Decimal {
    parts
        .into_iter()
        .map(|p| match side(&p.role) {
            Some(Side::Credit) => p.amount,
            Some(Side::Debit) => -p.amount,
            Some(Side::Fee) => Decimal::ZERO,
            None => p.amount.abs(),
        })
        .sum()
}

/// One line of a journal: an account (by mapping key) and a signed amount,
/// debit positive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalLine {
    /// The role whose mapping names the account.
    pub role: String,
    /// Debit positive, credit negative.
    pub amount: Decimal,
}

/// The journal lines of `parts`: each part on its side, fees as a debit to
/// `fees` and a credit to [`FEES_OFFSET`]. The lines sum to zero exactly when
/// the parts balance.
pub fn journal(parts: &BTreeMap<String, Decimal>) -> Vec<JournalLine> {
    let mut out = Vec::new();
    for (role, amount) in parts {
        match side(role) {
            Some(Side::Credit) => out.push(JournalLine {
                role: role.clone(),
                amount: -*amount,
            }),
            Some(Side::Debit) | None => out.push(JournalLine {
                role: role.clone(),
                amount: *amount,
            }),
            Some(Side::Fee) => {
                out.push(JournalLine {
                    role: role.clone(),
                    amount: *amount,
                });
                out.push(JournalLine {
                    role: FEES_OFFSET.into(),
                    amount: -*amount,
                });
            }
        }
    }
    out
}

/// What a mapping key (`sales:food`) resolves to in `map`: the key itself,
/// or else the longest wildcard that covers it (`sales:*`, `tender:other:*`).
/// A wildcard is the operator's explicit choice, never a guess of the hub's.
pub fn resolve<'a>(map: &'a BTreeMap<String, String>, role: &str) -> Option<&'a str> {
    if let Some(v) = map.get(role) {
        return Some(v);
    }
    let mut prefix = role;
    while let Some((head, _)) = prefix.rsplit_once(':') {
        if let Some(v) = map.get(&format!("{head}:*")) {
            return Some(v);
        }
        prefix = head;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn part(role: &str, amount: &str) -> Part {
        Part {
            role: role.into(),
            amount: d(amount),
        }
    }

    #[test]
    fn a_sale_balances_and_its_journal_sums_to_zero() {
        let parts = [
            part("sales:food", "20.00"),
            part("discounts", "2.00"),
            part("tax:State", "1.60"),
            part("tips", "3.00"),
            part("tender:card", "12.60"),
            part("tender:cash", "10.00"),
            part("fees", "0.40"),
        ];
        assert_eq!(imbalance(&parts), Decimal::ZERO);
        let lines = journal(&sum_parts(&parts));
        assert_eq!(
            lines.iter().map(|l| l.amount).sum::<Decimal>(),
            Decimal::ZERO
        );
        let card: Decimal = lines
            .iter()
            .filter(|l| l.role == "tender:card")
            .map(|l| l.amount)
            .sum();
        assert_eq!(card, d("12.20"), "card clearing is debited net of the fee");
        let unbalanced = [part("sales:food", "20.00"), part("tender:card", "19.99")];
        assert_eq!(imbalance(&unbalanced), d("0.01"));
    }

    #[test]
    fn a_refund_balances_with_negative_tax_and_tips() {
        let parts = [
            part("refunds", "10.00"),
            part("tax:State", "-0.80"),
            part("tips", "-1.00"),
            part("tender:card", "-11.80"),
        ];
        assert_eq!(imbalance(&parts), Decimal::ZERO);
    }

    #[test]
    fn roles_are_known_by_name_and_wildcards_resolve_longest_first() {
        assert_eq!(side("sales:food"), Some(Side::Credit));
        assert_eq!(side("tender:other:abc"), Some(Side::Debit));
        assert_eq!(side("sales:"), None);
        assert_eq!(side("tips:x"), None);
        assert_eq!(side("bogus"), None);
        let map: BTreeMap<String, String> = [
            ("tender:*", "1"),
            ("tender:other:*", "2"),
            ("sales:food", "3"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(resolve(&map, "sales:food"), Some("3"));
        assert_eq!(resolve(&map, "sales:drinks"), None);
        assert_eq!(resolve(&map, "tender:cash"), Some("1"));
        assert_eq!(resolve(&map, "tender:other:doordash"), Some("2"));
    }
}
