//! Followers over Server-Sent Events: `GET /sse/{room}/` and `GET /sse?rooms=a,b` stream
//! `text/event-stream` to clients that only listen (`EventSource`, curl, proxies that break
//! WebSockets).
//!
//! A follower is a room member like a WebSocket session: it joins through the same registry
//! path (with a relay, the room is loaded on this node first, as for a session's join), has an
//! outbox bounded by `--max-queue-bytes`, and every message is encoded once for all the SSE
//! followers of its room (`Protocol::Sse`). It holds one `--max-connections` permit and is
//! counted in `roomcast_connections_open{transport="sse"}`. Followers are not present: they
//! are not listed in `members`/`users` and nobody is told when they come or go.
//!
//! Resuming: every event's `id` is a cursor (`cursor.rs`); on reconnect the browser sends it as
//! `Last-Event-ID` (or a client passes `?since=`), and the join replays from it with the typed
//! protocol's rule: what history holds follows, and `event: gap` first when it cannot hold all.
//!
//! - `cursor`: the id codec; `event`: encoding events; `stream`: the response body;
//!   `watchdog`: heartbeat, eviction of a follower that fell behind (it leaves its rooms then),
//!   letting its connection go.

pub(crate) mod cursor;
pub(crate) mod event;
mod stream;
mod watchdog;

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roomcast_protocol::{ErrorCode, RoomName, UserName};
use serde::Deserialize;

use self::cursor::Cursor;
pub(crate) use self::cursor::Position;
use self::stream::{Follower, FollowerGuards, Watch};
use crate::access::{self, IpPermit, Refusal};
use crate::api_error::ApiError;
use crate::auth::PeerAddr;
use crate::outbox::Outbox;
use crate::room::Member;
use crate::serve::ConnectionAbort;
use crate::state::AppState;

/// The header `EventSource` sends back with the last `id` it saw when it reconnects.
const LAST_EVENT_ID: &str = "last-event-id";

#[derive(Debug, Deserialize)]
pub(crate) struct StreamQuery {
    /// `/sse` only: the rooms, comma-separated.
    rooms: Option<String>,
    /// Where to resume from, for clients that cannot set `Last-Event-ID` (which wins).
    since: Option<String>,
    /// An access token for private rooms (`EventSource` cannot set `Authorization`).
    token: Option<String>,
}

