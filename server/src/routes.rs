//! The route table, and nothing else.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};

use crate::state::AppState;
use crate::{api, broadcast, connect, health, publish, web};

/// Room for JSON framing around a `--max-message-bytes` message in a publish body.
const BODY_ENVELOPE_BYTES: usize = 4 * 1024;

/// Every HTTP and WebSocket route of the server, over `state`. Serve it with
/// [`crate::serve_router`]: WebSocket sessions need that accept loop.
pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.config.max_message_bytes.saturating_mul(2) + BODY_ENVELOPE_BYTES;
    Router::new()
        .route("/ws", any(connect::bare_socket))
        .route("/ws/chat/{room}/", any(connect::room_socket))
        .route("/ws/chat/{room}", any(connect::room_socket))
        .route(
            "/chat/{room}/send-test/",
            get(publish::send_test_get).post(publish::post_message),
        )
        .route(
            "/chat/{room}/send-test",
            get(publish::send_test_get).post(publish::post_message),
        )
        .route("/api/info", get(api::info))
        .route("/api/rooms", get(api::rooms))
        .route("/api/rooms/{room}", get(api::room))
        .route("/api/rooms/{room}/history", get(api::history))
        .route("/api/rooms/{room}/messages", post(publish::post_message))
        .route("/api/broadcast", post(broadcast::broadcast))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(web::pages())
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
