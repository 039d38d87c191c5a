//! The health-monitor function: on schedule, checks every connection, logs
//! metrics in CloudWatch embedded-metric format, and alerts on state changes.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::{Value, json};
use shared::pipelines::health::{Alerter, Thresholds, emf_line, monitor};
use shared::providers::ProviderClients;

/// The main of the health-monitor function.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    let (config, stores) = crate::cold_start().await?;
    let clients = ProviderClients::new(&stores, config.endpoints.clone(), &config.public_url);
    let alerter = Alerter::with_client(
        config.alert_webhook_url.clone(),
        clients.http().lazy_client(),
    );
    let (stores, clients, alerter) = (&stores, &clients, &alerter);
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| async move {
        let reports = monitor(stores, clients, alerter, &Thresholds::default()).await?;
        // The metrics, one embedded-metric-format line each, into the log.
        for r in &reports {
            println!("{}", emf_line(r));
        }
        let unhealthy = reports
            .iter()
            .filter(|r| r.state == shared::pipelines::health::State::Unhealthy)
            .count();
        Ok::<_, lambda_runtime::Error>(json!({ "checked": reports.len(), "unhealthy": unhealthy }))
    }))
    .await
}
