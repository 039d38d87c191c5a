//! Pull functions. A scheduled event (EventBridge Scheduler) fans out: one job
//! per connection of the function's provider onto the pull queue. An SQS batch
//! from the pull queue runs those jobs; a job that fails is reported in
//! `batchItemFailures`, so only it comes back (and, after the queue's receive
//! limit, waits in the dead-letter queue for an operator). A job that finds
//! another pull moving its cursor stops and is done: that pull covers it (a
//! job queued every 15 minutes may overlap one still running).

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};
use shared::Stores;
use shared::model::Provider;
use shared::pipelines::pull::{PullError, PullOutcome, Puller, run_job, schedule};
use shared::providers::ProviderClients;
use tracing::Instrument;

/// Handles one invocation: a schedule tick or a batch of pull jobs.
pub async fn handle(
    stores: &Stores,
    puller: &Puller,
    clients: &ProviderClients,
    provider: Provider,
    event: Value,
    request_id: &str,
) -> Value {
    async {
        match event.get("Records").and_then(Value::as_array) {
            Some(records) => {
                let mut failures = Vec::new();
                for r in records {
                    let id = r["messageId"].as_str().unwrap_or_default();
                    let body = r["body"].as_str().unwrap_or_default();
                    match settle(run_job(puller, clients, body).await) {
                        Ok(PullOutcome::Deferred(d)) => {
                            // Not a failure: the schedule brings it back.
                            tracing::info!(
                                message_id = id,
                                until = %d.until,
                                reason = %d.reason,
                                "pull job deferred"
                            );
                        }
                        Ok(PullOutcome::Done(reports)) => {
                            for (stream, report) in reports {
                                tracing::info!(
                                    message_id = id,
                                    stream,
                                    records = report.tally.records,
                                    created = report.tally.created,
                                    changed = report.tally.changed,
                                    "pull job done"
                                );
                            }
                        }
                        Err(e) => {
                            tracing::error!(message_id = id, error = %e, "pull job failed");
                            failures.push(json!({ "itemIdentifier": id }));
                        }
                    }
                }
                json!({ "batchItemFailures": failures })
            }
            None => match schedule(stores, clients, provider, jiff::Timestamp::now()).await {
                Ok(tick) => {
                    tracing::info!(
                        %provider,
                        jobs = tick.queued,
                        not_due = tick.not_due,
                        deferred = tick.deferred.len(),
                        "pull jobs queued"
                    );
                    // The POS's days that became final go to the books
                    // booking daily summaries.
                    let days = if matches!(provider, Provider::Toast | Provider::Square) {
                        match shared::pipelines::days::close_due_days(
                            stores,
                            provider,
                            jiff::Timestamp::now(),
                        )
                        .await
                        {
                            Ok(jobs) => jobs.len(),
                            Err(e) => {
                                tracing::error!(%provider, error = %e, "could not queue the final days");
                                return json!({ "error": e.to_string() });
                            }
                        }
                    } else {
                        0
                    };
                    tracing::info!(%provider, days, "final days queued for the daily journal");
                    json!({
                        "queued": tick.queued,
                        "not_due": tick.not_due,
                        "deferred": tick.deferred.len(),
                        "days_queued": days,
                    })
                }
                Err(e) => {
                    tracing::error!(%provider, error = %e, "could not queue pull jobs");
                    json!({ "error": e.to_string() })
                }
            },
        }
    }
    .instrument(shared::telemetry::request_span(request_id))
    .await
}

/// A job's result as the queue sees it: a superseded job is done (the pull
/// that moved the cursor covers it), with nothing to report.
pub fn settle(result: Result<PullOutcome, PullError>) -> Result<PullOutcome, PullError> {
    match result {
        Err(PullError::Superseded(cursor)) => {
            tracing::info!(%cursor, "pull job superseded by a concurrent pull of the same cursor: done");
            Ok(PullOutcome::Done(Vec::new()))
        }
        other => other,
    }
}

/// The main of a pull function.
pub async fn run(provider: Provider) -> Result<(), lambda_runtime::Error> {
    let (config, stores) = crate::cold_start().await?;
    let puller = Puller::new(stores.clone(), Default::default());
    let clients = ProviderClients::new(&stores, config.endpoints.clone(), &config.public_url);
    let (stores, puller, clients) = (&stores, &puller, &clients);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let out = handle(
            stores,
            puller,
            clients,
            provider,
            event.payload,
            &event.context.request_id,
        )
        .await;
        if let Some(e) = out.get("error").and_then(Value::as_str) {
            return Err(lambda_runtime::Error::from(e.to_string()));
        }
        Ok::<_, lambda_runtime::Error>(out)
    }))
    .await
}
