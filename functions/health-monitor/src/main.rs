//! `health-monitor`: connection health on schedule. The work is in
//! `shared::pipelines::health`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hub_lambda::health::run().await
}
