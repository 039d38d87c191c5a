//! Pipelines: what the functions and `hub` run, on ports only.
//!
//! - [`cadence`]: which connections a schedule tick pulls, within budgets.
//! - [`journal`], [`days`]: the daily journal, and when each day is posted.
//! - [`pull`]: scheduled pulls with crash-safe cursors.
//! - [`records`]: a normalized record into the ledger, the push queue and the
//!   outbound event stream.

pub mod cadence;
pub mod days;
pub mod events;
pub mod health;
pub mod journal;
pub mod pull;
pub mod push;
pub mod reconcile;
pub mod records;
