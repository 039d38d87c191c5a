//! `pull-square`: on schedule, one pull job per Square connection; on the pull
//! queue, each job. All the work is in `shared::pipelines::pull`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    hub_lambda::pull::run(shared::model::Provider::Square).await
}
