//! The production backend: DynamoDB (idempotency, cursors, ledger,
//! connections), SQS (work queues and their dead-letter queues) and Secrets
//! Manager, through the AWS SDK for Rust. `schema` creates the tables and
//! queues the way `infra/template.yaml` declares them (tests and local
//! emulators use it; production uses the template).

pub mod call_log;
mod dynamodb;
pub mod schema;
mod secretsmanager;
mod sqs;

pub use dynamodb::DynamoStore;
pub use secretsmanager::AwsSecrets;
pub use sqs::SqsQueue;

use crate::ports::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// Turns an SDK error into a `StoreError`, with the service's full message.
pub(crate) fn sdk_err<E, R>(
    backend: &'static str,
    operation: &'static str,
) -> impl Fn(aws_sdk_dynamodb::error::SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    move |e| {
        StoreError::backend(
            backend,
            operation,
            aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
        )
    }
}

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(StoreError::corrupt(
            "dynamodb item",
            format!("attribute {name} missing or not a string"),
        )),
    }
}

pub(crate) fn get_opt_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

pub(crate) fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| {
            StoreError::corrupt("dynamodb item", format!("attribute {name} is not a number"))
        }),
        _ => Err(StoreError::corrupt(
            "dynamodb item",
            format!("attribute {name} missing or not a number"),
        )),
    }
}

pub use aws_config::SdkConfig;
pub use aws_sdk_dynamodb::Client as DynamoClient;
pub use aws_sdk_sqs::Client as SqsClient;

/// The SDK configuration from the usual sources (environment, profile, role),
/// including `AWS_ENDPOINT_URL` for an emulator.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::load_from_env().await
}
