//! `connect`: starts and finishes OAuth connections (`GET /connect/{provider}`,
//! `GET /connect/{provider}/callback`). The work is in `shared::providers::connect`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    hub_lambda::connect::run().await
}
