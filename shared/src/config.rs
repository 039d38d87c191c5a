//! Configuration, read once from the environment at start-up and validated.
//! Every variable is listed in [`VARIABLES`] with its default; a bad or
//! missing one is an error that names it.
//!
//! With nothing AWS configured the hub runs embedded: one SQLite file and a
//! secrets file under `HUB_DATA_DIR`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Every variable the hub reads: name, default, meaning.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (
        "HUB_BACKEND",
        "aws if any HUB_*_TABLE/_QUEUE_URL is set, else embedded",
        "embedded (SQLite + secrets file) or aws (DynamoDB, SQS, Secrets Manager)",
    ),
    (
        "HUB_DATA_DIR",
        ".hub",
        "embedded: folder of state.db and secrets.json",
    ),
    (
        "HUB_MAX_RECEIVES",
        "5",
        "embedded: receives before a message is parked in the dead-letter queue (SQS: the queue's RedrivePolicy)",
    ),
    (
        "HUB_STATE_TABLE",
        "(required for aws)",
        "DynamoDB table of tenants, connections, cursors and the ledger",
    ),
    (
        "HUB_IDEMPOTENCY_TABLE",
        "(required for aws)",
        "DynamoDB table of idempotency records",
    ),
    (
        "HUB_WORK_QUEUE_URL",
        "(required for aws)",
        "SQS queue of webhook events to process",
    ),
    (
        "HUB_PUSH_QUEUE_URL",
        "(required for aws)",
        "SQS queue of ledger rows to post to accounting",
    ),
    (
        "HUB_PULL_QUEUE_URL",
        "(required for aws)",
        "SQS queue of pull jobs, one per connection and stream",
    ),
    (
        "HUB_OUTBOUND_QUEUE_URL",
        "(required for aws)",
        "SQS queue of record events for the back office (the outbound event stream)",
    ),
    (
        "HUB_UNROUTED_QUEUE_URL",
        "(required for aws)",
        "SQS queue where signed webhook events no tenant owns are kept for an operator",
    ),
    (
        "HUB_<QUEUE>_DLQ_URL",
        "(looked up from the queue's RedrivePolicy)",
        "dead-letter queue URL of the WORK, PUSH, PULL, UNROUTED or OUTBOUND queue: set, parking needs no sqs:GetQueueAttributes or sqs:GetQueueUrl",
    ),
    (
        "HUB_WEBHOOK_MAX_BODY_BYTES",
        "2097152",
        "webhook bodies over this size are refused with 413",
    ),
    (
        "HUB_SQUARE_NOTIFICATION_URL",
        "(the URL the request was sent to)",
        "the Square subscription's notification URL, which its signature covers",
    ),
    (
        "HUB_SECRET_PREFIX",
        "integration-hub/",
        "aws: prefix of every secret name in Secrets Manager",
    ),
    (
        "HUB_SECRETS_TTL_SECONDS",
        "300",
        "how long a secret read is cached",
    ),
    (
        "HUB_REQUEUE_PENDING_AFTER_SECONDS",
        "600",
        "a record re-read while its push is still untried after this long gets its push queued again (lost with a crashed process)",
    ),
    (
        "HUB_PUSH_REQUEST_SECONDS",
        "90",
        "the push function begins a request only while this long is left before its deadline (a rate-budget wait of up to 60 s and a call of up to 30 s)",
    ),
    (
        "HUB_PUBLIC_URL",
        "http://127.0.0.1:8080",
        "the hub's public base URL; OAuth providers send users back to <it>/connect/<provider>/callback",
    ),
    (
        "HUB_ENDPOINT_<NAME>",
        "the providers' production hosts",
        "override a provider endpoint (TOAST, SQUARE, MARKETMAN, QUICKBOOKS, QUICKBOOKS_TOKEN, XERO, XERO_TOKEN, SQUARE_TOKEN, QUICKBOOKS_AUTHORIZE, XERO_AUTHORIZE, SQUARE_AUTHORIZE), e.g. to a sandbox",
    ),
    (
        "HUB_ALERT_WEBHOOK_URL",
        "(unset: alerts are only logged)",
        "Slack-compatible incoming webhook the health monitor posts state changes to",
    ),
    (
        "HUB_INTAKE_TOKEN",
        "(unset: hub serve refuses intake requests)",
        "bearer token the back office sends to hub serve's /intake routes (production uses IAM)",
    ),
    (
        "HUB_CHAOS_STOP_AT",
        "(unset)",
        "test only: <point>:<n> stops the process for good at the n-th pass through a kill point (shared::chaos), for crash tests to SIGKILL it there",
    ),
    ("HUB_LOG_FORMAT", "json", "json or pretty"),
    (
        "RUST_LOG",
        "info",
        "log filter (tracing-subscriber EnvFilter syntax); hub's commands other than serve log (to stderr) only when it is set",
    ),
    (
        "AWS_ENDPOINT_URL",
        "(unset)",
        "aws: send every AWS call to this endpoint (an emulator)",
    ),
];

