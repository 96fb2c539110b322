//! Server configuration: one clap struct, every flag with a `ROOMCAST_*` environment twin.
//!
//! `Config::default()` equals what the binary runs with when no flag or variable is set (a test
//! keeps the two in step), so tests build a config in one line and change only what they test.
//! [`Config::validate`] turns it into a [`ValidConfig`], the only kind the server runs with.

mod access;
mod channels;
mod validate;

use std::net::IpAddr;
use std::time::Duration;

use clap::Parser;
use roomcast_protocol::units::parse_bytes;

pub use self::access::{AccessConfig, DEFAULT_HANDSHAKE_TIMEOUT};
pub use self::channels::{ChannelsConfig, ChannelsLayer};
pub use self::validate::{
    FRAME_ENVELOPE_BYTES, InvalidSetting, MAX_SETTING_DURATION, MIN_MESSAGE_BYTES, ValidConfig,
};

/// Everything `roomcast-server` can be told. Sizes accept `65536`, `64KiB`, `1MiB`; durations
/// accept `500ms`, `20s`, `1m`.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(name = "roomcast-server", version, about, long_about = LONG_ABOUT)]
pub struct Config {
    /// Address to listen on. Use 0.0.0.0 to accept connections from other machines (and set
    /// --api-key then).
    #[arg(long, env = "ROOMCAST_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port to listen on. When neither this flag nor ROOMCAST_PORT is set, PORT is read (as
    /// Render and Heroku set it), then 8000. 0 picks a free port and logs it.
    #[arg(long, env = "ROOMCAST_PORT")]
    pub port: Option<u16>,

    /// How often an idle session is pinged (WebSocket ping frame). Must be more than 0.
    #[arg(long, env = "ROOMCAST_PING_INTERVAL", default_value = "20s", value_parser = parse_duration)]
    pub ping_interval: Duration,

    /// How long after a ping a session may stay silent (no pong, no frame) before it is evicted
    /// with close code 4000. A dead client is gone between this and ping-interval + this. Must
    /// be more than 0.
    #[arg(long, env = "ROOMCAST_PING_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub ping_timeout: Duration,

    /// Largest backlog queued for one session. A reader that falls this far behind is evicted
    /// with close code 4001 (slow); the room never waits for it. Must hold one frame carrying
    /// the largest message: at least --max-message-bytes + 1024.
    #[arg(long, env = "ROOMCAST_MAX_QUEUE_BYTES", default_value = "1MiB", value_parser = parse_bytes)]
    pub max_queue_bytes: usize,

    /// How long one socket write may stall before the session is evicted as slow (4001). Must
    /// be more than 0.
    #[arg(long, env = "ROOMCAST_WRITE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub write_timeout: Duration,

    /// Largest frame a client may send (also the largest HTTP publish body). Larger frames close
    /// the session with 1009; larger bodies get HTTP 413. At least 512.
    #[arg(long, env = "ROOMCAST_MAX_MESSAGE_BYTES", default_value = "64KiB", value_parser = parse_bytes)]
    pub max_message_bytes: usize,

    /// Most connections open at once, WebSocket sessions and SSE streams together; past it,
    /// upgrades and streams get HTTP 503.
    #[arg(long, env = "ROOMCAST_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Most rooms that may exist at once (with members or kept history). Past it, joining or
    /// publishing to a new room is refused (HTTP 503, error frame `unavailable`, close 1013).
    #[arg(long, env = "ROOMCAST_MAX_ROOMS", default_value_t = DEFAULT_MAX_ROOMS)]
    pub max_rooms: usize,

    /// Most rooms one typed session may be in at once.
    #[arg(long, env = "ROOMCAST_MAX_ROOMS_PER_SESSION", default_value_t = DEFAULT_MAX_ROOMS_PER_SESSION)]
    pub max_rooms_per_session: usize,

    /// Frames per second one session may send, sustained. Faster frames are refused with an
    /// error frame (rate_limited); a session that keeps flooding is closed with 4002. 0 turns
    /// the limit off.
    #[arg(long, env = "ROOMCAST_RATE_PER_SECOND", default_value_t = DEFAULT_RATE_PER_SECOND)]
    pub rate_per_second: u32,

    /// Frames one session may send in a burst above the sustained rate (at least 1 while a rate
    /// is set).
    #[arg(long, env = "ROOMCAST_RATE_BURST", default_value_t = DEFAULT_RATE_BURST)]
    pub rate_burst: u32,

    /// Messages each room keeps for recovery and replay (0 disables history).
    #[arg(long, env = "ROOMCAST_HISTORY_SIZE", default_value_t = DEFAULT_HISTORY_SIZE)]
    pub history_size: usize,

    /// Bytes of messages each room keeps at most; the oldest go first. More than 0 (use
    /// --history-size 0 to keep no history).
    #[arg(long, env = "ROOMCAST_HISTORY_BYTES", default_value = "1MiB", value_parser = parse_bytes)]
    pub history_bytes: usize,

