//! roomcast-server: WebSocket rooms compatible with the Django Channels tutorial chat, with
//! heartbeat eviction, bounded per-session queues, history and an HTTP publish API.
//!
//! [`run`] serves on a listener you bind (tests bind `127.0.0.1:0`) until the `shutdown` future
//! completes, then drains: readiness fails, sessions close with 1001 in waves over
//! `--drain-window`, and `run` returns within `--shutdown-grace`.
//!
//! # Layout
//! - [`config`]: every flag and its `ROOMCAST_*` twin; `config/validate` refuses values that
//!   cannot work, once, at start ([`ValidConfig`]).
//! - `serve`: the accept loop (header deadline, peer address, graceful stop).
//! - `routes`: the route table; `connect` (upgrades), `publish` (send-test, publish API),
//!   `api` (info, rooms), `health` (probes, metrics).
//! - `session`: one task per socket, one loop of read and write turns; `session/*` holds its
//!   reading, writing and closing, heartbeat, rate limit, frame decoding, commands, and the
//!   exit table (close code, leave reason, metric).
//! - `outbox`: an SSE follower's outbound queue, bounded in bytes; pushing never waits
//!   (WebSocket members read their rooms' rings: `room/ring.rs`).
//! - `relay`: the one publish hook every message goes through, whatever its source; it goes to
//!   this node's rooms (`Local`) or through Redis (`relay/redis*`: connections, Lua scripts,
//!   subscriber, publish writer, presence and heartbeat, sharding, key layout).
//! - `registry` (every room by name, the one lifetime rule, membership and lease guards, the
//!   deadline queue of rooms waiting to expire) and `room` (members, presence, seq, fan-out),
//!   `history` (recent messages, encoded once per protocol), `frames` (encoding).
//! - `websocket`: the wire itself: the upgrade, client frames, frames encoded once (header
//!   included) for every member, the socket's kernel-side bounds.
//! - `access`: who may join which room (private rooms, HS256 tokens, room patterns), browser
//!   origins and sessions per client IP, checked in one place before a session joins.
//! - `auth` (who may publish over HTTP), `idempotency` (repeated publishes answered once),
//!   `broadcast` (one message to many rooms, all or nothing), `api_error` (the one shape of
//!   HTTP errors).
//! - `bridge`: the Django Channels bridge (`--channels-layer`): a channels_redis layer's
//!   `group_send` reaches the mapped room through the one publish hook, and the room's
//!   messages reach the group (`--channels-forward`); `bridge/*` holds the group mapping,
//!   the msgpack format, each layer and the forwarder.
//! - `metrics`: per-instance Prometheus registry.
//! - `drain`: shutdown closes sessions in waves over `--drain-window`; `web`: the embedded
//!   browser pages.
//! - `sse`: followers over Server-Sent Events (`/sse/...`): members that only listen, with
//!   resume through `Last-Event-ID` (`sse/*`: cursor ids, event encoding, the stream body, its
//!   watchdog).

pub mod access;
pub mod config;
pub mod metrics;

mod api;
mod api_error;
mod auth;
mod bridge;
mod broadcast;
mod connect;
mod drain;
mod frames;
mod health;
mod history;
mod idempotency;
mod outbox;
mod publish;
mod registry;
mod relay;
mod room;
mod routes;
mod serve;
mod session;
mod sse;
mod state;
mod web;
mod websocket;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use auth::PeerAddr;
pub use config::{Config, InvalidSetting, ValidConfig};
pub use registry::Registry;
/// The HTTP API's bodies, defined once in the protocol crate.
pub use roomcast_protocol::{Broadcast, HistoryPage, PublishReceipt, RoomList, RoomSummary};
pub use routes::router;
pub use state::AppState;

/// What `roomcast-server` gives tokio's `runtime::Builder::event_interval`; a program that runs
/// [`run`] on a runtime of its own should set the same. It is how many task polls a busy worker
/// makes between two looks at socket readiness and timers (tokio's default: 61). When the
/// runtime runs out of tasks it looks at once, so an idle or lightly loaded server is not
/// affected; under full load, a readiness change waits at most this many polls (about 3 ms at
/// 6 µs a poll).
///
/// Why 512: a busy big room is served much faster. One room of 1,000 members at 6,000
/// messages/s on one core (`docs/BENCHMARKS.md`, "The runtime's event interval"): p50 8.6-10.9 ms
/// and p99 26-39 ms with 61 or 128; 4.2-5.3 ms and 8.8-12.6 ms with 256 to 1,000. The likely
/// cause, which we measured as an effect and did not trace inside tokio: with a short interval
/// the publisher's session runs every few dozen member turns, and each of its publishes wakes
/// again the members already served, which then queue ahead of those still waiting.
pub const RUNTIME_EVENT_INTERVAL: u32 = 512;

