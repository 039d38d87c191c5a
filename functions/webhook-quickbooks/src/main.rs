//! `webhook-quickbooks`: QuickBooks's webhook endpoint (API Gateway HTTP API route or
//! Function URL). All the work is in `shared::webhooks`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    hub_lambda::webhook::run(shared::model::Provider::QuickBooks).await
}
