//! The bridge's metrics, registered only with `--channels-layer` and rendered after the relay's
//! at `GET /metrics`. Names are listed in `docs/OPERATIONS.md`.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::json::Unfit;
use super::msgpack::Rejected;

type KindLabel = [(&'static str, &'static str); 1];

/// The `kind`s of `bridge_errors` (docs/OPERATIONS.md lists them).
pub(crate) const ERROR_KINDS: [&str; 6] = [
    "connect",
    "subscribe",
    "register",
    "publish",
    "forward",
    "forward_full",
];

/// Counters and gauges of the Channels bridge.
#[derive(Debug)]
pub(crate) struct BridgeMetrics {
    up: Gauge<i64, AtomicI64>,
    groups: Gauge<i64, AtomicI64>,
    owned_groups: Gauge<i64, AtomicI64>,
    received: Counter<u64, AtomicU64>,
    forwarded: Counter<u64, AtomicU64>,
    rejected: Family<KindLabel, Counter<u64, AtomicU64>>,
    dropped_fields: Family<KindLabel, Counter<u64, AtomicU64>>,
    errors: Family<KindLabel, Counter<u64, AtomicU64>>,
}

impl BridgeMetrics {
    /// The metrics and the registry that renders them, every label value at 0.
    pub(crate) fn new() -> (Self, Registry) {
        let metrics = Self {
            up: Gauge::default(),
            groups: Gauge::default(),
            owned_groups: Gauge::default(),
            received: Counter::default(),
            forwarded: Counter::default(),
            rejected: Family::default(),
            dropped_fields: Family::default(),
            errors: Family::default(),
        };
        for kind in Rejected::ALL {
            let _ = metrics.rejected.get_or_create(&[("kind", kind.label())]);
        }
        for kind in Unfit::ALL {
            let _ = metrics
                .dropped_fields
                .get_or_create(&[("kind", kind.label())]);
        }
        for kind in ERROR_KINDS {
            let _ = metrics.errors.get_or_create(&[("kind", kind)]);
        }
        let mut registry = Registry::with_prefix("roomcast");
        registry.register(
            "bridge_up",
            "1 while the bridge's connection to the Channels layer's Redis works, else 0",
            metrics.up.clone(),
        );
        registry.register(
            "bridge_groups",
            "Channels groups this node listens to (pub/sub subscriptions or core registrations)",
            metrics.groups.clone(),
        );
        registry.register(
            "bridge_owned_groups",
            "Pub/sub layer: groups whose messages this node publishes (it holds their lease)",
            metrics.owned_groups.clone(),
        );
        registry.register(
            "bridge_received",
            "Channels group messages published to their room by this node",
            metrics.received.clone(),
        );
        registry.register(
            "bridge_forwarded",
            "Room messages this node sent to their Channels group (--channels-forward)",
            metrics.forwarded.clone(),
        );
        registry.register(
            "bridge_rejected",
            "Channels group payloads refused, by kind; each kind is logged once",
            metrics.rejected.clone(),
        );
        registry.register(
            "bridge_dropped_fields",
            "Fields of published Channels messages left out of their data (no JSON form), by kind; each kind is logged once",
            metrics.dropped_fields.clone(),
        );
        registry.register(
            "bridge_errors",
            "Bridge operations that failed, by kind",
            metrics.errors.clone(),
        );
        (metrics, registry)
    }

    pub(crate) fn set_up(&self, up: bool) {
        self.up.set(i64::from(up));
    }

    pub(crate) fn set_groups(&self, groups: usize) {
        self.groups.set(i64::try_from(groups).unwrap_or(i64::MAX));
    }

    pub(crate) fn set_owned_groups(&self, groups: usize) {
        self.owned_groups
            .set(i64::try_from(groups).unwrap_or(i64::MAX));
    }

    pub(crate) fn record_received(&self) {
        self.received.inc();
    }

    pub(crate) fn record_forwarded(&self) {
        self.forwarded.inc();
    }

    pub(crate) fn record_rejected(&self, kind: &'static str) {
        self.rejected.get_or_create(&[("kind", kind)]).inc();
    }

    pub(crate) fn record_dropped_field(&self, kind: &'static str) {
        self.dropped_fields.get_or_create(&[("kind", kind)]).inc();
    }

    pub(crate) fn record_error(&self, kind: &'static str) {
        self.errors.get_or_create(&[("kind", kind)]).inc();
    }
}
