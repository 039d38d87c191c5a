//! `pull-square`: on schedule, one pull job per Square connection; on the pull
//! queue, each job. All the work is in `shared::pipelines::pull`.

// One thread: a Lambda invocation is handled alone, and a single-threaded
// runtime spends no CPU waking and parking idle workers.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    hub_lambda::pull::run(shared::model::Provider::Square).await
}
