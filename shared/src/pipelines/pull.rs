//! Scheduled pulls with crash-safe cursors.
//!
//! A windowed stream (Toast orders, Square payments) is read over
//! `[cursor − overlap, now − settle)` in slices no longer than the provider
//! allows (Toast: a month), every page of every slice, and the cursor is
//! checkpointed after each page with compare-and-set: a crash resumes at the
//! next page, and a second puller finds its compare-and-set refused and stops.
//! The overlap re-reads recent history, so late edits are caught; the ledger's
//! content hash makes the re-read free of duplicates. Records stream page by
//! page into the ledger and queues; nothing holds every page in memory.
//!
//! Snapshot streams (menus, inventory) are read whole each run and upserted;
//! their cursor records the last successful run.

use super::records::{Tally, destinations, ingest};
use crate::Stores;
use crate::ids::StreamName;
use crate::model::{Connection, Provider};
use crate::ports::{CasOutcome, CursorKey, StoreError};
use crate::providers::ProviderError;
use crate::providers::kit::Stream;
use crate::providers::registry;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

pub use super::cadence::PullJob;
pub use crate::providers::kit::{Page, PageToken, PullError, SnapshotStream, WindowedStream};

/// How a pull reads.
#[derive(Debug, Clone, Copy)]
pub struct PullSettings {
    /// How far before the cursor each run starts again (late edits).
    pub overlap: SignedDuration,
    /// How long before now the window ends (providers' eventual consistency).
    pub settle: SignedDuration,
    /// Where a stream's first run starts, before now.
    pub initial_lookback: SignedDuration,
}

impl Default for PullSettings {
    fn default() -> Self {
        PullSettings {
            overlap: SignedDuration::from_hours(6),
            settle: SignedDuration::from_mins(2),
            initial_lookback: SignedDuration::from_hours(24 * 7),
        }
    }
}

/// A slice in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SliceProgress {
    /// Its start (inclusive).
    pub start: Timestamp,
    /// Its end (exclusive).
    pub end: Timestamp,
    /// The next page to read.
    pub next: PageToken,
}

/// What a stream's cursor holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorState {
    /// Everything modified before this has been read.
    pub done_until: Timestamp,
    /// A slice being read, if a run stopped inside one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<SliceProgress>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullReport {
    /// Pages read.
    pub pages: u32,
    /// Records and what became of them.
    pub tally: Tally,
    /// The cursor's `done_until` before and after.
    pub from: Option<Timestamp>,
    /// The cursor's `done_until` after.
    pub to: Option<Timestamp>,
}

/// Options of one run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Re-pull `[from, to)` without reading or moving the cursor.
    pub range: Option<(Timestamp, Timestamp)>,
    /// Stop after this many pages (tests of crash-resume).
    pub stop_after_pages: Option<u32>,
}

/// Runs pulls on the stores.
#[derive(Debug, Clone)]
pub struct Puller {
    stores: Stores,
    settings: PullSettings,
}

fn cursor_key(connection: &Connection, stream: &str) -> CursorKey {
    CursorKey {
        tenant: connection.tenant.clone(),
        provider: connection.provider,
        stream: StreamName::new(format!("{}.{stream}", connection.id))
            .unwrap_or_else(|_| StreamName::new(stream).unwrap_or_else(|_| unreachable!())),
    }
}

impl Puller {
    /// A puller on `stores`.
    pub fn new(stores: Stores, settings: PullSettings) -> Self {
        Puller { stores, settings }
    }

