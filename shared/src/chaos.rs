//! Test-only kill points: named places in the pipelines where a chaos test
//! can have the process die, instead of killing it after a random delay and
//! hoping it was somewhere interesting.
//!
//! `HUB_CHAOS_STOP_AT=<point>:<n>` (for example `pull.page_stored:2`) makes
//! the `n`-th pass through `<point>` write one line, [`MARKER`] followed by
//! `<point>:<n>`, to stderr and then hold the process where it is: the
//! thread that reached the point blocks (holding stderr), so nothing after
//! the point runs, and the test that reads the line kills the process with
//! SIGKILL: exactly a crash at that point. A process nobody kills aborts
//! after [`HALT_GRACE`].
//!
//! Production never sets the variable. Unset, a point costs one atomic load:
//! the variable is read once per process.
//!
//! The points, and what has and has not happened when the process dies there:
//! - [`PULL_PAGE_STORED`]: a pulled page's records are in the ledger and the
//!   queues and, for a windowed stream, its cursor is checkpointed; the next
//!   page is not read (a snapshot stream's cursor is saved only at its end).
//! - [`INGEST_LEDGER_WRITTEN`]: a batch of records is upserted into the
//!   ledger; neither its push messages nor its events are queued.
//! - [`PUSH_POSTED`]: a post to a destination (one request, single or batch)
//!   has come back; what it came to is not yet written to the ledger.

use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The variable that names where to stop.
pub const ENV: &str = "HUB_CHAOS_STOP_AT";

/// What the line written on stopping starts with; `<point>:<n>` follows.
pub const MARKER: &str = "hub chaos: stopped at ";

/// How long a stopped process waits to be killed before it aborts.
pub const HALT_GRACE: Duration = Duration::from_secs(120);

/// A pulled page is stored (ledger, queues, cursor); the next is not read.
pub const PULL_PAGE_STORED: &str = "pull.page_stored";
/// Records are upserted into the ledger; their pushes and events are not queued.
pub const INGEST_LEDGER_WRITTEN: &str = "ingest.ledger_written";
/// A post to a destination came back; its outcome is not in the ledger.
pub const PUSH_POSTED: &str = "push.posted";

/// Every kill point.
pub const POINTS: [&str; 3] = [PULL_PAGE_STORED, INGEST_LEDGER_WRITTEN, PUSH_POSTED];

#[derive(Debug)]
struct StopAt {
    point: &'static str,
    count: u64,
    passes: AtomicU64,
}

static STOP_AT: OnceLock<Option<StopAt>> = OnceLock::new();

/// Reads `<point>:<n>`: a known point and a count of at least 1.
pub fn parse(spec: &str) -> Option<(&'static str, u64)> {
    let (name, count) = spec.trim().rsplit_once(':')?;
    let point = POINTS.into_iter().find(|p| *p == name)?;
    let count = count.parse::<u64>().ok().filter(|n| *n >= 1)?;
    Some((point, count))
}

fn from_env() -> Option<StopAt> {
    let spec = std::env::var(ENV).ok().filter(|s| !s.is_empty())?;
    let Some((point, count)) = parse(&spec) else {
        // A test that names no real point must not pass by running to the end.
        panic!(
            "{ENV}={spec:?}: expected <point>:<n> with n >= 1 and point one of {}",
            POINTS.join(", ")
        );
    };
    Some(StopAt {
        point,
        count,
        passes: AtomicU64::new(0),
    })
}

/// Test only: marks a pass through kill point `name` (one of [`POINTS`]).
/// Does nothing unless [`ENV`] names this point; on the pass it counts, the
/// process writes its marker line and stops here for good (see the module
/// documentation).
pub fn point(name: &'static str) {
    let Some(stop) = STOP_AT.get_or_init(from_env) else {
        return;
    };
    if stop.point != name {
        return;
    }
    let pass = stop.passes.fetch_add(1, Ordering::SeqCst) + 1;
    if pass == stop.count {
        halt(name, pass);
    }
}

fn halt(name: &str, pass: u64) -> ! {
    // Held while waiting: no other thread's log line gets out either.
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{MARKER}{name}:{pass}");
    let _ = err.flush();
    std::thread::sleep(HALT_GRACE);
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_names_a_known_point_and_a_count_from_one() {
        assert_eq!(parse("pull.page_stored:3"), Some((PULL_PAGE_STORED, 3)));
        assert_eq!(parse(" push.posted:1 "), Some((PUSH_POSTED, 1)));
        for bad in [
            "",
            "push.posted",
            "push.posted:0",
            "push.posted:-1",
            "push.posted:x",
            "pull.page:1",
            ":1",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn unset_no_point_stops() {
        // The test process has no HUB_CHAOS_STOP_AT: every point passes.
        assert!(std::env::var(ENV).is_err());
        for p in POINTS {
            for _ in 0..3 {
                point(p);
            }
        }
    }
}
