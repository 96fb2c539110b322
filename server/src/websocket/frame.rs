//! Outgoing frames, encoded once: header and payload in one buffer, shared by every member.

use bytes::{Buf, Bytes};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// A complete server-to-client WebSocket frame: header and unmasked payload, ready for the
/// socket. Cloning it is one reference count; a message sent to a thousand members is encoded
/// once and these same bytes are written to each socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Frame(Bytes);

/// A ping with an empty payload: the heartbeat's probe. Static, so a ping costs no allocation.
const PING: [u8; 2] = [0x89, 0x00];

/// The longest server frame header (no mask): 2 bytes and an 8-byte length. A payload
/// serialized after this much room gets its header written in front of it, in place.
pub(crate) const HEADER_ROOM_BYTES: usize = 10;

impl Frame {
    /// A final text frame carrying `payload`.
    pub(crate) fn text(payload: &str) -> Self {
        Self::encode(OpCode::Data(Data::Text), payload.as_bytes())
    }

    /// A final text frame whose UTF-8 payload is `buffer` past its first
    /// [`HEADER_ROOM_BYTES`]: the header goes into that room, so the payload is never copied.
    pub(crate) fn text_after_header_room(mut buffer: Vec<u8>) -> Self {
        let header = FrameHeader {
            opcode: OpCode::Data(Data::Text),
            ..FrameHeader::default()
        };
        if buffer.len() < HEADER_ROOM_BYTES {
            buffer.resize(HEADER_ROOM_BYTES, 0);
        }
        let length = (buffer.len() - HEADER_ROOM_BYTES) as u64;
        let mut head = [0; HEADER_ROOM_BYTES];
        let mut cursor = std::io::Cursor::new(&mut head[..]);
        header
            .format(length, &mut cursor)
            .unwrap_or_else(|_| unreachable!("a server header fits in {HEADER_ROOM_BYTES} bytes"));
        let head_length = header.len(length);
        let start = HEADER_ROOM_BYTES - head_length;
        buffer[start..HEADER_ROOM_BYTES].copy_from_slice(&head[..head_length]);
        let mut bytes = Bytes::from(buffer);
        bytes.advance(start);
        Self(bytes)
    }

    /// Bytes for a transport other than WebSocket (Server-Sent Events), queued through the
    /// same outboxes. They must not start with a byte of 0x80 or more (SSE text is ASCII
    /// field names first), which is how [`Frame::payload_len`] tells them from WebSocket
    /// frames: every frame the server sends is final, so its first byte has the FIN bit set.
    pub(crate) fn raw(bytes: Bytes) -> Self {
        debug_assert!(bytes.first().is_none_or(|b| *b < 0x80));
        Self(bytes)
    }

