//! Probes and metrics: `/healthz` (alive), `/readyz` (accepting), `/metrics` (Prometheus).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

/// `GET /healthz`: 200 while the process serves HTTP at all.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 while accepting sessions, 503 once shutdown has started, so a load
/// balancer stops routing here before the sessions are closed.
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let reason = if state.is_accepting() {
        // With --redis-url, a node that cannot reach Redis cannot deliver: route elsewhere.
        state.relay.readiness().err()
    } else {
        Some("shutting down".to_owned())
    };
    match reason {
        None => Json(json!({ "ready": true })).into_response(),
        Some(reason) => {
            let body = Json(json!({ "ready": false, "reason": reason }));
            (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
        }
    }
}

/// `GET /metrics`: every counter of this instance in the OpenMetrics text format.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    (
        [(header::CONTENT_TYPE, content_type)],
        state.metrics.render(),
    )
        .into_response()
}
