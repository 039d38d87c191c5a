//! Connection health: per connection, a cheap authenticated reachability
//! check and its latency; success rate and latency percentiles over the last
//! hour of recorded provider calls; and business checks (age of the last
//! successful pull, records not posted, dead-letter depth, days until the
//! refresh token expires). Each connection is healthy, degraded or unhealthy
//! with the reasons. The state is stored, and an alert is sent only when it
//! changes (with a recovery notice when it heals), never once per check.
//! Metrics go out as CloudWatch embedded-metric-format log lines.

use crate::Stores;
use crate::ids::StreamName;
use crate::model::{Connection, Provider};
use crate::ports::{CallOutcome, CasOutcome, CursorKey, DestinationStatus, StoreError};
use crate::providers::http::LazyClient;
use crate::providers::{ProviderClients, ProviderError};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// A connection's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// All checks pass.
    Healthy,
    /// Something needs attention soon.
    Degraded,
    /// Something is broken now.
    Unhealthy,
}

/// Thresholds of the checks.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Calls considered for rates and latencies.
    pub window: SignedDuration,
    /// Success rate (per mille) under which a connection is degraded / unhealthy.
    pub success_degraded_permille: u32,
    /// See `success_degraded_permille`.
    pub success_unhealthy_permille: u32,
    /// p95 latency over which a connection is degraded.
    pub p95_degraded_ms: u64,
    /// Age of the last successful pull over which a source is degraded / unhealthy.
    pub pull_degraded: SignedDuration,
    /// See `pull_degraded`.
    pub pull_unhealthy: SignedDuration,
    /// Days before refresh-token expiry at which a destination is degraded / unhealthy.
    pub token_degraded_days: i64,
    /// See `token_degraded_days`.
    pub token_unhealthy_days: i64,
    /// Business days back checked for records not posted.
    pub unposted_lookback_days: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            window: SignedDuration::from_hours(1),
            success_degraded_permille: 950,
            success_unhealthy_permille: 500,
            p95_degraded_ms: 5_000,
            pull_degraded: SignedDuration::from_hours(2),
            pull_unhealthy: SignedDuration::from_hours(24),
            token_degraded_days: 14,
            token_unhealthy_days: 3,
            unposted_lookback_days: 3,
        }
    }
}

/// One connection's health report (the `hub status --json` element; stable,
/// documented in `docs/status.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionHealth {
    /// Whose.
    pub tenant: String,
    /// Which connection.
    pub connection: String,
    /// Its provider.
    pub provider: Provider,
    /// The verdict.
    pub state: State,
    /// Why, one line per failed check.
    pub reasons: Vec<String>,
    /// When checked.
    pub checked_at: Timestamp,
    /// The reachability check's latency, when it answered.
    pub reachability_ms: Option<u64>,
    /// Calls in the window.
    pub calls: u64,
    /// Successful calls per thousand in the window.
    pub success_permille: Option<u32>,
    /// Median latency in the window.
    pub p50_ms: Option<u64>,
    /// 95th-percentile latency in the window.
    pub p95_ms: Option<u64>,
    /// When a pull of this connection last succeeded.
    pub last_pull: Option<Timestamp>,
    /// When a record was last posted to this destination.
    pub last_post: Option<Timestamp>,
    /// Records not posted (pending or failed) in the last business days.
    pub unposted: u64,
    /// Messages in the dead-letter queues.
    pub dlq_depth: u64,
    /// Days until the refresh token expires, where known.
    pub refresh_token_days_left: Option<i64>,
    /// Sources: the budget its calls draw on (`marketman:consumer-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
    /// Sources: connections sharing that budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_sharing: Option<u64>,
    /// Sources: the longest wait between pulls the budget allows, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_freshness_secs: Option<i64>,
    /// Sources: the configured freshness, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_freshness_secs: Option<i64>,
    /// Sources: pulls put off until then (a provider said to wait).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferred_until: Option<Timestamp>,
}

