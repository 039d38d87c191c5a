//! `hub serve`: the hub's HTTP routes in one local process. Tests call
//! [`run`] on `127.0.0.1:0`, the same entry point as the binary.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use shared::Stores;
use std::future::Future;
use tokio::net::TcpListener;
use tracing::Instrument;

/// The header carrying a request's id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The configured stores.
    pub stores: Stores,
}

/// Every route `hub serve` answers.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
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
        .filter(|v| !v.is_empty() && v.len() <= 128)
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

async fn health(State(state): State<AppState>) -> Response {
    let mut queues = serde_json::Map::new();
    for q in [&state.stores.work_queue, &state.stores.push_queue] {
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
