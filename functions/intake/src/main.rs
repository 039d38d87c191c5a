//! `intake`: `POST /intake/{tenant}/{purchase-orders|deliveries|time-entries}`
//! (IAM-authorized). The work is in `shared::ops::intake`.

// One thread: a Lambda invocation is handled alone, and a single-threaded
// runtime spends no CPU waking and parking idle workers.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    hub_lambda::intake::run().await
}
