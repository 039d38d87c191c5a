//! `push`: consumes the push queue and posts each record to its destination:
//! QuickBooks Online, Xero, MarketMan, the time-tracking system. The work is
//! in `shared::pipelines::push`.

// One thread: a Lambda invocation is handled alone, and a single-threaded
// runtime spends no CPU waking and parking idle workers.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    hub_lambda::push::run().await
}
