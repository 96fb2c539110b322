//! The typed protocol, negotiated with the WebSocket subprotocol [`SUBPROTOCOL_V1`].
//!
//! Every frame is a JSON object with a `type`. The client sends [`ClientFrame`]s and receives
//! [`ServerFrame`]s; `docs/PROTOCOL.md` shows an exchange for each. Frames the client sends may
//! carry a `ref`; the server's answer to that frame (`joined`, `left`, `ack`, `pong`, `error`)
//! carries the same `ref` back.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error_code::ErrorCode;
use crate::room::RoomName;
use crate::user::UserName;

/// The `Sec-WebSocket-Protocol` value that selects the typed protocol.
pub const SUBPROTOCOL_V1: &str = "roomcast.v1";

/// Longest `ref` the server echoes, in bytes; longer ones are refused as `invalid_frame`.
pub const MAX_REF_BYTES: usize = 64;

/// A client-chosen tag that the server echoes on its answer. JSON strings and non-negative
/// integers are both accepted and echoed in the same JSON type.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Ref {
    /// A string ref, e.g. `"7"` or `"join-lobby"`.
    Text(String),
    /// An integer ref, e.g. `7`.
    Number(u64),
}

impl fmt::Debug for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Text(text) => fmt::Debug::fmt(text, f),
            Ref::Number(n) => fmt::Debug::fmt(n, f),
        }
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Text(text) => f.write_str(text),
            Ref::Number(n) => write!(f, "{n}"),
        }
    }
}

impl From<u64> for Ref {
    fn from(n: u64) -> Self {
        Ref::Number(n)
    }
}

impl Serialize for Ref {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Ref::Text(text) => serializer.serialize_str(text),
            Ref::Number(n) => serializer.serialize_u64(*n),
        }
    }
}

impl<'de> Deserialize<'de> for Ref {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(u64),
        }
        match Raw::deserialize(deserializer) {
            Ok(Raw::Text(text)) if text.len() > MAX_REF_BYTES => Err(serde::de::Error::custom(
                format!("ref is {} bytes; the limit is {MAX_REF_BYTES}", text.len()),
            )),
            Ok(Raw::Text(text)) => Ok(Ref::Text(text)),
            Ok(Raw::Number(n)) => Ok(Ref::Number(n)),
            Err(_) => Err(serde::de::Error::custom(
                "ref must be a string or a non-negative integer",
            )),
        }
    }
}

/// Where a client is in a room's stream: the history's `epoch` and the last `seq` it saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The identity of the room's history; it changes when that history is lost.
    pub epoch: String,
    /// The last sequence number seen in that epoch.
    pub seq: u64,
}

/// Frames a typed client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Join a room; with `since`, replay what was missed after that position.
    Join {
        /// The room to join.
        room: RoomName,
        /// The last position seen, to recover missed messages.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Position>,
        /// A token (HS256 JWT) that admits this session to `room` when it is private; without
        /// one, the token given at connect (if any) is used.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// Echoed on the `joined` answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
    },
    /// Leave a room.
    Leave {
        /// The room to leave.
        room: RoomName,
        /// Echoed on the `left` answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
    },
    /// Publish a chat message to a joined room.
    Publish {
        /// The room, which this session must have joined.
        room: RoomName,
        /// The chat text.
        message: String,
        /// Structured fields delivered with the message (a JSON object); see [`RoomMessage::data`].
        #[serde(
            default,
            deserialize_with = "object_data",
            skip_serializing_if = "Option::is_none"
        )]
        data: Option<Map<String, Value>>,
        /// When present, the server answers with an `ack` carrying the message's `seq`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
    },
    /// Ask for a `pong` (to measure round-trip time).
    Ping {
        /// Echoed on the `pong`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
    },
}

/// A chat message as delivered: in a typed `message` frame, in history, and (without `type`)
/// to tutorial clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMessage {
    /// The room it was published to.
    pub room: RoomName,
    /// Who published it (HTTP publishes name themselves or default to `server`).
    pub user: UserName,
    /// Its number in the room: strictly increasing within one epoch.
    pub seq: u64,
    /// Server time at publish, in milliseconds since the Unix epoch.
    pub ts: u64,
    /// The chat text.
    pub message: String,
    /// Structured fields published with the message (a JSON object: an HTTP publish's `data`,
    /// a typed `publish` frame's `data`, or a Django `group_send`'s fields other than `type`,
    /// `message` and `user`). Absent when the message has none, so such frames are exactly
    /// the ones without this field. Tutorial clients never receive it.
    #[serde(
        default,
        deserialize_with = "object_data",
        skip_serializing_if = "Option::is_none"
    )]
    pub data: Option<Map<String, Value>>,
}

