//! The `hub` command line: what each subcommand does, on the stores the
//! environment configures (see `hub config`).

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use jiff::civil::Time;
use shared::Stores;
use shared::config::{BackendConfig, Config, VARIABLES};
use shared::ids::{ConnectionId, MessageId, ProviderAccountId, SecretName, TenantId};
use shared::model::{BusinessDayClose, Connection, Provider, Tenant, TimeZoneName};
use shared::ports::WorkQueue;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

/// Integration Hub: run it locally, and operate it.
#[derive(Debug, Parser)]
#[command(name = "hub", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole hub on this machine against provider sandboxes: seeded
    /// restaurants, signed webhooks, pulls, pushes through faults, a parked
    /// record fixed and redriven; prints a reconciliation per restaurant and
    /// business day, and exits non-zero unless everything reconciles.
    Demo(crate::demo::DemoArgs),
    /// Start every provider sandbox on loopback (seeded) and print the
    /// HUB_ENDPOINT_* settings and credentials to use them; serves until
    /// Ctrl-C. For running a function under `cargo lambda watch` against them.
    Sandboxes(crate::sandboxes::SandboxesArgs),
    /// Serve the hub's HTTP routes on one local process.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", env = "HUB_ADDR")]
        addr: SocketAddr,
    },
    /// The operator's web console on loopback, for the configured backend:
    /// prints one sign-in URL (it works once) and serves until Ctrl-C.
    Console {
        /// Address to listen on (loopback only; port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8090", env = "HUB_CONSOLE_ADDR")]
        addr: SocketAddr,
    },
    /// Show every setting, its value here, and its default.
    Config,
    /// Manage tenants (restaurant groups).
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Manage connections to provider accounts.
    #[command(subcommand)]
    Connection(ConnectionCmd),
    /// Write secrets (the value is read from standard input, never from flags).
    #[command(subcommand)]
    Secret(SecretCmd),
    /// Inspect and redrive dead-letter queues.
    #[command(subcommand)]
    Dlq(DlqCmd),
    /// Start connecting a tenant to QuickBooks, Xero or Square: prints the URL
    /// to authorize at; the provider then sends the user back to `hub serve`
    /// (or the connect function) at HUB_PUBLIC_URL/connect/<provider>/callback.
    Connect {
        /// quickbooks, xero or square.
        provider: Provider,
        /// Whose connection.
        #[arg(long)]
        tenant: TenantId,
        /// Its id within the tenant.
        #[arg(long)]
        id: ConnectionId,
        /// The IANA time zone of the books or restaurant.
        #[arg(long)]
        time_zone: String,
        /// When the business day ends, local time (HH:MM).
        #[arg(long, default_value = "00:00")]
        close: String,
        /// The connection exists and is to be linked to whatever account
        /// this authorization is for (without it, a different account is
        /// refused and nothing changes).
        #[arg(long)]
        replace: bool,
        /// Print a signed link to the hub's own `GET /connect/<provider>`
        /// instead, for someone else to open (usable once).
        #[arg(long)]
        link: bool,
        /// How long the link works, in minutes (at most 1440).
        #[arg(long, default_value_t = 60, requires = "link")]
        link_minutes: u32,
    },
    /// Pull now: every connection of a provider for a tenant (all streams), or
    /// re-pull a date range of its orders/payments without moving the cursor.
    Pull {
        /// toast, square or marketman.
        provider: Provider,
        /// Whose connections.
        #[arg(long)]
        tenant: TenantId,
        /// Re-pull from this date (YYYY-MM-DD, UTC midnight).
        #[arg(long, requires = "to")]
        from: Option<jiff::civil::Date>,
        /// Re-pull up to this date (exclusive).
        #[arg(long, requires = "from")]
        to: Option<jiff::civil::Date>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Process what the webhook work queue holds, until it is empty (the local
    /// stand-in for the process-events function).
    Work,
    /// Post what the push queue holds to QuickBooks and Xero, until it is empty
    /// (the local stand-in for the push function).
    Push {
        /// Seconds a received message stays hidden: if this process dies,
        /// its messages come back to the queue after this long.
        #[arg(long, default_value_t = 120)]
        visibility: u64,
    },
    /// Compare a business day's POS totals with what was posted, per location
    /// and destination, to the cent.
    Reconcile {
        /// Whose.
        #[arg(long)]
        tenant: TenantId,
        /// The business date (YYYY-MM-DD).
        #[arg(long)]
        date: jiff::civil::Date,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every connection's health: state, reasons, last pull, last post, DLQ
    /// depth (JSON schema: docs/status.md).
    Status {
        /// Check now (calls each provider once) instead of showing the last
        /// check; alerts on changes like the monitor does.
        #[arg(long)]
        check: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The chart of accounts of a tenant's books (QuickBooks, Xero), to pick
    /// the ids its mappings name: cached for a day.
    Accounts {
        /// Whose.
        tenant: TenantId,
        /// Fetch it again instead of using the cached copy.
        #[arg(long)]
        refresh: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A sale's parts and what would be posted: for a tenant's business
    /// date, or for raw provider payloads in a file (no store, no network).
    #[command(subcommand)]
    Books(BooksCmd),
    /// The latest inventory level per item and location.
    Inventory {
        /// Whose.
        #[arg(long)]
        tenant: TenantId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A books connection's daily-journal mapping by version, the keys
    /// holding days, proposals from its chart of accounts, its posting mode.
    #[command(subcommand)]
    Mappings(crate::mappings::MappingsCmd),
    /// Check or make webhook signatures, and handle unrouted events.
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// Create the DynamoDB tables and SQS queues on an AWS endpoint (an
    /// emulator or a sandbox account) and print the settings to use them.
    #[command(subcommand)]
    Aws(AwsCmd),
}

/// `hub tenant ...`
#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    /// Create or rename a tenant.
    Add {
        /// The tenant's id.
        id: TenantId,
        /// A name for people.
        #[arg(long)]
        name: String,
    },
    /// List tenants.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `hub connection ...`
#[derive(Debug, Subcommand)]
pub enum ConnectionCmd {
    /// Register (or update) a connection.
    Add(ConnectionArgs),
    /// Set where a source connection's parts are booked in a destination:
    /// `ROLE=VALUE` pairs (a QuickBooks item id, a Xero account code or
    /// `id:<AccountID>`; `VALUE` empty removes the key). Roles: `sales:<category>`,
    /// `discounts`, `service_charges`, `gratuity`, `tax:<rate>`, `tips`,
    /// `gift_cards_sold`, `gift_cards_redeemed`, `refunds`, `tender:<type>`,
    /// `fees`; `sales:*` (etc.) covers a family. `hub books preview` shows
    /// the roles a day holds.
    Map {
        /// Whose connection.
        #[arg(long)]
        tenant: TenantId,
        /// The source connection (the POS).
        #[arg(long)]
        id: ConnectionId,
        /// quickbooks or xero.
        #[arg(long)]
        destination: Provider,
        /// The account a receipt deposits to and refunds from (QuickBooks).
        #[arg(long)]
        deposit_account: Option<String>,
        /// `ROLE=VALUE` pairs.
        pairs: Vec<String>,
    },
    /// List connections.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `hub books ...`
#[derive(Debug, Subcommand)]
pub enum BooksCmd {
    /// The parts per business date and location, the journal lines they
    /// make, each record's parts and what each destination would be sent,
    /// and the records held (JSON: docs/books.md).
    Preview(PreviewArgs),
}

/// `hub books preview` options.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Whose business day (with --date).
    #[arg(long, requires = "date", conflicts_with = "file")]
    pub tenant: Option<TenantId>,
    /// The business date (YYYY-MM-DD).
    #[arg(long, requires = "tenant")]
    pub date: Option<jiff::civil::Date>,
    /// Raw payloads instead: toast (the orders of an ordersBulk page) or
    /// square ({"payments": [...], "orders": [...], "refunds": [...]}).
    #[arg(long, requires_all = ["file", "time_zone"])]
    pub source: Option<Provider>,
    /// The restaurant's IANA time zone (with --file).
    #[arg(long)]
    pub time_zone: Option<String>,
    /// When its business day ends, local time (HH:MM; with --file).
    #[arg(long, default_value = "00:00")]
    pub close: String,
    /// The restaurant's currency (with --file): Toast orders carry none
    /// (Square money names its own).
    #[arg(long, default_value = "USD")]
    pub currency: String,
    /// The payloads' file (with --source).
    #[arg(long, requires = "source")]
    pub file: Option<std::path::PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A connection's settings.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Whose connection.
    #[arg(long)]
    pub tenant: TenantId,
    /// Its id within the tenant.
    #[arg(long)]
    pub id: ConnectionId,
    /// toast, square, marketman, quickbooks or xero.
    #[arg(long)]
    pub provider: Provider,
    /// The provider's account id (restaurant GUID, merchant id, realm id, Xero tenant id).
    #[arg(long)]
    pub account: ProviderAccountId,
    /// The restaurant's IANA time zone.
    #[arg(long)]
    pub time_zone: String,
    /// When the business day ends, local time (HH:MM).
    #[arg(long, default_value = "00:00")]
    pub close: String,
    /// The secret holding the credentials (default: tenants/<tenant>/<id>).
    #[arg(long)]
    pub credentials: Option<SecretName>,
    /// The account's ISO-4217 currency, where its records do not name one
    /// (Toast: learned from the restaurants API when not given).
    #[arg(long)]
    pub currency: Option<String>,
    /// For QuickBooks or Xero: how sales are booked, `daily_summary` (one
    /// journal per location and business day, the default) or `per_order`.
    #[arg(long, default_value = "daily_summary")]
    pub posting: shared::model::journal::PostingMode,
}

/// `hub secret ...`
#[derive(Debug, Subcommand)]
pub enum SecretCmd {
    /// Write a new version of a secret; the value is read from standard input.
    Set {
        /// The secret's name (relative to the secret prefix).
        name: SecretName,
    },
}

/// `hub dlq ...`
#[derive(Debug, Subcommand)]
pub enum DlqCmd {
    /// List parked messages.
    List {
        /// work or push.
        #[arg(long, default_value = "work")]
        queue: String,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        max: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One parked message, whole.
    Show {
        /// work, push or pull.
        #[arg(long, default_value = "work")]
        queue: String,
        /// The message id (from `hub dlq list`).
        id: MessageId,
    },
    /// Send parked messages back to their queue.
    Redrive {
        /// work or push.
        #[arg(long, default_value = "work")]
        queue: String,
        /// Every parked message.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// The messages to redrive.
        ids: Vec<MessageId>,
    },
}

/// `hub webhook ...`
#[derive(Debug, Subcommand)]
pub enum WebhookCmd {
    /// Check a captured delivery's signature: prints `valid` (exit 0) or
    /// `invalid: <reason>` (exit 1).
    Verify {
        #[command(flatten)]
        delivery: DeliveryArgs,
        /// A request header, `Name: value` (repeatable); the signature header
        /// is the one that counts.
        #[arg(long = "header", value_name = "NAME: VALUE")]
        headers: Vec<String>,
    },
    /// Print the signature header for a body, to `curl` a signed delivery:
    /// `curl -H "$(hub webhook sign ...)" --data-binary @body.json <url>`.
    Sign {
        #[command(flatten)]
        delivery: DeliveryArgs,
    },
    /// List signed events whose provider account no tenant owns.
    Unrouted {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        max: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move unrouted events whose account now has a connection to the work queue.
    Reroute,
}

/// What a signature covers.
#[derive(Debug, Args)]
pub struct DeliveryArgs {
    /// toast, square, quickbooks or xero.
    #[arg(long)]
    pub provider: Provider,
    /// The signing key (Square signature key, QuickBooks verifier token, Xero
    /// webhook key, Toast subscription secret).
    #[arg(long, env = "HUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Square: the subscription's notification URL.
    #[arg(long)]
    pub url: Option<String>,
    /// The raw body, byte for byte.
    #[arg(long)]
    pub body_file: std::path::PathBuf,
}

/// `hub aws ...`
#[derive(Debug, Subcommand)]
pub enum AwsCmd {
    /// Create tables and queues named `<prefix>-...` and print their settings.
    Bootstrap {
        /// Name prefix of every resource.
        #[arg(long, default_value = "hub")]
        prefix: String,
        /// Receives before a message is parked.
        #[arg(long, default_value_t = 5)]
        max_receives: u32,
    },
}

/// The configured stores.
pub async fn open_stores(config: &Config) -> Result<Stores> {
    Stores::from_config(config)
        .await
        .context("open the configured stores")
}

/// The configured stores, and the provider clients spending their budgets.
pub async fn open(config: &Config) -> Result<(Stores, shared::providers::ProviderClients)> {
    let stores = open_stores(config).await?;
    let clients = shared::providers::ProviderClients::new(
        &stores,
        config.endpoints.clone(),
        &config.public_url,
    );
    Ok((stores, clients))
}

/// Runs one command (everything but `serve`).
pub async fn execute(command: Command, config: &Config) -> Result<()> {
    match command {
        Command::Serve { .. } => bail!("serve is run by main"),
        Command::Console { addr } => {
            let listener = crate::console::bind(addr).await?;
            let (stores, clients) = open(config).await?;
            let backend = stores.backend;
            crate::console::serve(
                listener,
                stores,
                clients,
                std::sync::Arc::new(|_: &shared::model::Connection| None),
                |url| {
                    eprintln!("hub console: {backend} backend; sign in (the link works once):");
                    println!("{url}");
                },
                async {
                    let _ = tokio::signal::ctrl_c().await;
                },
            )
            .await
        }
        Command::Sandboxes(args) => crate::sandboxes::run(args).await,
        Command::Mappings(cmd) => crate::mappings::run(cmd, config).await,
        Command::Demo(args) => {
            let (json, console) = (args.json, args.console);
            let report = crate::demo::run(args).await?;
            if !console {
                // (With the console, the report was printed before it opened.)
                crate::demo::print(&report, json)?;
            }
            if !report.reconciled {
                bail!("the demo did not reconcile: see the rows marked NO");
            }
            Ok(())
        }
        Command::Config => print_config(config),
        Command::Webhook(WebhookCmd::Verify { delivery, headers }) => {
            verify_delivery(delivery, &headers)
        }
        Command::Webhook(WebhookCmd::Sign { delivery }) => sign_delivery(delivery),
        Command::Aws(AwsCmd::Bootstrap {
            prefix,
            max_receives,
        }) => bootstrap(&prefix, max_receives).await,
        Command::Connect {
            provider,
            tenant,
            id,
            time_zone,
            close,
            replace,
            link,
            link_minutes,
        } => {
            let stores = open_stores(config).await?;
            let service = shared::providers::connect::ConnectService::new(
                stores.clone(),
                stores.provider_http(),
                config.endpoints.clone(),
                &config.public_url,
            );
            let pending =
                shared::providers::connect::PendingConnect {
                    provider,
                    tenant,
                    connection: id,
                    time_zone: TimeZoneName::new(&time_zone).map_err(|e| {
                        anyhow!("--time-zone {time_zone:?} is not a known IANA time zone: {e}")
                    })?,
                    business_day_close: BusinessDayClose(close.parse().map_err(|e| {
                        anyhow!("--close {close:?} is not a time of day (HH:MM): {e}")
                    })?),
                    replace,
                };
            if link {
                let url = service
                    .issue_link(
                        &pending,
                        jiff::SignedDuration::from_mins(i64::from(link_minutes)),
                    )
                    .await?;
                println!("{url}");
                eprintln!(
                    "Send this link to whoever authorizes at {provider}: it works once, for {link_minutes} minutes."
                );
                return Ok(());
            }
            let url = service.start(pending).await?;
            println!("{url}");
            eprintln!(
                "Open the URL above and authorize; {provider} sends you back to {}/connect/{provider}/callback \
                 (hub serve or the connect function must answer there). The link works for {} minutes.",
                config.public_url,
                shared::providers::connect::STATE_LIFETIME.as_secs() / 60
            );
            Ok(())
        }
        Command::Pull {
            provider,
            tenant,
            from,
            to,
            json,
        } => {
            let stores = open_stores(config).await?;
            pull(&stores, config, provider, &tenant, from.zip(to), json).await
        }
        Command::Status { check, json } => {
            use shared::pipelines::health;
            let (stores, clients) = open(config).await?;
            let reports = if check {
                let alerter = health::Alerter::with_client(
                    config.alert_webhook_url.clone(),
                    clients.http().lazy_client(),
                );
                health::monitor(&stores, &clients, &alerter, &health::Thresholds::default()).await?
            } else {
                let mut out = Vec::new();
                for c in stores.connections.list_all().await? {
                    if let Some(r) = health::last_report(&stores, &c).await? {
                        out.push(r);
                    } else {
                        out.push(health::ConnectionHealth {
                            tenant: c.tenant.to_string(),
                            connection: c.id.to_string(),
                            provider: c.provider,
                            state: health::State::Degraded,
                            reasons: vec![
                                "never checked: run `hub status --check` or the health monitor"
                                    .into(),
                            ],
                            checked_at: jiff::Timestamp::UNIX_EPOCH,
                            reachability_ms: None,
                            calls: 0,
                            success_permille: None,
                            p50_ms: None,
                            p95_ms: None,
                            last_pull: None,
                            last_post: None,
                            unposted: 0,
                            dlq_depth: 0,
                            refresh_token_days_left: None,
                            budget: None,
                            budget_sharing: None,
                            planned_freshness_secs: None,
                            target_freshness_secs: None,
                            deferred_until: None,
                        });
                    }
                }
                out
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                let mut table = crate::table::new(&[
                    "TENANT",
                    "CONNECTION",
                    "PROVIDER",
                    "STATE",
                    "LAST PULL",
                    "LAST POST",
                    "FRESHNESS/TARGET",
                    "DLQ",
                    "REASONS",
                ]);
                // Sources: the freshness their budget allows beside the target.
                let fresh = |r: &health::ConnectionHealth| match (
                    r.planned_freshness_secs,
                    r.target_freshness_secs,
                ) {
                    (Some(p), Some(t)) => format!(
                        "{}/{}",
                        shared::pipelines::cadence::human(jiff::SignedDuration::from_secs(p)),
                        shared::pipelines::cadence::human(jiff::SignedDuration::from_secs(t))
                    ),
                    _ => "-".into(),
                };
                let t = |x: Option<jiff::Timestamp>| {
                    x.map(|v| v.strftime("%Y-%m-%d %H:%M:%SZ").to_string())
                        .unwrap_or_else(|| "-".into())
                };
                for r in &reports {
                    table.add_row(vec![
                        r.tenant.clone(),
                        r.connection.clone(),
                        r.provider.to_string(),
                        format!("{:?}", r.state).to_lowercase(),
                        t(r.last_pull),
                        t(r.last_post),
                        fresh(r),
                        r.dlq_depth.to_string(),
                        if r.reasons.is_empty() {
                            "-".to_string()
                        } else {
                            r.reasons.join("; ")
                        },
                    ]);
                }
                crate::table::numeric(&mut table, &[7]);
                println!("{table}");
            }
            Ok(())
        }
        Command::Work => {
            let (stores, clients) = open(config).await?;
            let t = shared::pipelines::events::drain(&stores, &clients, 1000).await?;
            println!(
                "{} record(s): {} new, {} changed, {} unchanged; {} push(es) queued",
                t.records, t.created, t.changed, t.unchanged, t.pushes
            );
            Ok(())
        }
        Command::Push { visibility } => {
            let (stores, clients) = open(config).await?;
            let mut pusher = shared::pipelines::push::Pusher::new(stores.clone(), clients);
            pusher.visibility = std::time::Duration::from_secs(visibility);
            let outcomes = pusher.drain(stores.push_queue.as_ref(), 1000).await?;
            let count = |f: fn(&shared::pipelines::push::PushOutcome) -> bool| {
                outcomes.iter().filter(|o| f(o)).count()
            };
            println!(
                "{} posted, {} skipped, {} to retry, {} parked in the dead-letter queue",
                count(|o| matches!(o, shared::pipelines::push::PushOutcome::Posted(_))),
                count(|o| matches!(o, shared::pipelines::push::PushOutcome::Skipped(_))),
                count(|o| matches!(o, shared::pipelines::push::PushOutcome::Retry(..))),
                count(|o| matches!(o, shared::pipelines::push::PushOutcome::Park(_))),
            );
            Ok(())
        }
        Command::Reconcile { tenant, date, json } => {
            let stores = open_stores(config).await?;
            let r = shared::pipelines::reconcile::reconcile(&stores, &tenant, date).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{tenant} business day {date}: {}",
                    if r.reconciled {
                        "reconciled"
                    } else {
                        "NOT reconciled"
                    }
                );
                let mut table = crate::table::new(&[
                    "LOCATION",
                    "DESTINATION",
                    "RECORDS",
                    "POS TOTAL",
                    "POSTED",
                    "DIFFERENCE",
                    "ISSUES",
                ]);
                for l in &r.locations {
                    for d in &l.destinations {
                        table.add_row(vec![
                            l.location.clone(),
                            d.destination.to_string(),
                            l.records.to_string(),
                            l.pos_total.to_string(),
                            d.posted_total.to_string(),
                            d.difference.to_string(),
                            d.issues.to_string(),
                        ]);
                    }
                }
                crate::table::numeric(&mut table, &[2, 3, 4, 5, 6]);
                println!("{table}");
                for i in &r.issues {
                    println!(
                        "  {} {} {} {}{}",
                        i.problem,
                        i.destination,
                        i.key,
                        i.amount,
                        i.reason
                            .as_ref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
        Command::Accounts {
            tenant,
            refresh,
            json,
        } => {
            let (stores, clients) = open(config).await?;
            let charts = shared::ops::accounts::charts(&stores, &clients, &tenant, refresh).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&charts)?);
                return Ok(());
            }
            for c in &charts {
                println!(
                    "{} ({}), {} accounts, fetched {}{}",
                    c.provider,
                    c.connection,
                    c.accounts.len(),
                    c.fetched_at,
                    if c.cached { " (cached)" } else { "" }
                );
                let mut table = crate::table::new(&["ID", "CODE", "NAME", "TYPE", "ACTIVE"]);
                for a in &c.accounts {
                    table.add_row(vec![
                        a.id.as_str(),
                        a.code.as_deref().unwrap_or("-"),
                        a.name.as_str(),
                        a.kind.as_str(),
                        if a.active { "yes" } else { "no" },
                    ]);
                }
                println!("{table}");
            }
            Ok(())
        }
        Command::Books(BooksCmd::Preview(args)) if args.file.is_some() => {
            let (source, file, tz) = match (args.source, &args.file, &args.time_zone) {
                (Some(s), Some(f), Some(tz)) => (s, f.clone(), tz.clone()),
                _ => bail!("--file needs --source and --time-zone"),
            };
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("read {}", file.display()))?;
            let payload: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            let connection = connection_from(ConnectionArgs {
                tenant: TenantId::new("preview")?,
                id: ConnectionId::new(source.to_string())?,
                provider: source,
                account: ProviderAccountId::new("preview")?,
                time_zone: tz,
                close: args.close.clone(),
                credentials: None,
                currency: Some(args.currency.clone()),
                posting: shared::model::journal::PostingMode::PerOrder,
            })?;
            let records = shared::ops::books::records_from_payloads(source, &payload, &connection)
                .map_err(|e| anyhow!("{}: {e}", file.display()))?;
            let preview = shared::ops::books::preview(&records, &Default::default());
            print_preview(&preview, args.json)
        }
        Command::Inventory { tenant, json } => {
            let stores = open_stores(config).await?;
            inventory(&stores, &tenant, json).await
        }
        other => {
            let stores = open_stores(config).await?;
            on_stores(other, &stores).await
        }
    }
}

async fn on_stores(command: Command, stores: &Stores) -> Result<()> {
    match command {
        Command::Tenant(TenantCmd::Add { id, name }) => {
            stores
                .connections
                .put_tenant(&Tenant {
                    id: id.clone(),
                    name,
                })
                .await?;
            println!("tenant {id} saved");
        }
        Command::Tenant(TenantCmd::List { json }) => {
            let tenants = stores.connections.list_tenants().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tenants)?);
            } else {
                let mut table = crate::table::new(&["ID", "NAME"]);
                for t in tenants {
                    table.add_row(vec![t.id.to_string(), t.name]);
                }
                println!("{table}");
            }
        }
        Command::Connection(ConnectionCmd::Add(args)) => {
            let c = connection_from(args)?;
            stores.connections.register(&c).await?;
            println!(
                "connection {}/{} saved ({} account {})",
                c.tenant, c.id, c.provider, c.account_id
            );
        }
        Command::Connection(ConnectionCmd::Map {
            tenant,
            id,
            destination,
            deposit_account,
            pairs,
        }) => {
            if !matches!(destination, Provider::QuickBooks | Provider::Xero) {
                bail!("--destination {destination}: parts are booked in quickbooks or xero");
            }
            let mut c = stores
                .connections
                .get(&tenant, &id)
                .await?
                .ok_or_else(|| anyhow!("no connection {tenant}/{id}"))?;
            let m = c.mappings.entry(destination).or_default();
            if let Some(d) = deposit_account {
                m.deposit_account = (!d.is_empty()).then_some(d);
            }
            for pair in &pairs {
                let (role, value) = pair
                    .split_once('=')
                    .ok_or_else(|| anyhow!("{pair:?} is not ROLE=VALUE"))?;
                let known = role
                    .strip_suffix(":*")
                    .map(|family| ["sales", "tax", "tender", "tender:other"].contains(&family))
                    .unwrap_or_else(|| shared::model::parts::side(role).is_some());
                if !known {
                    bail!(
                        "{role:?} is not a part's role (sales:<category>, discounts, service_charges, gratuity, tax:<rate>, tips, gift_cards_sold, gift_cards_redeemed, refunds, tender:<type>, fees, or a family such as sales:*)"
                    );
                }
                if value.is_empty() {
                    m.parts.remove(role);
                } else {
                    m.parts.insert(role.to_string(), value.to_string());
                }
            }
            let shown = serde_json::to_string_pretty(&m)?;
            stores.connections.register(&c).await?;
            println!("connection {tenant}/{id} books in {destination} with:\n{shown}");
        }
        Command::Books(BooksCmd::Preview(args)) => {
            let (Some(tenant), Some(date)) = (args.tenant, args.date) else {
                bail!(
                    "books preview needs --tenant and --date, or --source, --time-zone and --file"
                );
            };
            let rows = stores.ledger.list_for_business_date(&tenant, date).await?;
            let mut records = Vec::new();
            for row in rows {
                if let Ok(shared::model::Record::Transaction(t)) =
                    serde_json::from_value::<shared::model::Record>(row.payload.clone())
                {
                    records.push(t);
                }
            }
            let mut sources = std::collections::BTreeMap::new();
            for c in stores.connections.list_for_tenant(&tenant).await? {
                sources.insert(c.id.to_string(), c);
            }
            let preview = shared::ops::books::preview(&records, &sources);
            print_preview(&preview, args.json)?;
        }
        Command::Connection(ConnectionCmd::List { tenant, json }) => {
            let list = match tenant {
                Some(t) => stores.connections.list_for_tenant(&t).await?,
                None => stores.connections.list_all().await?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                let mut table = crate::table::new(&[
                    "TENANT",
                    "ID",
                    "PROVIDER",
                    "ACCOUNT",
                    "TIME ZONE",
                    "CLOSE",
                    "POSTING",
                ]);
                for c in list {
                    table.add_row(vec![
                        c.tenant.to_string(),
                        c.id.to_string(),
                        c.provider.to_string(),
                        c.account_id.to_string(),
                        c.time_zone.as_str().to_string(),
                        c.business_day_close.0.strftime("%H:%M").to_string(),
                        if c.provider.is_accounting() {
                            c.books.mode.to_string()
                        } else {
                            "-".into()
                        },
                    ]);
                }
                println!("{table}");
            }
        }
        Command::Secret(SecretCmd::Set { name }) => {
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .context("read the secret from standard input")?;
            let value = value.trim_end_matches(['\r', '\n']).to_string();
            if value.is_empty() {
                bail!("no secret value on standard input");
            }
            let version = stores.secrets.put(&name, &value.into()).await?;
            println!("secret {name} written (version {})", version.0);
        }
        Command::Dlq(DlqCmd::List { queue, max, json }) => {
            let q = queue_named(stores, &queue)?;
            let dead = q.dead_letters(max).await?;
            let mut reasons = Vec::with_capacity(dead.len());
            for d in &dead {
                reasons.push(shared::ops::dlq::explain(stores, &queue, d).await?);
            }
            if json {
                let items: Vec<_> = dead
                    .iter()
                    .zip(&reasons)
                    .map(|(d, why)| {
                        serde_json::json!({
                            "id": d.id,
                            "body": d.body,
                            "receive_count": d.receive_count,
                            "sent_at": d.sent_at,
                            "reason": why,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                println!(
                    "{} message(s) parked in the {queue} dead-letter queue",
                    dead.len()
                );
                for (d, why) in dead.iter().zip(&reasons) {
                    let sent = d
                        .sent_at
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "-".into());
                    println!(
                        "{}  receives={}  sent={}  {}",
                        d.id,
                        d.receive_count,
                        sent,
                        preview(&d.body)
                    );
                    let at = why.at.map(|t| format!(" ({t})")).unwrap_or_default();
                    println!("    why: {}{at}", why.summary);
                }
            }
        }
        Command::Dlq(DlqCmd::Show { queue, id }) => {
            let q = queue_named(stores, &queue)?;
            let dead = q.dead_letters(1000).await?;
            let d = dead
                .into_iter()
                .find(|d| d.id == id)
                .ok_or_else(|| anyhow!("no message {id} in the {queue} dead-letter queue"))?;
            let why = shared::ops::dlq::explain(stores, &queue, &d).await?;
            let body: serde_json::Value =
                serde_json::from_str(&d.body).unwrap_or(serde_json::Value::String(d.body.clone()));
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "id": d.id,
                    "receive_count": d.receive_count,
                    "sent_at": d.sent_at,
                    "reason": why,
                    "body": body,
                }))?
            );
        }
        Command::Dlq(DlqCmd::Redrive { queue, all, ids }) => {
            let q = queue_named(stores, &queue)?;
            if !all && ids.is_empty() {
                bail!("name the message ids to redrive, or pass --all");
            }
            let moved = q.redrive(if all { None } else { Some(&ids) }).await?;
            println!("{moved} message(s) sent back to the {queue} queue");
            if !all && (moved as usize) < ids.len() {
                bail!(
                    "{} of the named messages were not in the dead-letter queue",
                    ids.len() - moved as usize
                );
            }
        }
        Command::Webhook(WebhookCmd::Unrouted { max, json }) => {
            let list = shared::webhooks::unrouted::list(stores, max).await?;
            if json {
                let items: Vec<_> = list
                    .iter()
                    .map(|u| {
                        serde_json::json!({
                            "id": u.id,
                            "item": u.item,
                            "body": if u.item.is_none() { Some(&u.body) } else { None },
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                println!("{} unrouted event(s)", list.len());
                for u in list {
                    match u.item {
                        Some(i) => println!(
                            "{}  {}  account={}  {}  received={}",
                            u.id,
                            i.event.provider,
                            i.event.account.as_ref().map_or("-", |a| a.as_str()),
                            i.event.event_type,
                            i.received_at
                        ),
                        None => println!("{}  unreadable: {}", u.id, preview(&u.body)),
                    }
                }
            }
        }
        Command::Webhook(WebhookCmd::Reroute) => {
            let (moved, left) = shared::webhooks::unrouted::reroute(stores).await?;
            println!("{moved} event(s) moved to the work queue, {left} still unrouted");
        }
        Command::Serve { .. }
        | Command::Sandboxes(_)
        | Command::Demo(_)
        | Command::Console { .. }
        | Command::Config
        | Command::Connect { .. }
        | Command::Pull { .. }
        | Command::Push { .. }
        | Command::Mappings(_)
        | Command::Work
        | Command::Status { .. }
        | Command::Reconcile { .. }
        | Command::Inventory { .. }
        | Command::Accounts { .. }
        | Command::Aws(_)
        | Command::Webhook(WebhookCmd::Verify { .. } | WebhookCmd::Sign { .. }) => {
            unreachable!("handled in execute")
        }
    }
    Ok(())
}

fn queue_named<'a>(stores: &'a Stores, name: &str) -> Result<&'a Arc<dyn WorkQueue>> {
    stores
        .queue(name)
        .ok_or_else(|| anyhow!("unknown queue {name:?}: expected work or push"))
}

fn preview(body: &str) -> String {
    let one_line: String = body.chars().filter(|c| !c.is_control()).take(120).collect();
    if body.chars().count() > 120 {
        format!("{one_line}…")
    } else {
        one_line
    }
}

fn print_preview(p: &shared::ops::books::Preview, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(p)?);
        return Ok(());
    }
    for day in &p.days {
        println!(
            "{} {}: {} record(s){}",
            day.business_date,
            day.location,
            day.records,
            if day.imbalance.is_zero() {
                String::new()
            } else {
                format!(", OUT OF BALANCE by {}", day.imbalance)
            }
        );
        let mut table = crate::table::new(&["ROLE", "DEBIT", "CREDIT"]);
        for l in &day.lines {
            let (dr, cr) = if l.amount.is_sign_negative() {
                (String::new(), (-l.amount).to_string())
            } else {
                (l.amount.to_string(), String::new())
            };
            table.add_row(vec![l.role.clone(), dr, cr]);
        }
        crate::table::numeric(&mut table, &[1, 2]);
        println!("{table}");
    }
    for r in &p.records {
        for posting in &r.postings {
            if let Some(why) = &posting.refused {
                println!(
                    "{} {} -> {}: not posted: {why}",
                    r.kind, r.id, posting.destination
                );
            }
        }
    }
    if !p.held.is_empty() {
        println!("held ({}):", p.held.len());
        for h in &p.held {
            println!("  {}: {}", h.id, h.why);
        }
    }
    if p.days.is_empty() && p.held.is_empty() {
        println!("no sales or refunds");
    }
    Ok(())
}

fn connection_from(a: ConnectionArgs) -> Result<Connection> {
    let time_zone = TimeZoneName::new(&a.time_zone).map_err(|e| {
        anyhow!(
            "--time-zone {:?} is not a known IANA time zone: {e}",
            a.time_zone
        )
    })?;
    let close: Time = a
        .close
        .parse()
        .map_err(|e| anyhow!("--close {:?} is not a time of day (HH:MM): {e}", a.close))?;
    let credentials = match a.credentials {
        Some(c) => c,
        None => Connection::default_secret(&a.tenant, &a.id)?,
    };
    Ok(Connection {
        id: a.id,
        tenant: a.tenant,
        provider: a.provider,
        account_id: a.account,
        time_zone,
        business_day_close: BusinessDayClose(close),
        credentials,
        mappings: Default::default(),
        codes: Default::default(),
        currency: a
            .currency
            .as_deref()
            .map(shared::model::Currency::new)
            .transpose()
            .map_err(|e| anyhow!("--currency: {e}"))?,
        books: if a.provider.is_accounting() {
            shared::model::journal::DestinationBooks {
                mode: a.posting,
                ..Default::default()
            }
        } else {
            Default::default()
        },
    })
}

fn print_config(config: &Config) -> Result<()> {
    match &config.backend {
        BackendConfig::Embedded {
            data_dir,
            max_receives,
        } => println!(
            "backend: embedded (database {}, secrets {}, dead-letter after {max_receives} receives)",
            data_dir.join("state.db").display(),
            data_dir.join("secrets.json").display()
        ),
        BackendConfig::Aws(aws) => println!(
            "backend: aws (state table {}, idempotency table {}, work queue {}, push queue {}, secrets under {})",
            aws.state_table,
            aws.idempotency_table,
            aws.work_queue_url,
            aws.push_queue_url,
            aws.secret_prefix
        ),
    }
    let mut table = crate::table::new(&["VARIABLE", "VALUE", "DEFAULT / MEANING"]);
    for (name, default, meaning) in VARIABLES {
        let value = std::env::var(name).unwrap_or_else(|_| "(unset)".into());
        table.add_row(vec![
            name.to_string(),
            value,
            format!("{default}: {meaning}"),
        ]);
    }
    println!("\n{table}");
    Ok(())
}

async fn bootstrap(prefix: &str, max_receives: u32) -> Result<()> {
    use shared::adapters::aws::schema;
    let sdk = shared::adapters::aws::load_sdk_config().await;
    let ddb = shared::adapters::aws::DynamoClient::new(&sdk);
    let sqs = shared::adapters::aws::SqsClient::new(&sdk);
    let (state, idem) = (format!("{prefix}-state"), format!("{prefix}-idempotency"));
    schema::create_state_table(&ddb, &state).await?;
    schema::create_idempotency_table(&ddb, &idem).await?;
    let work = schema::create_queue_with_dlq(&sqs, &format!("{prefix}-work"), max_receives).await?;
    let push = schema::create_queue_with_dlq(&sqs, &format!("{prefix}-push"), max_receives).await?;
    let unrouted = schema::create_queue(&sqs, &format!("{prefix}-unrouted")).await?;
    let pull = schema::create_queue_with_dlq(&sqs, &format!("{prefix}-pull"), max_receives).await?;
    let outbound = schema::create_queue(&sqs, &format!("{prefix}-outbound")).await?;
    println!("HUB_BACKEND=aws");
    println!("HUB_STATE_TABLE={state}");
    println!("HUB_IDEMPOTENCY_TABLE={idem}");
    println!("HUB_WORK_QUEUE_URL={work}");
    println!("HUB_PUSH_QUEUE_URL={push}");
    println!("HUB_UNROUTED_QUEUE_URL={unrouted}");
    println!("HUB_PULL_QUEUE_URL={pull}");
    println!("HUB_OUTBOUND_QUEUE_URL={outbound}");
    println!("HUB_SECRET_PREFIX={prefix}/");
    Ok(())
}

fn read_body(d: &DeliveryArgs) -> Result<Vec<u8>> {
    std::fs::read(&d.body_file)
        .with_context(|| format!("read --body-file {}", d.body_file.display()))
}

fn check_signable(d: &DeliveryArgs) -> Result<()> {
    if shared::webhooks::signature_header(d.provider).is_none() {
        return Err(UsageError(format!("{} webhooks are not signed", d.provider)).into());
    }
    if d.provider == Provider::Square && d.url.as_deref().is_none_or(str::is_empty) {
        return Err(UsageError(
            "--url is required for square: its signature covers the notification URL".into(),
        )
        .into());
    }
    Ok(())
}

/// A mistake in how the command was called (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A check that ran and said no (exit code 1, message already printed).
#[derive(Debug, thiserror::Error)]
#[error("invalid")]
pub struct Invalid;

fn verify_delivery(d: DeliveryArgs, headers: &[String]) -> Result<()> {
    check_signable(&d)?;
    let body = read_body(&d)?;
    let mut map = std::collections::HashMap::new();
    for h in headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| UsageError(format!("--header {h:?} is not `Name: value`")))?;
        map.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let header = shared::webhooks::signature_header(d.provider).unwrap_or_default();
    let keys = shared::webhooks::SigningKeys {
        current: d.secret.into(),
        previous: None,
    };
    let parts = shared::webhooks::SignedParts {
        body: &body,
        url: d.url.as_deref(),
    };
    match shared::webhooks::verify(
        d.provider,
        map.get(header).map(String::as_str),
        parts,
        &keys,
    ) {
        Ok(_) => {
            println!("valid");
            Ok(())
        }
        Err(e) => {
            println!("invalid: {e}");
            Err(Invalid.into())
        }
    }
}