    /// The stores it writes to.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    async fn save(
        &self,
        key: &CursorKey,
        version: &mut Option<u64>,
        state: &CursorState,
    ) -> Result<(), PullError> {
        let value = serde_json::to_string(state).map_err(|e| StoreError::corrupt("cursor", e))?;
        match self
            .stores
            .cursors
            .compare_and_set(key, *version, &value)
            .await?
        {
            CasOutcome::Set(c) => {
                *version = Some(c.version);
                Ok(())
            }
            CasOutcome::Conflict { .. } => Err(PullError::Superseded(key.storage_key())),
        }
    }

    /// One run of a windowed stream for `connection`.
    pub async fn run_windowed(
        &self,
        connection: &Connection,
        stream: &dyn WindowedStream,
        options: RunOptions,
    ) -> Result<PullReport, PullError> {
        let key = cursor_key(connection, stream.name());
        let dests = destinations(&self.stores, &connection.tenant).await?;
        // Whole milliseconds: providers take window bounds to the millisecond,
        // and a bound rounded on the wire must be the bound recorded.
        let now = Timestamp::from_millisecond(Timestamp::now().as_millisecond())
            .unwrap_or_else(|_| Timestamp::now());
        let end_bound = now - self.settings.settle;
        let mut report = PullReport::default();

        // Re-pull of a range: no cursor involved.
        if let Some((from, to)) = options.range {
            let mut version = None;
            let mut state = CursorState {
                done_until: from,
                slice: None,
            };
            self.walk(
                connection,
                stream,
                &dests,
                &key,
                &mut version,
                &mut state,
                from,
                to,
                options,
                &mut report,
                false,
            )
            .await?;
            return Ok(report);
        }

        let current = self.stores.cursors.get(&key).await?;
        let (mut state, mut version) = match current {
            Some(c) => (
                serde_json::from_str::<CursorState>(&c.value)
                    .map_err(|e| StoreError::corrupt(format!("cursor {}", key.storage_key()), e))?,
                Some(c.version),
            ),
            None => (
                CursorState {
                    done_until: now - self.settings.initial_lookback,
                    slice: None,
                },
                None,
            ),
        };
        report.from = Some(state.done_until);
        let start = match &state.slice {
            // Resume the slice a crash left, then carry on after it.
            Some(s) => s.start,
            None => state.done_until - self.settings.overlap,
        };
        self.walk(
            connection,
            stream,
            &dests,
            &key,
            &mut version,
            &mut state,
            start,
            end_bound,
            options,
            &mut report,
            true,
        )
        .await?;
        report.to = Some(state.done_until);
        tracing::info!(tenant = %connection.tenant, connection = %connection.id, stream = stream.name(),
            pages = report.pages, records = report.tally.records, created = report.tally.created,
            changed = report.tally.changed, "pull finished");
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    async fn walk(
        &self,
        connection: &Connection,
        stream: &dyn WindowedStream,
        dests: &[Provider],
        key: &CursorKey,
        version: &mut Option<u64>,
        state: &mut CursorState,
        start: Timestamp,
        end_bound: Timestamp,
        options: RunOptions,
        report: &mut PullReport,
        checkpoint: bool,
    ) -> Result<(), PullError> {
        let mut slice_start = start;
        while slice_start < end_bound {
            let (s_start, s_end, mut token) = match state.slice.take() {
                Some(s) => (s.start, s.end, s.next),
                None => (
                    slice_start,
                    (slice_start + stream.max_slice()).min(end_bound),
                    PageToken::First,
                ),
            };
            loop {
                let page = stream.page(s_start, s_end, &token).await?;
                report.pages += 1;
                report.tally += ingest(
                    &self.stores,
                    &connection.tenant,
                    connection.provider,
                    dests,
                    page.records,
                )
                .await?;
                match page.next {
                    Some(next) => {
                        state.slice = Some(SliceProgress {
                            start: s_start,
                            end: s_end,
                            next: next.clone(),
                        });
                        token = next;
                    }
                    None => {
                        state.slice = None;
                        state.done_until = state.done_until.max(s_end);
                    }
                }
                if checkpoint {
                    self.save(key, version, state).await?;
                }
                crate::chaos::point(crate::chaos::PULL_PAGE_STORED);
                if options.stop_after_pages.is_some_and(|n| report.pages >= n) {
                    return Err(PullError::Interrupted(report.pages));
                }
                if state.slice.is_none() {
                    break;
                }
            }
            slice_start = s_end;
        }
        Ok(())
    }

    /// One run of a snapshot stream for `connection`.
    pub async fn run_snapshot(
        &self,
        connection: &Connection,
        stream: &dyn SnapshotStream,
    ) -> Result<PullReport, PullError> {
        let key = cursor_key(connection, stream.name());
        let dests = destinations(&self.stores, &connection.tenant).await?;
        let started = Timestamp::now();
        let current = self.stores.cursors.get(&key).await?;
        let mut version = current.as_ref().map(|c| c.version);
        let since = current
            .and_then(|c| serde_json::from_str::<CursorState>(&c.value).ok())
            .map(|s| s.done_until);
        let mut report = PullReport {
            from: since,
            ..PullReport::default()
        };
        let mut token = PageToken::First;
        loop {
            let page = stream
                .page(since.map(|s| s - self.settings.overlap), &token)
                .await?;
            report.pages += 1;
            report.tally += ingest(
                &self.stores,
                &connection.tenant,
                connection.provider,
                &dests,
                page.records,
            )
            .await?;
            crate::chaos::point(crate::chaos::PULL_PAGE_STORED);
            match page.next {
                Some(next) => token = next,
                None => break,
            }
        }
        let state = CursorState {
            done_until: started,
            slice: None,
        };
        self.save(&key, &mut version, &state).await?;
        report.to = Some(started);
        Ok(report)
    }
}

