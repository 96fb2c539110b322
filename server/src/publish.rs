//! Publishing from outside any socket: the POC's send-test route and the HTTP API's publish.
//! Both go through the one publish hook, `Relay::publish`, like a session's frames do.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roomcast_protocol::{ErrorCode, PublishReceipt, RoomName, UserName};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api_error::ApiError;
use crate::auth::{PeerAddr, authorize_publish};
use crate::history::MessageData;
use crate::idempotency::{Keyed, MAX_IDEMPOTENCY_KEY_BYTES};
use crate::registry::Lease;
use crate::relay::{Publishing, Source};
use crate::room::Delivery;
use crate::state::AppState;

/// Who HTTP publishes speak as when the request names nobody.
pub(crate) const HTTP_USER: &str = "server";

/// A publish request, from a JSON body, a form body or a query string.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PublishRequest {
    pub(crate) message: Option<String>,
    /// Any JSON here; [`check`] refuses what is not an object, naming the field (a form or
    /// query string can only give a string, so `data` needs a JSON body).
    pub(crate) data: Option<serde_json::Value>,
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
    let allowed = send_test_allowed(&state, &headers)
        .and_then(|()| authorize(&state, &headers, peer))
        .and_then(|()| authorize_room(&state, &room));
    let result = match allowed {
        Ok(()) => publish(&state, &room, request).await,
        Err(e) => Err(e),
    };
    respond(&state, result)
}

/// GET send-test changes state on a plain GET, so a page on another site could make a
/// visitor's browser publish (an `<img src>` is enough). It answers 404 with
/// `--no-send-test`, and 403 to a browser request from another site: an `Origin` that is not
/// this host nor in `--allowed-origins`, or a `Sec-Fetch-Site` other than `same-origin` and
/// `none` (typed in the address bar). Requests without those headers (curl, scripts) pass.
fn send_test_allowed(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.config.access.no_send_test {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "GET send-test is turned off on this server (--no-send-test); POST /api/rooms/<room>/messages",
        ));
    }
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST).unwrap_or_default();
    let same_host = |origin: &str| {
        origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host))
    };
    let origin_ok = match text(header::ORIGIN) {
        None => true,
        Some(origin) => same_host(origin) || state.access.origin_listed(origin),
    };
    let site_ok = match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        None | Some("same-origin" | "none") => true,
        Some(_) => text(header::ORIGIN).is_some_and(|o| state.access.origin_listed(o)),
    };
    if origin_ok && site_ok {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        ErrorCode::Forbidden,
        "GET send-test is refused to pages of other sites; POST with the API key instead",
    ))
}

/// Publishing into a private room needs `--api-key`, from loopback too: a local process is
/// not the backend.
pub(crate) fn authorize_room(state: &AppState, room: &str) -> Result<(), ApiError> {
    let private = RoomName::new(room).is_ok_and(|room| state.access.is_private(&room));
    if private && state.config.api_key.is_none() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            format!(
                "{room} is private: publishing into it needs the server's --api-key, even from loopback"
            ),
        ));
    }
    Ok(())
}

/// `POST /chat/{room}/send-test/` and `POST /api/rooms/{room}/messages`, with a JSON body
/// (`{"message": ..., "data"?: {...}, "user"?: ..., "idempotency_key"?: ...}`) or the same
/// fields as a form (without `data`).
pub(crate) async fn post_message(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    peer: Option<axum::Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request = authorize(&state, &headers, peer)
        .and_then(|()| authorize_room(&state, &room))
        .and_then(|()| read_body(&headers, body));
    let result = match request {
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
    let body = body.map_err(|rejection| too_large(&rejection))?;
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
        decode_json(&body).map_err(|e| {
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

/// Decodes a JSON body; a value of the wrong type is named by its field
/// (`message: invalid type: integer `5`, expected a string`), not only by its line and column.
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let mut reader = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        match e.path().to_string().as_str() {
            "." => e.inner().to_string(),
            path => format!("{path}: {}", e.inner()),
        }
    })?;
    // Trailing bytes after the value are an error, as `serde_json::from_slice` has it.
    reader.end().map_err(|e| e.to_string())?;
    Ok(value)
}

pub(crate) fn too_large(rejection: &BytesRejection) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        format!("could not read the body: {rejection}"),
    )
}

