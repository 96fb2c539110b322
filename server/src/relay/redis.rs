//! The Redis relay: rooms shared by every node that points at the same Redis (or shards).
//!
//! Membership stays in each node's memory. A node subscribes to a room's channel while it has
//! members there and unsubscribes when the last one leaves. A publish is one round trip: a Lua
//! script numbers the message, keeps it in the room's bounded history and PUBLISHes it,
//! atomically; every subscribed node then fans it out locally with the encode-once path. Seq,
//! epoch, history and presence live in Redis under TTLs (see `keys.rs`).
//!
//! Per shard, three tasks share one multiplexed command connection:
//! - `link`: connects (command and pub/sub connections, bounded backoff), subscribes, loads
//!   each room's state and delivers what the room's channel carries, in order;
//! - `writer`: takes publishes in the order sessions made them and pipelines them, so one
//!   sender's messages keep their order on every node;
//! - `presence`: heartbeats, sweeps dead nodes, sends this node's presence changes.

mod keys;
mod link;
mod metrics;
mod notices;
mod presence;
mod ring;
mod scripts;
mod summary;
mod wire;
mod writer;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use roomcast_protocol::{RoomName, RoomSummary, UserName};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use self::keys::Keys;
pub(crate) use self::keys::check_prefix;
use self::metrics::RelayMetrics;
pub(crate) use self::notices::Notices;
use self::scripts::Scripts;
use crate::config::Config;
use crate::history::MessageData;
use crate::metrics::Metrics;
use crate::registry::Registry;

/// How long a connection attempt may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long any Redis command may take; past it the connection is treated as broken (a Redis
/// that is paused or cut off answers nothing, and publishers must hear "unavailable" quickly).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// First pause between reconnect attempts; it doubles up to [`MAX_RECONNECT_BACKOFF`].
const FIRST_RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// Longest pause between reconnect attempts: a returning Redis is found within this, and a
/// long outage costs one attempt per this per shard, not a spin.
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(2);

/// Publishes waiting for one shard's writer. Past it, publishes are refused as `unavailable`
/// at once rather than queued without bound behind a slow Redis.
const MAX_QUEUED_PUBLISHES: usize = 8192;

/// Joins waiting for their room to be subscribed and loaded, per shard.
const MAX_QUEUED_JOINS: usize = 1024;

/// Why the relay could not do something; every variant means "not delivered, try again".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RelayError {
    /// The room's shard is unreachable right now.
    #[error("Redis (shard {0}) is unreachable; nothing was published, try again shortly")]
    Down(usize),
    /// Redis failed or did not answer; the publish may not have happened.
    #[error("Redis (shard {0}) did not confirm in time; the message was not acknowledged")]
    Failed(usize),
    /// Too many publishes are waiting for this shard.
    #[error("too many publishes are waiting for Redis on this node; try again shortly")]
    Busy,
    /// The relay stopped (the node is shutting down) before Redis answered.
    #[error("the node is shutting down; the message was not acknowledged")]
    Stopped,
}

/// What Redis said about a publish.
#[derive(Debug, Clone)]
pub(crate) struct Receipt {
    pub(crate) seq: u64,
    pub(crate) epoch: Arc<str>,
}

/// A publish waiting for its shard's writer.
#[derive(Debug)]
pub(crate) struct PublishRequest {
    room: RoomName,
    user: UserName,
    text: Box<str>,
    data: Option<MessageData>,
    idempotency_key: Option<String>,
    /// Handed to the bridge's forwarder once Redis published it (`--channels-forward`).
    forward: bool,
    reply: oneshot::Sender<Result<Receipt, RelayError>>,
}

/// A join waiting for its room to be subscribed and loaded.
#[derive(Debug)]
pub(crate) struct Want {
    room: RoomName,
    reply: oneshot::Sender<Result<(), RelayError>>,
}

/// Numbers that every shard's tasks share.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    history_entries: usize,
    history_bytes: usize,
    /// TTL of every room key, refreshed while some node has members there.
    key_ttl_ms: u64,
    node_timeout: Duration,
}

/// What every task of the relay shares.
#[derive(Debug)]
pub(crate) struct Context {
    /// This process's id in Redis: random per start, so a restarted node never inherits the
    /// presence of its previous life (that is swept when its heartbeat lapses).
    node: String,
    keys: Keys,
    scripts: Scripts,
    rooms: Registry,
    notices: Notices,
    settings: Settings,
    metrics: RelayMetrics,
    stop: CancellationToken,
    /// The Django Channels bridge's forwarder, set once when `--channels-forward` is on.
    forwarder: std::sync::OnceLock<crate::bridge::Forwarder>,
}

/// One Redis instance and the connection to it.
#[derive(Debug)]
pub(crate) struct Shard {
    index: usize,
    client: redis::Client,
    /// The command connection while the shard is up.
    connection: RwLock<Option<MultiplexedConnection>>,
    /// A task saw the connection fail: `link` reconnects.
    broken: Notify,
    /// Bumped each time the shard comes up; `presence` resends everything on a change.
    generation: watch::Sender<u64>,
    publishes: mpsc::Sender<PublishRequest>,
    wants: mpsc::Sender<Want>,
}

