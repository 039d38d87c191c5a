//! The ports' contracts. Each file holds one port's cases as plain async
//! functions taking a `Backend`; `conformance!` runs each on both backends.

mod call_log;
mod connections;
mod cursors;
mod idempotency;
mod ledger;
mod queue;
mod rate_limit;
mod secrets;
