//! The Django Channels bridge (`--channels-layer`): roomcast joins a Django app's
//! channels_redis layer on the same Redis, so the app's `group_send` calls reach the rooms'
//! WebSocket members on every node, and (with `--channels-forward`) the rooms' messages reach
//! the app's consumers.
//!
//! - `group`: which group is which room, and the Redis names channels_redis builds;
//! - `msgpack`: the layer's message format (decode what Django sends, encode what we forward);
//! - `json`: a message's other fields as the room message's `data`, and back;
//! - `pubsub`: `RedisPubSubChannelLayer`: SUBSCRIBE to the groups of the rooms held here; one
//!   node per room (the holder of a short lease in Redis) publishes what arrives, so a message
//!   reaches the room once however many nodes hold it;
//! - `core_layer`: `RedisChannelLayer`: one channel per room registered in the group's sorted
//!   set, scored to lapse `--channels-registration-ttl` after the last refresh, consumed with
//!   BZPOPMIN by every node holding the room (each message is popped by one of them);
//! - `forward`: `group_send` of the rooms' own messages, once per message cluster-wide;
//! - `metrics`: `roomcast_bridge_*`.
//!
//! A message from Django goes through the one publish hook with [`Source::Bridge`], so it is
//! numbered, kept and relayed like any other and is never forwarded back to Django.
//! Listening follows the room's lifetime on this node: from its first local member to its last.

mod core_layer;
mod forward;
mod group;
mod json;
mod metrics;
mod msgpack;
mod pubsub;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use roomcast_protocol::RoomName;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub(crate) use self::forward::Forwarder;
use self::group::{GroupMap, LayerNames};
pub(crate) use self::group::{check_channels_prefix, check_group_pattern};
use self::json::Unfit;
use self::metrics::BridgeMetrics;
use self::msgpack::{Decoded, Incoming, Rejected};
use crate::config::{ChannelsLayer, Config};
use crate::history::MessageData;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::relay::redis::RedisRelay;
use crate::relay::{Relay, Source};

/// Django messages being published to rooms at once. Past it the bridge reads no more from
/// Redis until one is answered, so a slow relay slows the bridge instead of growing a queue.
const MAX_PUBLISHES_IN_FLIGHT: usize = 256;

/// What a group message may carry around its text: the other fields, msgpack framing and the
/// core layer's random prefix. A payload larger than `--max-message-bytes` plus this is
/// refused as `too_large` before it is decoded.
const PAYLOAD_ENVELOPE_BYTES: usize = 4096;

/// How long a Redis command of the bridge may take before the connection counts as broken.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Pause before connecting again after losing Redis (the relay's own tasks do the same).
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// What the registry tells the bridge: rooms whose local membership changed. Coalesced per
/// room, so it never holds more than one entry per room.
#[derive(Debug, Clone, Default)]
pub(crate) struct BridgeNotices {
    shared: Arc<NoticeState>,
}

#[derive(Debug, Default)]
struct NoticeState {
    pending: Mutex<HashSet<RoomName>>,
    changed: Notify,
}

