//! The Django Channels bridge's flags (`--channels-*`), flattened into [`super::Config`].

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::parse_duration;

/// Which channels_redis layer the Django app runs (`CHANNEL_LAYERS["default"]["BACKEND"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ChannelsLayer {
    /// No bridge.
    #[default]
    Off,
    /// `channels_redis.pubsub.RedisPubSubChannelLayer`: group messages are Redis PUBLISHes.
    Pubsub,
    /// `channels_redis.core.RedisChannelLayer` (the default layer): group messages go to every
    /// channel registered in the group's sorted set.
    Core,
}

/// Default for `--channels-group`: the Django Channels tutorial's group naming.
pub const DEFAULT_CHANNELS_GROUP: &str = "chat_{room}";

/// The bridge settings. Every flag has a `ROOMCAST_CHANNELS_*` twin.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ChannelsConfig {
    /// Join a Django Channels app's channel layer on the same Redis (the first --redis-url):
    /// `pubsub` for RedisPubSubChannelLayer, `core` for RedisChannelLayer, `off` for no bridge.
    /// A `group_send` to a mapped group then reaches the room's members on every node.
    #[arg(
        long,
        env = "ROOMCAST_CHANNELS_LAYER",
        value_enum,
        default_value = "off"
    )]
    pub channels_layer: ChannelsLayer,
    /// The layer's `prefix` setting (channels_redis's default is `asgi`).
    #[arg(long, env = "ROOMCAST_CHANNELS_PREFIX", default_value = "asgi")]
    pub channels_prefix: String,
    /// Which Channels group is which room: `{room}` (exactly once) stands for the room name,
    /// so the tutorial's `chat_{room}` maps group `chat_lobby` to room `lobby`.
    #[arg(long, env = "ROOMCAST_CHANNELS_GROUP", default_value = DEFAULT_CHANNELS_GROUP)]
    pub channels_group: String,
    /// Also `group_send` every message published in a mapped room (by a socket or over HTTP,
    /// never one that came from Django) to its group, as `{"type": "chat.message",
    /// "message": ..., "user": ...}`, once per message whichever node it was published on.
    #[arg(long, env = "ROOMCAST_CHANNELS_FORWARD")]
    pub channels_forward: bool,
    /// Core layer: how long this node's registration of a room's channel in the group's sorted
    /// set outlives the node if it dies (it is refreshed every third of this). At least 1s and
    /// less than --channels-group-expiry.
    #[arg(long, env = "ROOMCAST_CHANNELS_REGISTRATION_TTL", default_value = "30s", value_parser = parse_duration)]
    pub channels_registration_ttl: Duration,
    /// Core layer: the layer's `group_expiry` setting (channels_redis's default is 86400 s).
    /// Registrations are scored so that the app's own trimming removes them
    /// --channels-registration-ttl after their last refresh; a wrong value here makes them live
    /// longer (larger app value) or vanish at once (smaller).
    #[arg(long, env = "ROOMCAST_CHANNELS_GROUP_EXPIRY", default_value = "1day", value_parser = parse_duration)]
    pub channels_group_expiry: Duration,
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        Self {
            channels_layer: ChannelsLayer::Off,
            channels_prefix: "asgi".to_owned(),
            channels_group: DEFAULT_CHANNELS_GROUP.to_owned(),
            channels_forward: false,
            channels_registration_ttl: Duration::from_secs(30),
            channels_group_expiry: Duration::from_secs(86_400),
        }
    }
}

/// Shortest accepted `--channels-registration-ttl`: registrations are refreshed every third of
/// it, and a refresh much shorter than a Redis round trip under load would let them lapse.
pub const MIN_CHANNELS_REGISTRATION_TTL: Duration = Duration::from_secs(1);

impl ChannelsConfig {
    /// The rules of the `--channels-*` flags: `(flag, value, rule)` for each one broken.
    /// `redis_urls` is `--redis-url`, which the bridge needs.
    pub(crate) fn problems(&self, redis_urls: &[String]) -> Vec<(&'static str, String, String)> {
        let mut found = Vec::new();
        if self.channels_layer == ChannelsLayer::Off {
            return found;
        }
        let layer = format!("{:?}", self.channels_layer).to_lowercase();
        if redis_urls.is_empty() {
            found.push((
                "--channels-layer",
                layer,
                "needs --redis-url: the bridge joins the app's channel layer on that Redis and \
                 relays its messages to every node"
                    .to_owned(),
            ));
        } else if redis_urls.len() > 1 {
            found.push((
                "--channels-layer",
                layer,
                "works with exactly one --redis-url (the app's layer host); sharded channel \
                 layers are not supported"
                    .to_owned(),
            ));
        }
        if let Err(rule) = crate::bridge::check_group_pattern(&self.channels_group) {
            found.push(("--channels-group", self.channels_group.clone(), rule));
        }
        if let Err(rule) = crate::bridge::check_channels_prefix(&self.channels_prefix) {
            found.push(("--channels-prefix", self.channels_prefix.clone(), rule));
        }
        let ttl = self.channels_registration_ttl;
        let ttl_text = humantime::format_duration(ttl).to_string();
        if ttl < MIN_CHANNELS_REGISTRATION_TTL {
            found.push((
                "--channels-registration-ttl",
                ttl_text,
                "must be at least 1s: registrations are refreshed every third of it".to_owned(),
            ));
        } else if ttl >= self.channels_group_expiry {
            found.push((
                "--channels-registration-ttl",
                ttl_text,
                "must be less than --channels-group-expiry (the app's group_expiry), which \
                 already bounds every registration"
                    .to_owned(),
            ));
        }
        if self.channels_group_expiry > super::MAX_SETTING_DURATION {
            found.push((
                "--channels-group-expiry",
                humantime::format_duration(self.channels_group_expiry).to_string(),
                "must be at most 365 days".to_owned(),
            ));
        }
        found
    }
}