    /// How long a room with no members stays after its last activity (created, last member
    /// left, or published to), whoever created it, so a member who was alone can reconnect and
    /// recover and a message posted before anyone joined is kept for them. 0 removes a room as
    /// soon as it has no members.
    #[arg(long, env = "ROOMCAST_ROOM_TTL", default_value = "2m", value_parser = parse_duration)]
    pub room_ttl: Duration,

    /// Room-name prefixes whose rooms deliver their latest message to every joining session
    /// ("latest state", e.g. `pagamento_` for payment-status rooms). Repeat the flag or
    /// separate with commas.
    #[arg(long, env = "ROOMCAST_LATEST_ON_JOIN", value_delimiter = ',')]
    pub latest_on_join: Vec<String>,

    /// Key required as `Authorization: Bearer <key>` to publish over HTTP. Without it,
    /// publishing is accepted from loopback peers only.
    #[arg(long, env = "ROOMCAST_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Redis to share rooms with other nodes: `redis://[user:password@]HOST:PORT[/DB]`, or
    /// `rediss://` for TLS (the URL Render Key Value hands out works as it is). Repeat the flag
    /// (or separate with commas) to shard rooms over several Redis instances by a consistent
    /// hash of the room name. Without it the node is alone and nothing Redis-related runs.
    #[arg(
        long,
        env = "ROOMCAST_REDIS_URL",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub redis_url: Vec<String>,

    /// Prefix of every Redis key and channel, so several deployments can share one Redis.
    #[arg(long, env = "ROOMCAST_REDIS_PREFIX", default_value = "roomcast")]
    pub redis_prefix: String,

    /// How long a node may miss its Redis heartbeat (sent every third of this) before other
    /// nodes count it dead, remove its members from presence and announce their `leave`.
    #[arg(long, env = "ROOMCAST_REDIS_NODE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub redis_node_timeout: Duration,

    /// How long shutdown waits for sessions to close after telling them (1001) before exiting.
    /// Must be more than 0.
    #[arg(long, env = "ROOMCAST_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// How long shutdown spreads its closes over: sessions are closed (1001) in batches across
    /// this window, so thousands of clients do not reconnect in the same second. 0 closes them
    /// all at once. --shutdown-grace must cover it plus 2s, or the server refuses to start.
    #[arg(long, env = "ROOMCAST_DRAIN_WINDOW", default_value = "0s", value_parser = parse_duration)]
    pub drain_window: Duration,

    /// How often an SSE stream (`/sse/...`) gets a `: ping` comment, so proxies keep it open
    /// and a follower whose connection is gone is found (the write fails). A follower that
    /// stopped reading is evicted within --write-timeout plus this. Must be more than 0.
    #[arg(long, env = "ROOMCAST_SSE_HEARTBEAT", default_value = "15s", value_parser = parse_duration)]
    pub sse_heartbeat: Duration,

    /// The reconnect delay SSE followers are told (`retry:`); each follower is told this plus
    /// a random share of it, and at shutdown a random point of --drain-window on top, so they
    /// do not all come back at once. Must be more than 0.
    #[arg(long, env = "ROOMCAST_SSE_RETRY", default_value = "2s", value_parser = parse_duration)]
    pub sse_retry: Duration,

    // The kernel's share of a session (the session loop's flags).
    /// Kernel send buffer per session (SO_SNDBUF; Linux doubles it for bookkeeping). What a
    /// reader that stopped can hold in the kernel on top of --max-queue-bytes. 0 leaves the
    /// kernel's autotuning, which lets each such socket hold up to net.ipv4.tcp_wmem's maximum.
    #[arg(long, env = "ROOMCAST_SEND_BUFFER_BYTES", default_value = "128KiB", value_parser = parse_bytes)]
    pub send_buffer_bytes: usize,
    /// The Django Channels bridge (`--channels-*`).
    #[command(flatten)]
    pub channels: ChannelsConfig,

    /// Private rooms, tokens, origins and per-client bounds (`config/access.rs`).
    #[command(flatten)]
    pub access: AccessConfig,
}

const LONG_ABOUT: &str = "\
roomcast-server: WebSocket rooms compatible with the Django Channels tutorial chat.

Sockets: ws://HOST/ws/chat/<room>/ (tutorial JSON, or the typed protocol with the
`roomcast.v1` subprotocol) and ws://HOST/ws (typed, no room joined).
Followers: http://HOST/sse/<room>/ and /sse?rooms=a,b (Server-Sent Events).
HTTP: /chat/<room>/send-test/, /api/..., /healthz, /readyz, /metrics.
Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=roomcast_server=debug) for more.";

