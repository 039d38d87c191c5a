//! The secret-leak scan's test side. With `HUB_TEST_LOG_DIR` set (`cargo
//! xtask test` sets it), every log line this test binary emits (debug level
//! and up, JSON) goes to `<dir>/it-<pid>.log`, and every secret value a test
//! writes to a secret store (tokens, client secrets, API passwords, webhook
//! keys) is listed in `<dir>/it-<pid>.secrets`. After the tests, xtask scans
//! every log for every listed value; one hit fails the run.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use shared::ids::SecretName;
use shared::ports::{SecretStore, SecretVersion, StoreResult};
use std::io::Write;
use std::sync::{Mutex, OnceLock};

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

struct Sink {
    secrets: Mutex<std::fs::File>,
}

fn sink() -> Option<&'static Sink> {
    static SINK: OnceLock<Option<Sink>> = OnceLock::new();
    SINK.get_or_init(|| {
        let dir = std::env::var("HUB_TEST_LOG_DIR").ok()?;
        std::fs::create_dir_all(&dir).ok()?;
        let pid = std::process::id();
        let log = std::fs::File::create(format!("{dir}/it-{pid}.log")).ok()?;
        let secrets = std::fs::File::create(format!("{dir}/it-{pid}.secrets")).ok()?;
        let filter = tracing_subscriber::EnvFilter::new(
            "debug,hyper=info,hyper_util=info,h2=info,rustls=info,aws_smithy_runtime=info,aws_config=info,aws_sdk_dynamodb=info,aws_sdk_sqs=info,aws_sdk_secretsmanager=info,reqwest=info",
        );
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(Mutex::new(log))
            .try_init();
        Some(Sink {
            secrets: Mutex::new(secrets),
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
