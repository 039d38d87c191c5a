//! One integration-test binary for everything that crosses crates.
//!
//! `conformance`: every port's contract, run on the embedded backend (SQLite,
//! secrets file) and on the AWS backend (DynamoDB, SQS, Secrets Manager)
//! against the emulator whose URL `cargo xtask test` puts in
//! `HUB_TEST_AWS_ENDPOINT`. Without it the AWS cases fail; they never skip.
//!
//! `connect`: the OAuth connect flow over HTTP (`hub serve`'s routes) against
//! stand-in Intuit and Xero token endpoints, on both backends.
//!
//! `hostile`: a corpus of more than 200 hostile requests against every
//! webhook route and the intake, on both backends: documented status and
//! reason, nothing changed (every row, queue depth and secret fingerprinted
//! before and after), no panic.
//!
//! `leaks`: with `HUB_TEST_LOG_DIR`, this binary's logs and the secret values
//! its tests write are captured for xtask's secret-leak scan; `leak_canary`
//! leaks a registered secret on purpose, into a log of its own, which the
//! scan must find.
//!
//! `sandboxed`: the provider clients and pulls against the provider sandboxes
//! over loopback: paging, 429s, injected 5xx, shared budgets, crash-resume.
//!
//! `tokens`: twenty invocations racing to renew one expired OAuth token, on
//! both backends: one refresh, the newest refresh token kept.
//!
//! `webhooks`: signed deliveries over HTTP to `hub serve`'s webhook routes,
//! on both backends: each provider end to end, duplicates, bad input.

mod backends;
mod conformance;
mod connect;
mod hostile;
mod leak_canary;
mod leaks;
mod sandboxed;
mod tokens;
mod webhooks;