/// The `p`th percentile (nearest rank) of `sorted`, none when it is empty.
pub fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = (sorted.len() * p)
        .div_ceil(100)
        .saturating_sub(1)
        .min(sorted.len() - 1);
    Some(sorted[idx])
}

async fn ping(clients: &ProviderClients, c: &Connection) -> Result<(), ProviderError> {
    crate::providers::registry::kit(c.provider)
        .ping(clients, c)
        .await
}

/// Messages waiting in the work, push and pull dead-letter queues.
pub async fn dead_letters(stores: &Stores) -> Result<u64, StoreError> {
    let mut n = 0;
    for q in [&stores.work_queue, &stores.push_queue, &stores.pull_queue] {
        n += q.depth().await?.dead;
    }
    Ok(n)
}

/// Checks one connection; `dlq_depth` is [`dead_letters`], read once per
/// run, and `plan` its pull plan ([`crate::pipelines::cadence::plans`]).
pub async fn check(
    stores: &Stores,
    clients: &ProviderClients,
    c: &Connection,
    t: &Thresholds,
    dlq_depth: u64,
    plan: Option<&crate::pipelines::cadence::Plan>,
) -> Result<ConnectionHealth, StoreError> {
    let now = Timestamp::now();
    let mut unhealthy = Vec::new();
    let mut degraded = Vec::new();

    // Reachability.
    let t0 = std::time::Instant::now();
    let reachability_ms = match ping(clients, c).await {
        Ok(()) if !matches!(c.provider, Provider::MarketMan | Provider::TimeTracking) => {
            Some(u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX))
        }
        Ok(()) => None,
        Err(e) => {
            unhealthy.push(format!("unreachable: {e}"));
            None
        }
    };

    // The call log, under the budget the connection's calls draw on.
    let account = match plan {
        Some(p) => p.budget_key.clone(),
        None => format!("{}:{}", c.provider, c.account_id),
    };
    let calls = stores.calls.since(&account, now - t.window).await?;
    let total = calls.len() as u64;
    let ok = calls
        .iter()
        .filter(|x| x.outcome == CallOutcome::Ok)
        .count() as u64;
    let success_permille = (total > 0).then(|| u32::try_from(ok * 1000 / total).unwrap_or(0));
    let mut latencies: Vec<u64> = calls.iter().map(|x| x.latency_ms).collect();
    latencies.sort_unstable();
    let (p50_ms, p95_ms) = (percentile(&latencies, 50), percentile(&latencies, 95));
    if let Some(rate) = success_permille {
        if rate < t.success_unhealthy_permille {
            unhealthy.push(format!(
                "success rate {}.{}% over the last {}",
                rate / 10,
                rate % 10,
                crate::pipelines::cadence::human(t.window)
            ));
        } else if rate < t.success_degraded_permille {
            degraded.push(format!(
                "success rate {}.{}% over the last {}",
                rate / 10,
                rate % 10,
                crate::pipelines::cadence::human(t.window)
            ));
        }
    }
    if let Some(p95) = p95_ms
        && p95 > t.p95_degraded_ms
    {
        degraded.push(format!("p95 latency {p95} ms"));
    }

    // Last successful pull (sources).
    let mut last_pull = None;
    if let Some(source) = crate::providers::registry::source(c.provider) {
        for s in source.stream_names() {
            let key = CursorKey {
                tenant: c.tenant.clone(),
                provider: c.provider,
                stream: StreamName::new(format!("{}.{s}", c.id))
                    .map_err(|e| StoreError::corrupt("stream name", e))?,
            };
            if let Some(cur) = stores.cursors.get(&key).await? {
                last_pull = last_pull.max(Some(cur.updated_at));
            }
        }
        // A budget that spaces pulls wider than the thresholds moves them.
        let planned = plan.map_or(SignedDuration::ZERO, |p| p.freshness());
        let pull_degraded = t.pull_degraded.max(planned + SignedDuration::from_mins(30));
        let pull_unhealthy = t.pull_unhealthy.max(planned * 2);
        match last_pull {
            None => degraded.push("never pulled".into()),
            Some(at) if now.duration_since(at) > pull_unhealthy => {
                unhealthy.push(format!("last successful pull {at}"))
            }
            Some(at) if now.duration_since(at) > pull_degraded => {
                degraded.push(format!("last successful pull {at}"))
            }
            _ => {}
        }
    }

    // Records not posted (destinations).
    let mut unposted = 0u64;
    let mut last_post = None;
    // Parts with no mapping (keys named) and records held as they are.
    let mut unmapped: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut held = 0u64;
    if c.provider.is_accounting() {
        let today = now.to_zoned_datetime(c.time_zone.zone()).date();
        for back in 0..=t.unposted_lookback_days {
            let Some(day) = today.checked_sub(jiff::Span::new().days(back)).ok() else {
                continue;
            };
            for row in stores.ledger.list_for_business_date(&c.tenant, day).await? {
                if let Some(s) = row.destinations.get(&c.provider) {
                    if s.status == DestinationStatus::Failed
                        && let Some(e) = s.last_error.as_deref()
                    {
                        if let Some(keys) = crate::pipelines::push::unmapped_keys(e) {
                            unmapped.extend(keys);
                        } else if e.contains("held, not booked") {
                            held += 1;
                        }
                    }
                    match s.status {
                        DestinationStatus::Posted if s.version == row.version => {
                            last_post = last_post.max(Some(s.updated_at))
                        }
                        _ if now.duration_since(row.updated_at) > SignedDuration::from_mins(30) => {
                            unposted += 1
                        }
                        _ => {}
                    }
                }
            }
        }
        if unposted > 0 {
            degraded.push(format!(
                "{unposted} record(s) of the last {} business days not posted",
                t.unposted_lookback_days + 1
            ));
        }
        if !unmapped.is_empty() {
            degraded.push(format!(
                "parts with no {} mapping hold records: {} (hub connection map)",
                c.provider,
                unmapped.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        if held > 0 {
            degraded.push(format!(
                "{held} record(s) held: their parts do not balance (hub books preview says why)"
            ));
        }
        if c.books.mode == crate::model::journal::PostingMode::DailySummary {
            // The daily journal: days held for mapping, over/short beyond
            // the threshold, per source.
            let mut held_keys = std::collections::BTreeSet::new();
            let mut held_days = std::collections::BTreeSet::new();
            let mut over = Vec::new();
            for source in stores.connections.list_for_tenant(&c.tenant).await? {
                let book = crate::pipelines::days::book(stores, c, &source.id).await?;
                for (day, keys) in &book.held {
                    held_days.insert(*day);
                    held_keys.extend(keys.iter().cloned());
                }
                over.extend(book.over_short.iter().map(|(d, a)| format!("{a} on {d}")));
            }
            if !held_days.is_empty() {
                degraded.push(format!(
                    "{} day(s) held for mapping ({}): no account for {} (hub mappings suggest)",
                    held_days.len(),
                    held_days
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    held_keys.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
            if !over.is_empty() {
                degraded.push(format!(
                    "over/short beyond {} in the daily journal: {}",
                    c.books.over_short_alert,
                    over.join(", ")
                ));
            }
        }
    }

    // Dead letters.
    if dlq_depth > 0 {
        degraded.push(format!("{dlq_depth} message(s) in dead-letter queues"));
    }

    // Refresh token expiry.
    let mut refresh_token_days_left = None;
    if let Ok(raw) = stores.secrets.get(&c.credentials).await
        && let Ok(creds) = crate::providers::auth::Credentials::parse(&raw, &c.credentials)
        && let Some(exp) = creds.token.and_then(|t| t.refresh_expires_at)
    {
        let days = exp.duration_since(now).as_hours() / 24;
        refresh_token_days_left = Some(days);
        if days < t.token_unhealthy_days {
            unhealthy.push(format!("refresh token expires in {days} day(s): reconnect"));
        } else if days < t.token_degraded_days {
            degraded.push(format!("refresh token expires in {days} day(s)"));
        }
    }

    // The pull plan: the budget, how many share it, the freshness it allows.
    let deferred_until = match plan {
        Some(_) => crate::pipelines::cadence::deferral(stores, c)
            .await?
            .map(|d| d.until)
            .filter(|until| *until > now),
        None => None,
    };
    if let Some(why) = plan.and_then(crate::pipelines::cadence::Plan::shortfall) {
        degraded.push(why);
    }

    let state = if !unhealthy.is_empty() {
        State::Unhealthy
    } else if !degraded.is_empty() {
        State::Degraded
    } else {
        State::Healthy
    };
    unhealthy.extend(degraded);
    Ok(ConnectionHealth {
        tenant: c.tenant.to_string(),
        connection: c.id.to_string(),
        provider: c.provider,
        state,
        reasons: unhealthy,
        checked_at: now,
        reachability_ms,
        calls: total,
        success_permille,
        p50_ms,
        p95_ms,
        last_pull,
        last_post,
        unposted,
        dlq_depth,
        refresh_token_days_left,
        budget: plan.map(|p| p.budget_key.clone()),
        budget_sharing: plan.map(|p| p.sharing),
        planned_freshness_secs: plan.map(|p| p.freshness().as_secs()),
        target_freshness_secs: plan.map(|p| p.target.as_secs()),
        deferred_until,
    })
}

/// The CloudWatch embedded-metric-format line for a report.
pub fn emf_line(h: &ConnectionHealth) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": h.checked_at.as_millisecond(),
            "CloudWatchMetrics": [{
                "Namespace": "IntegrationHub",
                "Dimensions": [["Provider", "Tenant", "Connection"]],
                "Metrics": [
                    {"Name": "Healthy", "Unit": "Count"},
                    {"Name": "SuccessPermille", "Unit": "Count"},
                    {"Name": "LatencyP95", "Unit": "Milliseconds"},
                    {"Name": "ReachabilityLatency", "Unit": "Milliseconds"},
                    {"Name": "DeadLetters", "Unit": "Count"},
                    {"Name": "Unposted", "Unit": "Count"}
                ]
            }]
        },
        "Provider": h.provider,
        "Tenant": h.tenant,
        "Connection": h.connection,
        "Healthy": u8::from(h.state == State::Healthy),
        "SuccessPermille": h.success_permille,
        "LatencyP95": h.p95_ms,
        "ReachabilityLatency": h.reachability_ms,
        "DeadLetters": h.dlq_depth,
        "Unposted": h.unposted,
    })
    .to_string()
}

/// Where alerts go: a Slack-compatible incoming webhook.
#[derive(Debug, Clone)]
pub struct Alerter {
    client: LazyClient,
    webhook_url: Option<String>,
}

impl Alerter {
    /// Alerts to `webhook_url` (none: alerts are only logged), over a client
    /// of its own, built when the first alert is sent.
    pub fn new(webhook_url: Option<String>) -> Self {
        Alerter::with_client(webhook_url, LazyClient::default())
    }

    /// Alerts to `webhook_url` over `client`: the provider clients' one
    /// (`ProviderHttp::lazy_client`), so a process has one TLS configuration
    /// and builds it only when something is sent.
    pub fn with_client(webhook_url: Option<String>, client: LazyClient) -> Self {
        Alerter {
            client,
            webhook_url,
        }
    }

    async fn send(&self, text: &str) {
        tracing::warn!(alert = %text, "connection health changed");
        if let Some(url) = &self.webhook_url {
            match self
                .client
                .get()
                .post(url)
                .json(&serde_json::json!({ "text": text }))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::error!(
                    status = r.status().as_u16(),
                    "alert webhook refused the alert"
                ),
                Err(e) => tracing::error!(error = %e, "alert webhook unreachable"),
            }
        }
    }
}

