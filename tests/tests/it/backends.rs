//! The two backends every conformance case runs on, each fresh per test:
//! a SQLite database and a secrets file in a temporary directory, or new DynamoDB
//! tables, SQS queues and a secret prefix on the AWS emulator. Both go by the
//! system clock unless a case asks for a manual one (`with_manual_clock`).

use jiff::Timestamp;
use shared::Stores;
use shared::adapters::aws::{AwsSecrets, DynamoStore, SqsQueue, schema};
use shared::adapters::file_secrets::FileSecrets;
use shared::adapters::sqlite::{SqliteQueue, SqliteStore};
use shared::ports::{
    CachedSecrets, CallLog, Clock, ConnectionStore, CursorStore, IdempotencyStore, Ledger,
    ManualClock, RateLimitStore, SecretStore, SystemClock, WorkQueue,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod fingerprint;

/// The variable naming the AWS emulator's endpoint.
pub const ENDPOINT_VAR: &str = "HUB_TEST_AWS_ENDPOINT";

/// One backend's adapters.
pub struct Backend {
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub cursors: Arc<dyn CursorStore>,
    pub ledger: Arc<dyn Ledger>,
    pub connections: Arc<dyn ConnectionStore>,
    pub rate_limits: Arc<dyn RateLimitStore>,
    pub calls: Arc<dyn CallLog>,
    /// The time the stores go by (the secrets cache of `stores` too).
    clock: Arc<dyn Clock>,
    kind: Kind,
}

enum Kind {
    Sqlite {
        db: SqliteStore,
        dir: PathBuf,
    },
    Aws {
        sdk: Box<aws_config::SdkConfig>,
        prefix: String,
        dynamo: DynamoStore,
        /// The state and idempotency tables.
        tables: [String; 2],
    },
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

impl Backend {
    pub fn sqlite() -> Backend {
        crate::leaks::init();
        let dir = std::env::temp_dir().join(unique("hub-test"));
        // A file, not `:memory:`, so a second connection can read every row
        // (`fingerprint`).
        let path = dir.join(fingerprint::SQLITE_FILE);
        let db = SqliteStore::open(&path)
            .unwrap_or_else(|e| panic!("open SQLite at {}: {e}", path.display()));
        let arc = Arc::new(db.clone());
        Backend {
            idempotency: arc.clone(),
            cursors: arc.clone(),
            ledger: arc.clone(),
            connections: arc.clone(),
            rate_limits: arc.clone(),
            calls: arc,
            clock: Arc::new(SystemClock),
            kind: Kind::Sqlite { db, dir },
        }
    }

    pub async fn aws() -> Backend {
        crate::leaks::init();
        let endpoint = std::env::var(ENDPOINT_VAR).unwrap_or_else(|_| {
            panic!(
                "{ENDPOINT_VAR} is not set: the AWS conformance suites need the AWS emulator \
                 (moto). Run them with `cargo xtask test`, which starts it."
            )
        });
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "conformance-tests",
            ))
            .load()
            .await;
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let (state, idem) = (unique("state"), unique("idem"));
        schema::create_state_table(&ddb, &state)
            .await
            .unwrap_or_else(|e| panic!("create table {state} on the emulator at {endpoint}: {e}"));
        schema::create_idempotency_table(&ddb, &idem)
            .await
            .unwrap_or_else(|e| panic!("create table {idem} on the emulator at {endpoint}: {e}"));
        let dynamo = DynamoStore::new(ddb, &state, &idem);
        let store = Arc::new(dynamo.clone());
        Backend {
            idempotency: store.clone(),
            cursors: store.clone(),
            ledger: store.clone(),
            connections: store.clone(),
            rate_limits: store.clone(),
            calls: store,
            clock: Arc::new(SystemClock),
            kind: Kind::Aws {
                sdk: Box::new(sdk),
                prefix: format!("{}/", unique("hub")),
                dynamo,
                tables: [state, idem],
            },
        }
    }

    /// The same backend (same tables, database and secrets) with its stores
    /// going by a clock that moves only when the returned handle is advanced.
    /// It starts at the present, so stored times look like real ones, on a
    /// whole millisecond, as the stores keep them, so a time read back equals
    /// the one written. The embedded queues read it too; SQS keeps its own time.
    pub fn with_manual_clock(self) -> (Backend, ManualClock) {
        let start = Timestamp::from_millisecond(Timestamp::now().as_millisecond())
            .expect("the present is a timestamp");
        self.with_manual_clock_at(start)
    }

    /// As [`with_manual_clock`](Backend::with_manual_clock), starting at
    /// `start`: for a case whose records carry fixed dates, so what the
    /// stores stamp and what a sweep reads as "today" agree with them on
    /// every day the suite runs.
    pub fn with_manual_clock_at(mut self, start: Timestamp) -> (Backend, ManualClock) {
        let manual = ManualClock::new(start);
        let clock: Arc<dyn Clock> = Arc::new(manual.clone());
        match &mut self.kind {
            Kind::Sqlite { db, .. } => {
                *db = db.clone().with_clock(clock.clone());
                let db = db.clone();
                self.wire(db);
            }
            Kind::Aws { dynamo, .. } => {
                *dynamo = dynamo.clone().with_clock(clock.clone());
                let dynamo = dynamo.clone();
                self.wire(dynamo);
            }
        }
        self.clock = clock;
        (self, manual)
    }

    /// Points every store port at `store`.
    fn wire<S>(&mut self, store: S)
    where
        S: IdempotencyStore + CursorStore + Ledger + ConnectionStore + RateLimitStore + CallLog,
        S: 'static,
    {
        let store = Arc::new(store);
        self.idempotency = store.clone();
        self.cursors = store.clone();
        self.ledger = store.clone();
        self.connections = store.clone();
        self.rate_limits = store.clone();
        self.calls = store;
    }

    /// An SQS client on the emulator (the AWS backend only).
    pub fn sqs_client(&self) -> Option<aws_sdk_sqs::Client> {
        match &self.kind {
            Kind::Aws { sdk, .. } => Some(aws_sdk_sqs::Client::new(sdk)),
            Kind::Sqlite { .. } => None,
        }
    }

    /// A fresh resource name.
    pub fn unique(prefix: &str) -> String {
        unique(prefix)
    }

    /// A new, empty queue parking messages after `max_receives` receives.
    pub async fn queue(&self, max_receives: u32) -> Arc<dyn WorkQueue> {
        match &self.kind {
            Kind::Sqlite { db, .. } => {
                Arc::new(SqliteQueue::new(db.clone(), unique("q"), max_receives))
            }
            Kind::Aws { sdk, .. } => {
                let client = aws_sdk_sqs::Client::new(sdk);
                let name = unique("q");
                let url = schema::create_queue_with_dlq(&client, &name, max_receives)
                    .await
                    .unwrap_or_else(|e| panic!("create queue {name} on the emulator: {e}"));
                Arc::new(SqsQueue::new(client, name, url))
            }
        }
    }

    /// All ports wired together as `Stores`, as a function or `hub serve`
    /// builds them, on new queues.
    pub async fn stores(&self, max_receives: u32) -> Stores {
        let secrets: Arc<dyn SecretStore> = Arc::new(
            CachedSecrets::new(self.secrets(), Duration::from_secs(300))
                .with_clock(self.clock.clone()),
        );
        type Q = Arc<dyn WorkQueue>;
        let (work, push, unrouted, pull, outbound): (Q, Q, Q, Q, Q) = match &self.kind {
            Kind::Sqlite { db, .. } => (
                Arc::new(SqliteQueue::new(db.clone(), unique("work"), max_receives)),
                Arc::new(SqliteQueue::new(db.clone(), unique("push"), max_receives)),
                Arc::new(SqliteQueue::new(db.clone(), unique("unrouted"), 1_000_000)),
                Arc::new(SqliteQueue::new(db.clone(), unique("pull"), max_receives)),
                Arc::new(SqliteQueue::new(db.clone(), unique("outbound"), 1_000_000)),
            ),
            Kind::Aws { sdk, .. } => {
                let client = aws_sdk_sqs::Client::new(sdk);
                let plain = |prefix: &str| {
                    let (client, name) = (client.clone(), unique(prefix));
                    async move {
                        let url = schema::create_queue(&client, &name)
                            .await
                            .unwrap_or_else(|e| panic!("create queue {name} on the emulator: {e}"));
                        Arc::new(SqsQueue::new(client, name, url)) as Q
                    }
                };
                (
                    self.queue(max_receives).await,
                    self.queue(max_receives).await,
                    plain("unrouted").await,
                    self.queue(max_receives).await,
                    plain("outbound").await,
                )
            }
        };
        Stores {
            backend: match self.kind {
                Kind::Sqlite { .. } => "embedded",
                Kind::Aws { .. } => "aws",
            },
            idempotency: self.idempotency.clone(),
            cursors: self.cursors.clone(),
            ledger: self.ledger.clone(),
            connections: self.connections.clone(),
            rate_limits: self.rate_limits.clone(),
            calls: self.calls.clone(),
            secrets,
            work_queue: work,
            push_queue: push,
            unrouted_queue: unrouted,
            pull_queue: pull,
            outbound_queue: outbound,
        }
    }

    /// A handle on this test's secrets, independent of any other handle
    /// (as two Lambda invocations are).
    /// Every value written through it is listed for the secret-leak scan.
    pub fn secrets(&self) -> Box<dyn SecretStore> {
        let inner: Box<dyn SecretStore> = match &self.kind {
            Kind::Sqlite { dir, .. } => {
                Box::new(FileSecrets::new(dir.join(fingerprint::SECRETS_FILE)))
            }
            Kind::Aws { sdk, prefix, .. } => Box::new(AwsSecrets::new(
                aws_sdk_secretsmanager::Client::new(sdk),
                prefix.clone(),
            )),
        };
        Box::new(crate::leaks::RecordingSecrets(inner))
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Kind::Sqlite { dir, .. } = &self.kind {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Generates, for each named case, one test on SQLite and one on AWS.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(crate::backends::Backend::sqlite()).await;
                }
            )*
        }
        mod aws {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(crate::backends::Backend::aws().await).await;
                }
            )*
        }
    };
}
pub(crate) use conformance;
