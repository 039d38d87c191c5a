//! A books connection's journal mapping as an operator works on it (`hub
//! mappings`): a new version from a date, the days it posts again, and
//! proposals for the keys that hold days, from the destination's chart of
//! accounts.

use super::accounts::Account;
use crate::Stores;
use crate::model::Connection;
use crate::model::journal::OVER_SHORT;
use crate::pipelines::days::{self, DayJob, JobOutcome};
use crate::pipelines::journal::JournalError;
use crate::providers::ProviderClients;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// An account proposed for a key, for an operator to accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    /// The mapping key (`sales:brunch`, `tips`, ...).
    pub key: String,
    /// What to map it to: the QuickBooks account id, the Xero account code.
    pub account: String,
    /// The account's name and type, as the chart has them.
    pub name: String,
    /// The account's type.
    pub kind: String,
    /// Why this one: the words and type that matched.
    pub why: String,
}

/// The account types a role belongs in (QuickBooks `AccountType`s and Xero
/// `Type`s, lower case) and the words its name is likely to carry.
fn expectations(key: &str) -> (&'static [&'static str], Vec<String>) {
    const INCOME: &[&str] = &["income", "revenue", "sales", "other income"];
    const LIABILITY: &[&str] = &[
        "other current liability",
        "current liability",
        "currliab",
        "liability",
    ];
    const ASSET: &[&str] = &["other current asset", "current", "bank", "currentasset"];
    const EXPENSE: &[&str] = &["expense", "cost of goods sold", "directcosts", "overheads"];
    let (family, rest) = key.split_once(':').unwrap_or((key, ""));
    let rest_words: Vec<String> = rest
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() > 2)
        .map(str::to_ascii_lowercase)
        .collect();
    let words = |w: &[&str]| {
        let mut v: Vec<String> = w.iter().map(|s| s.to_string()).collect();
        v.extend(rest_words.iter().cloned());
        v
    };
    match family {
        "sales" => (INCOME, words(&["sales"])),
        "discounts" => (INCOME, words(&["discount", "comp"])),
        "service_charges" => (INCOME, words(&["service"])),
        "refunds" => (INCOME, words(&["refund", "return"])),
        "tax" => (LIABILITY, words(&["tax"])),
        "tips" => (LIABILITY, words(&["tip"])),
        "gratuity" => (LIABILITY, words(&["gratuit", "tip"])),
        "gift_cards_sold" | "gift_cards_redeemed" => (LIABILITY, words(&["gift"])),
        "tender" => (ASSET, words(&["clearing", "undeposited"])),
        "fees" => (EXPENSE, words(&["fee", "merchant", "bank"])),
        _ if key == OVER_SHORT => (EXPENSE, words(&["over", "short"])),
        _ => (&[], rest_words),
    }
}

