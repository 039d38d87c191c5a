//! `process-events`: consumes the webhook work queue. The work is in
//! `shared::pipelines::events`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hub_lambda::events::run().await
}