/// Default for `--max-connections`: well above the 10,000-client load tests, well below what a
/// default `ulimit -n` of 1,048,576 file descriptors allows.
pub const DEFAULT_MAX_CONNECTIONS: usize = 100_000;
/// Default for `--max-rooms`: room bookkeeping is small, but rooms keep history for
/// `--room-ttl`, so their number must be bounded whoever creates them.
pub const DEFAULT_MAX_ROOMS: usize = 100_000;
/// Default for `--max-rooms-per-session`.
pub const DEFAULT_MAX_ROOMS_PER_SESSION: usize = 100;
/// Default for `--rate-per-second`: far above human typing, low enough to stop a runaway loop.
pub const DEFAULT_RATE_PER_SECOND: u32 = 100;
/// Default for `--rate-burst`.
pub const DEFAULT_RATE_BURST: u32 = 200;
/// Default for `--history-size`.
pub const DEFAULT_HISTORY_SIZE: usize = 100;
/// Default for `--send-buffer-bytes`: many batches of chat frames per socket, and at most
/// 256 KiB of kernel memory (after Linux doubles it) per reader that stopped.
pub const DEFAULT_SEND_BUFFER_BYTES: usize = 128 * 1024;
/// The port used when no flag, `ROOMCAST_PORT` or `PORT` says otherwise.
pub const DEFAULT_PORT: u16 = 8000;

impl Default for Config {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: None,
            ping_interval: Duration::from_secs(20),
            ping_timeout: Duration::from_secs(30),
            max_queue_bytes: 1024 * 1024,
            write_timeout: Duration::from_secs(10),
            max_message_bytes: 64 * 1024,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_rooms: DEFAULT_MAX_ROOMS,
            max_rooms_per_session: DEFAULT_MAX_ROOMS_PER_SESSION,
            rate_per_second: DEFAULT_RATE_PER_SECOND,
            rate_burst: DEFAULT_RATE_BURST,
            history_size: DEFAULT_HISTORY_SIZE,
            history_bytes: 1024 * 1024,
            room_ttl: Duration::from_secs(120),
            latest_on_join: Vec::new(),
            api_key: None,
            shutdown_grace: Duration::from_secs(10),
            drain_window: Duration::ZERO,
            redis_url: Vec::new(),
            redis_prefix: "roomcast".to_owned(),
            redis_node_timeout: Duration::from_secs(10),
            send_buffer_bytes: DEFAULT_SEND_BUFFER_BYTES,
            channels: ChannelsConfig::default(),
            access: AccessConfig::default(),
            sse_heartbeat: Duration::from_secs(15),
            sse_retry: Duration::from_secs(2),
        }
    }
}

impl Config {
    /// The port to bind: `--port`/`ROOMCAST_PORT`, else `PORT`, else [`DEFAULT_PORT`].
    pub fn resolved_port(&self) -> Result<u16, String> {
        if let Some(port) = self.port {
            return Ok(port);
        }
        match std::env::var("PORT") {
            Ok(text) => text
                .trim()
                .parse()
                .map_err(|_| format!("PORT={text:?} is not a port number (0-65535)")),
            Err(_) => Ok(DEFAULT_PORT),
        }
    }

    /// Whether `room` delivers its latest message on join (`--latest-on-join`).
    pub fn latest_on_join(&self, room: &str) -> bool {
        is_latest_on_join(&self.latest_on_join, room)
    }
}

/// The `--latest-on-join` rule: `room` starts with one of `prefixes` (empty ones match nothing).
pub(crate) fn is_latest_on_join(prefixes: &[String], room: &str) -> bool {
    prefixes
        .iter()
        .any(|prefix| !prefix.is_empty() && room.starts_with(prefix.as_str()))
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{e}; write durations like 500ms, 20s or 1m"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use clap::{CommandFactory, FromArgMatches};

    #[test]
    fn default_matches_the_flags_defaults() {
        // Parse with the environment twins removed, so a ROOMCAST_* variable set on this machine
        // cannot change what the declared defaults are compared with.
        let command = Config::command().mut_args(|arg| arg.env(None::<&str>));
        let matches = command
            .try_get_matches_from(["roomcast-server"])
            .expect("no flags parse");
        let parsed = Config::from_arg_matches(&matches).expect("defaults build a config");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn durations_and_sizes_read_the_way_people_write_them() {
        let config = Config::try_parse_from([
            "roomcast-server",
            "--ping-interval=500ms",
            "--ping-timeout=1m",
            "--max-queue-bytes=64KiB",
            "--latest-on-join=pagamento_,status-",
        ])
        .expect("flags parse");
        assert_eq!(config.ping_interval, Duration::from_millis(500));
        assert_eq!(config.ping_timeout, Duration::from_secs(60));
        assert_eq!(config.max_queue_bytes, 65536);
        assert!(config.latest_on_join("pagamento_42"));
        assert!(config.latest_on_join("status-x"));
        assert!(!config.latest_on_join("lobby"));
    }

    #[test]
    fn bad_values_explain_the_expected_shape() {
        let err = Config::try_parse_from(["roomcast-server", "--ping-interval=soon"])
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("500ms, 20s or 1m")));
        let err = Config::try_parse_from(["roomcast-server", "--max-queue-bytes=lots"])
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("64KiB")));
    }
}