/// Reads an optional `data` field, refusing anything but a JSON object (or `null`, read as
/// absent) with an error that names the field.
fn object_data<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Map<String, Value>>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(serde::de::Error::custom(format!(
            "data must be a JSON object, not {}",
            json_kind(&other)
        ))),
    }
}

/// A JSON value's kind, for error messages ("a string", "an array", ...); the server's HTTP
/// refusals of `data` use it too, so both say the same.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Why a member left a room (carried by `leave` events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The member sent `leave` or closed its socket cleanly.
    Left,
    /// The server evicted it: no frame or pong within `ping-timeout` after a ping.
    Timeout,
    /// The server evicted it: it read too slowly (queue over `max-queue-bytes`).
    Slow,
    /// Its socket ended without a clean close, or the server closed it for a violation.
    Closed,
    /// The server is shutting down.
    Shutdown,
    /// A reason this client does not know yet.
    #[serde(other)]
    Other,
}

impl LeaveReason {
    /// The reason's wire name, e.g. `"timeout"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::Timeout => "timeout",
            LeaveReason::Slow => "slow",
            LeaveReason::Closed => "closed",
            LeaveReason::Shutdown => "shutdown",
            LeaveReason::Other => "other",
        }
    }
}

impl fmt::Display for LeaveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The server's settings a client needs: to show health, to size messages, and to verify that
/// dead clients are evicted when they should be. Also served at `GET /api/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The server's version.
    pub version: String,
    /// How often the server pings an idle session, in milliseconds.
    pub ping_interval_ms: u64,
    /// How long after a ping a silent session is evicted, in milliseconds.
    pub ping_timeout_ms: u64,
    /// Largest frame a client may send, in bytes (larger closes with 1009).
    pub max_message_bytes: usize,
    /// Largest backlog the server queues for one session before evicting it as slow, in bytes.
    pub max_queue_bytes: usize,
    /// How many rooms one session may join.
    pub max_rooms_per_session: usize,
    /// How many messages each room keeps for recovery (0: no history).
    pub history_size: usize,
    /// How long an empty room keeps its history, in milliseconds.
    pub room_ttl_ms: u64,
    /// Frames per second one session may send, sustained.
    pub rate_per_second: u32,
}

