//! Pull cadence planned within each provider's budget.
//!
//! A provider's call budget is shared by every account that draws on it:
//! MarketMan allows 500 calls a day per API consumer, however many buyers the
//! consumer key reads; Toast 10,000 per quarter-hour per restaurant. The
//! schedule fires every [`Cadence::tick`]; at each tick only the connections
//! whose slot falls in it are pulled. A connection's slots are
//! [`Plan::interval`] apart, offset by a hash of its name so that the accounts
//! sharing a budget are spread over the interval rather than all pulled at
//! once.
//!
//! The interval is the smallest multiple of the tick, no shorter than the
//! configured target freshness, at which every account sharing the budget
//! can be pulled without spending more than the budget less its headroom (a
//! fifth, kept for webhook-driven fetches, posting and retries) in **any**
//! window of the budget: `sharing × calls_per_pull × ⌈window / interval⌉ ≤
//! usable`. The freshness each account gets is then a computed figure
//! ([`Plan::freshness`]) that `hub status` shows beside the target, and a
//! budget that cannot meet the target says so before it is spent.
//!
//! A pull told to wait anyway (a 429's long `Retry-After`, a spent budget) is
//! deferred, not failed: the connection is skipped until the wait is over,
//! then pulled at the next tick ([`Deferral`]).

use crate::Stores;
use crate::ids::StreamName;
use crate::model::{Connection, Provider};
use crate::ports::{CasOutcome, CursorKey, OutgoingMessage, StoreError};
use crate::providers::ProviderClients;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Per cent of every budget the planner leaves unplanned.
pub const HEADROOM_PERCENT: u64 = 20;

pub use crate::providers::kit::Cadence;

/// A pull job on the pull queue: one connection, every stream of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullJob {
    /// Whose.
    pub tenant: crate::ids::TenantId,
    /// Which connection.
    pub connection: crate::ids::ConnectionId,
}

/// The planned cadence of the connections sharing one budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The budget's key (`marketman:consumer-…`, `toast:<restaurant>`).
    pub budget_key: String,
    /// Connections drawing on it.
    pub sharing: u64,
    /// The configured freshness.
    #[serde(with = "secs")]
    pub target: SignedDuration,
    /// Time between one connection's pulls.
    #[serde(with = "secs")]
    pub interval: SignedDuration,
    /// The budget: calls allowed per window, and the window.
    pub budget_calls: Option<u64>,
    /// See `budget_calls`.
    #[serde(with = "opt_secs", default)]
    pub budget_window: Option<SignedDuration>,
    /// Calls the plan spends in any window of the budget, at most.
    pub planned_calls: Option<u64>,
}

impl Plan {
    /// The freshness each connection gets: at most this long between pulls.
    pub fn freshness(&self) -> SignedDuration {
        self.interval
    }

    /// Whether the budget covers the target.
    pub fn meets_target(&self) -> bool {
        self.interval <= self.target
    }

    /// One line saying why the target cannot be met, when it cannot.
    pub fn shortfall(&self) -> Option<String> {
        if self.meets_target() {
            return None;
        }
        let (Some(calls), Some(window)) = (self.budget_calls, self.budget_window) else {
            return None;
        };
        Some(format!(
            "budget {} ({calls} calls per {}, {HEADROOM_PERCENT}% kept back) is shared by {} connection(s): each can be pulled every {}, not every {} as configured",
            self.budget_key,
            human(window),
            self.sharing,
            human(self.interval),
            human(self.target),
        ))
    }

    /// Whether the connection ranked `rank` (0-based, by name) among the
    /// plan's `sharing` is due at the tick containing `at` (ticks are
    /// `tick` long, counted from the epoch). The sharing connections' slots
    /// are spread evenly over the interval, so the budget is drawn on
    /// steadily rather than all at once.
    pub fn due(&self, rank: u64, tick: SignedDuration, at: Timestamp) -> bool {
        let tick_ms = tick.as_millis().max(1);
        let per_interval = (self.interval.as_millis() / tick_ms).max(1);
        let index = i128::from(at.as_millisecond()).div_euclid(tick_ms);
        let offset = i128::from(rank) * per_interval / i128::from(self.sharing.max(1));
        (index - offset).rem_euclid(per_interval) == 0
    }
}

