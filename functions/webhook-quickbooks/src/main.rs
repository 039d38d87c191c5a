//! `webhook-quickbooks`: QuickBooks's webhook endpoint (API Gateway HTTP API route or
//! Function URL). All the work is in `shared::webhooks`.

// One thread: a Lambda invocation is handled alone, and a single-threaded
// runtime spends no CPU waking and parking idle workers.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    hub_lambda::webhook::run(shared::model::Provider::QuickBooks).await
}
