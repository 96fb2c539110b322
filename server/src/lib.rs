//! roomcast-server: WebSocket rooms compatible with the Django Channels tutorial chat, with
//! heartbeat eviction, bounded per-session queues, history and an HTTP publish API.
//!
//! [`run`] serves on a listener you bind (tests bind `127.0.0.1:0`) until the `shutdown` future
//! completes, then drains: readiness fails, sessions close with 1001, and `run` returns within
//! `--shutdown-grace`.
//!
//! # Layout
//! - [`config`]: every flag and its `ROOMCAST_*` twin.
//! - `serve`: the accept loop (header deadline, peer address, graceful stop).
//! - `routes`: the route table; `connect` (upgrades), `publish` (send-test, publish API),
//!   `api` (info, rooms), `health` (probes, metrics).
//! - `session`: one task per socket, one `select!` loop; `session/*` holds its heartbeat, rate
//!   limit, frame decoding, commands, and the exit table (close code, leave reason, metric).
//! - `outbox`: a session's outbound queue, bounded in bytes; pushing never waits.
//! - `registry` (every room by name, membership guard) and `room` (members, presence, seq, fan-out),
//!   `history` (recent messages, encoded once per protocol), `frames` (encoding).
//! - `auth` (who may publish over HTTP), `idempotency` (repeated publishes answered once),
//!   `api_error` (the one shape of HTTP errors).
//! - `metrics`: per-instance Prometheus registry.
//! - `relay`: where publishes go: this node (`Local`) or Redis (`relay/redis*`: connections,
//!   Lua scripts, subscriber, publish writer, presence and heartbeat, sharding, key layout).

pub mod config;
pub mod metrics;

mod api;
mod api_error;
mod auth;
mod connect;
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
mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use auth::PeerAddr;
pub use config::Config;
pub use registry::Registry;
/// The HTTP API's bodies, defined once in the protocol crate.
pub use roomcast_protocol::{Broadcast, HistoryPage, PublishReceipt, RoomList, RoomSummary};
pub use routes::router;
pub use state::AppState;

/// Serves on `listener` with `config` until `shutdown` completes, then drains: readiness fails,
/// new sessions are refused (503), every session is closed with 1001, and `run` returns once
/// they have ended or `config.shutdown_grace` has passed, whichever comes first. HTTP keeps
/// being served while draining, so probes and publishers get clear answers.
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) {
    let state = match AppState::try_new(config) {
        Ok(state) => state,
        Err(e) => {
            tracing::error!("{e}");
            return;
        }
    };
    let stop_serving = CancellationToken::new();
    let serving = tokio::spawn(serve::serve(
        listener,
        router(state.clone()),
        stop_serving.clone(),
    ));
    state.sessions.spawn(janitor(state.clone()));

    shutdown.await;
    let grace = state.config.shutdown_grace;
    let deadline = tokio::time::Instant::now() + grace;
    info!(
        sessions = state.connection_permits_in_use(),
        "shutting down: closing sessions with 1001"
    );
    state.shutdown.cancel();
    state.sessions.close();
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
    // Sessions have left their rooms: the relay tells Redis before it stops.
    state.relay.stop().await;
    stop_serving.cancel();
    match tokio::time::timeout_at(deadline, serving).await {
        Ok(Ok(())) => info!("shutdown complete"),
        Ok(Err(e)) => warn!(error = %e, "the accept loop panicked"),
        Err(_) => warn!("HTTP requests still in flight after --shutdown-grace; exiting anyway"),
    }
}

/// Refuses a configuration that cannot work, naming the flag (the binary exits with 2).
pub fn check_config(config: &Config) -> Result<(), String> {
    if config.redis_url.is_empty() {
        return Ok(());
    }
    relay::redis::clients(config).map(|_| ())
}

/// Shortest and longest pause between janitor sweeps: a quarter of `--room-ttl` within these,
/// so a short TTL is honoured closely and a long one costs a sweep a second at most.
const JANITOR_PERIOD_BOUNDS: (Duration, Duration) =
    (Duration::from_millis(10), Duration::from_secs(1));

/// Removes rooms whose kept history outlived `--room-ttl`, and expired idempotency keys,
/// until shutdown.
async fn janitor(state: Arc<AppState>) {
    let (shortest, longest) = JANITOR_PERIOD_BOUNDS;
    let period = (state.config.room_ttl / 4).clamp(shortest, longest);
    let mut ticks = tokio::time::interval(period);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = ticks.tick() => {
                let now = Instant::now();
                state.rooms.sweep(now);
                state.idempotency.sweep(now);
            }
        }
    }
}
