//! Every Redis key and channel name, built in one place (the Lua scripts that reach keys they
//! were not passed build the same names from the prefix; `scripts.rs` says which).
//!
//! | name | type | holds | lifetime |
//! |---|---|---|---|
//! | `P:room:R` | channel | messages and presence events of room R | while a node subscribes |
//! | `P:room:R:meta` | hash | `epoch`, `seq`, `pver` (presence version), `bytes` (history) | key TTL |
//! | `P:room:R:history` | list | the last `--history-size` messages, oldest first | key TTL |
//! | `P:room:R:users` | hash | user → sessions on every node | key TTL |
//! | `P:room:R:node:N` | hash | user → sessions on node N | key TTL, or swept when N dies |
//! | `P:room:R:idem:K` | string | `seq epoch` of a publish with idempotency key K | 5 minutes |
//! | `P:nodes` | sorted set | node id → deadline (Redis time, ms) of its heartbeat | key TTL |
//! | `P:node:N:rooms` | set | rooms where node N has members | key TTL, or swept |
//!
//! The key TTL is `--room-ttl` plus twice `--redis-node-timeout`; every node refreshes it for
//! the rooms it has members in on every heartbeat, and every publish refreshes its room's.

use roomcast_protocol::RoomName;

/// The names under one `--redis-prefix`.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
    /// `P:room:`, the start of every room channel.
    channel_start: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            channel_start: format!("{prefix}:room:"),
        }
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn channel(&self, room: &RoomName) -> String {
        format!("{}{room}", self.channel_start)
    }

    pub(crate) fn meta(&self, room: &RoomName) -> String {
        format!("{}{room}:meta", self.channel_start)
    }

    pub(crate) fn history(&self, room: &RoomName) -> String {
        format!("{}{room}:history", self.channel_start)
    }

    pub(crate) fn users(&self, room: &RoomName) -> String {
        format!("{}{room}:users", self.channel_start)
    }

    pub(crate) fn node_users(&self, room: &RoomName, node: &str) -> String {
        format!("{}{room}:node:{node}", self.channel_start)
    }

    pub(crate) fn idempotency(&self, room: &RoomName, key: &str) -> String {
        format!("{}{room}:idem:{key}", self.channel_start)
    }

    pub(crate) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    pub(crate) fn node_rooms(&self, node: &str) -> String {
        format!("{}:node:{node}:rooms", self.prefix)
    }

    /// The room a channel belongs to, if it is one of ours.
    pub(crate) fn room_of_channel(&self, channel: &str) -> Option<RoomName> {
        channel
            .strip_prefix(&self.channel_start)
            .and_then(|name| RoomName::new(name).ok())
    }
}

/// Checks `--redis-prefix`: it becomes part of every key and channel name.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), String> {
    let fits = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if fits {
        Ok(())
    } else {
        Err(format!(
            "--redis-prefix {prefix:?} must be 1 to 64 of A-Z a-z 0-9 - _ . :"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_names_its_room_and_nothing_else_does() {
        let keys = Keys::new("rc");
        let room = RoomName::new("lobby").expect("room");
        assert_eq!(keys.room_of_channel(&keys.channel(&room)), Some(room));
        assert_eq!(keys.room_of_channel("other:room:lobby"), None);
        assert_eq!(keys.room_of_channel("rc:room:a b"), None);
        assert!(check_prefix("app-1:prod").is_ok());
        assert!(check_prefix("").is_err());
        assert!(check_prefix("a b").is_err());
    }
}
