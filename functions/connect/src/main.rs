//! `connect`: starts and finishes OAuth connections (`GET /connect/{provider}`,
//! `GET /connect/{provider}/callback`). The work is in `shared::providers::connect`.

// One thread: a Lambda invocation is handled alone, and a single-threaded
// runtime spends no CPU waking and parking idle workers.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    hub_lambda::connect::run().await
}