/// The plan for `sharing` connections on one budget at `cadence`.
pub fn plan(cadence: &Cadence, budget_key: &str, sharing: u64) -> Plan {
    let tick_ms = cadence.tick.as_millis().max(1);
    let ceil = |a: i128, b: i128| (a + b - 1) / b;
    let mut ticks = ceil(cadence.target.as_millis().max(tick_ms), tick_ms);
    let mut budget_calls = None;
    let mut budget_window = None;
    let mut planned_calls = None;
    if let Some(limit) = cadence.budget {
        let window_ms = limit.per.as_millis() as i128;
        let usable = i128::from(u64::from(limit.max) * (100 - HEADROOM_PERCENT) / 100);
        let calls = i128::from(cadence.calls_per_pull.max(1));
        let sharing = i128::from(sharing.max(1));
        // Calls in any window: each connection's slots are `interval`
        // apart, so a window holds at most ⌈window / interval⌉ of them.
        let spent = |ticks: i128| sharing * calls * ceil(window_ms, ticks * tick_ms);
        let one_per_window = ceil(window_ms, tick_ms);
        while spent(ticks) > usable && ticks < one_per_window {
            ticks += 1;
        }
        let planned = if spent(ticks) <= usable {
            spent(ticks)
        } else {
            // Not even one pull each per window: the connections take turns,
            // their slots spread evenly over as many windows as it takes, so
            // a window holds ⌈window / spacing⌉ + 1 pulls at most.
            let per_window = (usable / calls).max(2);
            let windows = ceil(sharing, per_window - 1);
            ticks = one_per_window * windows;
            let spacing = (ticks * tick_ms / sharing).max(1);
            calls * (ceil(window_ms, spacing) + 1)
        };
        budget_calls = Some(u64::from(limit.max));
        budget_window = SignedDuration::try_from(limit.per).ok();
        planned_calls = u64::try_from(planned).ok();
    }
    Plan {
        budget_key: budget_key.to_string(),
        sharing,
        target: cadence.target,
        interval: SignedDuration::from_millis(i64::try_from(ticks * tick_ms).unwrap_or(i64::MAX)),
        budget_calls,
        budget_window,
        planned_calls,
    }
}

/// A pull put off until the provider allows it: the connection is skipped
/// until `until`, then pulled at the next tick, whatever its slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferral {
    /// Not before this.
    pub until: Timestamp,
    /// Why, as the provider said it.
    pub reason: String,
}

fn deferral_key(c: &Connection) -> Result<CursorKey, StoreError> {
    Ok(CursorKey {
        tenant: c.tenant.clone(),
        provider: c.provider,
        stream: StreamName::new(format!("{}.deferral", c.id))
            .map_err(|e| StoreError::corrupt("stream name", e))?,
    })
}

/// The connection's deferral, if one stands.
pub async fn deferral(stores: &Stores, c: &Connection) -> Result<Option<Deferral>, StoreError> {
    let Some(cur) = stores.cursors.get(&deferral_key(c)?).await? else {
        return Ok(None);
    };
    if cur.value.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&cur.value)
        .map(Some)
        .map_err(|e| StoreError::corrupt(format!("deferral of {}/{}", c.tenant, c.id), e))
}

async fn set_deferral(
    stores: &Stores,
    c: &Connection,
    value: Option<&Deferral>,
) -> Result<(), StoreError> {
    let key = deferral_key(c)?;
    let value = match value {
        Some(d) => serde_json::to_string(d).map_err(|e| StoreError::corrupt("deferral", e))?,
        None => String::new(),
    };
    // Last writer wins: two pulls of one connection say the same thing.
    let mut current = stores.cursors.get(&key).await?;
    for _ in 0..5 {
        if current.as_ref().map(|c| c.value.as_str()) == Some(value.as_str())
            || (current.is_none() && value.is_empty())
        {
            return Ok(());
        }
        let expected = current.as_ref().map(|c| c.version);
        match stores
            .cursors
            .compare_and_set(&key, expected, &value)
            .await?
        {
            CasOutcome::Set(_) => return Ok(()),
            CasOutcome::Conflict { current: now } => current = now,
        }
    }
    Err(StoreError::Conflict(format!(
        "deferral of {}/{} kept changing",
        c.tenant, c.id
    )))
}

/// Puts the connection's pulls off until `until`.
pub async fn defer(
    stores: &Stores,
    c: &Connection,
    until: Timestamp,
    reason: &str,
) -> Result<Deferral, StoreError> {
    let d = Deferral {
        until,
        reason: reason.to_string(),
    };
    set_deferral(stores, c, Some(&d)).await?;
    tracing::info!(tenant = %c.tenant, connection = %c.id, %until, reason, "pull deferred");
    Ok(d)
}