fn health_key(c: &Connection) -> Result<CursorKey, StoreError> {
    Ok(CursorKey {
        tenant: c.tenant.clone(),
        provider: c.provider,
        stream: StreamName::new(format!("{}.health", c.id))
            .map_err(|e| StoreError::corrupt("stream name", e))?,
    })
}

/// One change of a connection's state, as it was alerted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// When the check that saw it ran.
    pub at: Timestamp,
    /// Whose.
    pub tenant: String,
    /// Which connection.
    pub connection: String,
    /// Its provider.
    pub provider: Provider,
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// The alert's text.
    pub text: String,
}

/// Changes kept per connection, newest last.
pub const ALERTS_KEPT: usize = 200;

fn alerts_key(c: &Connection) -> Result<CursorKey, StoreError> {
    Ok(CursorKey {
        tenant: c.tenant.clone(),
        provider: c.provider,
        stream: StreamName::new(format!("{}.alerts", c.id))
            .map_err(|e| StoreError::corrupt("stream name", e))?,
    })
}

/// A connection's changes of state, oldest first (the last [`ALERTS_KEPT`]).
pub async fn alert_history(stores: &Stores, c: &Connection) -> Result<Vec<Alert>, StoreError> {
    match stores.cursors.get(&alerts_key(c)?).await? {
        Some(cur) => {
            serde_json::from_str(&cur.value).map_err(|e| StoreError::corrupt("alert history", e))
        }
        None => Ok(Vec::new()),
    }
}