/// Fans a schedule tick out: one job per connection of `provider` whose
/// planned slot falls in this tick (see [`super::cadence`]), so a thousand
/// restaurants do not share one invocation and the accounts sharing a
/// budget are pulled as often as it allows.
pub async fn schedule(
    stores: &Stores,
    clients: &crate::providers::ProviderClients,
    provider: Provider,
    now: Timestamp,
) -> Result<super::cadence::Tick, StoreError> {
    super::cadence::tick(stores, clients, provider, now).await
}

/// How a pull of a connection ended.
#[derive(Debug)]
pub enum PullOutcome {
    /// Every stream read: their reports.
    Done(Vec<(&'static str, PullReport)>),
    /// The provider said to wait (a 429's long `Retry-After`, a spent
    /// budget): put off until then, not failed. Streams read before it
    /// keep their progress.
    Deferred(super::cadence::Deferral),
}

/// [`pull_connection`], turning a wait the provider asks for into a
/// deferral of the connection (stored, so the schedule skips it until then)
/// rather than a failure; a pull that runs ends any deferral.
pub async fn pull_or_defer(
    puller: &Puller,
    clients: &crate::providers::ProviderClients,
    connection: &Connection,
    options: RunOptions,
    now: Timestamp,
) -> Result<PullOutcome, PullError> {
    let stores = puller.stores();
    match pull_connection(puller, clients, connection, options).await {
        Ok(reports) => {
            super::cadence::clear_deferral(stores, connection).await?;
            Ok(PullOutcome::Done(reports))
        }
        Err(PullError::Provider(ProviderError::RateLimited { retry_after })) => {
            let tick = registry::source(connection.provider)
                .map(|s| s.cadence())
                .map_or(SignedDuration::from_mins(15), |c| c.tick);
            let wait = retry_after
                .and_then(|d| SignedDuration::try_from(d).ok())
                .unwrap_or(tick);
            let reason = match retry_after {
                Some(d) => format!("rate limited, retry after {}s", d.as_secs()),
                None => "rate limited".to_string(),
            };
            let d = super::cadence::defer(stores, connection, now + wait, &reason).await?;
            Ok(PullOutcome::Deferred(d))
        }
        Err(e) => Err(e),
    }
}

/// Runs every stream of one connection, as its provider's source lists
/// them (Toast orders and menus, Square payments and inventory, MarketMan
/// inventory). A re-pull of a range reads the windowed streams only.
pub async fn pull_connection(
    puller: &Puller,
    clients: &crate::providers::ProviderClients,
    connection: &Connection,
    options: RunOptions,
) -> Result<Vec<(&'static str, PullReport)>, PullError> {
    let Some(source) = registry::source(connection.provider) else {
        return Err(PullError::Provider(ProviderError::Permanent(format!(
            "{} connections are not pulled",
            connection.provider
        ))));
    };
    let connection = &source.prepare(clients, connection).await?;
    let mut out = Vec::new();
    for stream in source.streams(clients, connection).await? {
        match stream {
            Stream::Windowed(s) => {
                out.push((
                    s.name(),
                    puller.run_windowed(connection, &*s, options).await?,
                ));
            }
            Stream::Snapshot(s) if options.range.is_none() => {
                out.push((s.name(), puller.run_snapshot(connection, &*s).await?));
            }
            Stream::Snapshot(_) => {}
        }
    }
    Ok(out)
}

/// Runs the job a pull-queue message carries. A deferred job is done as
/// far as the queue is concerned: the schedule brings it back.
pub async fn run_job(
    puller: &Puller,
    clients: &crate::providers::ProviderClients,
    body: &str,
) -> Result<PullOutcome, PullError> {
    let job: PullJob =
        serde_json::from_str(body).map_err(|e| StoreError::corrupt("pull job", e))?;
    let connection = puller
        .stores()
        .connections
        .get(&job.tenant, &job.connection)
        .await?
        .ok_or_else(|| {
            StoreError::NotFound(format!("connection {}/{}", job.tenant, job.connection))
        })?;
    pull_or_defer(
        puller,
        clients,
        &connection,
        RunOptions::default(),
        Timestamp::now(),
    )
    .await
}
