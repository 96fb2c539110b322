//! The bodies of the HTTP API (`/api/...` and send-test), shared by the server that writes them
//! and the tools that read them. Errors use [`ErrorEnvelope`](crate::ErrorEnvelope).

use serde::{Deserialize, Serialize};

use crate::room::RoomName;
use crate::user::UserName;
use crate::v1::RoomMessage;

/// The answer to a publish (`send-test`, `POST /api/rooms/{room}/messages`): where the message
/// landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishReceipt {
    /// The room published to.
    pub room: RoomName,
    /// The message's number in the room.
    pub seq: u64,
    /// The room history's identity.
    pub epoch: String,
    /// Sessions on that server the message was queued for.
    pub delivered: usize,
}

/// The answer to `POST /api/broadcast`: one result per room, in the order given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broadcast {
    /// What each room's publish did.
    pub results: Vec<PublishReceipt>,
}

/// One room, as `GET /api/rooms` and `GET /api/rooms/{room}` describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    /// The room's name.
    pub room: RoomName,
    /// Distinct users present, sorted.
    pub members: Vec<UserName>,
    /// Sessions joined (one user may have several).
    pub sessions: usize,
    /// SSE followers of the room on the answering node: they receive its messages without
    /// being present, so they are not in `members` (absent from older servers' answers: 0).
    #[serde(default)]
    pub followers: usize,
    /// The last message's number (0 if none).
    pub seq: u64,
    /// The room history's identity.
    pub epoch: String,
}

/// The body of `GET /api/rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomList {
    /// Every room that exists, sorted by name.
    pub rooms: Vec<RoomSummary>,
}

/// The body of `GET /api/rooms/{room}/history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    /// The room.
    pub room: RoomName,
    /// The room history's identity.
    pub epoch: String,
    /// The room's last seq.
    pub seq: u64,
    /// Kept messages with seq greater than `since`, oldest first.
    pub messages: Vec<RoomMessage>,
}
