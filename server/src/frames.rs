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
struct MessageOut<'a> {
    /// `"message"` for typed members and followers; absent for the tutorial's.
    kind: Option<&'static str>,
    room: &'a RoomName,
    user: &'a UserName,
    seq: u64,
    ts: u64,
    message: &'a str,
    /// Embedded as its already-encoded JSON; absent (not `null`) without data, so messages
    /// without data encode exactly as before `data` existed.
    data: Option<&'a MessageData>,
}

impl MessageOut<'_> {
    /// Appends the message's JSON to `out`: the bytes `serde_json` writes for the protocol
    /// crate's `ServerFrame::Message` (typed) or `TutorialFrame::Message` (pinned by a
    /// property test below).
    ///
    /// Written by hand because this runs once per message per protocol, on every publish:
    /// through `serde_json` it cost 2,575 instructions per message at 10 members per room,
    /// 60% of them escaping the field names and strings a byte at a time (callgrind,
    /// `ROOMS=10 MEMBERS=10 scripts/profile-fanout`). The keys here are constants, and a
    /// string is copied as it is when it holds nothing JSON escapes; otherwise `serde_json`
    /// escapes it.
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        if let Some(kind) = self.kind {
            out.extend_from_slice(b"\"type\":");
            push_json_str(out, kind);
            out.push(b',');
        }
        out.extend_from_slice(b"\"room\":");
        push_json_str(out, self.room.as_str());
        out.extend_from_slice(b",\"user\":");
        push_json_str(out, self.user.as_str());
        let mut number = itoa::Buffer::new();
        out.extend_from_slice(b",\"seq\":");
        out.extend_from_slice(number.format(self.seq).as_bytes());
        out.extend_from_slice(b",\"ts\":");
        out.extend_from_slice(number.format(self.ts).as_bytes());
        out.extend_from_slice(b",\"message\":");
        push_json_str(out, self.message);
        if let Some(data) = self.data {
            out.extend_from_slice(b",\"data\":");
            out.extend_from_slice(data.as_json().as_bytes());
        }
        out.push(b'}');
    }
}

/// Appends `value` as a JSON string, as `serde_json` would write it.
fn push_json_str(out: &mut Vec<u8>, value: &str) {
    if needs_no_escape(value.as_bytes()) {
        out.reserve(value.len() + 2);
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else if let Err(e) = serde_json::to_writer(&mut *out, value) {
        // Writing a string into a `Vec` cannot fail; a failure would be a bug in serde_json.
        tracing::error!(error = %e, "could not encode a string");
    }
}

/// Whether `bytes` hold nothing `serde_json` escapes: no quote, no backslash, no control
/// character below 0x20. Checked 16 bytes at a time, without an early exit inside a block.
fn needs_no_escape(bytes: &[u8]) -> bool {
    fn plain(b: u8) -> bool {
        b >= 0x20 && b != b'"' && b != b'\\'
    }
    let (blocks, rest) = bytes.as_chunks::<16>();
    blocks
        .iter()
        .all(|block| block.iter().fold(true, |all, &b| all & plain(b)))
        && rest.iter().all(|&b| plain(b))
}

/// A chat message as `protocol` members receive it. Tutorial members get no `data`: the
/// Channels tutorial's page reads `message` only, and its frames keep their documented shape.
pub(crate) fn message(published: &Publication, protocol: Protocol) -> Frame {
    let (kind, data) = match protocol {
        Protocol::Typed | Protocol::Sse => (Some("message"), published.data.as_ref()),
        Protocol::Tutorial => (None, None),
    };
    let out = MessageOut {
        kind,
        room: &published.room,
        user: &published.user,
        seq: published.seq,
        ts: published.ts,
        message: &published.text,
        data,
    };
    let mut buffer =
        Vec::with_capacity(HEADER_ROOM_BYTES + ENVELOPE_BYTES + published.body_bytes());
    buffer.resize(HEADER_ROOM_BYTES, 0);
    out.write_json(&mut buffer);
    Frame::text_after_header_room(buffer)
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
    out.write_json(buffer);
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

    proptest::proptest! {
        #[test]
        fn the_hand_written_message_json_is_the_protocol_types_byte_for_byte(
            text in proptest::prelude::any::<String>(),
            // Quotes, backslashes, controls, DEL and non-ASCII where escaping starts and ends.
            tricky in "[\"\\\\\u{0}-\u{1f}\u{7f}a\u{e9}\u{1f600}]{0,40}",
            typed in proptest::prelude::any::<bool>(),
            with_data in proptest::prelude::any::<bool>(),
            seq in proptest::prelude::any::<u64>(),
            ts in proptest::prelude::any::<u64>(),
        ) {
            let room = RoomName::new("pagamento_42").expect("valid room");
            let user = UserName::new("ana").expect("valid user");
            let data = MessageData::from_map(&payment());
            for message in [text.as_str(), tricky.as_str()] {
                let kind = typed.then_some("message");
                // The tutorial's frames never carry data.
                let data = (with_data && typed).then_some(&data);
                let mut ours = Vec::new();
                MessageOut { kind, room: &room, user: &user, seq, ts, message, data }
                    .write_json(&mut ours);
                // The protocol crate's own types are the contract.
                let contract = RoomMessage {
                    room: room.clone(),
                    user: user.clone(),
                    seq,
                    ts,
                    message: message.to_owned(),
                    data: data.map(MessageData::to_map),
                };
                let theirs = if typed {
                    serde_json::to_vec(&ServerFrame::Message(contract))
                } else {
                    serde_json::to_vec(&TutorialFrame::Message(contract))
                }
                .expect("serde_json encodes");
                proptest::prop_assert_eq!(
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(&theirs)
                );
            }
        }
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