const AWS_REQUIRED: [&str; 7] = [
    "HUB_STATE_TABLE",
    "HUB_IDEMPOTENCY_TABLE",
    "HUB_WORK_QUEUE_URL",
    "HUB_PUSH_QUEUE_URL",
    "HUB_PULL_QUEUE_URL",
    "HUB_OUTBOUND_QUEUE_URL",
    "HUB_UNROUTED_QUEUE_URL",
];

/// A configuration problem, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Required variables are not set.
    #[error("missing configuration: {} must be set for HUB_BACKEND=aws", .0.join(", "))]
    Missing(Vec<&'static str>),
    /// A variable has a value the hub cannot use.
    #[error("invalid {name}={value:?}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is expected.
        reason: String,
    },
}

/// Where state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendConfig {
    /// One SQLite file and a secrets file in `data_dir`.
    Embedded {
        /// The folder.
        data_dir: PathBuf,
        /// Receives before a message is parked.
        max_receives: u32,
    },
    /// DynamoDB, SQS and Secrets Manager.
    Aws(AwsConfig),
}

/// The AWS resources the hub uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    /// Tenants, connections, cursors, ledger.
    pub state_table: String,
    /// Idempotency records.
    pub idempotency_table: String,
    /// Webhook events to process.
    pub work_queue_url: String,
    /// Ledger rows to post.
    pub push_queue_url: String,
    /// Signed webhook events no tenant owns.
    pub unrouted_queue_url: String,
    /// Pull jobs.
    pub pull_queue_url: String,
    /// Record events for the back office.
    pub outbound_queue_url: String,
    /// Dead-letter queue URLs by queue (`work`, `push`, `pull`, `unrouted`,
    /// `outbound`) where given (`HUB_<QUEUE>_DLQ_URL`); the others are looked
    /// up from their queue's RedrivePolicy.
    pub dlq_urls: std::collections::BTreeMap<&'static str, String>,
    /// Prefix of every secret name.
    pub secret_prefix: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (CloudWatch-friendly).
    Json,
    /// Human-readable lines.
    Pretty,
}

/// The hub's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where state lives.
    pub backend: BackendConfig,
    /// How long a secret read is cached.
    pub secrets_ttl: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Largest webhook body accepted.
    pub webhook_max_body_bytes: usize,
    /// The Square subscription's notification URL, where set.
    pub square_notification_url: Option<String>,
    /// The hub's public base URL (OAuth callbacks, connect links).
    pub public_url: String,
    /// Whether `HUB_PUBLIC_URL` was set (not empty): the connect function
    /// otherwise takes each request's own host.
    pub public_url_set: bool,
    /// Where the providers' APIs are.
    pub endpoints: crate::providers::Endpoints,
    /// Where health alerts go.
    pub alert_webhook_url: Option<String>,
    /// `hub serve`'s intake bearer token.
    pub intake_token: Option<secrecy::SecretString>,
}

