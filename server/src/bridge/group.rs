//! Which Channels group is which room (`--channels-group`, e.g. `chat_{room}`), and the Redis
//! names channels_redis builds from a group.

use roomcast_protocol::RoomName;

/// The placeholder `--channels-group` must hold exactly once.
const PLACEHOLDER: &str = "{room}";

/// Channels refuses group and channel names of this many characters or more
/// (`channels.layers.BaseChannelLayer.MAX_NAME_LENGTH`).
const CHANNELS_MAX_NAME_CHARS: usize = 100;

/// `--channels-group` split around `{room}`.
#[derive(Debug, Clone)]
pub(crate) struct GroupMap {
    before: String,
    after: String,
}

/// Checks `--channels-group`: `{room}` exactly once, and around it only characters Channels
/// allows in a group name (ASCII letters, digits, `-`, `_`, `.`).
pub(crate) fn check_group_pattern(pattern: &str) -> Result<(), String> {
    if pattern.matches(PLACEHOLDER).count() != 1 {
        return Err(format!(
            "must contain {PLACEHOLDER} exactly once (e.g. chat_{PLACEHOLDER}): it says which \
             part of the group name is the room"
        ));
    }
    let rest = pattern.replacen(PLACEHOLDER, "", 1);
    if !rest.chars().all(is_group_char) {
        return Err(format!(
            "may hold only A-Z a-z 0-9 - _ . besides {PLACEHOLDER}: Channels refuses other \
             group names"
        ));
    }
    Ok(())
}

/// Checks `--channels-prefix`: it starts every Redis key and channel the layer uses.
pub(crate) fn check_channels_prefix(prefix: &str) -> Result<(), String> {
    let fits =
        !prefix.is_empty() && prefix.len() <= 64 && prefix.chars().all(|c| c.is_ascii_graphic());
    if fits {
        Ok(())
    } else {
        Err(
            "must be 1 to 64 printable ASCII characters without spaces (the layer's prefix \
             setting, `asgi` by default)"
                .to_owned(),
        )
    }
}

fn is_group_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

impl GroupMap {
    /// The map for a pattern [`check_group_pattern`] accepted.
    pub(crate) fn new(pattern: &str) -> Self {
        let (before, after) = pattern.split_once(PLACEHOLDER).unwrap_or((pattern, ""));
        Self {
            before: before.to_owned(),
            after: after.to_owned(),
        }
    }

    /// The group of `room`, or `None` when the name would be too long for Channels (such a
    /// room is not bridged).
    pub(crate) fn group_of(&self, room: &RoomName) -> Option<String> {
        let group = format!("{}{room}{}", self.before, self.after);
        (group.len() < CHANNELS_MAX_NAME_CHARS).then_some(group)
    }

    /// The room of `group`, if the group is a mapped one.
    pub(crate) fn room_of(&self, group: &str) -> Option<RoomName> {
        let name = group
            .strip_prefix(&self.before)?
            .strip_suffix(&self.after)?;
        RoomName::new(name).ok()
    }
}

/// Redis names channels_redis uses under one `prefix`.
#[derive(Debug, Clone)]
pub(crate) struct LayerNames {
    prefix: String,
}

impl LayerNames {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// Pub/sub layer: the Redis channel a group's messages are PUBLISHed on
    /// (`RedisPubSubLoopLayer._get_group_channel_name`).
    pub(crate) fn pubsub_group_channel(&self, group: &str) -> String {
        format!("{}__group__{group}", self.prefix)
    }

    /// The group a pub/sub channel name belongs to.
    pub(crate) fn group_of_pubsub_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(&self.prefix)?
            .strip_prefix("__group__")
    }

    /// Core layer: the sorted set of a group's channel names (`RedisChannelLayer._group_key`).
    pub(crate) fn group_key(&self, group: &str) -> String {
        format!("{}:group:{group}", self.prefix)
    }

    /// Core layer: the sorted set holding a channel's messages. A process-local channel
    /// (`name!local`) shares its key with every channel of its process (`prefix + "name!"`).
    pub(crate) fn channel_key(&self, channel: &str) -> String {
        match channel.split_once('!') {
            Some((process, _)) => format!("{}{process}!", self.prefix),
            None => format!("{}{channel}", self.prefix),
        }
    }

    /// Core layer: the channel this deployment registers for `room` in its group. Every node
    /// holding the room registers and consumes the same one, so each message is taken once.
    pub(crate) fn room_channel(room: &RoomName) -> String {
        format!("{}{room}", Self::room_channel_start())
    }

    /// What every room channel starts with.
    pub(crate) fn room_channel_start() -> &'static str {
        "roomcast."
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::new(name).expect("valid room")
    }

    #[test]
    fn the_tutorial_pattern_maps_both_ways() {
        let map = GroupMap::new("chat_{room}");
        assert_eq!(map.group_of(&room("lobby")).as_deref(), Some("chat_lobby"));
        assert_eq!(map.room_of("chat_lobby"), Some(room("lobby")));
        assert_eq!(map.room_of("other_lobby"), None);
        assert_eq!(map.room_of("chat_"), None);
        let around = GroupMap::new("x.{room}.y");
        assert_eq!(around.room_of("x.a.y"), Some(room("a")));
        assert_eq!(around.group_of(&room(&"a".repeat(99))), None);
    }

    #[test]
    fn patterns_need_the_placeholder_once_and_group_characters() {
        assert!(check_group_pattern("chat_{room}").is_ok());
        assert!(check_group_pattern("chat").is_err());
        assert!(check_group_pattern("{room}{room}").is_err());
        assert!(check_group_pattern("chat {room}").is_err());
    }

    #[test]
    fn layer_names_match_channels_redis() {
        let names = LayerNames::new("asgi");
        assert_eq!(names.pubsub_group_channel("chat_a"), "asgi__group__chat_a");
        assert_eq!(
            names.group_of_pubsub_channel("asgi__group__chat_a"),
            Some("chat_a")
        );
        assert_eq!(names.group_key("chat_a"), "asgi:group:chat_a");
        assert_eq!(names.channel_key("specific.abc!def"), "asgispecific.abc!");
        assert_eq!(names.channel_key("roomcast.a"), "asgiroomcast.a");
    }
}