impl BridgeNotices {
    /// `room` gained or lost a local member.
    pub(crate) fn check(&self, room: &RoomName) {
        self.lock().insert(room.clone());
        self.shared.changed.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<RoomName>> {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(&self) -> HashSet<RoomName> {
        std::mem::take(&mut *self.lock())
    }

    async fn changed(&self) {
        self.shared.changed.notified().await;
    }
}

/// What every task of the bridge shares.
#[derive(Debug)]
struct Context {
    groups: GroupMap,
    names: LayerNames,
    /// This deployment's `--redis-prefix`, marking the messages it forwards.
    origin: String,
    /// This process's id for pub/sub leases: random per start.
    node: String,
    client: redis::Client,
    rooms: Registry,
    relay: Relay,
    notices: BridgeNotices,
    metrics: Arc<BridgeMetrics>,
    max_payload_bytes: usize,
    max_text_bytes: usize,
    /// `--channels-registration-ttl`: core registrations and pub/sub leases.
    ttl: Duration,
    /// `--channels-group-expiry`: the app's `group_expiry`.
    group_expiry: Duration,
    publishing: Arc<Semaphore>,
    rejected_seen: Mutex<HashSet<Rejected>>,
    dropped_seen: Mutex<HashSet<Unfit>>,
    tasks: TaskTracker,
    stop: CancellationToken,
}

/// The bridge of one node.
#[derive(Debug)]
pub(crate) struct Bridge {
    context: Arc<Context>,
}

impl Bridge {
    /// Starts the bridge's tasks for a validated config with `--channels-layer` set; they
    /// connect in the background. With `--channels-forward`, `relay` hands it every message
    /// this node publishes.
    pub(crate) fn start(
        config: &Config,
        relay: &Arc<RedisRelay>,
        rooms: Registry,
        notices: BridgeNotices,
        metrics: &Metrics,
    ) -> Result<Self, String> {
        let channels = &config.channels;
        let url = config
            .redis_url
            .first()
            .ok_or("--channels-layer needs --redis-url")?;
        let client = redis::Client::open(url.trim()).map_err(|e| e.to_string())?;
        let (bridge_metrics, registry) = BridgeMetrics::new();
        metrics.attach_bridge(registry);
        let context = Arc::new(Context {
            groups: GroupMap::new(&channels.channels_group),
            names: LayerNames::new(&channels.channels_prefix),
            origin: relay.prefix().to_owned(),
            node: format!("{:016x}", fastrand::u64(..)),
            client,
            rooms,
            relay: Relay::Redis(relay.clone()),
            notices,
            metrics: Arc::new(bridge_metrics),
            max_payload_bytes: config.max_message_bytes + PAYLOAD_ENVELOPE_BYTES,
            max_text_bytes: config.max_message_bytes,
            ttl: channels.channels_registration_ttl,
            group_expiry: channels.channels_group_expiry,
            publishing: Arc::new(Semaphore::new(MAX_PUBLISHES_IN_FLIGHT)),
            rejected_seen: Mutex::new(HashSet::new()),
            dropped_seen: Mutex::new(HashSet::new()),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        });
        let layer = channels.channels_layer;
        match layer {
            ChannelsLayer::Off => return Err("--channels-layer is off".to_owned()),
            ChannelsLayer::Pubsub => {
                context.tasks.spawn(pubsub::run(context.clone()));
            }
            ChannelsLayer::Core => {
                context.tasks.spawn(core_layer::run(context.clone()));
            }
        }
        if channels.channels_forward {
            let forwarder = forward::start(&context, layer);
            relay.set_forwarder(forwarder);
        }
        info!(
            ?layer,
            prefix = %channels.channels_prefix,
            group = %channels.channels_group,
            forward = channels.channels_forward,
            "bridging rooms to a Django Channels layer"
        );
        Ok(Self { context })
    }

    /// Stops the bridge's tasks (bounded): before the relay stops, so its last publishes go out.
    pub(crate) async fn stop(&self) {
        let context = &self.context;
        context.stop.cancel();
        context.tasks.close();
        if tokio::time::timeout(COMMAND_TIMEOUT * 2, context.tasks.wait())
            .await
            .is_err()
        {
            warn!("the Channels bridge did not stop in time");
        }
    }
}

impl Context {
    /// Whether `room` has members on this node (the bridge listens to its group meanwhile).
    fn holds(&self, room: &RoomName) -> bool {
        self.rooms.get(room).is_some_and(|r| r.has_members())
    }

    /// Reads one payload from `room`'s group and, when `publish` is set, publishes it to the
    /// room. Waits only when [`MAX_PUBLISHES_IN_FLIGHT`] are already waiting for the relay.
    async fn receive(
        self: &Arc<Self>,
        room: RoomName,
        payload: &[u8],
        random_prefix: usize,
        publish: bool,
    ) {
        let decoded = msgpack::decode(payload, random_prefix, self.max_payload_bytes, &self.origin)
            .and_then(|decoded| match decoded {
                // The same bound as an HTTP publish: text and data's compact JSON together.
                Decoded::Message(m)
                    if m.text.len() + m.data.as_ref().map_or(0, MessageData::len)
                        > self.max_text_bytes =>
                {
                    Err(Rejected::TooLarge)
                }
                other => Ok(other),
            });
        match decoded {
            Ok(Decoded::Echo) => {}
            Ok(Decoded::Message(incoming)) if publish => {
                for unfit in &incoming.dropped {
                    self.drop_field(&room, *unfit);
                }
                self.publish(room, incoming).await;
            }
            Ok(Decoded::Message(_)) => {}
            Err(kind) => self.reject(&room, kind),
        }
    }

    fn reject(&self, room: &RoomName, kind: Rejected) {
        self.metrics.record_rejected(kind.label());
        let first = self
            .rejected_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(kind);
        if first {
            warn!(%room, kind = kind.label(), "ignoring a Channels group message roomcast cannot read (logged once per kind; counted in roomcast_bridge_rejected_total)");
        }
    }

    /// A field of a published message that JSON cannot hold was left out of its `data`.
    fn drop_field(&self, room: &RoomName, kind: Unfit) {
        self.metrics.record_dropped_field(kind.label());
        let first = self
            .dropped_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(kind);
        if first {
            warn!(%room, kind = kind.label(), "a Channels message field has no JSON form; published the message without it (logged once per kind; counted in roomcast_bridge_dropped_fields_total)");
        }
    }

    async fn publish(self: &Arc<Self>, room: RoomName, incoming: Incoming) {
        let Ok(permit) = self.publishing.clone().acquire_owned().await else {
            return;
        };
        let lease = match self.rooms.lease(&room) {
            Ok(lease) => lease,
            Err(full) => {
                self.metrics.record_error("publish");
                warn!(%room, "a Channels message was not published: {full}");
                return;
            }
        };
        let mut publishing = self.relay.publish(
            lease.room(),
            &incoming.user,
            &incoming.text,
            incoming.data.as_ref(),
            Source::Bridge,
            None,
        );
        let context = self.clone();
        self.tasks.spawn(async move {
            let _permit = permit;
            match publishing.wait().await {
                Ok(_) => context.metrics.record_received(),
                Err(e) => {
                    context.metrics.record_error("publish");
                    warn!(%room, error = %e, "a Channels message was not published");
                }
            }
            drop(lease);
        });
    }
}

/// `future`, failing as a timeout after [`COMMAND_TIMEOUT`].
async fn within<T>(
    future: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    match tokio::time::timeout(COMMAND_TIMEOUT, future).await {
        Ok(result) => result,
        Err(_) => {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "Redis did not answer").into())
        }
    }
}

/// A command connection to the layer's Redis, made on first use and again after a failure.
async fn connect(client: &redis::Client) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// Seconds since the Unix epoch, as channels_redis's `time.time()`.
fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
