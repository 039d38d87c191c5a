//! The ports wired to one backend, chosen by configuration. Functions and
//! `hub` build this once at start-up and pass it by reference.

use crate::adapters::aws::{AwsSecrets, DynamoStore, SqsQueue};
#[cfg(feature = "embedded")]
use crate::adapters::file_secrets::FileSecrets;
#[cfg(feature = "embedded")]
use crate::adapters::sqlite::{SqliteQueue, SqliteStore};
use crate::config::{BackendConfig, Config};
#[cfg(not(feature = "embedded"))]
use crate::ports::StoreError;
use crate::ports::{
    CachedSecrets, CallLog, ConnectionStore, CursorStore, IdempotencyStore, Ledger, RateLimitStore,
    SecretStore, StoreResult, WorkQueue,
};
use std::sync::Arc;

/// Names of the embedded queues.
pub const WORK_QUEUE: &str = "work";
/// Names of the embedded queues.
pub const PUSH_QUEUE: &str = "push";
/// Names of the embedded queues.
pub const UNROUTED_QUEUE: &str = "unrouted";
/// Names of the embedded queues.
pub const PULL_QUEUE: &str = "pull";
/// Names of the embedded queues.
pub const OUTBOUND_QUEUE: &str = "outbound";
/// The unrouted queue is read by operators, not workers: its messages are
/// never parked for being received often.
#[cfg(feature = "embedded")]
const UNROUTED_MAX_RECEIVES: u32 = 1_000_000;

/// Why a build without the `embedded` feature (every Lambda function) refuses
/// the embedded backend.
#[cfg(not(feature = "embedded"))]
pub const NO_EMBEDDED_STORE: &str = "built without the embedded store (SQLite and a secrets file \
     are in `hub` and local runs only: the `embedded` feature); set HUB_BACKEND=aws with \
     HUB_STATE_TABLE, HUB_IDEMPOTENCY_TABLE and the HUB_*_QUEUE_URL variables";

/// Every port, on one backend.
#[derive(Debug, Clone)]
pub struct Stores {
    /// `embedded` or `aws`.
    pub backend: &'static str,
    /// Idempotency records.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Pull cursors.
    pub cursors: Arc<dyn CursorStore>,
    /// The ledger.
    pub ledger: Arc<dyn Ledger>,
    /// Tenants and connections.
    pub connections: Arc<dyn ConnectionStore>,
    /// Shared rate budgets per provider account.
    pub rate_limits: Arc<dyn RateLimitStore>,
    /// Every provider call's outcome and latency.
    pub calls: Arc<dyn CallLog>,
    /// Credentials (cached).
    pub secrets: Arc<dyn SecretStore>,
    /// Webhook events to process.
    pub work_queue: Arc<dyn WorkQueue>,
    /// Ledger rows to post.
    pub push_queue: Arc<dyn WorkQueue>,
    /// Signed webhook events no tenant owns, kept for an operator.
    pub unrouted_queue: Arc<dyn WorkQueue>,
    /// Pull jobs, one per connection and stream.
    pub pull_queue: Arc<dyn WorkQueue>,
    /// Record events for the back office (locally: a table in the database).
    pub outbound_queue: Arc<dyn WorkQueue>,
}

