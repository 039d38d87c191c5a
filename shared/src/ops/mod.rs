//! Operations going out: purchase orders and deliveries to MarketMan, time
//! entries to the time-tracking system. The back office submits them through
//! the intake (`intake`); they are validated (`validate`), recorded in the
//! ledger and queued like any other push; `hours` computes worked time;
//! `accounts` lists the chart of accounts mappings name; `dlq` says why a
//! parked message is parked.

pub mod accounts;
pub mod books;
pub mod dlq;
pub mod hours;
pub mod intake;
pub mod mappings;
pub mod validate;