impl Config {
    /// The webhook intake's settings from this configuration.
    pub fn webhook_settings(&self) -> crate::webhooks::WebhookSettings {
        crate::webhooks::WebhookSettings {
            max_body_bytes: self.webhook_max_body_bytes,
            square_notification_url: self.square_notification_url.clone(),
            ..Default::default()
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration from a map (tests, `hub` flags layered on env).
    pub fn from_map(vars: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(|k| vars.get(k).cloned())
    }

    /// Reads configuration through `get`; empty values count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let any_aws = AWS_REQUIRED.iter().any(|k| get(k).is_some());
        let backend_name = match get("HUB_BACKEND") {
            Some(v) => match v.as_str() {
                "embedded" | "aws" => v,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "HUB_BACKEND",
                        value: v,
                        reason: "expected embedded or aws".into(),
                    });
                }
            },
            None if any_aws => "aws".into(),
            None => "embedded".into(),
        };
        let backend = if backend_name == "aws" {
            let missing: Vec<&'static str> = AWS_REQUIRED
                .iter()
                .copied()
                .filter(|k| get(k).is_none())
                .collect();
            if !missing.is_empty() {
                return Err(ConfigError::Missing(missing));
            }
            for k in [
                "HUB_WORK_QUEUE_URL",
                "HUB_PUSH_QUEUE_URL",
                "HUB_UNROUTED_QUEUE_URL",
            ] {
                let v = get(k).unwrap_or_default();
                if !(v.starts_with("https://") || v.starts_with("http://")) {
                    return Err(ConfigError::Invalid {
                        name: k,
                        value: v,
                        reason: "expected a queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)"
                            .into(),
                    });
                }
            }
            BackendConfig::Aws(AwsConfig {
                state_table: get("HUB_STATE_TABLE").unwrap_or_default(),
                idempotency_table: get("HUB_IDEMPOTENCY_TABLE").unwrap_or_default(),
                work_queue_url: get("HUB_WORK_QUEUE_URL").unwrap_or_default(),
                push_queue_url: get("HUB_PUSH_QUEUE_URL").unwrap_or_default(),
                unrouted_queue_url: get("HUB_UNROUTED_QUEUE_URL").unwrap_or_default(),
                pull_queue_url: get("HUB_PULL_QUEUE_URL").unwrap_or_default(),
                outbound_queue_url: get("HUB_OUTBOUND_QUEUE_URL").unwrap_or_default(),
                dlq_urls: {
                    let mut m = std::collections::BTreeMap::new();
                    for (queue, var) in [
                        ("work", "HUB_WORK_DLQ_URL"),
                        ("push", "HUB_PUSH_DLQ_URL"),
                        ("pull", "HUB_PULL_DLQ_URL"),
                        ("unrouted", "HUB_UNROUTED_DLQ_URL"),
                        ("outbound", "HUB_OUTBOUND_DLQ_URL"),
                    ] {
                        if let Some(v) = get(var) {
                            if !(v.starts_with("https://") || v.starts_with("http://")) {
                                return Err(ConfigError::Invalid {
                                    name: var,
                                    value: v,
                                    reason: "expected a queue URL".into(),
                                });
                            }
                            m.insert(queue, v);
                        }
                    }
                    m
                },
                secret_prefix: get("HUB_SECRET_PREFIX")
                    .unwrap_or_else(|| "integration-hub/".into()),
            })
        } else {
            BackendConfig::Embedded {
                data_dir: get("HUB_DATA_DIR").unwrap_or_else(|| ".hub".into()).into(),
                max_receives: parse_num(&get, "HUB_MAX_RECEIVES", 5, 1..=1000)?,
            }
        };
        let secrets_ttl =
            Duration::from_secs(parse_num(&get, "HUB_SECRETS_TTL_SECONDS", 300, 0..=86_400)?);
        let log_format = match get("HUB_LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "HUB_LOG_FORMAT",
                    value: other.into(),
                    reason: "expected json or pretty".into(),
                });
            }
        };
        let webhook_max_body_bytes = parse_num(
            &get,
            "HUB_WEBHOOK_MAX_BODY_BYTES",
            2 * 1024 * 1024,
            1024..=6 * 1024 * 1024,
        )?;
        let square_notification_url = get("HUB_SQUARE_NOTIFICATION_URL");
        if let Some(u) = &square_notification_url
            && !u.starts_with("https://")
            && !u.starts_with("http://")
        {
            return Err(ConfigError::Invalid {
                name: "HUB_SQUARE_NOTIFICATION_URL",
                value: u.clone(),
                reason: "expected the full URL the Square subscription posts to".into(),
            });
        }
        let public_url_env = get("HUB_PUBLIC_URL");
        let public_url_set = public_url_env.is_some();
        let public_url = public_url_env.unwrap_or_else(|| "http://127.0.0.1:8080".into());
        check_url("HUB_PUBLIC_URL", &public_url)?;
        let mut endpoints = crate::providers::Endpoints::default();
        for (name, field) in [
            ("HUB_ENDPOINT_TOAST", &mut endpoints.toast),
            ("HUB_ENDPOINT_SQUARE", &mut endpoints.square),
            ("HUB_ENDPOINT_MARKETMAN", &mut endpoints.marketman),
            ("HUB_ENDPOINT_QUICKBOOKS", &mut endpoints.quickbooks),
            (
                "HUB_ENDPOINT_QUICKBOOKS_TOKEN",
                &mut endpoints.quickbooks_token,
            ),
            ("HUB_ENDPOINT_XERO", &mut endpoints.xero),
            ("HUB_ENDPOINT_XERO_TOKEN", &mut endpoints.xero_token),
            ("HUB_ENDPOINT_SQUARE_TOKEN", &mut endpoints.square_token),
            (
                "HUB_ENDPOINT_QUICKBOOKS_AUTHORIZE",
                &mut endpoints.quickbooks_authorize,
            ),
            ("HUB_ENDPOINT_XERO_AUTHORIZE", &mut endpoints.xero_authorize),
            (
                "HUB_ENDPOINT_SQUARE_AUTHORIZE",
                &mut endpoints.square_authorize,
            ),
        ] {
            if let Some(v) = get(name) {
                check_url(name, &v)?;
                *field = v;
            }
        }
        let alert_webhook_url = get("HUB_ALERT_WEBHOOK_URL");
        if let Some(u) = &alert_webhook_url {
            check_url("HUB_ALERT_WEBHOOK_URL", u)?;
        }
        Ok(Config {
            backend,
            secrets_ttl,
            log_format,
            webhook_max_body_bytes,
            square_notification_url,
            public_url,
            public_url_set,
            endpoints,
            alert_webhook_url,
            intake_token: get("HUB_INTAKE_TOKEN").map(secrecy::SecretString::from),
        })
    }
}

