//! The relay's metrics, registered only when `--redis-url` is set and rendered after the rest
//! at `GET /metrics`.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type ShardLabel = [(&'static str, String); 1];
type KindLabel = [(&'static str, &'static str); 1];

/// Counters and gauges of the Redis relay. Names are listed in `docs/OPERATIONS.md`.
#[derive(Debug)]
pub(crate) struct RelayMetrics {
    up: Family<ShardLabel, Gauge<i64, AtomicI64>>,
    reconnects: Family<ShardLabel, Counter<u64, AtomicU64>>,
    subscribed_rooms: Family<ShardLabel, Gauge<i64, AtomicI64>>,
    publish_seconds: Family<ShardLabel, Histogram>,
    errors: Family<KindLabel, Counter<u64, AtomicU64>>,
    garbage: Family<KindLabel, Counter<u64, AtomicU64>>,
    gaps: Family<KindLabel, Counter<u64, AtomicU64>>,
    nodes_swept: Counter<u64, AtomicU64>,
}

/// The `kind`s of `relay_errors` (docs/OPERATIONS.md lists them).
const ERROR_KINDS: [&str; 8] = [
    "publish",
    "down",
    "connect",
    "load",
    "subscribe",
    "presence",
    "heartbeat",
    "summary",
];

/// The `kind`s of `relay_garbage`.
const GARBAGE_KINDS: [&str; 4] = ["not_text", "foreign", "unknown_kind", "bad_field"];

fn shard(index: usize) -> ShardLabel {
    [("shard", index.to_string())]
}

impl RelayMetrics {
    /// The metrics and the registry that renders them.
    pub(crate) fn new(shards: usize) -> (Self, Registry) {
        let metrics = Self {
            up: Family::default(),
            reconnects: Family::default(),
            subscribed_rooms: Family::default(),
            // 50 µs to ~1.6 s: loopback round trips to a stalled Redis.
            publish_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
            }),
            errors: Family::default(),
            garbage: Family::default(),
            gaps: Family::default(),
            nodes_swept: Counter::default(),
        };
        for index in 0..shards {
            metrics.up.get_or_create(&shard(index)).set(0);
            metrics.subscribed_rooms.get_or_create(&shard(index)).set(0);
            let _ = metrics.reconnects.get_or_create(&shard(index));
            let _ = metrics.publish_seconds.get_or_create(&shard(index));
        }
        // Every known label value from the start: a scrape shows 0 rather than nothing, so a
        // rate() over the first occurrence is right and the families are always listed.
        for kind in ERROR_KINDS {
            let _ = metrics.errors.get_or_create(&[("kind", kind)]);
        }
        for kind in GARBAGE_KINDS {
            let _ = metrics.garbage.get_or_create(&[("kind", kind)]);
        }
        for filled in ["true", "false"] {
            let _ = metrics.gaps.get_or_create(&[("filled", filled)]);
        }
        let mut registry = Registry::with_prefix("roomcast");
        registry.register(
            "redis_up",
            "1 while the node's connections to this Redis shard work, else 0",
            metrics.up.clone(),
        );
        registry.register(
            "redis_reconnects",
            "Times the node connected to this Redis shard again after losing it",
            metrics.reconnects.clone(),
        );
        registry.register(
            "relay_subscribed_rooms",
            "Rooms this node is subscribed to on this Redis shard (rooms with local members)",
            metrics.subscribed_rooms.clone(),
        );
        registry.register(
            "redis_publish_seconds",
            "Round trip of a publish to Redis (script numbering, keeping and publishing it)",
            metrics.publish_seconds.clone(),
        );
        registry.register(
            "relay_errors",
            "Relay operations that failed, by kind (publish, down, load, presence, heartbeat, subscribe)",
            metrics.errors.clone(),
        );
        registry.register(
            "relay_garbage",
            "Payloads on a room's channel that are not ours, by kind; each kind is logged once",
            metrics.garbage.clone(),
        );
        registry.register(
            "relay_gaps",
            "Times a room's stream on this node skipped, by whether history filled the gap",
            metrics.gaps.clone(),
        );
        registry.register(
            "relay_nodes_swept",
            "Rooms from which this node removed a dead node's members",
            metrics.nodes_swept.clone(),
        );
        (metrics, registry)
    }

    pub(crate) fn set_up(&self, index: usize, up: bool) {
        self.up.get_or_create(&shard(index)).set(i64::from(up));
    }

    pub(crate) fn record_reconnect(&self, index: usize) {
        self.reconnects.get_or_create(&shard(index)).inc();
    }

    pub(crate) fn set_subscribed(&self, index: usize, rooms: usize) {
        self.subscribed_rooms
            .get_or_create(&shard(index))
            .set(i64::try_from(rooms).unwrap_or(i64::MAX));
    }

    pub(crate) fn observe_publish(&self, index: usize, seconds: f64, messages: usize) {
        let histogram = self.publish_seconds.get_or_create(&shard(index));
        for _ in 0..messages {
            histogram.observe(seconds);
        }
    }

    pub(crate) fn record_error(&self, kind: &'static str) {
        self.errors.get_or_create(&[("kind", kind)]).inc();
    }

    pub(crate) fn record_garbage(&self, kind: &'static str) {
        self.garbage.get_or_create(&[("kind", kind)]).inc();
    }

    pub(crate) fn record_gap(&self, filled: bool) {
        let label = if filled { "true" } else { "false" };
        self.gaps.get_or_create(&[("filled", label)]).inc();
    }

    pub(crate) fn record_swept(&self, rooms: u64) {
        self.nodes_swept.inc_by(rooms);
    }
}