fn sign_delivery(d: DeliveryArgs) -> Result<()> {
    check_signable(&d)?;
    let body = read_body(&d)?;
    let parts = shared::webhooks::SignedParts {
        body: &body,
        url: d.url.as_deref(),
    };
    let sig = shared::webhooks::sign(d.provider, parts, &d.secret.into())
        .map_err(|e| UsageError(e.to_string()))?;
    let header = shared::webhooks::signature_header(d.provider).unwrap_or_default();
    println!("{header}: {sig}");
    Ok(())
}

async fn pull(
    stores: &Stores,
    config: &Config,
    provider: Provider,
    tenant: &TenantId,
    range: Option<(jiff::civil::Date, jiff::civil::Date)>,
    json: bool,
) -> Result<()> {
    use shared::pipelines::pull::{PullOutcome, Puller, RunOptions, pull_or_defer};
    let connections: Vec<Connection> = stores
        .connections
        .list_for_tenant(tenant)
        .await?
        .into_iter()
        .filter(|c| c.provider == provider)
        .collect();
    if connections.is_empty() {
        bail!("tenant {tenant} has no {provider} connection");
    }
    let utc = |d: jiff::civil::Date| -> Result<jiff::Timestamp> {
        Ok(d.to_zoned_datetime(jiff::tz::TimeZone::UTC)?.timestamp())
    };
    let options = RunOptions {
        range: match range {
            Some((from, to)) if from < to => Some((utc(from)?, utc(to)?)),
            Some(_) => bail!("--from must be before --to"),
            None => None,
        },
        stop_after_pages: None,
    };
    let clients = shared::providers::ProviderClients::new(
        stores,
        config.endpoints.clone(),
        &config.public_url,
    );
    let puller = Puller::new(stores.clone(), Default::default());
    let mut all = Vec::new();
    for c in &connections {
        let reports = match pull_or_defer(&puller, &clients, c, options, jiff::Timestamp::now())
            .await
            .with_context(|| format!("pull {}/{}", c.tenant, c.id))?
        {
            PullOutcome::Done(reports) => reports,
            // Told to wait: not a failure; the schedule comes back to it.
            PullOutcome::Deferred(d) => {
                if !json {
                    println!(
                        "{}/{}: deferred until {} ({})",
                        c.tenant, c.id, d.until, d.reason
                    );
                }
                all.push(serde_json::json!({"connection": c.id, "deferred": d}));
                continue;
            }
        };
        for (stream, r) in reports {
            if !json {
                println!(
                    "{}/{} {stream}: {} page(s), {} record(s): {} new, {} changed, {} unchanged; {} push(es) queued",
                    c.tenant,
                    c.id,
                    r.pages,
                    r.tally.records,
                    r.tally.created,
                    r.tally.changed,
                    r.tally.unchanged,
                    r.tally.pushes
                );
            }
            all.push(serde_json::json!({"connection": c.id, "stream": stream, "report": r}));
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(())
}

async fn inventory(stores: &Stores, tenant: &TenantId, json: bool) -> Result<()> {
    let rows = stores
        .ledger
        .list_undated(tenant, shared::model::RecordKind::InventoryLevel)
        .await?;
    let levels: Vec<shared::model::InventoryLevel> = rows
        .into_iter()
        .filter_map(|r| serde_json::from_value::<shared::model::Record>(r.payload).ok())
        .filter_map(|r| match r {
            shared::model::Record::InventoryLevel(l) => Some(l),
            _ => None,
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&levels)?);
    } else {
        let mut table = crate::table::new(&["LOCATION", "ITEM", "QUANTITY", "UNIT", "COUNTED"]);
        for l in levels {
            table.add_row(vec![
                l.location.to_string(),
                l.name.unwrap_or_else(|| l.item_id.to_string()),
                l.quantity.to_string(),
                l.unit.to_string(),
                l.counted_at.to_string(),
            ]);
        }
        crate::table::numeric(&mut table, &[2]);
        println!("{table}");
    }
    Ok(())
}