impl Stores {
    /// Builds the stores `config` asks for. For AWS, the SDK's own settings
    /// (region, credentials, `AWS_ENDPOINT_URL`) come from its usual sources.
    pub async fn from_config(config: &Config) -> StoreResult<Self> {
        match &config.backend {
            #[cfg(feature = "embedded")]
            BackendConfig::Embedded {
                data_dir,
                max_receives,
            } => {
                let db = SqliteStore::open(&data_dir.join("state.db"))?;
                let secrets = FileSecrets::new(data_dir.join("secrets.json"));
                Ok(Self::embedded(db, secrets, *max_receives, config))
            }
            #[cfg(not(feature = "embedded"))]
            BackendConfig::Embedded { .. } => {
                Err(StoreError::backend("embedded", "open", NO_EMBEDDED_STORE))
            }
            BackendConfig::Aws(aws) => {
                let sdk = crate::adapters::aws::load_sdk_config().await;
                let log = crate::adapters::aws::call_log::CallLog::from_env();
                let mut ddb = aws_sdk_dynamodb::config::Builder::from(&sdk);
                let mut sqs = aws_sdk_sqs::config::Builder::from(&sdk);
                let mut sm = aws_sdk_secretsmanager::config::Builder::from(&sdk);
                if let Some(log) = log {
                    ddb = ddb.interceptor(log.clone());
                    sqs = sqs.interceptor(log.clone());
                    sm = sm.interceptor(log);
                }
                let dynamo = DynamoStore::new(
                    aws_sdk_dynamodb::Client::from_conf(ddb.build()),
                    &aws.state_table,
                    &aws.idempotency_table,
                );
                let sqs = aws_sdk_sqs::Client::from_conf(sqs.build());
                // Each queue with its dead-letter queue's URL where the
                // deployment gives it (`HUB_<QUEUE>_DLQ_URL`).
                let queue = |name: &str, url: &str, dlq: &str| -> Arc<dyn WorkQueue> {
                    Arc::new(
                        SqsQueue::new(sqs.clone(), name, url)
                            .with_dlq_url(aws.dlq_urls.get(dlq).cloned()),
                    )
                };
                let secrets = CachedSecrets::new(
                    AwsSecrets::new(
                        aws_sdk_secretsmanager::Client::from_conf(sm.build()),
                        &aws.secret_prefix,
                    ),
                    config.secrets_ttl,
                );
                let dynamo = Arc::new(dynamo);
                Ok(Stores {
                    backend: "aws",
                    idempotency: dynamo.clone(),
                    cursors: dynamo.clone(),
                    ledger: dynamo.clone(),
                    connections: dynamo.clone(),
                    rate_limits: dynamo.clone(),
                    calls: dynamo,
                    secrets: Arc::new(secrets),
                    work_queue: queue(WORK_QUEUE, &aws.work_queue_url, "work"),
                    push_queue: queue(PUSH_QUEUE, &aws.push_queue_url, "push"),
                    unrouted_queue: queue(UNROUTED_QUEUE, &aws.unrouted_queue_url, "unrouted"),
                    pull_queue: queue(PULL_QUEUE, &aws.pull_queue_url, "pull"),
                    outbound_queue: queue(OUTBOUND_QUEUE, &aws.outbound_queue_url, "outbound"),
                })
            }
        }
    }

    /// The embedded stores on an open database and secrets file.
    #[cfg(feature = "embedded")]
    pub fn embedded(
        db: SqliteStore,
        secrets: FileSecrets,
        max_receives: u32,
        config: &Config,
    ) -> Self {
        let db_arc = Arc::new(db.clone());
        Stores {
            backend: "embedded",
            idempotency: db_arc.clone(),
            cursors: db_arc.clone(),
            ledger: db_arc.clone(),
            connections: db_arc.clone(),
            rate_limits: db_arc.clone(),
            calls: db_arc,
            secrets: Arc::new(CachedSecrets::new(secrets, config.secrets_ttl)),
            work_queue: Arc::new(SqliteQueue::new(db.clone(), WORK_QUEUE, max_receives)),
            push_queue: Arc::new(SqliteQueue::new(db.clone(), PUSH_QUEUE, max_receives)),
            unrouted_queue: Arc::new(SqliteQueue::new(
                db.clone(),
                UNROUTED_QUEUE,
                UNROUTED_MAX_RECEIVES,
            )),
            pull_queue: Arc::new(SqliteQueue::new(db.clone(), PULL_QUEUE, max_receives)),
            outbound_queue: Arc::new(SqliteQueue::new(db, OUTBOUND_QUEUE, UNROUTED_MAX_RECEIVES)),
        }
    }

    /// The HTTP client for provider calls, spending these stores' rate
    /// budgets and recording into their call log.
    pub fn provider_http(&self) -> crate::providers::ProviderHttp {
        crate::providers::ProviderHttp::new(self.rate_limits.clone(), self.calls.clone())
    }

    /// The queue called `name` (`work`, `push`, `pull`, `outbound`, `unrouted`).
    pub fn queue(&self, name: &str) -> Option<&Arc<dyn WorkQueue>> {
        match name {
            WORK_QUEUE => Some(&self.work_queue),
            PUSH_QUEUE => Some(&self.push_queue),
            UNROUTED_QUEUE => Some(&self.unrouted_queue),
            PULL_QUEUE => Some(&self.pull_queue),
            OUTBOUND_QUEUE => Some(&self.outbound_queue),
            _ => None,
        }
    }
}
