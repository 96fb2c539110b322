//! Encoding outgoing frames. Every frame is JSON text built once and shared as [`Utf8Bytes`].

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use roomcast_protocol::{
    ErrorBody, ErrorCode, ErrorEnvelope, Ref, RoomName, ServerFrame, UserName,
};
use serde::Serialize;

use crate::history::Publication;

/// Which protocol a session speaks, chosen at the upgrade by the `roomcast.v1` subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Django Channels tutorial frames: `{"message": ...}` in and out, errors, nothing else.
    Tutorial,
    /// The typed `roomcast.v1` protocol.
    Typed,
}

/// Milliseconds since the Unix epoch: the `ts` of messages and pongs.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn encode<T: Serialize>(value: &T) -> Utf8Bytes {
    match serde_json::to_string(value) {
        Ok(text) => Utf8Bytes::from(text),
        Err(e) => {
            // Our frame types have string keys only, so this is a bug, not bad input.
            tracing::error!(error = %e, "could not encode a frame");
            Utf8Bytes::from_static(
                r#"{"type":"error","code":"unknown","message":"encoding failed"}"#,
            )
        }
    }
}

/// A typed control frame (`welcome`, `joined`, `pong`, ...).
pub(crate) fn typed(frame: &ServerFrame) -> Utf8Bytes {
    encode(frame)
}

/// Borrowed twin of `roomcast_protocol::RoomMessage`: the same JSON, without cloning the text
/// for the one encoding a message gets.
#[derive(Serialize)]
struct MessageOut<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    room: &'a RoomName,
    user: &'a UserName,
    seq: u64,
    ts: u64,
    message: &'a str,
}

/// A chat message as `protocol` members receive it.
pub(crate) fn message(published: &Publication, protocol: Protocol) -> Utf8Bytes {
    encode(&MessageOut {
        kind: match protocol {
            Protocol::Typed => Some("message"),
            Protocol::Tutorial => None,
        },
        room: &published.room,
        user: &published.user,
        seq: published.seq,
        ts: published.ts,
        message: &published.text,
    })
}

/// An error answer in `protocol`'s shape: typed `{"type":"error",...}` with `room` and `ref`
/// when known, tutorial `{"error":{"code","message"}}`.
pub(crate) fn error(
    protocol: Protocol,
    code: ErrorCode,
    message: String,
    room: Option<RoomName>,
    reference: Option<Ref>,
) -> Utf8Bytes {
    match protocol {
        Protocol::Typed => encode(&ServerFrame::Error {
            code,
            message,
            room,
            reference,
        }),
        Protocol::Tutorial => encode(&ErrorEnvelope {
            error: ErrorBody { code, message },
        }),
    }
}

#[cfg(test)]
mod tests {
    use roomcast_protocol::{RoomMessage, TutorialFrame};

    use super::*;

    fn sample() -> Publication {
        let room = RoomName::new("lobby").expect("valid room");
        let user = UserName::new("ana").expect("valid user");
        Publication::new(room, user, 7, 1_700_000_000_000, "hi \"there\"")
    }

    fn expected() -> RoomMessage {
        RoomMessage {
            room: RoomName::new("lobby").expect("valid room"),
            user: UserName::new("ana").expect("valid user"),
            seq: 7,
            ts: 1_700_000_000_000,
            message: "hi \"there\"".into(),
        }
    }

    #[test]
    fn message_frames_decode_as_the_protocol_crate_defines_them() {
        let typed = message(&sample(), Protocol::Typed);
        let decoded: ServerFrame = serde_json::from_str(typed.as_str()).expect("typed decodes");
        assert_eq!(decoded, ServerFrame::Message(expected()));

        let tutorial = message(&sample(), Protocol::Tutorial);
        let decoded: TutorialFrame =
            serde_json::from_str(tutorial.as_str()).expect("tutorial decodes");
        assert_eq!(decoded, TutorialFrame::Message(expected()));
    }

    #[test]
    fn tutorial_errors_have_no_top_level_message() {
        let frame = error(
            Protocol::Tutorial,
            ErrorCode::InvalidJson,
            "bad".into(),
            None,
            None,
        );
        let value: serde_json::Value = serde_json::from_str(frame.as_str()).expect("json");
        assert!(value.get("message").is_none());
        assert_eq!(value["error"]["code"], "invalid_json");
    }
}