/// For each key, the active account of `chart` whose type is one the role
/// belongs in and whose name carries most of its words; none where no
/// account of the right type names any of them. Nothing is guessed: a
/// proposal is for an operator to accept (`hub mappings set`).
pub fn suggest(keys: &BTreeSet<String>, chart: &[Account]) -> Vec<Suggestion> {
    let mut out = Vec::new();
    for key in keys {
        let (kinds, words) = expectations(key);
        let best = chart
            .iter()
            .filter(|a| a.active)
            .filter(|a| kinds.contains(&a.kind.to_ascii_lowercase().as_str()))
            .filter_map(|a| {
                let name = a.name.to_ascii_lowercase();
                let hits: Vec<&String> =
                    words.iter().filter(|w| name.contains(w.as_str())).collect();
                (!hits.is_empty()).then_some((hits.len(), a, hits))
            })
            // Most words, then the shortest name (the most specific), then the id.
            .max_by(|x, y| {
                x.0.cmp(&y.0)
                    .then_with(|| y.1.name.len().cmp(&x.1.name.len()))
                    .then_with(|| y.1.id.cmp(&x.1.id))
            });
        if let Some((_, a, hits)) = best {
            out.push(Suggestion {
                key: key.clone(),
                account: a
                    .code
                    .clone()
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| a.id.clone()),
                name: a.name.clone(),
                kind: a.kind.clone(),
                why: format!(
                    "a {} account named with {}",
                    a.kind,
                    hits.iter()
                        .map(|h| format!("{h:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    out
}

/// The keys that hold days in `dest` (every source), with the days.
pub async fn held_keys(
    stores: &Stores,
    dest: &Connection,
) -> Result<BTreeMap<String, BTreeSet<Date>>, crate::ports::StoreError> {
    let mut out: BTreeMap<String, BTreeSet<Date>> = BTreeMap::new();
    for source in stores.connections.list_for_tenant(&dest.tenant).await? {
        let book = days::book(stores, dest, &source.id).await?;
        for (day, keys) in book.held {
            for k in keys {
                out.entry(k).or_default().insert(day);
            }
        }
    }
    Ok(out)
}

/// What posting one day again did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayChange {
    /// The source connection.
    pub source: String,
    /// The business date.
    pub day: Date,
    /// `posted`, `updated`, `adjusted`, `unchanged`, `held`, ...
    pub outcome: String,
    /// The entry or adjustment, where one was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Whether `key` is one a journal mapping takes: `sales:<category>`,
/// `tax:<rate>`, `tender:<type>`, a part's role, `over_short`, or a family
/// such as `sales:*`.
pub fn known_key(key: &str) -> bool {
    key == OVER_SHORT
        || key
            .strip_suffix(":*")
            .map(|family| ["sales", "tax", "tender", "tender:other"].contains(&family))
            .unwrap_or_else(|| crate::model::parts::side(key).is_some())
}

/// Why a new mapping version was not saved.
#[derive(Debug, thiserror::Error)]
pub enum SetError {
    /// A pair that is not `KEY=ACCOUNT`, or a key no mapping takes.
    #[error("{0}")]
    Invalid(String),
    /// Saving it, or posting the days again, failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Adds to `dest` a mapping version taking effect `from`: the version in
/// force then with `pairs` (`KEY=ACCOUNT`; an empty account removes the
/// key) applied; saves it, then posts again the days it changes
/// ([`repost`]) and says what each did.
pub async fn set_version(
    stores: &Stores,
    clients: &ProviderClients,
    dest: &Connection,
    from: Date,
    pairs: &[String],
) -> Result<Vec<DayChange>, SetError> {
    let mut dest = dest.clone();
    let mut accounts = dest
        .books
        .journal
        .in_force(from)
        .map(|v| v.accounts.clone())
        .unwrap_or_default();
    for pair in pairs {
        let (key, account) = pair
            .split_once('=')
            .ok_or_else(|| SetError::Invalid(format!("{pair:?} is not KEY=ACCOUNT")))?;
        if !known_key(key) {
            return Err(SetError::Invalid(format!(
                "{key:?} is not a mapping key (sales:<category>, tax:<rate>, tender:<type>, tips, gratuity, gift_cards_sold, gift_cards_redeemed, discounts, service_charges, refunds, fees, over_short, or a family such as sales:*)"
            )));
        }
        if account.is_empty() {
            accounts.remove(key);
        } else {
            accounts.insert(key.to_string(), account.to_string());
        }
    }
    dest.books.journal.set(from, accounts);
    stores
        .connections
        .register(&dest)
        .await
        .map_err(JournalError::from)?;
    Ok(repost(stores, clients, &dest, from).await?)
}

/// Posts again the days a mapping version from `from` may change (held or
/// posted days of `dest`, until the next version), now, and says what each
/// did.
pub async fn repost(
    stores: &Stores,
    clients: &ProviderClients,
    dest: &Connection,
    from: Date,
) -> Result<Vec<DayChange>, JournalError> {
    use crate::pipelines::journal::DayOutcome;
    let jobs: Vec<DayJob> = days::remap_jobs(stores, dest, from).await?;
    let mut out = Vec::new();
    for job in jobs {
        let outcome = days::run_day(stores, clients, &job, Timestamp::now()).await?;
        let (what, id) = match outcome {
            JobOutcome::Done(DayOutcome::Posted { id }) => ("posted".to_string(), Some(id)),
            JobOutcome::Done(DayOutcome::Updated { id }) => ("updated in place".into(), Some(id)),
            JobOutcome::Done(DayOutcome::Adjusted { id, on }) => {
                (format!("adjusted on {on} (books closed)"), Some(id))
            }
            JobOutcome::Done(DayOutcome::Unchanged) => ("unchanged".into(), None),
            JobOutcome::Done(other) => (format!("{other:?}").to_lowercase(), None),
            JobOutcome::Held(keys) => (format!("still held: needs {}", keys.join(", ")), None),
            JobOutcome::Waiting(_, held) => {
                (format!("waiting for {} open check(s)", held.len()), None)
            }
            JobOutcome::Dropped(why) => (why, None),
        };
        out.push(DayChange {
            source: job.source.to_string(),
            day: job.day,
            outcome: what,
            id,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: &str, code: Option<&str>, name: &str, kind: &str) -> Account {
        Account {
            id: id.into(),
            code: code.map(str::to_string),
            name: name.into(),
            kind: kind.into(),
            active: true,
        }
    }

    #[test]
    fn proposals_match_the_roles_type_and_words_and_leave_the_rest_unproposed() {
        let chart = vec![
            account("1", None, "Food Sales", "Income"),
            account("2", None, "Brunch Sales", "Income"),
            account("3", None, "Sales Tax Payable", "Other Current Liability"),
            account("4", None, "Tips Payable", "Other Current Liability"),
            account("5", None, "Card Clearing", "Other Current Asset"),
            // The right words, the wrong type: never proposed for tips.
            account("6", None, "Tips Expense", "Expense"),
            account("7", None, "Cash Over/Short", "Expense"),
            account("8", None, "Old Brunch Sales", "Income"),
        ];
        let keys: BTreeSet<String> = [
            "sales:brunch",
            "tips",
            "tax:State",
            "tender:card",
            "over_short",
            "fees",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let got: BTreeMap<String, String> = suggest(&keys, &chart)
            .into_iter()
            .map(|s| (s.key, s.account))
            .collect();
        assert_eq!(got.get("sales:brunch").map(String::as_str), Some("2"));
        assert_eq!(got.get("tips").map(String::as_str), Some("4"));
        assert_eq!(got.get("tax:State").map(String::as_str), Some("3"));
        assert_eq!(got.get("tender:card").map(String::as_str), Some("5"));
        assert_eq!(got.get("over_short").map(String::as_str), Some("7"));
        assert!(
            !got.contains_key("fees"),
            "no fee account: nothing proposed"
        );
    }

    #[test]
    fn a_xero_account_is_proposed_by_its_code() {
        let chart = vec![account("guid-1", Some("825"), "Tips Payable", "CURRLIAB")];
        let keys: BTreeSet<String> = ["tips".to_string()].into_iter().collect();
        assert_eq!(suggest(&keys, &chart)[0].account, "825");
    }
}
