//! `POST /api/broadcast`: one message to many rooms, all or nothing.
//!
//! Everything that can refuse the request is checked before anything is published: the body,
//! every room name, the message, and room capacity, which [`Registry::lease_all`] reserves for
//! every new room at once (so a broadcast past `--max-rooms` creates and publishes nothing). A
//! repeated `idempotency_key` answers the whole first broadcast again.
//!
//! [`Registry::lease_all`]: crate::registry::Registry::lease_all

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use roomcast_protocol::{Broadcast, ErrorCode, RoomName};
use serde::Deserialize;

use crate::api_error::ApiError;
use crate::auth::PeerAddr;
use crate::publish::{
    Checked, PublishRequest, authorize, authorize_room, check, keyed_error, receipt, respond,
    start_publish, too_large,
};
use crate::state::AppState;

/// Most rooms one `POST /api/broadcast` may name.
pub(crate) const MAX_BROADCAST_ROOMS: usize = 1000;

/// The body of `POST /api/broadcast`.
#[derive(Debug, Clone, Deserialize)]
struct BroadcastRequest {
    rooms: Vec<String>,
    message: Option<String>,
    data: Option<serde_json::Value>,
    user: Option<String>,
    idempotency_key: Option<String>,
}

/// `POST /api/broadcast` with `{rooms: [...], message, data?, user?, idempotency_key?}`.
pub(crate) async fn broadcast(
    State(state): State<Arc<AppState>>,
    peer: Option<axum::Extension<PeerAddr>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request = authorize(&state, &headers, peer)
        .and_then(|()| read(&state, body))
        .and_then(|(rooms, checked)| {
            // All or nothing, like the broadcast itself: one private room needs the key.
            for room in &rooms {
                authorize_room(&state, room.as_str())?;
            }
            Ok((rooms, checked))
        });
    let result = match request {
        Ok((rooms, checked)) => publish_all(&state, &rooms, &checked).await,
        Err(e) => Err(e),
    };
    respond(&state, result)
}

/// The request's rooms (valid, distinct, 1 to [`MAX_BROADCAST_ROOMS`]) and checked message.
fn read(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Vec<RoomName>, Checked), ApiError> {
    let body = body.map_err(|rejection| too_large(&rejection))?;
    let request: BroadcastRequest = crate::publish::decode_json(&body).map_err(|e| {
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
    let mut rooms = Vec::with_capacity(request.rooms.len());
    let mut seen = HashSet::with_capacity(request.rooms.len());
    for text in &request.rooms {
        let room = RoomName::new(text)
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidRoom, format!("{text:?}: {e}")))?;
        if !seen.insert(room.clone()) {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidFrame,
                format!("{room} is named twice; name each room once"),
            ));
        }
        rooms.push(room);
    }
    let checked = check(
        state,
        PublishRequest {
            message: request.message,
            data: request.data,
            user: request.user,
            idempotency_key: request.idempotency_key,
        },
    )?;
    Ok((rooms, checked))
}

async fn publish_all(
    state: &AppState,
    rooms: &[RoomName],
    checked: &Checked,
) -> Result<Broadcast, ApiError> {
    let publish_now = || async {
        let leases = state
            .rooms
            .lease_all(rooms)
            .map_err(|full| ApiError::unavailable(format!("{full}; nothing was published")))?;
        // Every publish is handed to the hook before any is awaited: locally they are all done
        // by then; with Redis they share round trips.
        let started: Vec<_> = leases
            .iter()
            .map(|lease| (lease, start_publish(state, lease, checked)))
            .collect();
        let mut results = Vec::with_capacity(started.len());
        for (lease, publishing) in started {
            results.push(receipt(lease, publishing).await?);
        }
        Ok(Broadcast { results })
    };
    // With Redis the key is remembered there per room; locally the whole broadcast is
    // remembered in this node's cache.
    match &checked.idempotency_key {
        Some(key) if !state.relay.is_relayed() => {
            let answer = state.broadcasts.get_or_publish(key, publish_now).await;
            answer.map_err(keyed_error)
        }
        _ => publish_now().await,
    }
}
