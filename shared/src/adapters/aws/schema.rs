//! Creates the hub's DynamoDB tables and SQS queues as `infra/template.yaml`
//! declares them. Used by the tests against the AWS emulator and by
//! `hub aws bootstrap` for a developer's emulator; production uses the template.

use super::sdk_err;
use crate::ports::{StoreError, StoreResult};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

/// The state table's secondary index (tenants, connections, ledger by date).
pub const GSI1: &str = "gsi1";

/// Both tables' TTL attribute (epoch seconds): clean-up only; expiry is
/// judged by the records' own timestamps.
pub const TTL_ATTRIBUTE: &str = "expiration";

fn key(name: &str, kt: KeyType) -> StoreResult<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kt)
        .build()
        .map_err(|e| StoreError::backend("dynamodb", "create_table", e))
}

fn attr(name: &str) -> StoreResult<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| StoreError::backend("dynamodb", "create_table", e))
}

/// Creates the state table: `pk`/`sk` keys, the `gsi1` index on
/// `gsi1pk`/`gsi1sk`, TTL on `expiration` (call records).
pub async fn create_state_table(client: &aws_sdk_dynamodb::Client, name: &str) -> StoreResult<()> {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk")?)
        .attribute_definitions(attr("sk")?)
        .attribute_definitions(attr("gsi1pk")?)
        .attribute_definitions(attr("gsi1sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(GSI1)
                .key_schema(key("gsi1pk", KeyType::Hash)?)
                .key_schema(key("gsi1sk", KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(|e| StoreError::backend("dynamodb", "create_table", e))?,
        )
        .send()
        .await
        .map_err(sdk_err("dynamodb", "create_table"))?;
    enable_ttl(client, name).await
}

async fn enable_ttl(client: &aws_sdk_dynamodb::Client, name: &str) -> StoreResult<()> {
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build()
                .map_err(|e| StoreError::backend("dynamodb", "update_time_to_live", e))?,
        )
        .send()
        .await
        .map_err(sdk_err("dynamodb", "update_time_to_live"))?;
    Ok(())
}

/// Creates the idempotency table: key `id`, TTL on `expiration`.
pub async fn create_idempotency_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> StoreResult<()> {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("id")?)
        .key_schema(key("id", KeyType::Hash)?)
        .send()
        .await
        .map_err(sdk_err("dynamodb", "create_table"))?;
    enable_ttl(client, name).await
}

/// Creates queue `name` and its dead-letter queue `name-dlq`, with a redrive
/// policy after `max_receives` receives. Returns the queue's URL.
pub async fn create_queue_with_dlq(
    client: &aws_sdk_sqs::Client,
    name: &str,
    max_receives: u32,
) -> StoreResult<String> {
    let dlq = client
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .map_err(sdk_err("sqs", "create_queue"))?;
    let dlq_url = dlq
        .queue_url()
        .ok_or_else(|| StoreError::backend("sqs", "create_queue", "no queue URL returned"))?;
    let attrs = client
        .get_queue_attributes()
        .queue_url(dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(sdk_err("sqs", "get_queue_attributes"))?;
    let dlq_arn = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .ok_or_else(|| StoreError::backend("sqs", "get_queue_attributes", "no QueueArn"))?;
    let policy = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receives,
    });
    let queue = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
        .send()
        .await
        .map_err(sdk_err("sqs", "create_queue"))?;
    queue
        .queue_url()
        .map(str::to_string)
        .ok_or_else(|| StoreError::backend("sqs", "create_queue", "no queue URL returned"))
}

/// Creates a plain queue `name` with the longest retention (14 days) and no
/// dead-letter queue: for queues operators read, like the unrouted queue.
pub async fn create_queue(client: &aws_sdk_sqs::Client, name: &str) -> StoreResult<String> {
    let out = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .map_err(sdk_err("sqs", "create_queue"))?;
    out.queue_url()
        .map(str::to_string)
        .ok_or_else(|| StoreError::backend("sqs", "create_queue", "no queue URL returned"))
}