/// Frames a typed client receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame of every typed session: who you are and how the server behaves.
    Welcome {
        /// The name this session speaks as (from `?user=`, or generated).
        user: UserName,
        /// Heartbeat settings and limits.
        server: ServerInfo,
    },
    /// Answer to `join`. When `replay` > 0, that many `message` frames follow, oldest first,
    /// before any live message of the room.
    Joined {
        /// The room joined.
        room: RoomName,
        /// The history's identity; keep it with the last `seq` seen to recover later.
        epoch: String,
        /// The room's last `seq` at the moment of joining (0 if none yet).
        seq: u64,
        /// Distinct users present, this one included, sorted.
        members: Vec<UserName>,
        /// Present when `since` was given: `true` if every missed message follows, `false`
        /// if some are gone (gap too old, or the epoch changed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
        /// How many `message` frames follow this one as replay.
        replay: usize,
        /// The `ref` of the `join`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
    },
    /// Answer to `leave`.
    Left {
        /// The room left.
        room: RoomName,
        /// The `ref` of the `leave`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
    },
    /// A chat message in a joined room (live or replayed).
    Message(RoomMessage),
    /// Answer to a `publish` that carried a `ref`: the message's place in the room.
    Ack {
        /// The room published to.
        room: RoomName,
        /// The published message's `seq`.
        seq: u64,
        /// The `ref` of the `publish`.
        #[serde(rename = "ref")]
        reference: Ref,
    },
    /// A user became present in a joined room (their first session there).
    Join {
        /// The room.
        room: RoomName,
        /// Who joined.
        user: UserName,
    },
    /// A user stopped being present in a joined room (their last session left).
    Leave {
        /// The room.
        room: RoomName,
        /// Who left.
        user: UserName,
        /// Why.
        reason: LeaveReason,
    },
    /// Answer to `ping`.
    Pong {
        /// Server time in milliseconds since the Unix epoch.
        ts: u64,
        /// The `ref` of the `ping`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
    },
    /// A frame was refused; the session stays open.
    Error {
        /// What went wrong, as a stable code.
        code: ErrorCode,
        /// What went wrong, for a person.
        message: String,
        /// The room concerned, when there is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<RoomName>,
        /// The `ref` of the refused frame, when it had one.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<Ref>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_use_the_documented_json() {
        let frame: ClientFrame = serde_json::from_str(
            r#"{"type":"join","room":"lobby","since":{"epoch":"e1","seq":41},"ref":7}"#,
        )
        .expect("documented join frame decodes");
        assert_eq!(
            frame,
            ClientFrame::Join {
                room: RoomName::new("lobby").expect("valid room"),
                since: Some(Position {
                    epoch: "e1".into(),
                    seq: 41
                }),
                token: None,
                reference: Some(Ref::Number(7)),
            }
        );
    }

    #[test]
    fn refs_keep_their_json_type() {
        for json in [r#"{"type":"ping","ref":"a"}"#, r#"{"type":"ping","ref":3}"#] {
            let frame: ClientFrame = serde_json::from_str(json).expect("ping decodes");
            assert_eq!(serde_json::to_string(&frame).ok().as_deref(), Some(json));
        }
    }

    #[test]
    fn unknown_fields_and_long_refs_are_refused() {
        let extra = serde_json::from_str::<ClientFrame>(r#"{"type":"ping","oops":1}"#);
        assert!(extra.is_err());
        let long = format!(r#"{{"type":"ping","ref":"{}"}}"#, "r".repeat(65));
        assert!(serde_json::from_str::<ClientFrame>(&long).is_err());
    }

    #[test]
    fn message_frames_flatten_the_room_message() {
        let frame = ServerFrame::Message(RoomMessage {
            room: RoomName::new("lobby").expect("valid room"),
            user: UserName::new("ana").expect("valid user"),
            seq: 3,
            ts: 1_700_000_000_000,
            message: "hi".into(),
            data: None,
        });
        assert_eq!(
            serde_json::to_string(&frame).ok().as_deref(),
            Some(
                r#"{"type":"message","room":"lobby","user":"ana","seq":3,"ts":1700000000000,"message":"hi"}"#
            )
        );
    }

    #[test]
    fn data_follows_the_message_and_frames_without_it_are_unchanged() {
        let with_data = r#"{"type":"message","room":"pay","user":"django","seq":1,"ts":5,"message":"paid","data":{"amount":12.5,"items":[1,2],"status":"approved"}}"#;
        let frame: ServerFrame = serde_json::from_str(with_data).expect("message with data");
        let ServerFrame::Message(message) = &frame else {
            panic!("not a message: {frame:?}");
        };
        let data = message.data.as_ref().expect("data kept");
        assert_eq!(data.get("status"), Some(&Value::from("approved")));
        assert_eq!(
            serde_json::to_string(&frame).ok().as_deref(),
            Some(with_data)
        );
        // An old frame (no data) reads as None and writes back byte for byte.
        let old =
            r#"{"type":"message","room":"pay","user":"django","seq":1,"ts":5,"message":"paid"}"#;
        let frame: ServerFrame = serde_json::from_str(old).expect("old message frame");
        assert_eq!(serde_json::to_string(&frame).ok().as_deref(), Some(old));
        let null = r#"{"type":"message","room":"pay","user":"u","seq":1,"ts":5,"message":"m","data":null}"#;
        assert!(matches!(
            serde_json::from_str::<ServerFrame>(null),
            Ok(ServerFrame::Message(RoomMessage { data: None, .. }))
        ));
    }

    #[test]
    fn a_publish_with_data_that_is_not_an_object_is_refused_naming_the_field() {
        let ok = r#"{"type":"publish","room":"pay","message":"paid","data":{"status":"approved"}}"#;
        let frame: ClientFrame = serde_json::from_str(ok).expect("publish with data");
        assert!(matches!(frame, ClientFrame::Publish { data: Some(_), .. }));
        assert_eq!(serde_json::to_string(&frame).ok().as_deref(), Some(ok));
        let bad = r#"{"type":"publish","room":"pay","message":"paid","data":"approved"}"#;
        let error = serde_json::from_str::<ClientFrame>(bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("data must be a JSON object, not a string"),
            "{error}"
        );
    }
}
