//! `intake`: `POST /intake/{tenant}/{purchase-orders|deliveries|time-entries}`
//! (IAM-authorized). The work is in `shared::ops::intake`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    hub_lambda::intake::run().await
}
