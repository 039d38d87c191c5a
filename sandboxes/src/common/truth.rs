//! What a POS sandbox generated, kept as it generates: per location ×
//! business date × role, the money of every part, worked out from the
//! sandbox's own integers (cents) with no code shared with the hub's
//! transforms. Reconciliation compares the books with this, never with the
//! hub's ledger.
//!
//! Roles and signs follow the parts table of the hub's `model::parts`
//! (`sales:<category>`, `discounts`, `service_charges`, `gratuity`,
//! `tax:<rate name>`, `tips`, `gift_cards_sold`, `gift_cards_redeemed`,
//! `refunds`, `tender:<type>`, `fees`): each amount positive on its role's
//! own side; a refund adds to `refunds` and takes its tax and tip off
//! `tax:*` and `tips`, and its money off its `tender:*`.

use jiff::civil::Date;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// Per (location, business date), per role, cents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Truth {
    days: BTreeMap<(String, Date), BTreeMap<String, i64>>,
}

impl Truth {
    /// Adds `cents` to `role` of `location` on `date`.
    pub fn add(&mut self, location: &str, date: Date, role: &str, cents: i64) {
        if cents == 0 {
            return;
        }
        *self
            .days
            .entry((location.to_string(), date))
            .or_default()
            .entry(role.to_string())
            .or_default() += cents;
    }

    /// The (location, date) pairs with any money.
    pub fn days(&self) -> Vec<(String, Date)> {
        self.days.keys().cloned().collect()
    }

    /// One location's day: role → amount in currency units (`exponent`
    /// decimal places, 2 for dollars), zero sums dropped.
    pub fn day(&self, location: &str, date: Date, exponent: u32) -> BTreeMap<String, Decimal> {
        self.days
            .get(&(location.to_string(), date))
            .map(|roles| {
                roles
                    .iter()
                    .filter(|(_, c)| **c != 0)
                    .map(|(r, c)| (r.clone(), Decimal::new(*c, exponent)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Merges `other` in.
    pub fn merge(&mut self, other: &Truth) {
        for ((loc, date), roles) in &other.days {
            for (role, cents) in roles {
                self.add(loc, *date, role, *cents);
            }
        }
    }
}

/// A role's effect on the books, debit positive: credits (sales, tax,
/// charges, gratuity, tips, gift cards sold) negative, debits positive, and
/// a fee a debit to `fees` and a credit to `tender:card` (whose clearing the
/// processor nets it from). The side table of `books.md`, stated here on its
/// own so a reconciliation against the truth does not lean on the hub's code.
pub fn debits(role: &str, amount: Decimal) -> Vec<(String, Decimal)> {
    let credit = role.starts_with("sales:")
        || role.starts_with("tax:")
        || matches!(
            role,
            "service_charges" | "gratuity" | "tips" | "gift_cards_sold"
        );
    match role {
        "fees" => vec![("fees".into(), amount), ("tender:card".into(), -amount)],
        _ if credit => vec![(role.to_string(), -amount)],
        _ => vec![(role.to_string(), amount)],
    }
}

/// What the books must hold for a day whose parts are `day`, per account
/// (debit positive): each role through `account_of` (a role it cannot place
/// lands on `unmapped <role>`), zero sums dropped.
pub fn expected_accounts(
    day: &BTreeMap<String, Decimal>,
    account_of: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, Decimal> {
    let mut out: BTreeMap<String, Decimal> = BTreeMap::new();
    for (role, amount) in day {
        for (r, debit) in debits(role, *amount) {
            let account = account_of(&r).unwrap_or_else(|| format!("unmapped {r}"));
            *out.entry(account).or_default() += debit;
        }
    }
    out.retain(|_, v| !v.is_zero());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_add_up_per_location_day_and_role() {
        let mut t = Truth::default();
        let day = jiff::civil::date(2026, 3, 1);
        t.add("r1", day, "sales:food", 1250);
        t.add("r1", day, "sales:food", 250);
        t.add("r1", day, "tips", 0);
        t.add("r2", day, "tips", 100);
        let d = t.day("r1", day, 2);
        assert_eq!(d.len(), 1);
        assert_eq!(d["sales:food"].to_string(), "15.00");
        assert_eq!(t.days().len(), 2);
    }
}
