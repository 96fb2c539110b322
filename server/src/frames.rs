//! Encoding outgoing frames. Every frame is JSON text built once, WebSocket header included,
//! and shared as a [`Frame`].

use std::time::{SystemTime, UNIX_EPOCH};

use roomcast_protocol::{
    ErrorBody, ErrorCode, ErrorEnvelope, Ref, RoomName, ServerFrame, UserName,
};
use serde::Serialize;

use crate::history::{MessageData, Publication};
pub(crate) use crate::websocket::Frame;
use crate::websocket::HEADER_ROOM_BYTES;

/// Which protocol a session speaks, chosen at the upgrade by the `roomcast.v1` subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Django Channels tutorial frames: `{"message": ...}` in and out, errors, nothing else.
    Tutorial,
    /// The typed `roomcast.v1` protocol.
    Typed,
    /// A Server-Sent Events follower (`/sse/...`): typed JSON in `data:` lines, with an `id`
    /// per event (see `sse/event.rs`). Followers only listen.
    Sse,
}

/// Milliseconds since the Unix epoch: the `ts` of messages and pongs.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Room reserved for a JSON frame beyond the text it carries: the envelope (type, room, user,
/// seq, ts) of a chat message fits, so serializing it does not grow the buffer.
const ENVELOPE_BYTES: usize = 192;

/// Serializes `value` straight after room for its WebSocket header: one buffer, no copy.
fn encode<T: Serialize>(value: &T, text_bytes: usize) -> Frame {
    let mut buffer = Vec::with_capacity(HEADER_ROOM_BYTES + ENVELOPE_BYTES + text_bytes);
    buffer.resize(HEADER_ROOM_BYTES, 0);
    match serde_json::to_writer(&mut buffer, value) {
        Ok(()) => Frame::text_after_header_room(buffer),
        Err(e) => {
            // Our frame types have string keys only, so this is a bug, not bad input.
            tracing::error!(error = %e, "could not encode a frame");
            Frame::text(r#"{"type":"error","code":"unknown","message":"encoding failed"}"#)
        }
    }
}

/// A typed control frame (`welcome`, `joined`, `pong`, ...).
pub(crate) fn typed(frame: &ServerFrame) -> Frame {
    encode(frame, 0)
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
    /// Embedded as its already-encoded JSON; absent (not `null`) without data, so messages
    /// without data encode exactly as before `data` existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a MessageData>,
}

/// A chat message as `protocol` members receive it. Tutorial members get no `data`: the
/// Channels tutorial's page reads `message` only, and its frames keep their documented shape.
pub(crate) fn message(published: &Publication, protocol: Protocol) -> Frame {
    let (kind, data) = match protocol {
        Protocol::Typed | Protocol::Sse => (Some("message"), published.data.as_ref()),
        Protocol::Tutorial => (None, None),
    };
    encode(
        &MessageOut {
            kind,
            room: &published.room,
            user: &published.user,
            seq: published.seq,
            ts: published.ts,
            message: &published.text,
            data,
        },
        published.body_bytes(),
    )
}

/// Appends a message's typed JSON (what a `roomcast.v1` client gets) to `buffer`: the `data:`
/// of an SSE message event.
pub(crate) fn write_typed_message(published: &Publication, buffer: &mut Vec<u8>) {
    let out = MessageOut {
        kind: Some("message"),
        room: &published.room,
        user: &published.user,
        seq: published.seq,
        ts: published.ts,
        message: &published.text,
        data: published.data.as_ref(),
    };
    if let Err(e) = serde_json::to_writer(buffer, &out) {
        tracing::error!(error = %e, "could not encode a message");
    }
}

/// An error answer in `protocol`'s shape: typed `{"type":"error",...}` with `room` and `ref`
/// when known, tutorial `{"error":{"code","message"}}`.
pub(crate) fn error(
    protocol: Protocol,
    code: ErrorCode,
    message: String,
    room: Option<RoomName>,
    reference: Option<Ref>,
) -> Frame {
    match protocol {
        // Followers send nothing, so nothing is answered to them; typed is the safe shape.
        Protocol::Typed | Protocol::Sse => encode(
            &ServerFrame::Error {
                code,
                message,
                room,
                reference,
            },
            0,
        ),
        Protocol::Tutorial => encode(
            &ErrorEnvelope {
                error: ErrorBody { code, message },
            },
            0,
        ),
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
            data: None,
        }
    }

    fn payment() -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(r#"{"status":"approved","amount":12.5,"items":[1,2]}"#)
            .expect("object")
    }

    #[test]
    fn typed_frames_carry_data_and_tutorial_frames_do_not() {
        let room = RoomName::new("lobby").expect("valid room");
        let user = UserName::new("ana").expect("valid user");
        let data = MessageData::from_map(&payment());
        let published = Publication::with_data(room, user, 7, 1, "paid", Some(data));
        let typed = message(&published, Protocol::Typed);
        let decoded: ServerFrame = serde_json::from_slice(typed.payload()).expect("typed decodes");
        assert!(
            matches!(&decoded, ServerFrame::Message(m) if m.data == Some(payment())),
            "{decoded:?}"
        );
        let tutorial = message(&published, Protocol::Tutorial);
        let value: serde_json::Value =
            serde_json::from_slice(tutorial.payload()).expect("tutorial decodes");
        assert_eq!(value.get("data"), None);
        assert_eq!(value["message"], "paid");
        let mut sse = Vec::new();
        write_typed_message(&published, &mut sse);
        let decoded: ServerFrame = serde_json::from_slice(&sse).expect("sse json decodes");
        assert!(matches!(decoded, ServerFrame::Message(m) if m.data == Some(payment())));
    }

    #[test]
    fn a_message_without_data_encodes_as_before_data_existed() {
        let typed = message(&sample(), Protocol::Typed);
        assert_eq!(
            std::str::from_utf8(typed.payload()).ok(),
            Some(
                r#"{"type":"message","room":"lobby","user":"ana","seq":7,"ts":1700000000000,"message":"hi \"there\""}"#
            )
        );
    }

    #[test]
    fn message_frames_decode_as_the_protocol_crate_defines_them() {
        let typed = message(&sample(), Protocol::Typed);
        let decoded: ServerFrame = serde_json::from_slice(typed.payload()).expect("typed decodes");
        assert_eq!(decoded, ServerFrame::Message(expected()));

        let tutorial = message(&sample(), Protocol::Tutorial);
        let decoded: TutorialFrame =
            serde_json::from_slice(tutorial.payload()).expect("tutorial decodes");
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
        let value: serde_json::Value = serde_json::from_slice(frame.payload()).expect("json");
        assert!(value.get("message").is_none());
        assert_eq!(value["error"]["code"], "invalid_json");
    }
}
