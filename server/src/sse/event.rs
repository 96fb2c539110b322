//! Server-Sent Events as the server writes them: every event is encoded once (for a message,
//! once for every follower of its room) and queued as a [`Frame`] of raw bytes.
//!
//! An event is `id:` (where the follower stands after it, see `cursor.rs`) first, then
//! `event:` and one `data:` line of JSON; compact JSON never holds a line break, so one line
//! always suffices. Putting `id:` first lets a multi-room stream swap in its whole cursor
//! without parsing the rest.

use std::sync::Arc;

use bytes::Bytes;
use roomcast_protocol::{RoomName, ServerFrame};
use serde::Serialize;

use super::cursor::Position;
use crate::frames::{self, Frame};
use crate::history::Publication;

/// The heartbeat: a comment, which `EventSource` ignores and proxies see as traffic.
const PING: &[u8] = b": ping\n\n";

/// Room reserved beyond a message's text: id, field names and the JSON envelope.
const EVENT_ENVELOPE_BYTES: usize = 320;

fn encode(
    id: Option<&dyn std::fmt::Display>,
    name: &str,
    data: &impl Serialize,
    text_bytes: usize,
) -> Bytes {
    let mut buffer = Vec::with_capacity(EVENT_ENVELOPE_BYTES + text_bytes);
    if let Some(id) = id {
        buffer.extend_from_slice(format!("id: {id}\n").as_bytes());
    }
    buffer.extend_from_slice(b"event: ");
    buffer.extend_from_slice(name.as_bytes());
    buffer.extend_from_slice(b"\ndata: ");
    if let Err(e) = serde_json::to_writer(&mut buffer, data) {
        // Our event types have string keys only, so this is a bug, not bad input.
        tracing::error!(error = %e, "could not encode an SSE event");
        buffer.extend_from_slice(br#"{"error":"encoding failed"}"#);
    }
    buffer.extend_from_slice(b"\n\n");
    Bytes::from(buffer)
}

/// A chat message as `event: message`, `data:` the JSON a typed client gets; its id is the
/// position after it in `epoch`.
pub(crate) fn message(published: &Publication, epoch: &str) -> Frame {
    let position = Position::of(&published.room, epoch, published.seq);
    let mut buffer = Vec::with_capacity(EVENT_ENVELOPE_BYTES + published.body_bytes());
    buffer.extend_from_slice(format!("id: {position}\nevent: message\ndata: ").as_bytes());
    frames::write_typed_message(published, &mut buffer);
    buffer.extend_from_slice(b"\n\n");
    Frame::raw(Bytes::from(buffer))
}

/// A presence or state frame (`joined`, `join`, `leave`) as the event of the same name, with
/// the room's position now as its id.
pub(crate) fn presence(frame: &ServerFrame, position: &Position) -> Frame {
    let name = match frame {
        ServerFrame::Joined { .. } => "joined",
        ServerFrame::Join { .. } => "join",
        ServerFrame::Leave { .. } => "leave",
        _ => "state",
    };
    Frame::raw(encode(Some(position), name, frame, 0))
}

#[derive(Serialize)]
struct Gap<'a> {
    room: &'a RoomName,
    /// The room's epoch and last seq now.
    epoch: &'a str,
    seq: u64,
    /// What the follower asked to resume from.
    since: Option<&'a roomcast_protocol::Position>,
    /// The first message that follows (older ones are gone), if any.
    resumes_at: Option<u64>,
}

/// `event: gap`: the messages after `since` are not all held any more (history was too short
/// or the epoch changed). Those still held follow it; its id is the position just before them.
pub(crate) fn gap(
    room: &RoomName,
    epoch: &str,
    seq: u64,
    since: Option<&roomcast_protocol::Position>,
    replay: &[Arc<Publication>],
) -> Frame {
    let resumes_at = replay.first().map(|m| m.seq);
    let before = resumes_at.map_or(seq, |first| first.saturating_sub(1));
    let body = Gap {
        room,
        epoch,
        seq,
        since,
        resumes_at,
    };
    Frame::raw(encode(
        Some(&Position::of(room, epoch, before)),
        "gap",
        &body,
        0,
    ))
}

/// The heartbeat comment.
pub(crate) fn ping() -> Frame {
    Frame::raw(Bytes::from_static(PING))
}

/// Tells the browser how long to wait before reconnecting.
pub(crate) fn retry(millis: u64) -> Frame {
    Frame::raw(Bytes::from(format!("retry: {millis}\n\n")))
}

#[derive(Serialize)]
struct Ended<'a> {
    reason: &'a str,
    message: &'a str,
}

/// The last event of a stream the server ends: `evicted` (slow) or `shutdown`, with `retry:`
/// before it. No id, so the browser resumes from the last message it had.
pub(crate) fn ended(event: &str, reason: &str, message: &str, retry_millis: u64) -> Bytes {
    let body = encode(None, event, &Ended { reason, message }, message.len());
    let mut buffer = format!("retry: {retry_millis}\n").into_bytes();
    buffer.extend_from_slice(&body);
    Bytes::from(buffer)
}

#[cfg(test)]
mod tests {
    use roomcast_protocol::UserName;

    use super::*;

    #[test]
    fn a_message_event_carries_the_typed_json_on_one_data_line() {
        let room = RoomName::new("lobby").expect("valid room");
        let user = UserName::new("ana").expect("valid user");
        let published = Publication::new(room, user, 7, 1, "two\nlines");
        let frame = message(&published, "e1");
        let text = std::str::from_utf8(frame.as_bytes()).expect("utf-8");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("id: lobby:e1:7"));
        assert_eq!(lines.next(), Some("event: message"));
        let data = lines
            .next()
            .and_then(|l| l.strip_prefix("data: "))
            .unwrap_or("");
        let decoded: ServerFrame = serde_json::from_str(data).expect("typed JSON");
        assert!(matches!(decoded, ServerFrame::Message(m) if m.message == "two\nlines"));
        assert!(text.ends_with("\n\n"));
        assert_eq!(frame.payload_len(), frame.len());
    }
}
