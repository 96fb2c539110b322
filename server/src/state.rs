//! State shared by every request and session of one server instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use roomcast_protocol::{Broadcast, PublishReceipt, RoomName, ServerInfo};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bridge::{Bridge, BridgeNotices};
use crate::config::{ChannelsLayer, Config, ValidConfig};
use crate::drain::Drain;
use crate::idempotency::IdempotencyCache;
use crate::metrics::Metrics;
use crate::registry::{Registry, RelayHooks, RoomSettings};
use crate::relay::redis::RedisRelay;
use crate::relay::{Notices, Relay};
use crate::room::HistoryLimits;
use crate::room::RingLimit;
use crate::session::SessionId;

/// One server's rooms, metrics, limits and shutdown signals. Built once by [`crate::run`] (or
/// by [`AppState::new`] for [`crate::router`]) and shared by reference count.
#[derive(Debug)]
pub struct AppState {
    pub(crate) config: Config,
    pub(crate) rooms: Registry,
    pub(crate) metrics: Arc<Metrics>,
    /// Cancelled when shutdown starts: the accept loop stops and sessions close with 1001.
    pub(crate) shutdown: CancellationToken,
    /// The waves that close sessions on shutdown, spread over `--drain-window`.
    pub(crate) drain: Drain,
    /// Every session (and the janitor); shutdown waits on it, bounded by `--shutdown-grace`.
    pub(crate) sessions: TaskTracker,
    /// `--max-connections` permits; each session holds one until it ends.
    pub(crate) connection_permits: Arc<Semaphore>,
    /// Where every message is published (the one publish hook): this node only, or Redis
    /// (`--redis-url`).
    pub(crate) relay: Relay,
    /// The Django Channels bridge (`--channels-layer`), which publishes through `relay`.
    pub(crate) bridge: Option<Bridge>,
    /// Results of recent single-room publishes that carried an `idempotency_key`.
    pub(crate) idempotency: IdempotencyCache<(RoomName, String), PublishReceipt>,
    /// Results of recent broadcasts that carried an `idempotency_key`.
    pub(crate) broadcasts: IdempotencyCache<String, Broadcast>,
    /// Private rooms, tokens, origins, sessions per IP (`access`).
    pub(crate) access: crate::access::Access,
    next_session: AtomicU64,
}

impl AppState {
    /// State for a server running with `config`.
    /// State for a server running with `config`. With `--redis-url` this starts the relay's
    /// tasks (they connect in the background).
    pub fn new(config: ValidConfig) -> Arc<Self> {
        let config = config.into_inner();
        let metrics = Arc::new(Metrics::new());
        let shutdown = CancellationToken::new();
        let redis = if config.redis_url.is_empty() {
            None
        } else {
            // Checked by `Config::validate`, which a `ValidConfig` has passed.
            let clients = crate::relay::redis::clients(&config)
                .unwrap_or_else(|e| panic!("a validated --redis-url: {e}"));
            let notices = Notices::new(clients.len());
            Some((clients, notices))
        };
        let bridge_notices = (redis.is_some()
            && config.channels.channels_layer != ChannelsLayer::Off)
            .then(BridgeNotices::default);
        let rooms = Registry::new(
            RoomSettings {
                history: HistoryLimits {
                    entries: config.history_size,
                    bytes: config.history_bytes,
                },
                ring: RingLimit(config.max_queue_bytes),
                // With a relay the room's history lives in Redis under its own TTL; the local
                // copy goes when the last local member leaves (and the node unsubscribes).
                room_ttl: if redis.is_some() {
                    std::time::Duration::ZERO
                } else {
                    config.room_ttl
                },
                max_rooms: config.max_rooms,
                latest_on_join: config.latest_on_join.clone(),
                relay: RelayHooks {
                    relayed: redis.is_some(),
                    notices: redis.as_ref().map(|(_, notices)| notices.clone()),
                    bridge: bridge_notices.clone(),
                },
            },
            metrics.clone(),
            shutdown.clone(),
        );
        let drain = Drain::new(config.drain_window);
        let relay = match redis {
            None => Relay::Local,
            Some((clients, notices)) => Relay::Redis(RedisRelay::start(
                &config,
                clients,
                rooms.clone(),
                notices,
                &metrics,
            )),
        };
        let bridge = match (&relay, bridge_notices) {
            (Relay::Redis(redis), Some(notices)) => {
                // Checked by `Config::validate` (the layer needs one --redis-url).
                Some(
                    Bridge::start(&config, redis, rooms.clone(), notices, &metrics)
                        .unwrap_or_else(|e| panic!("a validated --channels-layer: {e}")),
                )
            }
            _ => None,
        };
        Arc::new(Self {
            access: crate::access::Access::new(&config),
            relay,
            bridge,
            connection_permits: Arc::new(Semaphore::new(
                config.max_connections.min(Semaphore::MAX_PERMITS),
            )),
            config,
            rooms,
            metrics,
            shutdown,
            drain,
            sessions: TaskTracker::new(),
            idempotency: IdempotencyCache::default(),
            broadcasts: IdempotencyCache::default(),
            next_session: AtomicU64::new(1),
        })
    }

    /// The room registry.
    pub fn rooms(&self) -> &Registry {
        &self.rooms
    }

    /// This instance's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// False once shutdown has started (`/readyz` answers 503 from then on).
    pub fn is_accepting(&self) -> bool {
        !self.shutdown.is_cancelled()
    }

    pub(crate) fn next_session_id(&self) -> SessionId {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// What clients are told in `welcome` and `GET /api/info`.
    pub(crate) fn server_info(&self) -> ServerInfo {
        let config = &self.config;
        ServerInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ping_interval_ms: millis(config.ping_interval),
            ping_timeout_ms: millis(config.ping_timeout),
            max_message_bytes: config.max_message_bytes,
            max_queue_bytes: config.max_queue_bytes,
            max_rooms_per_session: config.max_rooms_per_session,
            history_size: config.history_size,
            room_ttl_ms: millis(config.room_ttl),
            rate_per_second: config.rate_per_second,
        }
    }
}

fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl AppState {
    /// Sessions holding a `--max-connections` permit right now.
    pub(crate) fn connection_permits_in_use(&self) -> usize {
        let max = self.config.max_connections.min(Semaphore::MAX_PERMITS);
        max.saturating_sub(self.connection_permits.available_permits())
    }
}
