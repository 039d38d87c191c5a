//! `process-events`: consumes the webhook work queue. The work is in
//! `shared::pipelines::events`.

// One thread: a Lambda invocation is handled alone, and a single-threaded
// runtime spends no CPU waking and parking idle workers.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    hub_lambda::events::run().await
}