    /// Complete frames back to back in one buffer (`bytes` of them in all): a socket is handed
    /// it as one slice, and the kernel copies one region instead of one per frame. Only for
    /// writing: [`Frame::payload_len`] means nothing for it.
    pub(crate) fn back_to_back<'a>(
        frames: impl IntoIterator<Item = &'a Frame>,
        bytes: usize,
    ) -> Self {
        let mut buffer = Vec::with_capacity(bytes);
        for frame in frames {
            buffer.extend_from_slice(frame.as_bytes());
        }
        Self(Bytes::from(buffer))
    }

    /// The bytes, shared (for transports that hand them to hyper).
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// The heartbeat's ping.
    pub(crate) fn ping() -> Self {
        Self(Bytes::from_static(&PING))
    }

    /// The answer to a ping: the same payload back (RFC 6455 §5.5.3).
    pub(crate) fn pong(payload: &[u8]) -> Self {
        Self::encode(OpCode::Control(Control::Pong), payload)
    }

    /// A close frame with `code` and `reason` (the caller keeps the reason within 123 bytes).
    pub(crate) fn close(code: u16, reason: &str) -> Self {
        let mut payload = Vec::with_capacity(2 + reason.len());
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(reason.as_bytes());
        Self::encode(OpCode::Control(Control::Close), &payload)
    }

    /// A close frame without a code: the answer to a client's close that carried none.
    pub(crate) fn close_empty() -> Self {
        Self::encode(OpCode::Control(Control::Close), &[])
    }

    fn encode(opcode: OpCode, payload: &[u8]) -> Self {
        let header = FrameHeader {
            opcode,
            ..FrameHeader::default()
        };
        let length = payload.len() as u64;
        let mut bytes = Vec::with_capacity(header.len(length) + payload.len());
        header
            .format(length, &mut bytes)
            .unwrap_or_else(|_| unreachable!("writing to a Vec cannot fail"));
        bytes.extend_from_slice(payload);
        Self(Bytes::from(bytes))
    }

    /// The frame as it goes on the wire.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Bytes on the wire, header included.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Bytes of the header (server frames are never masked).
    fn header_len(&self) -> usize {
        if self.0.first().is_none_or(|b| *b < 0x80) {
            // Raw bytes (see `Frame::raw`): no WebSocket header.
            return 0;
        }
        match self.0.get(1).map(|b| b & 0x7f) {
            Some(126) => 4,
            Some(127) => 10,
            _ => 2,
        }
    }

    /// Bytes of the payload (what the `bytes_delivered` metric counts).
    pub(crate) fn payload_len(&self) -> usize {
        self.len() - self.header_len()
    }

    /// The payload, past the header (for tests that decode what members receive).
    #[cfg(test)]
    pub(crate) fn payload(&self) -> &[u8] {
        &self.0[self.header_len()..]
    }

    /// The payload of each frame in it: one, or several for [`Frame::back_to_back`] (for
    /// tests that decode what members receive). Headers are read by tungstenite's own parser,
    /// the one whose formatter wrote them.
    #[cfg(test)]
    pub(crate) fn payloads(&self) -> Vec<&[u8]> {
        let mut payloads = Vec::new();
        let mut cursor = std::io::Cursor::new(&self.0[..]);
        while let Some((_, length)) =
            FrameHeader::parse(&mut cursor).expect("a server frame header")
        {
            let start = usize::try_from(cursor.position()).expect("fits");
            let end = start + usize::try_from(length).expect("fits");
            payloads.push(&self.0[start..end]);
            cursor.set_position(end as u64);
        }
        assert_eq!(cursor.position(), self.0.len() as u64, "whole frames only");
        payloads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_takes_the_width_it_needs() {
        let small = Frame::text("hi");
        assert_eq!(small.as_bytes(), [0x81, 2, b'h', b'i']);
        let medium = Frame::text(&"x".repeat(300));
        assert_eq!(medium.as_bytes()[..4], [0x81, 126, 0x01, 0x2c]);
        assert_eq!(medium.payload().len(), 300);
        let large = Frame::text(&"x".repeat(70_000));
        assert_eq!(large.as_bytes()[..2], [0x81, 127]);
        assert_eq!(large.len(), 70_000 + 10);
        assert_eq!(large.payload().len(), 70_000);
    }

    #[test]
    fn a_payload_after_header_room_gets_the_same_frame_as_a_copied_one() {
        for length in [0, 5, 125, 126, 300, 70_000] {
            let payload = "p".repeat(length);
            let mut buffer = vec![0; HEADER_ROOM_BYTES];
            buffer.extend_from_slice(payload.as_bytes());
            assert_eq!(Frame::text_after_header_room(buffer), Frame::text(&payload));
        }
    }

    #[test]
    fn control_frames_are_final_and_carry_their_payload() {
        assert_eq!(Frame::ping().as_bytes(), [0x89, 0]);
        assert_eq!(Frame::pong(b"abc").as_bytes(), [0x8a, 3, b'a', b'b', b'c']);
        assert_eq!(
            Frame::close(4001, "slow").as_bytes(),
            [0x88, 6, 0x0f, 0xa1, b's', b'l', b'o', b'w']
        );
        assert_eq!(Frame::close_empty().as_bytes(), [0x88, 0]);
    }
}
