//! Prometheus metrics, owned by one server instance (two servers in one process never share
//! counters), rendered at `GET /metrics`.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::relay::Source;

type Labels = [(&'static str, &'static str); 1];

/// Every metric the server exports. Names are listed in `docs/OPERATIONS.md`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sessions_open: Gauge<i64, AtomicI64>,
    connections_open: Family<Labels, Gauge<i64, AtomicI64>>,
    /// `connections_open{transport="websocket"}` and `{transport="sse"}`, looked up once.
    open_websocket: Gauge<i64, AtomicI64>,
    open_sse: Gauge<i64, AtomicI64>,
    rooms: Gauge<i64, AtomicI64>,
    messages_published: Family<Labels, Counter<u64, AtomicU64>>,
    /// `messages_published{source="ws"}` and `{source="http"}`, looked up once: a publish is
    /// the hot path, and a family lookup takes a lock every session would share.
    published_ws: Counter<u64, AtomicU64>,
    published_http: Counter<u64, AtomicU64>,
    published_bridge: Counter<u64, AtomicU64>,
    messages_delivered: Counter<u64, AtomicU64>,
    bytes_delivered: Counter<u64, AtomicU64>,
    queue_overflows: Counter<u64, AtomicU64>,
    evictions: Family<Labels, Counter<u64, AtomicU64>>,
    frames_refused: Family<Labels, Counter<u64, AtomicU64>>,
    http_publishes: Family<Labels, Counter<u64, AtomicU64>>,
    connections_refused: Counter<u64, AtomicU64>,
    connections_refused_per_ip: Counter<u64, AtomicU64>,
    origins_refused: Counter<u64, AtomicU64>,
    access_refused: Family<Labels, Counter<u64, AtomicU64>>,
    access_expired: Counter<u64, AtomicU64>,
    rooms_refused: Counter<u64, AtomicU64>,
    history_replays: Family<Labels, Counter<u64, AtomicU64>>,
    resident_memory: Gauge<i64, AtomicI64>,
    /// The relay's metrics, when `--redis-url` is set.
    relay: std::sync::OnceLock<Registry>,
    /// The Django Channels bridge's metrics, when `--channels-layer` is set.
    bridge: std::sync::OnceLock<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("roomcast");
        let metrics = Self {
            sessions_open: Gauge::default(),
            connections_open: Family::default(),
            open_websocket: Gauge::default(),
            open_sse: Gauge::default(),
            rooms: Gauge::default(),
            messages_published: Family::default(),
            published_ws: Counter::default(),
            published_http: Counter::default(),
            published_bridge: Counter::default(),
            messages_delivered: Counter::default(),
            bytes_delivered: Counter::default(),
            queue_overflows: Counter::default(),
            evictions: Family::default(),
            frames_refused: Family::default(),
            http_publishes: Family::default(),
            connections_refused: Counter::default(),
            connections_refused_per_ip: Counter::default(),
            origins_refused: Counter::default(),
            access_refused: Family::default(),
            access_expired: Counter::default(),
            rooms_refused: Counter::default(),
            history_replays: Family::default(),
            resident_memory: Gauge::default(),
            relay: std::sync::OnceLock::new(),
            bridge: std::sync::OnceLock::new(),
            registry: Registry::default(),
        };
        registry.register(
            "sessions_open",
            "WebSocket sessions open now",
            metrics.sessions_open.clone(),
        );
        registry.register(
            "connections_open",
            "Connections counted against --max-connections now, by transport (websocket, sse)",
            metrics.connections_open.clone(),
        );
        registry.register(
            "rooms",
            "Rooms that exist now (with members or kept history)",
            metrics.rooms.clone(),
        );
        registry.register(
            "messages_published",
            "Chat messages accepted for publishing, by source (ws, http, bridge)",
            metrics.messages_published.clone(),
        );
        registry.register(
            "messages_delivered",
            "Frames queued for sessions (one per member per message, plus control frames)",
            metrics.messages_delivered.clone(),
        );
        registry.register(
            "bytes_delivered",
            "Payload bytes of the frames queued for sessions",
            metrics.bytes_delivered.clone(),
        );
        registry.register(
            "queue_overflows",
            "Sessions whose outbound queue passed --max-queue-bytes",
            metrics.queue_overflows.clone(),
        );
        registry.register(
            "evictions",
            "Sessions the server closed, by reason (timeout, slow, flood, too_big, shutdown)",
            metrics.evictions.clone(),
        );
        registry.register(
            "frames_refused",
            "Client frames answered with an error frame, by error code",
            metrics.frames_refused.clone(),
        );
        registry.register(
            "http_publishes",
            "HTTP publish requests (send-test and API), by status code",
            metrics.http_publishes.clone(),
        );
        registry.register(
            "connections_refused",
            "WebSocket upgrades refused with 503 because --max-connections was reached",
            metrics.connections_refused.clone(),
        );
        registry.register(
            "connections_refused_per_ip",
            "WebSocket upgrades and SSE streams refused with 429 because --max-connections-per-ip was reached",
            metrics.connections_refused_per_ip.clone(),
        );
        registry.register(
            "origins_refused",
            "WebSocket upgrades refused with 403 because of their Origin (--allowed-origins)",
            metrics.origins_refused.clone(),
        );
        // Every rule from the start, so a dashboard sees zeros rather than gaps.
        for rule in crate::access::Refusal::RULES {
            drop(metrics.access_refused.get_or_create(&[("rule", rule)]));
        }
        registry.register(
            "access_refused",
            "Joins of private rooms refused, by the rule that failed",
            metrics.access_refused.clone(),
        );
        registry.register(
            "access_expired",
            "Members removed from a private room because the token that admitted them expired",
            metrics.access_expired.clone(),
        );
        registry.register(
            "rooms_refused",
            "New rooms refused because --max-rooms rooms existed",
            metrics.rooms_refused.clone(),
        );
        registry.register(
            "history_replays",
            "Joins that asked to recover from a position, by outcome (recovered true/false)",
            metrics.history_replays.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the server process (VmRSS), read at scrape time",
            metrics.resident_memory.clone(),
        );
        // Handles into the registered family, so the hot path increments without a lookup.
        let published_ws = metrics
            .messages_published
            .get_or_create(&[("source", Source::Socket.label())])
            .clone();
        let published_http = metrics
            .messages_published
            .get_or_create(&[("source", Source::Http.label())])
            .clone();
        let published_bridge = metrics
            .messages_published
            .get_or_create(&[("source", Source::Bridge.label())])
            .clone();
        let open_websocket = metrics
            .connections_open
            .get_or_create(&[("transport", "websocket")])
            .clone();
        let open_sse = metrics
            .connections_open
            .get_or_create(&[("transport", "sse")])
            .clone();
        Self {
            registry,
            published_ws,
            published_http,
            published_bridge,
            open_websocket,
            open_sse,
            ..metrics
        }
    }

    pub(crate) fn session_opened(&self) {
        self.sessions_open.inc();
        self.open_websocket.inc();
    }

    pub(crate) fn session_closed(&self) {
        self.sessions_open.dec();
        self.open_websocket.dec();
    }

    /// An SSE stream started (`/sse/...`).
    pub(crate) fn follower_opened(&self) {
        self.open_sse.inc();
    }

    /// An SSE stream ended.
    pub(crate) fn follower_closed(&self) {
        self.open_sse.dec();
    }

    pub(crate) fn set_rooms(&self, count: usize) {
        self.rooms.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Counts a chat message numbered and fanned out, by where it came from.
    pub(crate) fn record_publish(&self, source: Source) {
        match source {
            Source::Socket => self.published_ws.inc(),
            Source::Http => self.published_http.inc(),
            Source::Bridge => self.published_bridge.inc(),
        };
    }

    pub(crate) fn record_fan_out(&self, delivered: usize, bytes: usize, overflowed: usize) {
        if delivered > 0 {
            self.messages_delivered.inc_by(delivered as u64);
            self.bytes_delivered.inc_by(bytes as u64);
        }
        if overflowed > 0 {
            self.queue_overflows.inc_by(overflowed as u64);
        }
    }

    pub(crate) fn record_eviction(&self, reason: &'static str) {
        self.evictions.get_or_create(&[("reason", reason)]).inc();
    }

    pub(crate) fn record_refused_frame(&self, code: &'static str) {
        self.frames_refused.get_or_create(&[("code", code)]).inc();
    }

    pub(crate) fn record_http_publish(&self, status: u16) {
        self.http_publishes
            .get_or_create(&[("status", status_label(status))])
            .inc();
    }

    pub(crate) fn record_connection_refused(&self) {
        self.connections_refused.inc();
    }

    pub(crate) fn record_connection_refused_per_ip(&self) {
        self.connections_refused_per_ip.inc();
    }

    pub(crate) fn record_origin_refused(&self) {
        self.origins_refused.inc();
    }

    pub(crate) fn record_access_refused(&self, rule: &'static str) {
        self.access_refused.get_or_create(&[("rule", rule)]).inc();
    }

    pub(crate) fn record_access_expired(&self) {
        self.access_expired.inc();
    }

    pub(crate) fn record_rooms_refused(&self, count: usize) {
        self.rooms_refused.inc_by(count as u64);
    }

    pub(crate) fn record_replay(&self, recovered: bool) {
        let outcome = if recovered { "true" } else { "false" };
        self.history_replays
            .get_or_create(&[("recovered", outcome)])
            .inc();
    }

    /// Adds the relay's metrics (once; later calls are ignored).
    pub(crate) fn attach_relay(&self, registry: Registry) {
        let _first = self.relay.set(registry);
    }

    /// Adds the bridge's metrics (once; later calls are ignored).
    pub(crate) fn attach_bridge(&self, registry: Registry) {
        let _first = self.bridge.set(registry);
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        if let Some(bytes) = resident_memory_bytes() {
            self.resident_memory.set(bytes);
        }
        let mut text = String::new();
        let encoded = encode_registry(&mut text, &self.registry)
            .and_then(|()| match self.relay.get() {
                Some(relay) => encode_registry(&mut text, relay),
                None => Ok(()),
            })
            .and_then(|()| match self.bridge.get() {
                Some(bridge) => encode_registry(&mut text, bridge),
                None => Ok(()),
            })
            .and_then(|()| encode_eof(&mut text));
        if let Err(e) = encoded {
            tracing::error!(error = %e, "could not render metrics");
        }
        text
    }
}

/// Label values must be `'static`; the statuses the server answers are few and known.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        401 => "401",
        404 => "404",
        413 => "413",
        415 => "415",
        422 => "422",
        503 => "503",
        _ => "other",
    }
}

/// VmRSS of this process from `/proc/self/status`; `None` off Linux.
fn resident_memory_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prefixed_metrics_that_move() {
        let metrics = Metrics::new();
        metrics.record_eviction("timeout");
        metrics.record_http_publish(401);
        let text = metrics.render();
        assert!(
            text.contains("roomcast_evictions_total{reason=\"timeout\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("roomcast_http_publishes_total{status=\"401\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("roomcast_process_resident_memory_bytes"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
