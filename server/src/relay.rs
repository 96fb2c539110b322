//! The one publish hook. Every message, whatever its source (a typed `publish` frame, a
//! tutorial frame, an HTTP send-test or publish, a broadcast), goes through [`Relay::publish`],
//! which numbers it and hands it to the room's fan-out.
//!
//! Today every room lives in this process ([`Relay::Local`]). A relay that crosses servers (the
//! planned Redis one) is a new variant here: the sources keep calling the same function.

use roomcast_protocol::UserName;

use crate::room::{Delivery, Room};

/// Where a message came from, for `roomcast_messages_published_total{source}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A session's frame (typed `publish` or tutorial `{"message": ...}`).
    Socket,
    /// Send-test, the publish API or a broadcast.
    Http,
}

impl Source {
    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Source::Socket => "ws",
            Source::Http => "http",
        }
    }
}

/// How published messages reach a room's members.
#[derive(Debug, Default)]
pub(crate) enum Relay {
    /// Every member is a session of this process.
    #[default]
    Local,
}

impl Relay {
    /// Publishes `text` as `user` to `room`: numbers it, keeps it in the room's history, and
    /// queues it for every member. Never waits. The caller holds `room` in use (a membership or
    /// a lease), so it cannot expire meanwhile.
    pub(crate) fn publish(
        &self,
        room: &Room,
        user: &UserName,
        text: &str,
        source: Source,
    ) -> Delivery {
        match self {
            Relay::Local => room.publish(user, text, source),
        }
    }
}
