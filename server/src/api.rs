//! The read side of the HTTP API: server info, rooms, members and history.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use roomcast_protocol::{
    ErrorCode, HistoryPage, RoomList, RoomMessage, RoomName, RoomSummary, ServerInfo,
};
use serde::Deserialize;

use crate::api_error::ApiError;
use crate::history::MessageData;
use crate::room::{Room, RoomStats};
use crate::state::AppState;

/// `GET /api/info`: version, heartbeat settings and limits.
pub(crate) async fn info(State(state): State<Arc<AppState>>) -> Json<ServerInfo> {
    Json(state.server_info())
}

impl From<RoomStats> for RoomSummary {
    fn from(stats: RoomStats) -> Self {
        Self {
            room: stats.name,
            members: stats.users,
            sessions: stats.sessions,
            followers: stats.followers,
            seq: stats.seq,
            epoch: stats.epoch.to_string(),
        }
    }
}

/// `GET /api/rooms`: every room with its members and last seq.
pub(crate) async fn rooms(State(state): State<Arc<AppState>>) -> Json<RoomList> {
    let rooms = state
        .rooms
        .snapshot()
        .into_iter()
        .map(RoomSummary::from)
        .collect();
    Json(RoomList { rooms })
}

/// `GET /api/rooms/{room}`: one room's members, or 404.
pub(crate) async fn room(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
) -> Result<Json<RoomSummary>, ApiError> {
    let name = RoomName::new(&room)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidRoom, e.to_string()))?;
    // With a relay: members of every node, read from Redis.
    match state.relay.summary(&name).await {
        Some(Ok(Some(mut summary))) => {
            summary.followers = existing_room(&state, &room).map_or(0, |r| r.followers());
            return Ok(Json(summary));
        }
        Some(Ok(None)) => return Err(not_found(&name)),
        Some(Err(e)) => return Err(ApiError::unavailable(e.to_string())),
        None => {}
    }
    let room = existing_room(&state, &room)?;
    Ok(Json(RoomSummary::from(room.stats())))
}

/// Default and largest page of `GET /api/rooms/{room}/history`.
const DEFAULT_HISTORY_PAGE: usize = 100;
const MAX_HISTORY_PAGE: usize = 1000;

#[derive(Debug, Deserialize)]
pub(crate) struct HistoryQuery {
    since: Option<u64>,
    limit: Option<usize>,
}

/// `GET /api/rooms/{room}/history?since=SEQ&limit=N`: kept messages after `since`.
pub(crate) async fn history(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<HistoryPage>, ApiError> {
    let room = existing_room(&state, &room)?;
    let limit = query
        .limit
        .unwrap_or(DEFAULT_HISTORY_PAGE)
        .min(MAX_HISTORY_PAGE);
    let (epoch, seq, kept) = room.history_page(query.since.unwrap_or(0), limit);
    let messages = kept
        .iter()
        .map(|m| RoomMessage {
            room: m.room.clone(),
            user: m.user.clone(),
            seq: m.seq,
            ts: m.ts,
            message: m.text.to_string(),
            data: m.data.as_ref().map(MessageData::to_map),
        })
        .collect();
    Ok(Json(HistoryPage {
        room: room.name.clone(),
        epoch: epoch.to_string(),
        seq,
        messages,
    }))
}

fn existing_room(state: &AppState, name: &str) -> Result<Arc<Room>, ApiError> {
    let name = RoomName::new(name)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidRoom, e.to_string()))?;
    state.rooms.get(&name).ok_or_else(|| not_found(&name))
}

fn not_found(name: &RoomName) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!("no room {name} here"),
    )
}
