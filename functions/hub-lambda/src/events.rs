//! The process-events function: consumes the webhook work queue. Processed
//! events are deleted by the runtime; events that may succeed later are
//! reported as failures (and come back after the visibility timeout); events
//! that never can are parked in the dead-letter queue.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};
use shared::Stores;
use shared::pipelines::events::process;
use shared::providers::ProviderClients;
use tracing::Instrument;

/// Handles one SQS batch from the work queue.
pub async fn handle(
    stores: &Stores,
    clients: &ProviderClients,
    event: Value,
    request_id: &str,
) -> Value {
    async {
        let mut failures = Vec::new();
        for r in event["Records"].as_array().into_iter().flatten() {
            let id = r["messageId"].as_str().unwrap_or_default().to_string();
            let body = r["body"].as_str().unwrap_or_default();
            match process(stores, clients, body).await {
                Ok(t) => tracing::info!(message_id = %id, created = t.created, changed = t.changed, "event processed"),
                Err(e) if e.is_retryable() => {
                    tracing::warn!(message_id = %id, error = %e, "event will be retried");
                    failures.push(json!({ "itemIdentifier": id }));
                }
                Err(e) => {
                    tracing::error!(message_id = %id, error = %e, "event parked");
                    let message = crate::sqs_message(r);
                    if stores.work_queue.park(&message).await.is_err() {
                        failures.push(json!({ "itemIdentifier": id }));
                    }
                }
            }
        }
        json!({ "batchItemFailures": failures })
    }
    .instrument(shared::telemetry::request_span(request_id))
    .await
}

/// The main of the process-events function.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let (config, stores) = crate::cold_start().await?;
    let clients = ProviderClients::new(&stores, config.endpoints.clone(), &config.public_url);
    let (stores, clients) = (&stores, &clients);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, lambda_runtime::Error>(
            handle(stores, clients, event.payload, &event.context.request_id).await,
        )
    }))
    .await
}