async fn record_alert(stores: &Stores, c: &Connection, alert: Alert) -> Result<(), StoreError> {
    let key = alerts_key(c)?;
    // Compare-and-set: a concurrent monitor run appends, never overwrites.
    for _ in 0..5 {
        let current = stores.cursors.get(&key).await?;
        let mut list: Vec<Alert> = match &current {
            Some(cur) => serde_json::from_str(&cur.value)
                .map_err(|e| StoreError::corrupt("alert history", e))?,
            None => Vec::new(),
        };
        list.push(alert.clone());
        let excess = list.len().saturating_sub(ALERTS_KEPT);
        list.drain(..excess);
        let value =
            serde_json::to_string(&list).map_err(|e| StoreError::corrupt("alert history", e))?;
        if let CasOutcome::Set(_) = stores
            .cursors
            .compare_and_set(&key, current.map(|c| c.version), &value)
            .await?
        {
            return Ok(());
        }
    }
    Err(StoreError::Conflict(format!(
        "alert history of {}/{} kept moving",
        c.tenant, c.id
    )))
}

/// The last stored report of a connection.
pub async fn last_report(
    stores: &Stores,
    c: &Connection,
) -> Result<Option<ConnectionHealth>, StoreError> {
    Ok(stores
        .cursors
        .get(&health_key(c)?)
        .await?
        .and_then(|cur| serde_json::from_str(&cur.value).ok()))
}

