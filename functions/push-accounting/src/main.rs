//! `push-accounting`: consumes the push queue and posts to QuickBooks Online
//! and Xero. The work is in `shared::pipelines::push`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hub_lambda::push::run().await
}
