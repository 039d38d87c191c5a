//! `hub mappings`: a books connection's daily-journal mapping, by version
//! (what each key books to, from which date), the keys holding days, and
//! proposals for them from the books' chart of accounts.

use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use jiff::civil::Date;
use shared::ids::{ConnectionId, TenantId};
use shared::model::Connection;
use shared::model::journal::PostingMode;
use shared::{Config, Stores};
use std::collections::BTreeSet;

/// `hub mappings ...`
#[derive(Debug, Subcommand)]
pub enum MappingsCmd {
    /// The mapping in force on a date (default: today), key by key, and the
    /// keys that hold days.
    Show {
        /// Whose.
        #[arg(long)]
        tenant: TenantId,
        /// The books connection (QuickBooks or Xero).
        #[arg(long, default_value = "books")]
        id: ConnectionId,
        /// The business date whose mapping to show (YYYY-MM-DD).
        #[arg(long)]
        on: Option<Date>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a version taking effect from a date: the version in force then,
    /// with `KEY=ACCOUNT` pairs applied (`ACCOUNT` empty removes the key).
    /// Keys: `sales:<category>`, `tax:<rate>`, `tender:<type>`, `tips`,
    /// `gratuity`, `gift_cards_sold`, `gift_cards_redeemed`, `discounts`,
    /// `service_charges`, `refunds`, `fees`, `over_short`, or a family such
    /// as `sales:*`. The days it changes (held or posted, from that date to
    /// the next version's) are posted again at once (in place, or as an
    /// adjustment where the books are closed), and listed.
    Set {
        /// Whose.
        #[arg(long)]
        tenant: TenantId,
        /// The books connection.
        #[arg(long, default_value = "books")]
        id: ConnectionId,
        /// The first business date the version applies to (YYYY-MM-DD).
        #[arg(long)]
        from: Date,
        /// `KEY=ACCOUNT` pairs (a QuickBooks account id, a Xero account code).
        pairs: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every version, oldest first.
    History {
        /// Whose.
        #[arg(long)]
        tenant: TenantId,
        /// The books connection.
        #[arg(long, default_value = "books")]
        id: ConnectionId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Proposals for the keys that hold days (and any given), from the
    /// books' chart of accounts by name and account type; printed as the
    /// `hub mappings set` to accept them. Nothing is changed.
    Suggest {
        /// Whose.
        #[arg(long)]
        tenant: TenantId,
        /// The books connection.
        #[arg(long, default_value = "books")]
        id: ConnectionId,
        /// More keys to propose for.
        keys: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// How the books take the sales: `daily_summary` or `per_order`, and
    /// the minutes after a day's close before it is final.
    Posting {
        /// Whose.
        #[arg(long)]
        tenant: TenantId,
        /// The books connection.
        #[arg(long, default_value = "books")]
        id: ConnectionId,
        /// `daily_summary` or `per_order`.
        mode: PostingMode,
        /// Minutes after the day's close before it is posted.
        #[arg(long)]
        settle_minutes: Option<u32>,
    },
}

async fn books(stores: &Stores, tenant: &TenantId, id: &ConnectionId) -> Result<Connection> {
    let c = stores
        .connections
        .get(tenant, id)
        .await?
        .ok_or_else(|| anyhow!("no connection {tenant}/{id}"))?;
    if !c.provider.is_accounting() {
        bail!(
            "{tenant}/{id} is {}, not books (quickbooks or xero)",
            c.provider
        );
    }
    Ok(c)
}

/// Runs one `hub mappings` command.
pub async fn run(cmd: MappingsCmd, config: &Config) -> Result<()> {
    let (stores, clients) = crate::commands::open(config).await?;
    match cmd {
        MappingsCmd::Show {
            tenant,
            id,
            on,
            json,
        } => {
            let c = books(&stores, &tenant, &id).await?;
            let on = on.unwrap_or_else(|| {
                jiff::tz::TimeZone::UTC
                    .to_datetime(jiff::Timestamp::now())
                    .date()
            });
            let version = c.books.journal.in_force(on);
            let held = shared::ops::mappings::held_keys(&stores, &c).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "connection": c.id, "provider": c.provider, "posting": c.books.mode,
                        "on": on, "version": version, "held": held,
                    }))?
                );
                return Ok(());
            }
            println!("{tenant}/{id} ({}), posting {}", c.provider, c.books.mode);
            match version {
                None => println!("no mapping version is in force on {on}"),
                Some(v) => {
                    println!("in force on {on}: the version from {}", v.effective_from);
                    let mut t = crate::table::new(&["KEY", "ACCOUNT"]);
                    for (k, a) in &v.accounts {
                        t.add_row(vec![k.as_str(), a.as_str()]);
                    }
                    println!("{t}");
                }
            }
            if held.is_empty() {
                println!("no day is held for mapping");
            } else {
                let mut t = crate::table::new(&["NEEDS MAPPING", "DAYS HELD"]);
                for (k, days) in &held {
                    let list: Vec<String> = days.iter().map(Date::to_string).collect();
                    t.add_row(vec![k.clone(), list.join(", ")]);
                }
                println!("{t}");
                println!("`hub mappings suggest --tenant {tenant} --id {id}` proposes accounts");
            }
        }
        MappingsCmd::History { tenant, id, json } => {
            let c = books(&stores, &tenant, &id).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(c.books.journal.versions())?
                );
                return Ok(());
            }
            if c.books.journal.versions().is_empty() {
                println!("{tenant}/{id} has no mapping version yet");
            }
            let mut t = crate::table::new(&["FROM", "KEYS", "CHANGED FROM THE VERSION BEFORE"]);
            let mut before: Option<&std::collections::BTreeMap<String, String>> = None;
            for v in c.books.journal.versions() {
                let changed: Vec<String> = v
                    .accounts
                    .iter()
                    .filter(|(k, a)| before.and_then(|b| b.get(*k)) != Some(a))
                    .map(|(k, a)| format!("{k}={a}"))
                    .chain(
                        before
                            .into_iter()
                            .flat_map(|b| b.keys())
                            .filter(|k| !v.accounts.contains_key(*k))
                            .map(|k| format!("{k} removed")),
                    )
                    .collect();
                t.add_row(vec![
                    v.effective_from.to_string(),
                    v.accounts.len().to_string(),
                    if before.is_none() {
                        "first version".to_string()
                    } else {
                        changed.join(", ")
                    },
                ]);
                before = Some(&v.accounts);
            }
            println!("{t}");
        }
        MappingsCmd::Set {
            tenant,
            id,
            from,
            pairs,
            json,
        } => {
            let c = books(&stores, &tenant, &id).await?;
            let changes =
                shared::ops::mappings::set_version(&stores, &clients, &c, from, &pairs).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&changes)?);
                return Ok(());
            }
            println!("{tenant}/{id}: a mapping version from {from}");
            if changes.is_empty() {
                println!("no posted or held day is on it");
            } else {
                let mut t = crate::table::new(&["SOURCE", "DAY", "WHAT HAPPENED", "ENTRY"]);
                for ch in &changes {
                    t.add_row(vec![
                        ch.source.clone(),
                        ch.day.to_string(),
                        ch.outcome.clone(),
                        ch.id.clone().unwrap_or_default(),
                    ]);
                }
                println!("{t}");
            }
        }
        MappingsCmd::Suggest {
            tenant,
            id,
            keys,
            json,
        } => {
            let c = books(&stores, &tenant, &id).await?;
            let mut wanted: BTreeSet<String> = shared::ops::mappings::held_keys(&stores, &c)
                .await?
                .into_keys()
                .collect();
            wanted.extend(keys);
            let charts = shared::ops::accounts::charts(&stores, &clients, &tenant, false).await?;
            let chart = charts
                .into_iter()
                .find(|ch| ch.connection == c.id)
                .ok_or_else(|| anyhow!("no chart of accounts for {tenant}/{id}"))?;
            let proposals = shared::ops::mappings::suggest(&wanted, &chart.accounts);
            if json {
                println!("{}", serde_json::to_string_pretty(&proposals)?);
                return Ok(());
            }
            if wanted.is_empty() {
                println!("no key holds a day; name keys to propose for");
                return Ok(());
            }
            let mut t = crate::table::new(&["KEY", "ACCOUNT", "NAME", "WHY"]);
            for p in &proposals {
                t.add_row(vec![
                    p.key.clone(),
                    p.account.clone(),
                    p.name.clone(),
                    p.why.clone(),
                ]);
            }
            for k in wanted
                .iter()
                .filter(|k| !proposals.iter().any(|p| &p.key == *k))
            {
                t.add_row(vec![
                    k.clone(),
                    String::new(),
                    String::new(),
                    "no account of its type names it".into(),
                ]);
            }
            println!("{t}");
            if !proposals.is_empty() {
                println!(
                    "to accept: hub mappings set --tenant {tenant} --id {id} --from <first held day> {}",
                    proposals
                        .iter()
                        .map(|p| format!("{}={}", p.key, p.account))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
        }
        MappingsCmd::Posting {
            tenant,
            id,
            mode,
            settle_minutes,
        } => {
            let mut c = books(&stores, &tenant, &id).await?;
            c.books.mode = mode;
            if let Some(m) = settle_minutes {
                c.books.settle_minutes = m;
            }
            stores.connections.register(&c).await?;
            println!(
                "{tenant}/{id} posts {mode}, a day final {} minutes after its close",
                c.books.settle_minutes
            );
        }
    }
    Ok(())
}