/// Ends the connection's deferral (its pull ran).
pub async fn clear_deferral(stores: &Stores, c: &Connection) -> Result<(), StoreError> {
    set_deferral(stores, c, None).await
}

/// The connections of `provider` grouped by the budget they share, each
/// group with its plan, connections in rank order (by tenant and id).
pub async fn plans(
    stores: &Stores,
    clients: &ProviderClients,
    provider: Provider,
) -> Result<Vec<(Plan, Vec<Connection>)>, StoreError> {
    let Some(cadence) = Cadence::of(provider) else {
        return Ok(Vec::new());
    };
    let mut connections: Vec<Connection> = stores
        .connections
        .list_all()
        .await?
        .into_iter()
        .filter(|c| c.provider == provider)
        .collect();
    connections.sort_by(|a, b| (&a.tenant, &a.id).cmp(&(&b.tenant, &b.id)));
    let mut groups: BTreeMap<String, Vec<Connection>> = BTreeMap::new();
    for c in connections {
        let account = match crate::providers::registry::budget_account(clients, &c).await {
            Ok(k) => k,
            Err(e) => {
                // Its pull will fail and say why; it plans on its own.
                tracing::warn!(tenant = %c.tenant, connection = %c.id, error = %e, "budget of a connection unknown");
                format!("{}/{}", c.tenant, c.id)
            }
        };
        groups
            .entry(format!("{provider}:{account}"))
            .or_default()
            .push(c);
    }
    Ok(groups
        .into_iter()
        .map(|(key, cs)| (plan(&cadence, &key, cs.len() as u64), cs))
        .collect())
}

/// What one schedule tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tick {
    /// Pull jobs queued.
    pub queued: usize,
    /// Connections whose slot is another tick.
    pub not_due: usize,
    /// Connections put off, `tenant/connection` → until when.
    pub deferred: BTreeMap<String, Timestamp>,
    /// The plans the tick went by.
    pub plans: Vec<Plan>,
}

/// One schedule tick at `now`: a pull job for each connection of
/// `provider` whose slot falls in this tick or whose deferral is over.
pub async fn tick(
    stores: &Stores,
    clients: &ProviderClients,
    provider: Provider,
    now: Timestamp,
) -> Result<Tick, StoreError> {
    let Some(cadence) = Cadence::of(provider) else {
        return Ok(Tick::default());
    };
    let mut out = Tick::default();
    let mut jobs = Vec::new();
    for (plan, connections) in plans(stores, clients, provider).await? {
        for (rank, c) in connections.iter().enumerate() {
            match deferral(stores, c).await? {
                Some(d) if d.until > now => {
                    out.deferred
                        .insert(format!("{}/{}", c.tenant, c.id), d.until);
                    continue;
                }
                // A deferral that is over: pulled now, whatever its slot.
                Some(_) => {}
                None if plan.due(rank as u64, cadence.tick, now) => {}
                None => {
                    out.not_due += 1;
                    continue;
                }
            }
            let job = PullJob {
                tenant: c.tenant.clone(),
                connection: c.id.clone(),
            };
            jobs.push(OutgoingMessage::new(
                serde_json::to_string(&job).map_err(|e| StoreError::corrupt("pull job", e))?,
            ));
        }
        if let Some(why) = plan.shortfall() {
            tracing::warn!(budget = %plan.budget_key, sharing = plan.sharing, "{why}");
        }
        out.plans.push(plan);
    }
    if !jobs.is_empty() {
        stores.pull_queue.send_batch(&jobs).await?;
    }
    out.queued = jobs.len();
    Ok(out)
}

/// `6h`, `15m`, `2d 4h`.
pub fn human(d: SignedDuration) -> String {
    let secs = d.as_secs();
    let (days, hours, mins) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(format!("{days}d"));
    }
    if hours > 0 {
        parts.push(format!("{hours}h"));
    }
    if mins > 0 || parts.is_empty() {
        parts.push(format!("{mins}m"));
    }
    parts.join(" ")
}

mod secs {
    use jiff::SignedDuration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &SignedDuration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SignedDuration, D::Error> {
        Ok(SignedDuration::from_secs(i64::deserialize(d)?))
    }
}