impl Shard {
    fn connection(&self) -> Option<MultiplexedConnection> {
        self.connection
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set_connection(&self, connection: Option<MultiplexedConnection>) {
        *self
            .connection
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = connection;
    }

    fn is_up(&self) -> bool {
        self.connection
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_some()
    }
}

/// The relay of one node: its shards and their tasks.
#[derive(Debug)]
pub(crate) struct RedisRelay {
    context: Arc<Context>,
    shards: Vec<Arc<Shard>>,
    tasks: TaskTracker,
}

/// Checks every `--redis-url` and opens a client for each (no connection yet).
pub(crate) fn clients(config: &Config) -> Result<Vec<redis::Client>, String> {
    let mut clients = Vec::new();
    for url in &config.redis_url {
        let url = url.trim();
        let client = redis::Client::open(url).map_err(|e| {
            format!(
                "--redis-url {}: {e}; expected redis://[user:password@]host:port[/db] or rediss://...",
                redact(url)
            )
        })?;
        clients.push(client);
    }
    if config
        .redis_url
        .iter()
        .any(|u| u.trim().starts_with("rediss"))
    {
        // Two crypto providers are compiled in (ring here, aws-lc in a dev dependency); rustls
        // refuses to guess, so say which. Already installed is fine.
        let _already = rustls::crypto::ring::default_provider().install_default();
    }
    Ok(clients)
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

impl RedisRelay {
    /// Starts the relay's tasks for `clients` (from [`clients`]); they connect in the
    /// background, so the node starts (not ready) while Redis is down.
    pub(crate) fn start(
        config: &Config,
        clients: Vec<redis::Client>,
        rooms: Registry,
        notices: Notices,
        metrics: &Metrics,
    ) -> Arc<Self> {
        let (relay_metrics, registry) = RelayMetrics::new(clients.len());
        metrics.attach_relay(registry);
        let node = format!("{:016x}", fastrand::u64(..));
        let key_ttl = config.room_ttl + 2 * config.redis_node_timeout;
        let context = Arc::new(Context {
            node,
            keys: Keys::new(&config.redis_prefix),
            scripts: Scripts::new(),
            rooms,
            notices,
            settings: Settings {
                history_entries: config.history_size,
                history_bytes: config.history_bytes,
                key_ttl_ms: u64::try_from(key_ttl.as_millis()).unwrap_or(u64::MAX),
                node_timeout: config.redis_node_timeout,
            },
            metrics: relay_metrics,
            stop: CancellationToken::new(),
            forwarder: std::sync::OnceLock::new(),
        });
        info!(
            node = %context.node,
            shards = clients.len(),
            prefix = %config.redis_prefix,
            "relaying rooms through Redis"
        );
        let tasks = TaskTracker::new();
        let shards = clients
            .into_iter()
            .enumerate()
            .map(|(index, client)| {
                let (publishes, publish_queue) = mpsc::channel(MAX_QUEUED_PUBLISHES);
                let (wants, want_queue) = mpsc::channel(MAX_QUEUED_JOINS);
                let shard = Arc::new(Shard {
                    index,
                    client,
                    connection: RwLock::new(None),
                    broken: Notify::new(),
                    generation: watch::Sender::new(0),
                    publishes,
                    wants,
                });
                let generation = shard.generation.subscribe();
                tasks.spawn(link::run(shard.clone(), context.clone(), want_queue));
                tasks.spawn(writer::run(shard.clone(), context.clone(), publish_queue));
                tasks.spawn(presence::run(shard.clone(), context.clone(), generation));
                shard
            })
            .collect();
        tasks.close();
        Arc::new(Self {
            context,
            shards,
            tasks,
        })
    }

    fn shard_of(&self, room: &RoomName) -> &Arc<Shard> {
        let index = ring::shard_of(room.as_str(), self.shards.len());
        &self.shards[index]
    }

    /// Queues a publish behind this node's earlier ones to the same shard; the answer comes
    /// once Redis has numbered, kept and published it (or could not).
    pub(crate) fn publish(
        &self,
        room: &RoomName,
        user: &UserName,
        text: &str,
        data: Option<&MessageData>,
        idempotency_key: Option<&str>,
        forward: bool,
    ) -> oneshot::Receiver<Result<Receipt, RelayError>> {
        let (reply, answer) = oneshot::channel();
        let shard = self.shard_of(room);
        let refusal = if shard.is_up() {
            let request = PublishRequest {
                room: room.clone(),
                user: user.clone(),
                text: text.into(),
                data: data.cloned(),
                idempotency_key: idempotency_key.map(str::to_owned),
                forward,
                reply,
            };
            match shard.publishes.try_send(request) {
                Ok(()) => return answer,
                Err(refused) => {
                    let (error, request) = match refused {
                        mpsc::error::TrySendError::Full(r) => (RelayError::Busy, r),
                        mpsc::error::TrySendError::Closed(r) => (RelayError::Down(shard.index), r),
                    };
                    self.context.metrics.record_error("publish");
                    (error, request.reply)
                }
            }
        } else {
            self.context.metrics.record_error("down");
            (RelayError::Down(shard.index), reply)
        };
        let (error, reply) = refusal;
        let _gone = reply.send(Err(error));
        answer
    }

    /// Makes sure `room` is subscribed and loaded here, so a join can replay and go live with
    /// no gap. Quick when the room already has members on this node.
    pub(crate) async fn prepare_join(&self, room: &RoomName) -> Result<(), RelayError> {
        let shard = self.shard_of(room);
        if !shard.is_up() {
            self.context.metrics.record_error("down");
            return Err(RelayError::Down(shard.index));
        }
        let (reply, answer) = oneshot::channel();
        let want = Want {
            room: room.clone(),
            reply,
        };
        let answered = tokio::time::timeout(COMMAND_TIMEOUT * 2, async {
            shard
                .wants
                .send(want)
                .await
                .map_err(|_| RelayError::Down(shard.index))?;
            answer.await.map_err(|_| RelayError::Down(shard.index))?
        })
        .await;
        let result = answered.unwrap_or(Err(RelayError::Failed(shard.index)));
        if result.is_err() {
            // Nothing may stay subscribed for a join that did not happen.
            self.context.notices.check(room);
        }
        result
    }

    /// Hands every message this node publishes from now on (and Redis accepts) to
    /// `forwarder`, except those from the bridge itself. Set once; later calls are ignored.
    pub(crate) fn set_forwarder(&self, forwarder: crate::bridge::Forwarder) {
        let _first = self.context.forwarder.set(forwarder);
    }

    /// This node's Redis prefix (`--redis-prefix`).
    pub(crate) fn prefix(&self) -> &str {
        self.context.keys.prefix()
    }

    /// `Err` with the reason while any shard is down (`/readyz`).
    pub(crate) fn readiness(&self) -> Result<(), String> {
        match self.shards.iter().find(|shard| !shard.is_up()) {
            None => Ok(()),
            Some(shard) => Err(format!("Redis shard {} is unreachable", shard.index)),
        }
    }

    /// `room` as every node sees it, read from Redis; `None` when no node knows it.
    pub(crate) async fn summary(&self, room: &RoomName) -> Result<Option<RoomSummary>, RelayError> {
        let shard = self.shard_of(room);
        let connection = shard.connection().ok_or(RelayError::Down(shard.index))?;
        summary::read(&self.context, shard, connection, room).await
    }

    /// Stops the relay's tasks after telling Redis this node's members left (bounded).
    pub(crate) async fn stop(&self) {
        self.context.stop.cancel();
        if tokio::time::timeout(COMMAND_TIMEOUT * 2, self.tasks.wait())
            .await
            .is_err()
        {
            warn!("the Redis relay did not stop in time; other nodes will sweep this node");
        }
    }
}

/// A pause of `backoff` with ±20% jitter, so nodes that lost Redis together do not return in
/// lockstep.
fn jittered(backoff: Duration) -> Duration {
    backoff.mul_f64(0.8 + 0.4 * fastrand::f64())
}

fn now_ms() -> u64 {
    crate::frames::now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_urls(urls: &[&str]) -> Config {
        Config {
            redis_url: urls.iter().map(|u| (*u).to_owned()).collect(),
            ..Config::default()
        }
    }

    #[test]
    fn render_key_value_urls_are_accepted_and_bad_ones_name_the_flag() {
        let render = with_urls(&[
            "redis://red-abc123:6379",
            "rediss://red-abc123:s3cret@oregon-keyvalue.render.com:6379",
            " redis://127.0.0.1:6380/2 ",
        ]);
        assert_eq!(clients(&render).map(|c| c.len()), Ok(3));
        let err = clients(&with_urls(&["http://user:hunter2@example.invalid"]))
            .err()
            .unwrap_or_default();
        assert!(err.contains("--redis-url"), "{err}");
        assert!(
            !err.contains("hunter2"),
            "passwords never reach logs: {err}"
        );
        // The prefix and the node timeout are checked with the rest of the config, by flag.
        let prefix = Config {
            redis_prefix: "has space".into(),
            ..with_urls(&["redis://127.0.0.1:6380"])
        };
        let refused = prefix.validate().err().map(|e| e.flag);
        assert_eq!(refused, Some("--redis-prefix"));
        let short = Config {
            redis_node_timeout: Duration::from_millis(100),
            ..with_urls(&["redis://127.0.0.1:6380"])
        };
        let refused = short.validate().err().map(|e| e.flag);
        assert_eq!(refused, Some("--redis-node-timeout"));
    }
}