/// Serves `router` (the one [`router`] builds, perhaps with routes of your own added) on
/// `listener` until `stop` is cancelled. WebSocket sessions need this accept loop, not
/// `axum::serve`: a session takes over the bare TCP socket hyper was given here (to write
/// pre-encoded frames with `writev` and set its kernel bounds); under another server the
/// upgrade is answered and the socket is closed at once, with an error logged. Request
/// headers get the default `--handshake-timeout`.
pub async fn serve_router(listener: TcpListener, router: axum::Router, stop: CancellationToken) {
    serve::serve(listener, router, stop, config::DEFAULT_HANDSHAKE_TIMEOUT).await;
}

/// Serves on `listener` with `config` until `shutdown` completes, then drains: readiness fails,
/// new sessions are refused (503), every session is closed with 1001 in waves spread over
/// `config.drain_window`, and `run` returns once they have ended or `config.shutdown_grace` has
/// passed, whichever comes first. HTTP keeps
/// being served while draining, so probes and publishers get clear answers.
///
/// Takes a [`ValidConfig`] (from [`Config::validate`]), so it cannot start with a value that
/// cannot work.
pub async fn run(listener: TcpListener, config: ValidConfig, shutdown: impl Future<Output = ()>) {
    let state = AppState::new(config);
    let stop_serving = CancellationToken::new();
    let serving = tokio::spawn(serve::serve(
        listener,
        router(state.clone()),
        stop_serving.clone(),
        state.config.access.handshake_timeout,
    ));
    state.sessions.spawn(janitor(state.clone()));

    shutdown.await;
    let grace = state.config.shutdown_grace;
    let deadline = tokio::time::Instant::now() + grace;
    // Readiness fails and upgrades are refused first; then the sessions close in waves.
    state.shutdown.cancel();
    state.sessions.close();
    let waves = state.drain.run(|| state.connection_permits_in_use());
    if tokio::time::timeout_at(deadline, waves).await.is_err() {
        warn!(
            ?grace,
            "--shutdown-grace ended before every drain wave fired"
        );
    }
    if tokio::time::timeout_at(deadline, state.sessions.wait())
        .await
        .is_err()
    {
        warn!(
            sessions = state.connection_permits_in_use(),
            ?grace,
            "sessions still open after --shutdown-grace; exiting anyway"
        );
    }
    // The bridge stops first: what it publishes goes through the relay.
    if let Some(bridge) = &state.bridge {
        bridge.stop().await;
    }
    // Sessions have left their rooms: the relay tells Redis before it stops.
    state.relay.stop().await;
    stop_serving.cancel();
    match tokio::time::timeout_at(deadline, serving).await {
        Ok(Ok(())) => info!("shutdown complete"),
        Ok(Err(e)) => warn!(error = %e, "the accept loop panicked"),
        Err(_) => warn!("HTTP requests still in flight after --shutdown-grace; exiting anyway"),
    }
}

/// Longest the janitor sleeps when no room is due. It also forgets expired idempotency keys,
/// whose deadlines it is not told about (they are forgotten on every keyed publish too), so
/// this bounds how long an expired key's memory outlives its window on an idle server.
const JANITOR_IDLE_WAKE: Duration = Duration::from_secs(1);

/// Removes rooms as their `--room-ttl` ends and forgets expired idempotency keys, until
/// shutdown. Each wake costs only what expires: the registry keeps unused rooms in a deadline
/// queue, and a room that becomes the earliest deadline wakes the janitor to re-plan.
async fn janitor(state: Arc<AppState>) {
    loop {
        let now = tokio::time::Instant::now();
        let next_room = state.rooms.expire(now);
        state.idempotency.expire(now.into_std());
        state.broadcasts.expire(now.into_std());
        let idle_wake = now + JANITOR_IDLE_WAKE;
        let wake = next_room.map_or(idle_wake, |at| at.min(idle_wake));
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep_until(wake) => {}
            () = state.rooms.earliest_changed() => {}
        }
    }
}
