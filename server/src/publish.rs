//! Publishing from outside any socket: the POC's send-test route and the HTTP API's publish.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roomcast_protocol::{Broadcast, ErrorCode, PublishReceipt, RoomName, UserName};
use serde::{Deserialize, Serialize};

use crate::api_error::ApiError;
use crate::auth::{PeerAddr, authorize_publish};
use crate::idempotency::MAX_IDEMPOTENCY_KEY_BYTES;
use crate::state::AppState;

/// Who HTTP publishes speak as when the request names nobody.
pub(crate) const HTTP_USER: &str = "server";

/// A publish request, from a JSON body, a form body or a query string.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PublishRequest {
    pub(crate) message: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) idempotency_key: Option<String>,
}

/// `GET /chat/{room}/send-test/?message=...`.
pub(crate) async fn send_test_get(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    peer: Option<axum::Extension<PeerAddr>>,
    headers: HeaderMap,
    Query(request): Query<PublishRequest>,
) -> Response {
    let result = match authorize(&state, &headers, peer) {
        Ok(()) => publish(&state, &room, request).await,
        Err(e) => Err(e),
    };
    respond(&state, result)
}

/// `POST /chat/{room}/send-test/` and `POST /api/rooms/{room}/messages`, with a JSON body
/// (`{"message": ..., "user"?: ..., "idempotency_key"?: ...}`) or the same fields as a form.
pub(crate) async fn post_message(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    peer: Option<axum::Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = match authorize(&state, &headers, peer).and_then(|()| read_body(&headers, body)) {
        Ok(request) => publish(&state, &room, request).await,
        Err(e) => Err(e),
    };
    respond(&state, result)
}

pub(crate) fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<axum::Extension<PeerAddr>>,
) -> Result<(), ApiError> {
    authorize_publish(state.config.api_key.as_deref(), headers, peer.map(|p| p.0))
}

/// Decodes a publish body by its content type: JSON, or an HTML form.
pub(crate) fn read_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<PublishRequest, ApiError> {
    let body = body.map_err(|rejection| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("could not read the body: {rejection}"),
        )
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if content_type.starts_with("application/x-www-form-urlencoded") {
        serde_urlencoded::from_bytes(&body).map_err(|e| {
            ApiError::bad_request(
                ErrorCode::InvalidFrame,
                format!("the form is not valid: {e}"),
            )
        })
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                ErrorCode::InvalidJson,
                format!("the body is not the JSON {{\"message\": \"...\"}}: {e}"),
            )
        })
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::InvalidFrame,
            format!("unsupported content type {content_type:?}; send application/json or a form"),
        ))
    }
}

/// Most rooms one `POST /api/broadcast` may name.
pub(crate) const MAX_BROADCAST_ROOMS: usize = 1000;

/// The body of `POST /api/broadcast`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BroadcastRequest {
    rooms: Vec<String>,
    message: Option<String>,
    user: Option<String>,
}

/// `POST /api/broadcast` with `{rooms: [...], message, user?}`: one message to many rooms.
/// Every room name is checked before anything is published, so a bad name publishes nothing.
pub(crate) async fn broadcast(
    State(state): State<Arc<AppState>>,
    peer: Option<axum::Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let checked = authorize(&state, &headers, peer).and_then(|()| {
        let body = body.map_err(|e| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                e.to_string(),
            )
        })?;
        let request: BroadcastRequest = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                ErrorCode::InvalidJson,
                format!("expected {{\"rooms\": [...], \"message\": \"...\"}}: {e}"),
            )
        })?;
        if request.rooms.is_empty() || request.rooms.len() > MAX_BROADCAST_ROOMS {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidFrame,
                format!(
                    "name 1 to {MAX_BROADCAST_ROOMS} rooms, not {}",
                    request.rooms.len()
                ),
            ));
        }
        for room in &request.rooms {
            RoomName::new(room).map_err(|e| {
                ApiError::bad_request(ErrorCode::InvalidRoom, format!("{room:?}: {e}"))
            })?;
        }
        Ok(request)
    });
    let result = match checked {
        // Every publish is queued before any is awaited, so with Redis they share round trips.
        Ok(request) => futures_util::future::join_all(request.rooms.iter().map(|room| {
            let single = PublishRequest {
                message: request.message.clone(),
                user: request.user.clone(),
                idempotency_key: None,
            };
            publish(&state, room, single)
        }))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map(|results| Broadcast { results }),
        Err(e) => Err(e),
    };
    respond(&state, result)
}

/// Validates and publishes one message (deduplicated by `idempotency_key` when present).
pub(crate) async fn publish(
    state: &AppState,
    room: &str,
    request: PublishRequest,
) -> Result<PublishReceipt, ApiError> {
    let room = RoomName::new(room)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidRoom, e.to_string()))?;
    let Some(message) = request.message else {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidFrame,
            "no message: send ?message=<text>, a JSON {\"message\": ...} or a form field message",
        ));
    };
    let limit = state.config.max_message_bytes;
    if message.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!(
                "message is {} bytes; the limit is {limit} (--max-message-bytes)",
                message.len()
            ),
        ));
    }
    let user = UserName::new(request.user.as_deref().unwrap_or(HTTP_USER))
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidUser, e.to_string()))?;
    if !state.is_accepting() {
        return Err(ApiError::unavailable("the server is shutting down"));
    }
    if state.relay.is_relayed() {
        return publish_relayed(
            state,
            &room,
            &user,
            &message,
            request.idempotency_key.as_deref(),
        )
        .await;
    }
    let publish_now = || {
        let delivery = state
            .rooms
            .publish(&room, &user, &message)
            .map_err(|full| ApiError::unavailable(full.to_string()))?;
        state.metrics.record_http_publish_accepted();
        Ok(PublishReceipt {
            room: room.clone(),
            seq: delivery.seq,
            epoch: delivery.epoch.to_string(),
            delivered: delivery.delivered,
        })
    };
    match request.idempotency_key.as_deref() {
        None => publish_now(),
        Some(key) if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES => {
            Err(ApiError::bad_request(
                ErrorCode::InvalidFrame,
                format!("idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes"),
            ))
        }
        Some(key) => state
            .idempotency
            .get_or_publish(&room, key, Instant::now(), publish_now),
    }
}

/// Publishes through the relay: Redis numbers it and remembers its idempotency key for every
/// node (a retry that lands on another node is answered the same).
async fn publish_relayed(
    state: &AppState,
    room: &RoomName,
    user: &UserName,
    message: &str,
    idempotency_key: Option<&str>,
) -> Result<PublishReceipt, ApiError> {
    if let Some(key) = idempotency_key
        && (key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES)
    {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidFrame,
            format!("idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes"),
        ));
    }
    let delivery = state
        .relay
        .publish(&state.rooms, room, user, message, idempotency_key)
        .wait()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    state.metrics.record_http_publish_accepted();
    Ok(PublishReceipt {
        room: room.clone(),
        seq: delivery.seq,
        epoch: delivery.epoch.to_string(),
        delivered: delivery.delivered,
    })
}

/// Turns a publish outcome into a response, counting it by status.
pub(crate) fn respond<T: Serialize>(state: &AppState, result: Result<T, ApiError>) -> Response {
    let response = match result {
        Ok(body) => Json(body).into_response(),
        Err(error) => error.into_response(),
    };
    state
        .metrics
        .record_http_publish(response.status().as_u16());
    response
}