/// Checks every connection, stores each report, and alerts on every change
/// of state (a recovery notice when one heals), keeping the change in the
/// connection's alert history. The caller logs the metrics ([`emf_line`]):
/// the Lambda function into its log, never a person's terminal.
pub async fn monitor(
    stores: &Stores,
    clients: &ProviderClients,
    alerter: &Alerter,
    t: &Thresholds,
) -> Result<Vec<ConnectionHealth>, StoreError> {
    monitor_with(stores, clients, &|_| None, alerter, t).await
}

/// [`monitor`], with `clients_for` giving a connection clients of its own
/// where it has them (the demo's Square merchants are a sandbox each).
pub async fn monitor_with(
    stores: &Stores,
    clients: &ProviderClients,
    clients_for: &(dyn Fn(&Connection) -> Option<ProviderClients> + Send + Sync),
    alerter: &Alerter,
    t: &Thresholds,
) -> Result<Vec<ConnectionHealth>, StoreError> {
    let mut out = Vec::new();
    // Pushes a crash left unqueued go back on the queue first.
    let swept = crate::pipelines::records::requeue_stranded(
        stores,
        Timestamp::now(),
        crate::pipelines::records::requeue_pending_after(),
        t.unposted_lookback_days,
    )
    .await?;
    if swept.requeued > 0 {
        tracing::warn!(requeued = swept.requeued, "stranded pushes queued again");
    }
    let dlq_depth = dead_letters(stores).await?;
    // Each source's pull plan, worked out once for the run.
    let mut plans = std::collections::BTreeMap::new();
    for provider in crate::providers::registry::sources() {
        for (plan, connections) in
            crate::pipelines::cadence::plans(stores, clients, provider).await?
        {
            for c in connections {
                plans.insert((c.tenant, c.id), plan.clone());
            }
        }
    }
    for c in stores.connections.list_all().await? {
        let plan = plans.get(&(c.tenant.clone(), c.id.clone()));
        let own = clients_for(&c);
        let report = check(
            stores,
            own.as_ref().unwrap_or(clients),
            &c,
            t,
            dlq_depth,
            plan,
        )
        .await?;
        store_report(stores, &c, &report, alerter).await?;
        out.push(report);
    }
    Ok(out)
}