/// `GET /sse/{room}/`: follows one room.
pub(crate) async fn room_stream(
    State(state): State<Arc<AppState>>,
    Path(room): Path<String>,
    Query(query): Query<StreamQuery>,
    abort: Option<Extension<ConnectionAbort>>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
) -> Response {
    let client = Client {
        headers: &headers,
        peer: peer.map(|p| p.0.0.ip()),
    };
    follow(
        &state,
        &[room.as_str()],
        &query,
        &client,
        abort.map(|a| a.0),
    )
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /sse?rooms=a,b`: follows several rooms on one stream.
pub(crate) async fn rooms_stream(
    State(state): State<Arc<AppState>>,
    Query(query): Query<StreamQuery>,
    abort: Option<Extension<ConnectionAbort>>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
) -> Response {
    let client = Client {
        headers: &headers,
        peer: peer.map(|p| p.0.0.ip()),
    };
    let rooms = query.rooms.clone().unwrap_or_default();
    let names: Vec<&str> = rooms
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    follow(&state, &names, &query, &client, abort.map(|a| a.0))
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Who asked for a stream: the request's headers and the socket's peer.
struct Client<'a> {
    headers: &'a HeaderMap,
    peer: Option<std::net::IpAddr>,
}

/// **The admission hook** for SSE: every check that decides whether a follower may follow
/// `rooms` goes here, before a permit is taken or a room joined, exactly where the WebSocket
/// upgrade admits its sessions (`connect::accept`), with the same checks.
/// The WebSocket handshake's rules, applied to a stream before it joins anything: the origin
/// (403), and for each private room a token (`?token=` or `Authorization: Bearer`) that opens
/// it, or the app's join proxy. A refusal is an HTTP 403 (or 503 when the proxy cannot answer)
/// naming the rule, sent before any event, so nothing of the room is seen. Then the client's
/// `--max-connections-per-ip` slot, shared with its WebSocket sessions (429 past it); the
/// slot returned lives as long as the stream.
async fn admit(
    state: &AppState,
    client: &Client<'_>,
    query: &StreamQuery,
    rooms: &[RoomName],
) -> Result<Option<IpPermit>, ApiError> {
    let access = &state.access;
    let headers = client.headers;
    if let Err(why) = access.origin_allowed(headers) {
        state.metrics.record_origin_refused();
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            why,
        ));
    }
    let token = access::handshake_token(query.token.as_deref(), headers);
    for room in rooms {
        let refusal = match access.check_join(room, token, None, None) {
            Ok(_) => continue,
            Err(Refusal::Missing) => match access.ask_proxy(room, None, headers).await {
                Some(Ok(_)) => continue,
                Some(Err(refusal)) => refusal,
                None => Refusal::Missing,
            },
            Err(refusal) => refusal,
        };
        state.metrics.record_access_refused(refusal.rule());
        let status = match refusal {
            Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::FORBIDDEN,
        };
        return Err(ApiError::new(
            status,
            ErrorCode::Forbidden,
            refusal.reason(),
        ));
    }
    access::admit_ip(state, headers, client.peer, "sse")
}

async fn follow(
    state: &Arc<AppState>,
    names: &[&str],
    query: &StreamQuery,
    client: &Client<'_>,
    abort: Option<ConnectionAbort>,
) -> Result<Response, ApiError> {
    let headers = client.headers;
    if !state.is_accepting() {
        return Err(ApiError::unavailable(
            "the server is shutting down; reconnect elsewhere",
        ));
    }
    let config = &state.config;
    let rooms = room_names(names, config.max_rooms_per_session)?;
    let since = resume_cursor(headers, query, config.max_rooms_per_session)?;
    let ip_permit = admit(state, client, query, &rooms).await?;
    let Ok(permit) = state.connection_permits.clone().try_acquire_owned() else {
        state.metrics.record_connection_refused();
        tracing::warn!(
            max_connections = config.max_connections,
            "SSE stream refused with 503: --max-connections connections are open"
        );
        return Err(ApiError::unavailable(format!(
            "server full: {} connections open (--max-connections); retry later",
            config.max_connections
        )));
    };
    let id = state.next_session_id();
    let outbox = Outbox::new(config.max_queue_bytes);
    let _queued = outbox.push(event::retry(jittered_millis(
        config.sse_retry,
        config.sse_retry,
    )));
    let user = UserName::new(&format!("follower-{id:x}"))
        .unwrap_or_else(|_| unreachable!("follower names are valid user names"));
    let mut memberships = Vec::with_capacity(rooms.len());
    for room in &rooms {
        // The same path as a session's join: with a relay, the room is loaded here first and
        // the lease holds it until the membership does.
        let lease = state
            .relay
            .prepare_join(&state.rooms, room)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        let member = Member::follower(user.clone(), outbox.clone());
        let position = since.get(room).map(Position::to_protocol);
        // A follower's own frames go into its outbox, under the room's lock: none come back.
        let membership = state
            .rooms
            .join(room, member, position.as_ref(), None, &mut Vec::new())
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        drop(lease);
        memberships.push(membership);
    }
    let watch = Arc::new(Watch::new(memberships));
    watchdog::spawn(state.clone(), outbox.clone(), watch.clone(), abort);
    let cursor = (rooms.len() > 1).then(|| {
        let mut cursor = Cursor::default();
        for room in &rooms {
            if let Some(position) = since.get(room) {
                cursor.set(position.clone());
            }
        }
        cursor
    });
    let follower = Follower {
        outbox,
        cursor,
        watch,
        state: state.clone(),
        _guards: FollowerGuards {
            _permit: permit,
            _ip: ip_permit,
            _tracked: state.sessions.token(),
        },
    };
    let body = Body::from_stream(follower.into_stream(id));
    let mut response = (StatusCode::OK, body).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx buffers responses by default, which would hold events back: ask it not to.
    response_headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The rooms asked for: at least one, at most `max` (`--max-rooms-per-session`), each valid,
/// repeats once.
fn room_names(names: &[&str], max: usize) -> Result<Vec<RoomName>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRoom,
            "name the rooms to follow: /sse/<room>/ or /sse?rooms=a,b",
        ));
    }
    let mut rooms: Vec<RoomName> = Vec::with_capacity(names.len());
    for name in names {
        let room = RoomName::new(name)
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidRoom, e.to_string()))?;
        if !rooms.contains(&room) {
            rooms.push(room);
        }
    }
    if rooms.len() > max {
        return Err(ApiError::bad_request(
            ErrorCode::TooManyRooms,
            format!(
                "{} rooms asked for; one stream follows at most {max} (--max-rooms-per-session)",
                rooms.len()
            ),
        ));
    }
    Ok(rooms)
}

/// Where to resume: `Last-Event-ID`, else `?since=`, else nowhere (a fresh follower).
fn resume_cursor(headers: &HeaderMap, query: &StreamQuery, max: usize) -> Result<Cursor, ApiError> {
    let header = headers.get(LAST_EVENT_ID).map(|value| {
        value.to_str().map_err(|_| {
            ApiError::bad_request(ErrorCode::InvalidFrame, "Last-Event-ID is not ASCII text")
        })
    });
    let text = match header.transpose()? {
        Some(text) if !text.trim().is_empty() => text,
        _ => match query.since.as_deref() {
            Some(text) if !text.trim().is_empty() => text,
            _ => return Ok(Cursor::default()),
        },
    };
    Cursor::parse(text, max).map_err(|why| {
        ApiError::bad_request(
            ErrorCode::InvalidFrame,
            format!("cannot resume from {text:?}: {why}; send an id this server gave, or none"),
        )
    })
}

/// `base` plus a random share of `spread`, in milliseconds: followers told this do not all
/// reconnect at the same moment.
pub(crate) fn jittered_millis(base: Duration, spread: Duration) -> u64 {
    let base = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    let spread = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX);
    base.saturating_add(fastrand::u64(0..=spread))
}
