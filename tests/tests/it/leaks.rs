//! The secret-leak scan's test side. With `HUB_TEST_LOG_DIR` set (`cargo
//! xtask test` sets it), every log line this test binary emits (debug level
//! and up, JSON) goes to `<dir>/<binary>-<pid>.log`, and every secret value a
//! test writes to a secret store (tokens, client secrets, API passwords,
//! webhook keys) is listed in `<dir>/<binary>-<pid>.secrets` (hex). After the
//! tests, xtask scans every log for every listed value (`xtask/src/leaks.rs`);
//! one hit fails the run.
//!
//! The scan must also see something: the canary test (`leak_canary.rs`)
//! logs a registered secret on purpose under the target [`CANARY_TARGET`],
//! which goes to `<dir>/<binary>-<pid>.canary.log` only, and xtask fails if
//! it does not find it there. So a subscriber that never installed, or a
//! registration that wrote nothing, fails the run instead of passing it.
//!
//! Test binaries that run `hub` (`cli/tests/`, which include this file) use
//! [`hub_log`] and [`SUBPROCESS_FILTER`] to send those processes' logs to
//! `<dir>/<binary>-<pid>.hub.log`, and [`register_secrets_file`] for the
//! secrets they keep in a data folder.

// Each test binary that includes this file uses a part of it.
#![allow(dead_code)]

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use shared::ids::SecretName;
use shared::ports::{SecretStore, SecretVersion, StoreResult};
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Fields of a credentials JSON that hold secrets (ids are not secrets).
const SECRET_FIELDS: &[&str] = &[
    "access_token",
    "refresh_token",
    "client_secret",
    "api_password",
    "api_key",
    "api_token",
    "password",
    "secret",
];

/// Values shorter than this are not scanned for (too likely by chance).
const MIN_LEN: usize = 8;

/// The log filter of the capture, in-process and in the `hub` processes:
/// debug, but the HTTP and AWS stacks at info.
pub const SUBPROCESS_FILTER: &str = "debug,hyper=info,hyper_util=info,h2=info,rustls=info,aws_smithy_runtime=info,aws_config=info,aws_sdk_dynamodb=info,aws_sdk_sqs=info,aws_sdk_secretsmanager=info,reqwest=info";

/// The target of the canary's events: they go to the canary log, never to
/// the ordinary one.
pub const CANARY_TARGET: &str = "leak_canary";

struct Sink {
    /// `<dir>/<binary>-<pid>`: the capture's files are this plus a suffix.
    stem: String,
    secrets: Mutex<std::fs::File>,
    /// The `hub` processes' stderr, opened on first use.
    hub_log: OnceLock<Option<std::fs::File>>,
}

fn append(path: &str) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

fn sink() -> Option<&'static Sink> {
    static SINK: OnceLock<Option<Sink>> = OnceLock::new();
    SINK.get_or_init(|| {
        let dir = std::env::var("HUB_TEST_LOG_DIR").ok()?;
        std::fs::create_dir_all(&dir).ok()?;
        // The test binary's name: `it`, `cli`, `chaos`, `lambda_smoke`.
        let stem = format!("{dir}/{}-{}", env!("CARGO_CRATE_NAME"), std::process::id());
        let log = std::fs::File::create(format!("{stem}.log")).ok()?;
        let secrets = std::fs::File::create(format!("{stem}.secrets")).ok()?;
        // Opened at the canary's first line, so a binary without the canary
        // leaves no canary log.
        let canary_path = format!("{stem}.canary.log");
        let canary_writer = move || -> Box<dyn Write> {
            match append(&canary_path) {
                Ok(f) => Box::new(f),
                Err(_) => Box::new(std::io::sink()),
            }
        };
        let ordinary = tracing_subscriber::fmt::layer()
            .json()
            .with_writer(Mutex::new(log))
            .with_filter(tracing_subscriber::EnvFilter::new(format!(
                "{SUBPROCESS_FILTER},{CANARY_TARGET}=off"
            )));
        let canary = tracing_subscriber::fmt::layer()
            .json()
            .with_writer(canary_writer)
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target(CANARY_TARGET, tracing::Level::TRACE),
            );
        let _ = tracing_subscriber::registry()
            .with(ordinary)
            .with(canary)
            .try_init();
        Some(Sink {
            stem,
            secrets: Mutex::new(secrets),
            hub_log: OnceLock::new(),
        })
    })
    .as_ref()
}

/// Starts capturing this binary's logs (once; a no-op without the folder).
pub fn init() {
    let _ = sink();
}

fn register(value: &str) {
    if value.len() < MIN_LEN {
        return;
    }
    if let Some(s) = sink()
        && let Ok(mut f) = s.secrets.lock()
    {
        let _ = writeln!(f, "{}", hex::encode(value));
    }
}

fn register_leaves(v: &serde_json::Value, secret_field: bool) {
    match v {
        serde_json::Value::String(s) if secret_field => register(s),
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                register_leaves(v, secret_field || SECRET_FIELDS.contains(&k.as_str()));
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| register_leaves(v, secret_field)),
        _ => {}
    }
}

/// Lists the secret parts of a value written to a secret store: a JSON
/// document's secret fields, or the whole value (a webhook signing key).
pub fn register_secret(value: &str) {
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(v @ serde_json::Value::Object(_)) => register_leaves(&v, false),
        _ => register(value),
    }
}

/// Lists every secret in a secrets file of the embedded backend
/// (`<data dir>/secrets.json`, as `FileSecrets` writes it: each value, the
/// current and the previous, under a `value` key), if there is one: what a
/// `hub` process used and rotated there.
pub fn register_secrets_file(path: &Path) {
    fn walk(v: &serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match v {
                        serde_json::Value::String(s) if k == "value" => register_secret(s),
                        _ => walk(v),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(walk),
            _ => {}
        }
    }
    if sink().is_none() {
        return;
    }
    if let Ok(text) = std::fs::read_to_string(path)
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
    {
        walk(&v);
    }
}

/// Whether the capture is on (`HUB_TEST_LOG_DIR` is set).
pub fn capturing() -> bool {
    sink().is_some()
}

/// The log of the `hub` processes this binary runs
/// (`<dir>/<binary>-<pid>.hub.log`, appended to), when capturing: give a
/// child a clone as its stderr, or write its captured stderr here.
pub fn hub_log() -> Option<&'static std::fs::File> {
    let s = sink()?;
    s.hub_log
        .get_or_init(|| append(&format!("{}.hub.log", s.stem)).ok())
        .as_ref()
}

/// A secret store that lists every value written through it.
#[derive(Debug)]
pub struct RecordingSecrets(pub Box<dyn SecretStore>);

#[async_trait]
impl SecretStore for RecordingSecrets {
    async fn get(&self, name: &SecretName) -> StoreResult<SecretString> {
        self.0.get(name).await
    }

    async fn get_previous(&self, name: &SecretName) -> StoreResult<Option<SecretString>> {
        self.0.get_previous(name).await
    }

    async fn put(&self, name: &SecretName, value: &SecretString) -> StoreResult<SecretVersion> {
        register_secret(value.expose_secret());
        self.0.put(name, value).await
    }

    async fn invalidate(&self, name: &SecretName) {
        self.0.invalidate(name).await
    }
}
