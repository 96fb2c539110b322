//! The WebSocket upgrades: `/ws/chat/{room}/` (either protocol) and `/ws` (typed only).
//!
//! Everything that can be refused before the socket exists is refused here, with an HTTP status:
//! shutdown and `--max-connections` (503), a bare `/ws` without the typed subprotocol (400). A
//! bad room or user name is refused after the upgrade instead, with close code 4500/4501 and the
//! rule in the reason, because browsers cannot read an HTTP error body but can read a close.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use roomcast_protocol::{CloseCode, ErrorCode, RoomName, SUBPROTOCOL_V1, UserName};
use serde::Deserialize;

use crate::api_error::ApiError;
use crate::frames::Protocol;
use crate::session::{self, Exit, SessionGuards, SessionStart};
use crate::state::AppState;
use crate::websocket::UpgradeRequest;

#[derive(Debug, Deserialize)]
pub(crate) struct ConnectQuery {
    user: Option<String>,
}

/// `GET /ws/chat/{room}/`: the tutorial socket, or the typed one with `roomcast.v1`.
pub(crate) async fn room_socket(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    Query(query): Query<ConnectQuery>,
    upgrade: UpgradeRequest,
) -> Response {
    accept(&state, upgrade, Some(room), query.user.as_deref())
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /ws`: the typed socket with no room joined yet.
pub(crate) async fn bare_socket(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ConnectQuery>,
    upgrade: UpgradeRequest,
) -> Response {
    accept(&state, upgrade, None, query.user.as_deref()).unwrap_or_else(IntoResponse::into_response)
}

fn accept(
    state: &Arc<AppState>,
    upgrade: UpgradeRequest,
    room: Option<String>,
    user: Option<&str>,
) -> Result<Response, ApiError> {
    if !state.is_accepting() {
        return Err(ApiError::unavailable(
            "the server is shutting down; reconnect elsewhere",
        ));
    }
    let config = &state.config;
    let protocol = if upgrade.offers(SUBPROTOCOL_V1) {
        Protocol::Typed
    } else {
        Protocol::Tutorial
    };
    if room.is_none() && protocol == Protocol::Tutorial {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidFrame,
            format!(
                "/ws speaks the typed protocol only: ask for the {SUBPROTOCOL_V1:?} subprotocol, or use /ws/chat/<room>/"
            ),
        ));
    }
    let Ok(permit) = state.connection_permits.clone().try_acquire_owned() else {
        state.metrics.record_connection_refused();
        tracing::warn!(
            max_connections = config.max_connections,
            "upgrade refused with 503: --max-connections sessions are open"
        );
        return Err(ApiError::unavailable(format!(
            "server full: {} sessions open (--max-connections); retry later",
            config.max_connections
        )));
    };

    let mut refusal = None;
    let room = room.and_then(|text| match RoomName::new(&text) {
        Ok(room) => Some(room),
        Err(e) => {
            refusal = Some(Exit::Refused(CloseCode::InvalidRoom, e.to_string()));
            None
        }
    });
    let user = match user.map(UserName::new) {
        Some(Ok(user)) => user,
        Some(Err(e)) => {
            refusal.get_or_insert(Exit::Refused(CloseCode::InvalidUser, e.to_string()));
            guest_name()
        }
        None => guest_name(),
    };
    let start = SessionStart {
        id: state.next_session_id(),
        user,
        protocol,
        room,
        refusal,
    };
    let guards = SessionGuards {
        _permit: permit,
        _tracked: state.sessions.token(),
    };
    let state = state.clone();
    let subprotocol = (protocol == Protocol::Typed).then_some(SUBPROTOCOL_V1);
    Ok(upgrade.accept(subprotocol, move |stream, leftover| {
        session::run(stream, leftover, start, state, guards)
    }))
}

/// A name for a session that did not give one: `guest-` and six hex digits.
fn guest_name() -> UserName {
    let name = format!("guest-{:06x}", fastrand::u32(..0x100_0000));
    UserName::new(&name).unwrap_or_else(|_| unreachable!("guest names are valid user names"))
}