mod opt_secs {
    use jiff::SignedDuration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<SignedDuration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SignedDuration>, D::Error> {
        Ok(Option::<i64>::deserialize(d)?.map(SignedDuration::from_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_tick(i: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 / 900 * 900 + i * 900).unwrap()
    }

    /// Pulls per connection over `days` of ticks, and the most calls any
    /// window of the budget (sliding, tick by tick) saw.
    fn simulate(c: &Cadence, sharing: u64, days: i64) -> (Vec<u64>, u64) {
        let p = plan(c, "b", sharing);
        let ticks_per_day = 86_400 / c.tick.as_secs();
        let mut pulls = vec![0u64; sharing as usize];
        let mut per_tick = Vec::new();
        for i in 0..days * ticks_per_day {
            let mut n = 0;
            for rank in 0..sharing {
                if p.due(rank, c.tick, at_tick(i)) {
                    pulls[rank as usize] += 1;
                    n += c.calls_per_pull;
                }
            }
            per_tick.push(n);
        }
        let window = (c.budget.unwrap().per.as_secs() as i64 / c.tick.as_secs()) as usize;
        let peak = per_tick
            .windows(window)
            .map(|w| w.iter().sum())
            .max()
            .unwrap_or(0);
        (pulls, peak)
    }

    #[test]
    fn a_hundred_buyers_on_one_consumer_are_pulled_twice_a_day_within_its_budget() {
        let c = Cadence::of(Provider::MarketMan).unwrap();
        let p = plan(&c, "marketman:consumer", 100);
        assert_eq!(p.interval, SignedDuration::from_hours(12));
        assert!(!p.meets_target());
        assert_eq!(p.planned_calls, Some(400));
        let (pulls, peak) = simulate(&c, 100, 3);
        assert!(pulls.iter().all(|n| *n == 6), "{pulls:?}");
        assert!(peak <= 400, "{peak} calls in a day");
        assert!(
            p.shortfall().unwrap().contains(
                "shared by 100 connection(s): each can be pulled every 12h, not every 6h"
            )
        );
    }

    #[test]
    fn a_budget_with_room_keeps_the_target() {
        let c = Cadence::of(Provider::MarketMan).unwrap();
        let p = plan(&c, "marketman:consumer", 10);
        assert_eq!(p.interval, SignedDuration::from_hours(6));
        assert!(p.meets_target() && p.shortfall().is_none());
        let (pulls, peak) = simulate(&c, 10, 2);
        assert!(pulls.iter().all(|n| *n == 8), "{pulls:?}");
        assert_eq!(peak, 80);
        let toast = Cadence::of(Provider::Toast).unwrap();
        assert_eq!(
            plan(&toast, "toast:r", 1).interval,
            SignedDuration::from_mins(15)
        );
    }

    #[test]
    fn a_budget_too_small_for_one_pull_each_a_day_takes_turns_and_stays_inside() {
        let c = Cadence::of(Provider::MarketMan).unwrap();
        let p = plan(&c, "marketman:consumer", 1000);
        assert!(
            p.interval >= SignedDuration::from_hours(24 * 5),
            "{:?}",
            p.interval
        );
        let (pulls, peak) = simulate(&c, 1000, 12);
        assert!(pulls.iter().all(|n| *n >= 1), "every buyer is pulled");
        assert!(peak <= 500, "{peak} calls in a day");
        assert!(
            peak <= p.planned_calls.unwrap(),
            "{peak} > planned {:?}",
            p.planned_calls
        );
    }

    /// The figures README.md's table gives.
    #[test]
    fn the_planned_freshness_at_10_100_and_1000_accounts_per_budget() {
        let of = |p: Provider, n: u64| human(plan(&Cadence::of(p).unwrap(), "b", n).freshness());
        let marketman: Vec<String> = [10, 100, 1000].map(|n| of(Provider::MarketMan, n)).into();
        assert_eq!(marketman, ["6h", "12h", "6d"]);
        assert_eq!(of(Provider::Toast, 1), "15m");
        assert_eq!(of(Provider::Square, 1000), "15m");
    }

    #[test]
    fn every_planned_figure_keeps_the_budget_for_any_number_sharing() {
        for provider in [Provider::MarketMan, Provider::Toast] {
            let c = Cadence::of(provider).unwrap();
            for sharing in [1, 2, 7, 10, 62, 63, 100, 250, 999] {
                let p = plan(&c, "b", sharing);
                assert!(p.interval >= c.target);
                assert!(
                    p.planned_calls.unwrap() <= u64::from(c.budget.unwrap().max),
                    "{provider} × {sharing}: {p:?}"
                );
            }
        }
    }
}
