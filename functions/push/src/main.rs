//! `push`: consumes the push queue and posts each record to its destination:
//! QuickBooks Online, Xero, MarketMan, the time-tracking system. The work is
//! in `shared::pipelines::push`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hub_lambda::push::run().await
}
