//! The WebSocket upgrades: `/ws/chat/{room}/` (either protocol) and `/ws` (typed only).
//!
//! Everything that can be refused before the socket exists is refused here, with an HTTP status:
//! shutdown and `--max-connections` (503), `--max-connections-per-ip` (429), an Origin outside
//! `--allowed-origins` (403), a bare `/ws` without the typed subprotocol (400). A bad room or
//! user name, and a private room without a valid token, are refused after the upgrade instead,
//! with close code 4500/4501/4503 and the rule in the reason, because browsers cannot read an
//! HTTP error body but can read a close. A refused session is sent nothing of its room.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use roomcast_protocol::{CloseCode, ErrorCode, RoomName, SUBPROTOCOL_V1, UserName};
use serde::Deserialize;

use crate::access::{self, Grant};
use crate::api_error::ApiError;
use crate::auth::PeerAddr;
use crate::frames::Protocol;
use crate::session::{self, Exit, SessionGuards, SessionStart};
use crate::state::AppState;
use crate::websocket::UpgradeRequest;

#[derive(Debug, Deserialize)]
pub(crate) struct ConnectQuery {
    user: Option<String>,
    /// An access token for private rooms (browsers cannot set headers on a WebSocket).
    token: Option<String>,
}

/// What the handshake says beyond its path.
pub(crate) struct Handshake {
    query: ConnectQuery,
    headers: HeaderMap,
    peer: Option<PeerAddr>,
}

/// `GET /ws/chat/{room}/`: the tutorial socket, or the typed one with `roomcast.v1`.
pub(crate) async fn room_socket(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    Query(query): Query<ConnectQuery>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    upgrade: UpgradeRequest,
) -> Response {
    let handshake = Handshake {
        query,
        headers,
        peer: peer.map(|p| p.0),
    };
    accept(&state, upgrade, Some(room), &handshake)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /ws`: the typed socket with no room joined yet.
pub(crate) async fn bare_socket(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ConnectQuery>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    upgrade: UpgradeRequest,
) -> Response {
    let handshake = Handshake {
        query,
        headers,
        peer: peer.map(|p| p.0),
    };
    accept(&state, upgrade, None, &handshake)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn accept(
    state: &Arc<AppState>,
    upgrade: UpgradeRequest,
    room: Option<String>,
    handshake: &Handshake,
) -> Result<Response, ApiError> {
    if !state.is_accepting() {
        return Err(ApiError::unavailable(
            "the server is shutting down; reconnect elsewhere",
        ));
    }
    let config = &state.config;
    if let Err(why) = state.access.origin_allowed(&handshake.headers) {
        state.metrics.record_origin_refused();
        tracing::info!(reason = %why, "upgrade refused with 403");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            why,
        ));
    }
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
    let ip_permit = access::admit_ip(
        state,
        &handshake.headers,
        handshake.peer.map(|p| p.0.ip()),
        "websocket",
    )?;
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
    let asked = match handshake.query.user.as_deref().map(UserName::new) {
        Some(Ok(user)) => Some(user),
        Some(Err(e)) => {
            refusal.get_or_insert(Exit::Refused(CloseCode::InvalidUser, e.to_string()));
            None
        }
        None => None,
    };
    let admission = if refusal.is_none() {
        admit(state, handshake, room.as_ref(), asked.as_ref())
            .await
            .unwrap_or_else(|exit| {
                refusal = Some(exit);
                Admission::default()
            })
    } else {
        Admission::default()
    };
    let grant = admission.grant;
    // The join proxy's name for the member, else the name asked for, else the token's `sub`.
    let user = admission
        .named
        .or(asked)
        .or_else(|| grant.as_ref().map(|g| g.user.clone()))
        .unwrap_or_else(guest_name);
    let start = SessionStart {
        id: state.next_session_id(),
        user,
        protocol,
        room,
        refusal,
        grant: grant.map(Box::new),
        proxy_headers: state.access.proxy_headers(&handshake.headers),
    };
    let guards = SessionGuards {
        _permit: permit,
        _ip: ip_permit,
        _tracked: state.sessions.token(),
    };
    let state = state.clone();
    let subprotocol = (protocol == Protocol::Typed).then_some(SUBPROTOCOL_V1);
    Ok(upgrade.accept(subprotocol, move |stream, leftover| {
        session::run(stream, leftover, start, state, guards)
    }))
}

/// What the access check decided for a handshake.
#[derive(Default)]
struct Admission {
    /// The handshake's verified token, kept for later typed joins.
    grant: Option<Grant>,
    /// The name the app's join proxy gave the member.
    named: Option<UserName>,
}

/// Checks the handshake's token (any token given must be valid, whatever the room) and, for a
/// private URL room, that it opens the room for this name; without a token, asks the app's
/// join proxy when there is one. The proxy's wait happens before the upgrade's answer, bounded
/// by `--join-proxy-timeout`.
async fn admit(
    state: &AppState,
    handshake: &Handshake,
    room: Option<&RoomName>,
    asked: Option<&UserName>,
) -> Result<Admission, Exit> {
    let refused = |refusal: access::Refusal| {
        state.metrics.record_access_refused(refusal.rule());
        tracing::info!(rule = refusal.rule(), room = ?room.map(RoomName::as_str), "session refused");
        Exit::Refused(refusal.close_code(), refusal.reason())
    };
    let token = access::handshake_token(handshake.query.token.as_deref(), &handshake.headers);
    let grant = token
        .map(|token| state.access.verify(token))
        .transpose()
        .map_err(refused)?;
    let Some(room) = room else {
        return Ok(Admission { grant, named: None });
    };
    if grant.is_none() && state.access.is_private(room) {
        let asked_app = state
            .access
            .ask_proxy(room, asked, &handshake.headers)
            .await;
        if let Some(answer) = asked_app {
            let named = answer.map_err(refused)?;
            return Ok(Admission { grant, named });
        }
    }
    state
        .access
        .check_join(room, None, grant.as_ref(), asked)
        .map_err(refused)?;
    Ok(Admission { grant, named: None })
}

/// A name for a session that did not give one: `guest-` and six hex digits.
fn guest_name() -> UserName {
    let name = format!("guest-{:06x}", fastrand::u32(..0x100_0000));
    UserName::new(&name).unwrap_or_else(|_| unreachable!("guest names are valid user names"))
}