/// What every HTTP publish checks before publishing anything: the message is there, `data`
/// (if any) is a JSON object, the text and the data's compact JSON together are within
/// `--max-message-bytes`, the user name is valid, the key is of an accepted length, and the
/// server is not shutting down.
pub(crate) struct Checked {
    pub(crate) message: String,
    pub(crate) data: Option<MessageData>,
    pub(crate) user: UserName,
    pub(crate) idempotency_key: Option<String>,
}

pub(crate) fn check(state: &AppState, request: PublishRequest) -> Result<Checked, ApiError> {
    let Some(message) = request.message else {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidFrame,
            "no message: send ?message=<text>, a JSON {\"message\": ...} or a form field message",
        ));
    };
    let data = match request.data {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(MessageData::from_map(&map)),
        Some(other) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidFrame,
                format!(
                    "data must be a JSON object, not {}: send {{\"message\": \"...\", \"data\": {{...}}}} as application/json",
                    roomcast_protocol::v1::json_kind(&other)
                ),
            ));
        }
    };
    let limit = state.config.max_message_bytes;
    let data_bytes = data.as_ref().map_or(0, MessageData::len);
    if message.len() + data_bytes > limit {
        let what = if data.is_some() {
            format!(
                "message and data are {} bytes ({} of text, {data_bytes} of data as compact JSON)",
                message.len() + data_bytes,
                message.len()
            )
        } else {
            format!("message is {} bytes", message.len())
        };
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("{what}; the limit is {limit} (--max-message-bytes)"),
        ));
    }
    let user = UserName::new(request.user.as_deref().unwrap_or(HTTP_USER))
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidUser, e.to_string()))?;
    if let Some(key) = &request.idempotency_key
        && (key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_BYTES)
    {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidFrame,
            format!("idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} bytes"),
        ));
    }
    if !state.is_accepting() {
        return Err(ApiError::unavailable("the server is shutting down"));
    }
    Ok(Checked {
        message,
        data,
        user,
        idempotency_key: request.idempotency_key,
    })
}

/// Validates and publishes one message (deduplicated by `idempotency_key` when present).
pub(crate) async fn publish(
    state: &AppState,
    room: &str,
    request: PublishRequest,
) -> Result<PublishReceipt, ApiError> {
    let room = RoomName::new(room)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidRoom, e.to_string()))?;
    let checked = check(state, request)?;
    // With Redis the key is remembered there, for every node; locally, in this node's cache.
    let key = match &checked.idempotency_key {
        Some(key) if !state.relay.is_relayed() => Some((room.clone(), key.clone())),
        _ => None,
    };
    let publish_now = || async {
        let lease = state
            .rooms
            .lease(&room)
            .map_err(|full| ApiError::unavailable(full.to_string()))?;
        publish_leased(state, &lease, &checked).await
    };
    match key {
        None => publish_now().await,
        Some(key) => {
            let answer = state.idempotency.get_or_publish(&key, publish_now).await;
            answer.map_err(keyed_error)
        }
    }
}

/// Publishes through the one hook to a room the caller holds, and waits for the relay's
/// answer (at once without Redis). Nothing is reported delivered unless it was.
pub(crate) async fn publish_leased(
    state: &AppState,
    lease: &Lease,
    checked: &Checked,
) -> Result<PublishReceipt, ApiError> {
    receipt(lease, start_publish(state, lease, checked)).await
}

/// Hands the message to the one hook without waiting for the relay, so a broadcast queues
/// every room's publish before it waits for any (they then share Redis round trips).
pub(crate) fn start_publish(state: &AppState, lease: &Lease, checked: &Checked) -> Publishing {
    let relayed_key = checked
        .idempotency_key
        .as_deref()
        .filter(|_| state.relay.is_relayed());
    state.relay.publish(
        lease.room(),
        &checked.user,
        &checked.message,
        checked.data.as_ref(),
        Source::Http,
        relayed_key,
    )
}

/// The receipt of a publish [`start_publish`] began.
pub(crate) async fn receipt(
    lease: &Lease,
    mut publishing: Publishing,
) -> Result<PublishReceipt, ApiError> {
    let Delivery {
        seq,
        epoch,
        delivered,
    } = publishing
        .wait()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(PublishReceipt {
        room: lease.room().name.clone(),
        seq,
        epoch: epoch.to_string(),
        delivered,
    })
}

pub(crate) fn keyed_error(error: Keyed<ApiError>) -> ApiError {
    match error {
        Keyed::Failed(error) => error,
        Keyed::StillInFlight => ApiError::unavailable(
            "a publish with this idempotency_key is still in progress; retry later",
        ),
    }
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