fn check_url(name: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.starts_with("https://") || value.starts_with("http://") {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            name,
            value: value.to_string(),
            reason: "expected an http(s) URL".into(),
        })
    }
}

fn parse_num<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(raw) = get(name) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(ConfigError::Invalid {
            name,
            value: raw,
            reason: format!(
                "expected a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_map(&map)
    }

    #[test]
    fn nothing_configured_means_embedded() {
        let c = cfg(&[]).unwrap();
        assert_eq!(
            c.backend,
            BackendConfig::Embedded {
                data_dir: ".hub".into(),
                max_receives: 5
            }
        );
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.secrets_ttl, Duration::from_secs(300));
    }

    #[test]
    fn a_partial_aws_setup_names_every_missing_variable() {
        let err = cfg(&[("HUB_STATE_TABLE", "hub-state")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing configuration: HUB_IDEMPOTENCY_TABLE, HUB_WORK_QUEUE_URL, HUB_PUSH_QUEUE_URL, HUB_PULL_QUEUE_URL, HUB_OUTBOUND_QUEUE_URL, HUB_UNROUTED_QUEUE_URL must be set for HUB_BACKEND=aws"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let err = cfg(&[("HUB_MAX_RECEIVES", "zero")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid HUB_MAX_RECEIVES=\"zero\""),
            "{err}"
        );
        let err = cfg(&[("HUB_BACKEND", "redis")]).unwrap_err();
        assert!(err.to_string().contains("HUB_BACKEND"), "{err}");
        let err = cfg(&[("HUB_LOG_FORMAT", "xml")]).unwrap_err();
        assert!(err.to_string().contains("HUB_LOG_FORMAT"), "{err}");
    }

    #[test]
    fn a_full_aws_setup_is_read() {
        let c = cfg(&[
            ("HUB_STATE_TABLE", "s"),
            ("HUB_IDEMPOTENCY_TABLE", "i"),
            (
                "HUB_WORK_QUEUE_URL",
                "https://sqs.us-east-1.amazonaws.com/1/work",
            ),
            (
                "HUB_PUSH_QUEUE_URL",
                "https://sqs.us-east-1.amazonaws.com/1/push",
            ),
            (
                "HUB_UNROUTED_QUEUE_URL",
                "https://sqs.us-east-1.amazonaws.com/1/unrouted",
            ),
            (
                "HUB_PULL_QUEUE_URL",
                "https://sqs.us-east-1.amazonaws.com/1/pull",
            ),
            (
                "HUB_OUTBOUND_QUEUE_URL",
                "https://sqs.us-east-1.amazonaws.com/1/out",
            ),
            ("HUB_SECRET_PREFIX", "hub/prod/"),
        ])
        .unwrap();
        let BackendConfig::Aws(aws) = c.backend else {
            panic!("expected aws backend");
        };
        assert_eq!(aws.secret_prefix, "hub/prod/");
        assert_eq!(aws.state_table, "s");
        assert_eq!(
            aws.unrouted_queue_url,
            "https://sqs.us-east-1.amazonaws.com/1/unrouted"
        );
    }

    #[test]
    fn a_queue_name_where_a_url_belongs_is_refused() {
        let err = cfg(&[
            ("HUB_STATE_TABLE", "s"),
            ("HUB_IDEMPOTENCY_TABLE", "i"),
            ("HUB_WORK_QUEUE_URL", "work"),
            ("HUB_PUSH_QUEUE_URL", "https://x/push"),
            ("HUB_UNROUTED_QUEUE_URL", "https://x/unrouted"),
            ("HUB_PULL_QUEUE_URL", "https://x/pull"),
            ("HUB_OUTBOUND_QUEUE_URL", "https://x/out"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("HUB_WORK_QUEUE_URL"), "{err}");
    }

    #[test]
    fn endpoints_can_point_at_a_sandbox() {
        let c = cfg(&[(
            "HUB_ENDPOINT_QUICKBOOKS_TOKEN",
            "http://127.0.0.1:9001/token",
        )])
        .unwrap();
        assert_eq!(c.endpoints.quickbooks_token, "http://127.0.0.1:9001/token");
        assert_eq!(c.endpoints.xero, "https://api.xero.com");
        let err = cfg(&[("HUB_ENDPOINT_XERO", "api.xero.com")]).unwrap_err();
        assert!(err.to_string().contains("HUB_ENDPOINT_XERO"), "{err}");
    }

    #[test]
    fn every_variable_read_is_documented() {
        let documented: Vec<&str> = VARIABLES.iter().map(|v| v.0).collect();
        for k in AWS_REQUIRED {
            assert!(documented.contains(&k), "{k} undocumented");
        }
    }
}
