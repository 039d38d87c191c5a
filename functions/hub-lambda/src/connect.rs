//! The connect function: `GET /connect/{provider}` starts an OAuth flow,
//! `GET /connect/{provider}/callback` finishes it (HTTP API or Function URL).

use lambda_http::{Body, Request, RequestExt, Response, service_fn};
use shared::providers::connect::{ConnectResponse, ConnectService};
use tracing::Instrument;

/// Handles one invocation.
pub async fn handle(service: &ConnectService, req: Request) -> Response<Body> {
    let request_id = req
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    async {
        let path = req.raw_http_path();
        let rest = path.strip_prefix("/connect/").unwrap_or("");
        // Behind API Gateway the Host is the API's own (or custom) domain:
        // the base the provider sends the user back to, unless configured.
        let base = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
            .map(|h| format!("https://{h}"));
        let r = service
            .handle(
                req.method().as_str(),
                rest,
                req.uri().query().unwrap_or(""),
                base.as_deref(),
            )
            .await;
        to_response(r)
    }
    .instrument(shared::telemetry::request_span(&request_id))
    .await
}

fn to_response(r: ConnectResponse) -> Response<Body> {
    let mut b = Response::builder().status(r.status);
    match r.location {
        Some(l) => b = b.header("location", l),
        None => b = b.header("content-type", "application/json"),
    }
    b.body(if r.body.is_empty() {
        Body::Empty
    } else {
        Body::Text(r.body)
    })
    .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// The main of the connect function.
pub async fn run() -> Result<(), lambda_http::Error> {
    let (config, stores) = crate::cold_start().await?;
    let service = ConnectService::new(
        stores.clone(),
        stores.provider_http(),
        config.endpoints.clone(),
        if config.public_url_set {
            &config.public_url
        } else {
            ""
        },
    );
    let service = &service;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, std::convert::Infallible>(handle(service, req).await)
    }))
    .await
}
