//! The Django Channels tutorial protocol, spoken on `/ws/chat/<room>/` without a subprotocol.
//!
//! The client sends `{"message": "hi"}`; every member of the room, sender included, receives
//! `{"message": "hi", "user": ..., "room": ..., "seq": ..., "ts": ...}` (the tutorial page reads
//! only `message`). A refused frame is answered with `{"error": {"code": ..., "message": ...}}`,
//! which has no top-level `message`, so it can never be mistaken for chat.

use serde::{Deserialize, Serialize};

use crate::error_code::ErrorBody;
use crate::v1::RoomMessage;

/// What a tutorial client sends: one chat message for the room in its URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TutorialSend {
    /// The chat text.
    pub message: String,
}

/// What a tutorial client receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TutorialFrame {
    /// A refused frame; the session stays open.
    Error {
        /// The code and sentence.
        error: ErrorBody,
    },
    /// A chat message (the same fields as the typed protocol's `message` frame, without `type`).
    Message(RoomMessage),
}
