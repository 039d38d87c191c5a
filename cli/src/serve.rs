//! `hub serve`: the hub's HTTP routes in one local process. Tests call
//! [`run`] on `127.0.0.1:0`, the same entry point as the binary.
//!
//! - `GET /health`: backend and queue depths.
//! - `POST /webhooks/{provider}`: the webhook intake the Lambda functions run.
//! - `GET /connect/{provider}` and `/connect/{provider}/callback`: the OAuth
//!   connect flow the `connect` function runs.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use shared::Stores;
use shared::providers::Endpoints;
use shared::providers::connect::ConnectService;
use shared::webhooks::{WebhookIntake, WebhookRequest, WebhookResponse};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::Instrument;

/// The header carrying a request's id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The configured stores.
    pub stores: Stores,
    /// The webhook intake on those stores.
    pub webhooks: Arc<WebhookIntake>,
    /// The OAuth connect flow.
    pub connect: Arc<ConnectService>,
    /// The back office's intake.
    pub intake: Arc<shared::ops::intake::Intake>,
}

impl AppState {
    /// State on `stores` with the given webhook settings, production
    /// provider endpoints and the default public URL.
    pub fn new(stores: Stores, settings: shared::webhooks::WebhookSettings) -> Self {
        Self::with_connect(
            stores,
            settings,
            Endpoints::default(),
            "http://127.0.0.1:8080",
        )
    }

    /// State with the connect flow calling `endpoints` and sending users back
    /// to `public_url`.
    pub fn with_connect(
        stores: Stores,
        settings: shared::webhooks::WebhookSettings,
        endpoints: Endpoints,
        public_url: &str,
    ) -> Self {
        AppState {
            webhooks: Arc::new(WebhookIntake::new(stores.clone(), settings)),
            connect: Arc::new(ConnectService::new(
                stores.clone(),
                stores.provider_http(),
                endpoints,
                public_url,
            )),
            intake: Arc::new(shared::ops::intake::Intake::new(
                stores.clone(),
                shared::ops::intake::IntakeAuth::Bearer(None),
            )),
            stores,
        }
    }

    /// The same state with the intake's bearer token.
    pub fn with_intake_token(mut self, token: Option<secrecy::SecretString>) -> Self {
        self.intake = Arc::new(shared::ops::intake::Intake::new(
            self.stores.clone(),
            shared::ops::intake::IntakeAuth::Bearer(token),
        ));
        self
    }
}

/// Every route `hub serve` answers.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route(
            "/webhooks/{provider}",
            any(webhook).layer(DefaultBodyLimit::disable()),
        )
        .route("/connect/{*rest}", any(connect))
        .route("/intake/{*rest}", any(intake))
        .fallback(no_route)
        .layer(middleware::from_fn(with_request_id))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Runs each request in a span carrying its id (the caller's `x-request-id`
/// or a new one) and echoes the id back.
async fn with_request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        // Only ids that are safe to log and echo; anything else gets a new one.
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = shared::telemetry::request_span(&id);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut resp = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| tracing::info!(%method, %path, status = resp.status().as_u16(), "request"));
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// Any other path: 404 with the routes there are.
async fn no_route(uri: Uri) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({
            "error": format!(
                "no route for {}: the hub serves /health, /webhooks/{{provider}}, /connect/{{provider}} and /intake/{{tenant}}/{{kind}}",
                uri.path().chars().take(200).collect::<String>()
            )
        })),
    )
        .into_response()
}

async fn health(State(state): State<AppState>) -> Response {
    let mut queues = serde_json::Map::new();
    for q in [
        &state.stores.work_queue,
        &state.stores.push_queue,
        &state.stores.unrouted_queue,
    ] {
        match q.depth().await {
            Ok(d) => {
                queues.insert(
                    q.name().to_string(),
                    serde_json::to_value(d).unwrap_or_default(),
                );
            }
            Err(e) => {
                tracing::error!(queue = q.name(), error = %e, "health check failed");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(serde_json::json!({"status": "unavailable", "error": format!("queue {}: {e}", q.name())})),
                )
                    .into_response();
            }
        }
    }
    Json(serde_json::json!({
        "status": "ok",
        "backend": state.stores.backend,
        "queues": queues,
    }))
    .into_response()
}

/// Turns the intake's answer into an HTTP response.
pub fn into_response(r: WebhookResponse) -> Response {
    let mut resp = Response::new(Body::from(r.body.clone()));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(ct) = r.content_type() {
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    if let Some(secs) = r.retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(allow) = r.allow {
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    resp
}

async fn webhook(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let intake = &state.webhooks;
    if let Err(r) = intake.precheck(&provider, method.as_str()) {
        return into_response(r);
    }
    let max = intake.max_body_bytes();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return into_response(intake.too_large(declared));
    }
    let Ok(bytes) = axum::body::to_bytes(body, max).await else {
        return into_response(intake.too_large(None));
    };
    let url = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|host| {
            format!(
                "http://{host}{}",
                uri.path_and_query().map_or("", |p| p.as_str())
            )
        });
    let r = intake
        .handle(WebhookRequest {
            provider: &provider,
            method: method.as_str(),
            headers: &headers,
            body: &bytes,
            url,
        })
        .await;
    into_response(r)
}

async fn connect(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    method: Method,
    uri: Uri,
) -> Response {
    let r = state
        .connect
        .handle(method.as_str(), &rest, uri.query().unwrap_or(""), None)
        .await;
    let mut resp = Response::new(Body::from(r.body));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(loc) = r.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        resp.headers_mut().insert(header::LOCATION, loc);
    } else {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    resp
}

async fn intake(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes = match axum::body::to_bytes(body, shared::ops::intake::MAX_BODY + 1).await {
        Ok(b) => b,
        Err(_) => axum::body::Bytes::from(vec![0u8; shared::ops::intake::MAX_BODY + 1]),
    };
    let r = state
        .intake
        .handle(method.as_str(), &rest, &headers, &bytes)
        .await;
    let mut resp = Response::new(Body::from(r.body));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if r.replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}
