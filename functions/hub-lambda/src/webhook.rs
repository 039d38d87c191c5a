//! Webhook functions: API Gateway HTTP API and Function URL requests (payload
//! format 2.0; base64 bodies are decoded by `lambda_http`) into the webhook
//! intake. Each function serves one provider, whatever the path.

use lambda_http::{Body, Request, RequestExt, Response, service_fn};
use shared::model::Provider;
use shared::webhooks::{WebhookIntake, WebhookRequest, WebhookResponse};
use tracing::Instrument;

/// Handles one invocation.
pub async fn handle(intake: &WebhookIntake, provider: Provider, req: Request) -> Response<Body> {
    let request_id = req
        .lambda_context_ref()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    let span = shared::telemetry::request_span(&request_id);
    async {
        let url = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(|host| format!("https://{host}{}", req.raw_http_path()));
        let body: &[u8] = req.body().as_ref();
        let answer = intake
            .handle(WebhookRequest {
                provider: provider.as_str(),
                method: req.method().as_str(),
                headers: req.headers(),
                body,
                url,
            })
            .await;
        to_response(answer)
    }
    .instrument(span)
    .await
}

fn to_response(r: WebhookResponse) -> Response<Body> {
    let mut builder = Response::builder().status(r.status);
    if let Some(ct) = r.content_type() {
        builder = builder.header("content-type", ct);
    }
    if let Some(secs) = r.retry_after {
        builder = builder.header("retry-after", secs);
    }
    if let Some(allow) = r.allow {
        builder = builder.header("allow", allow);
    }
    let body = if r.body.is_empty() {
        Body::Empty
    } else {
        Body::Text(r.body)
    };
    builder
        .body(body)
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// The main of a webhook function: configuration and stores once, then one
/// `handle` per invocation.
pub async fn run(provider: Provider) -> Result<(), lambda_http::Error> {
    let (config, stores) = crate::cold_start().await?;
    let intake = WebhookIntake::new(stores, config.webhook_settings());
    let intake = &intake;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, std::convert::Infallible>(handle(intake, provider, req).await)
    }))
    .await
}
