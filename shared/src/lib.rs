//! Integration Hub's library: everything the Lambda functions and the `hub`
//! command run. Functions are thin adapters around it; it never depends on
//! Lambda event types.
//!
//! Layout:
//! - [`ids`]: identifier newtypes (`TenantId`, `ProviderAccountId`, ...).
//! - [`model`]: tenants, connections (with their business-day rule) and the
//!   normalized records (transactions, menu items, inventory levels, purchase
//!   orders, deliveries, time entries). Money is `Decimal`.
//! - [`ports`]: one small trait per role: idempotency, cursors, ledger,
//!   connections, work queues, secrets; and the clock the stores go by.
//! - [`adapters`]: the ports on SQLite and a secrets file (embedded) and on
//!   DynamoDB, SQS and Secrets Manager (AWS).
//! - [`providers`]: one folder per provider (client, webhook scheme and
//!   envelope, transforms, streams) behind small traits and a registry, on
//!   one HTTP foundation (shared rate budgets, retries, typed errors, call
//!   log) and single-flight token renewal.
//! - [`ops`]: purchase orders, deliveries and time entries from the back
//!   office: intake, validation, worked hours.
//! - [`stores`]: the ports wired to the configured backend.
//! - [`config`]: configuration from the environment, validated once.
//! - [`telemetry`]: JSON logs with request ids; redacted secrets.
//! - [`transforms`]: what the providers' transforms share (exact decimals,
//!   timestamps, the error naming a field).
//! - [`webhooks`]: signature verification, envelopes, and the intake path,
//!   each provider's scheme from its folder.
//! - [`chaos`]: test-only kill points (`HUB_CHAOS_STOP_AT`) for crash tests.

pub mod adapters;
pub mod chaos;
pub mod config;
pub mod ids;
pub mod model;
pub mod ops;
pub mod pipelines;
pub mod ports;
pub mod providers;
pub mod stores;
pub mod telemetry;
pub mod transforms;
pub mod webhooks;

pub use config::Config;
pub use stores::Stores;
