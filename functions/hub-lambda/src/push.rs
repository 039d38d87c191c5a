//! The push function: consumes the push queue (QuickBooks and Xero items
//! alike, grouped into the providers' batch requests per account) and
//! reports partial batch failures, so only the messages to retry come back. A retry is delayed on the message itself (its visibility: the
//! provider's `Retry-After`, or a growing backoff); a permanent failure is
//! parked in the dead-letter queue at once and the ledger row marked failed.
//! A request is begun only while it can finish before the invocation's
//! deadline (a rate-budget wait and the call: 90 s); what is left is given
//! back untried.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};
use shared::Stores;
use shared::pipelines::push::{PushOutcome, Pusher};
use shared::providers::ProviderClients;
use tracing::Instrument;

/// Handles one SQS batch; returns the `batchItemFailures` answer.
pub async fn handle(stores: &Stores, pusher: &Pusher, event: Value, request_id: &str) -> Value {
    async {
        let messages: Vec<_> = event["Records"]
            .as_array()
            .into_iter()
            .flatten()
            .map(crate::sqs_message)
            .collect();
        let mut failures = Vec::new();
        match pusher
            .handle_many(stores.push_queue.as_ref(), &messages)
            .await
        {
            Ok(outcomes) => {
                for (message, outcome) in messages.iter().zip(outcomes) {
                    let id = message.id.to_string();
                    match outcome {
                        PushOutcome::Retry(after, why) => {
                            tracing::warn!(message_id = %id, retry_in = ?after, reason = %why, "push delayed");
                            failures.push(json!({ "itemIdentifier": id }));
                        }
                        outcome => tracing::info!(message_id = %id, ?outcome, "push settled"),
                    }
                }
            }
            Err(e) => {
                // The store failed mid-way: every message comes back; what
                // was posted is skipped on the next delivery.
                tracing::error!(error = %e, "push batch could not be settled");
                failures.extend(
                    messages
                        .iter()
                        .map(|m| json!({ "itemIdentifier": m.id.to_string() })),
                );
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
    let mut pusher = Pusher::new(stores.clone(), clients);
    if let Some(secs) = std::env::var("HUB_PUSH_REQUEST_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        pusher.per_request = std::time::Duration::from_secs(secs);
    }
    let (stores, pusher) = (&stores, &pusher);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // A request is begun only while it can finish before the function's
        // timeout; what is left goes back to the queue untried. A deadline
        // already past is not one Lambda gives (emulators send a duration):
        // the invocation then runs without one.
        let now_ms = u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or_default();
        let deadline = event.context.deadline;
        let pusher = if deadline > now_ms {
            pusher.until(
                std::time::Instant::now() + std::time::Duration::from_millis(deadline - now_ms),
            )
        } else {
            tracing::debug!(
                deadline_ms = deadline,
                "no usable deadline: requests are not limited by time"
            );
            pusher.clone()
        };
        Ok::<_, lambda_runtime::Error>(
            handle(stores, &pusher, event.payload, &event.context.request_id).await,
        )
    }))
    .await
}
