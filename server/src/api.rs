//! The read side of the HTTP API: server info, rooms, members and history.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use roomcast_protocol::{ErrorCode, RoomMessage, RoomName, ServerInfo, UserName};
use serde::{Deserialize, Serialize};

use crate::api_error::ApiError;
use crate::room::{Room, RoomStats};
use crate::state::AppState;

/// `GET /api/info`: version, heartbeat settings and limits.
pub(crate) async fn info(State(state): State<Arc<AppState>>) -> Json<ServerInfo> {
    Json(state.server_info())
}

/// One room in `GET /api/rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    /// The room's name.
    pub room: RoomName,
    /// Distinct users present.
    pub members: Vec<UserName>,
    /// Sessions joined (a user may have several).
    pub sessions: usize,
    /// The last message's number (0 if none).
    pub seq: u64,
    /// The history's identity.
    pub epoch: String,
}

impl From<RoomStats> for RoomSummary {
    fn from(stats: RoomStats) -> Self {
        Self {
            room: stats.name,
            members: stats.users,
            sessions: stats.sessions,
            seq: stats.seq,
            epoch: stats.epoch.to_string(),
        }
    }
}

/// The body of `GET /api/rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomList {
    /// Every room that exists, sorted by name.
    pub rooms: Vec<RoomSummary>,
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

/// The body of `GET /api/rooms/{room}/history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The room.
    pub room: RoomName,
    /// The history's identity.
    pub epoch: String,
    /// The room's last seq.
    pub seq: u64,
    /// Kept messages with seq greater than `since`, oldest first.
    pub messages: Vec<RoomMessage>,
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
    state.rooms.get(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no room {name} here"),
        )
    })
}
