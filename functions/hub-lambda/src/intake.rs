//! The intake function: the back office's purchase orders, deliveries and
//! time entries (`POST /intake/{tenant}/{kind}`), behind an IAM-authorized
//! API Gateway route.

use lambda_http::{Body, Request, RequestExt, Response, service_fn};
use shared::ops::intake::{Intake, IntakeAuth};
use tracing::Instrument;

/// Handles one invocation.
pub async fn handle(intake: &Intake, req: Request) -> Response<Body> {
    let request_id = req
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    async {
        let path = req.raw_http_path();
        let rest = path.strip_prefix("/intake/").unwrap_or("");
        let body: &[u8] = req.body().as_ref();
        let r = intake
            .handle(req.method().as_str(), rest, req.headers(), body)
            .await;
        let mut b = Response::builder()
            .status(r.status)
            .header("content-type", "application/json");
        if r.replayed {
            b = b.header("idempotent-replayed", "true");
        }
        b.body(Body::Text(r.body))
            .unwrap_or_else(|_| Response::new(Body::Empty))
    }
    .instrument(shared::telemetry::request_span(&request_id))
    .await
}

/// The main of the intake function.
pub async fn run() -> Result<(), lambda_http::Error> {
    let (_config, stores) = crate::cold_start().await?;
    let intake = Intake::new(stores, IntakeAuth::Iam);
    let intake = &intake;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, std::convert::Infallible>(handle(intake, req).await)
    }))
    .await
}
