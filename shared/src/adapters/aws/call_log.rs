//! A record of every AWS call the process makes: service, operation and the
//! resources it names (tables, queue URLs, secret ids), one JSON line each,
//! appended to the file `HUB_AWS_CALL_LOG` names. Off unless set.
//!
//! The test command runs the function binaries with it against the AWS
//! emulator and checks each recorded call against that function's IAM
//! policies in the template as AWS reads it: a call no policy allows fails
//! the run, and a granted action no call used is listed. Only names are
//! recorded, never a request's values.

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use std::io::Write;
use std::path::PathBuf;

/// The variable naming the file calls are appended to.
pub const CALL_LOG_VAR: &str = "HUB_AWS_CALL_LOG";

/// Appends one line per AWS call to a file.
#[derive(Debug, Clone)]
pub struct CallLog {
    path: PathBuf,
    /// Who calls: the Lambda function's name where set.
    caller: String,
}

impl CallLog {
    /// The log `HUB_AWS_CALL_LOG` asks for, if any.
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os(CALL_LOG_VAR).filter(|p| !p.is_empty())?;
        Some(CallLog {
            path: path.into(),
            caller: std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "hub".into()),
        })
    }
}

/// The resources a request body names: DynamoDB `TableName` (also inside
/// `TransactItems`; `<table>/index/<name>` for a query of an index), SQS
/// `QueueUrl`, Secrets Manager `SecretId` or `Name`.
fn resources(body: &[u8]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for key in ["TableName", "QueueUrl", "SecretId", "Name"] {
        if let Some(s) = v.get(key).and_then(|s| s.as_str()) {
            out.push(s.to_string());
        }
    }
    // A query of an index is authorized on the index.
    if let (Some(t), Some(i)) = (
        v.get("TableName").and_then(|s| s.as_str()),
        v.get("IndexName").and_then(|s| s.as_str()),
    ) {
        out.push(format!("{t}/index/{i}"));
    }
    for item in v
        .get("TransactItems")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(obj) = item.as_object() {
            for inner in obj.values() {
                if let Some(t) = inner.get("TableName").and_then(|s| s.as_str()) {
                    out.push(t.to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "HubCallLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_string(), m.name().to_string()))
            .unwrap_or_default();
        let body = context.request().body().bytes().unwrap_or_default();
        let line = serde_json::json!({
            "caller": self.caller,
            "service": service,
            "operation": operation,
            "resources": resources(body),
        });
        // A log that cannot be written must not fail the call it records.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            let _ = writeln!(f, "{line}");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::resources;

    #[test]
    fn the_resources_a_request_names_are_read_from_its_body() {
        assert_eq!(
            resources(br#"{"TableName":"hub-state","Key":{"pk":{"S":"secret value"}}}"#),
            ["hub-state"]
        );
        assert_eq!(
            resources(br#"{"TableName":"hub-state","IndexName":"gsi1"}"#),
            ["hub-state", "hub-state/index/gsi1"]
        );
        assert_eq!(
            resources(
                br#"{"TransactItems":[{"Put":{"TableName":"a"}},{"ConditionCheck":{"TableName":"b"}},{"Update":{"TableName":"a"}}]}"#
            ),
            ["a", "b"]
        );
        assert_eq!(
            resources(br#"{"QueueUrl":"http://127.0.0.1:5000/123/q","MessageBody":"x"}"#),
            ["http://127.0.0.1:5000/123/q"]
        );
        assert_eq!(
            resources(br#"{"SecretId":"integration-hub/prod/apps/quickbooks"}"#),
            ["integration-hub/prod/apps/quickbooks"]
        );
        assert!(resources(b"not json").is_empty());
    }
}
