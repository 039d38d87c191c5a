//! The push function: consumes the push queue (QuickBooks and Xero items
//! alike) and reports partial batch failures, so only the messages to retry
//! come back. A retry is delayed on the message itself (its visibility: the
//! provider's `Retry-After`, or a growing backoff); a permanent failure is
//! parked in the dead-letter queue at once and the ledger row marked failed.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};
use shared::Stores;
use shared::pipelines::push::{PushOutcome, Pusher};
use shared::providers::ProviderClients;
use tracing::Instrument;

/// Handles one SQS batch; returns the `batchItemFailures` answer.
pub async fn handle(stores: &Stores, pusher: &Pusher, event: Value, request_id: &str) -> Value {
    async {
        let mut failures = Vec::new();
        for r in event["Records"].as_array().into_iter().flatten() {
            let message = crate::sqs_message(r);
            let id = message.id.to_string();
            match pusher.handle(stores.push_queue.as_ref(), &message).await {
                Ok(PushOutcome::Retry(after, why)) => {
                    tracing::warn!(message_id = %id, retry_in = ?after, reason = %why, "push delayed");
                    failures.push(json!({ "itemIdentifier": id }));
                }
                Ok(outcome) => tracing::info!(message_id = %id, ?outcome, "push settled"),
                Err(e) => {
                    tracing::error!(message_id = %id, error = %e, "push could not be settled");
                    failures.push(json!({ "itemIdentifier": id }));
                }
            }
        }
        json!({ "batchItemFailures": failures })
    }
    .instrument(shared::telemetry::request_span(request_id))
    .await
}

/// The main of the push function.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let (config, stores) = crate::cold_start().await?;
    let clients = ProviderClients::new(&stores, config.endpoints.clone(), &config.public_url);
    let pusher = Pusher::new(stores.clone(), clients);
    let (stores, pusher) = (&stores, &pusher);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        Ok::<_, lambda_runtime::Error>(
            handle(stores, pusher, event.payload, &event.context.request_id).await,
        )
    }))
    .await
}