/// Checks one connection now, as [`monitor_with`] would, and stores its
/// report (alerting on a change of state). `None` when there is no such
/// connection.
pub async fn monitor_one(
    stores: &Stores,
    clients: &ProviderClients,
    clients_for: &(dyn Fn(&Connection) -> Option<ProviderClients> + Send + Sync),
    tenant: &crate::ids::TenantId,
    id: &crate::ids::ConnectionId,
    alerter: &Alerter,
    t: &Thresholds,
) -> Result<Option<ConnectionHealth>, StoreError> {
    let Some(c) = stores.connections.get(tenant, id).await? else {
        return Ok(None);
    };
    let dlq_depth = dead_letters(stores).await?;
    let mut plan = None;
    for (p, connections) in crate::pipelines::cadence::plans(stores, clients, c.provider).await? {
        if connections
            .iter()
            .any(|x| x.tenant == c.tenant && x.id == c.id)
        {
            plan = Some(p);
        }
    }
    let own = clients_for(&c);
    let report = check(
        stores,
        own.as_ref().unwrap_or(clients),
        &c,
        t,
        dlq_depth,
        plan.as_ref(),
    )
    .await?;
    store_report(stores, &c, &report, alerter).await?;
    Ok(Some(report))
}

/// Stores `report` as `c`'s latest; the run that moves the stored state
/// sends the alert and records it in the history.
async fn store_report(
    stores: &Stores,
    c: &Connection,
    report: &ConnectionHealth,
    alerter: &Alerter,
) -> Result<(), StoreError> {
    let key = health_key(c)?;
    let previous = stores.cursors.get(&key).await?;
    let before: Option<ConnectionHealth> = previous
        .as_ref()
        .and_then(|p| serde_json::from_str(&p.value).ok());
    let value =
        serde_json::to_string(report).map_err(|e| StoreError::corrupt("health report", e))?;
    // Only the run that moves the stored state sends the alert.
    if let CasOutcome::Set(_) = stores
        .cursors
        .compare_and_set(&key, previous.map(|p| p.version), &value)
        .await?
    {
        let was = before.map(|b| b.state).unwrap_or(State::Healthy);
        if was != report.state {
            let text = if report.state == State::Healthy {
                format!(
                    "RECOVERED: {} {}/{} is healthy again",
                    c.provider, c.tenant, c.id
                )
            } else {
                let label = if report.state == State::Unhealthy {
                    "UNHEALTHY"
                } else {
                    "DEGRADED"
                };
                format!(
                    "{label}: {} {}/{}: {}",
                    c.provider,
                    c.tenant,
                    c.id,
                    report.reasons.join("; ")
                )
            };
            alerter.send(&text).await;
            record_alert(
                stores,
                c,
                Alert {
                    at: report.checked_at,
                    tenant: c.tenant.to_string(),
                    connection: c.id.to_string(),
                    provider: c.provider,
                    from: was,
                    to: report.state,
                    text,
                },
            )
            .await?;
        }
    }
    Ok(())
}
