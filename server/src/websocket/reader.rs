//! Client frames out of a read buffer: masked, possibly fragmented, with control frames in
//! between, each message bounded by `--max-message-bytes` before any of it is buffered.
//!
//! The session reads into [`FrameReader::read_buffer`] (one `read` per turn), takes every
//! complete frame with [`FrameReader::next`], then calls [`FrameReader::end_batch`]. The
//! buffer exists only while bytes are pending: an idle session holds no read buffer at all.
//! Headers are parsed by tungstenite's [`FrameHeader::parse`]; the rest of RFC 6455's reading
//! rules (masking, fragmentation, control frame limits, UTF-8, close payloads) are here.

use std::io::Cursor;
use std::ops::Range;

use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

/// Bytes reserved for a read when no frame is half-read: several chat frames per `read`, small
/// enough that a burst of sessions does not cost much while their bytes are pending.
pub(crate) const READ_CHUNK_BYTES: usize = 4 * 1024;

/// RFC 6455 §5.5: control frames carry at most 125 bytes and are never fragmented.
const MAX_CONTROL_PAYLOAD_BYTES: usize = 125;

/// Longest frame header: 2 bytes, an 8-byte length, a 4-byte mask.
const MAX_HEADER_BYTES: usize = 14;

/// One complete client frame or message, borrowed from the reader.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inbound<'a> {
    /// A whole text message (its fragments joined), valid UTF-8.
    Text(&'a str),
    /// A whole binary message; its content is not needed.
    Binary,
    /// A ping and its payload.
    Ping(&'a [u8]),
    /// A pong.
    Pong,
    /// A close frame, with the code it carried (if any).
    Close(Option<u16>),
}

/// Why the client's bytes cannot be read on: each one closes the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// A message longer than the limit (close 1009); detected from its header, before the
    /// payload is buffered.
    TooBig,
    /// A broken RFC 6455 rule (close 1002); the text is for the log.
    Protocol(&'static str),
    /// A text message or close reason that is not UTF-8 (close 1007, RFC 6455 §8.1).
    NotUtf8,
}

/// A fragmented message being put together.
#[derive(Debug)]
struct Fragments {
    text: bool,
    payload: Vec<u8>,
}

/// Reads client frames; see the module documentation.
#[derive(Debug)]
pub(crate) struct FrameReader {
    /// Bytes read; `start..` are not consumed yet.
    buf: Vec<u8>,
    start: usize,
    /// The message whose first fragments arrived, if any.
    fragments: Option<Fragments>,
    /// A message joined from fragments was handed out; drop it on the next call.
    handed_out: bool,
    max_message_bytes: usize,
}

impl FrameReader {
    /// A reader refusing messages over `max_message_bytes`.
    pub(crate) fn new(max_message_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            fragments: None,
            handed_out: false,
            max_message_bytes,
        }
    }

    /// The buffer to read into (append only), with room reserved for the rest of a half-read
    /// frame, or for [`READ_CHUNK_BYTES`]. Its capacity never exceeds the largest frame the
    /// limit allows plus one chunk.
    pub(crate) fn read_buffer(&mut self) -> &mut Vec<u8> {
        let pending = self.buf.len() - self.start;
        let missing = self
            .frame_length()
            .map_or(0, |total| total.saturating_sub(pending))
            .max(READ_CHUNK_BYTES);
        if self.buf.capacity() - self.buf.len() < missing {
            self.buf.drain(..self.start);
            self.start = 0;
            self.buf.reserve_exact(missing);
        }
        &mut self.buf
    }

    /// Whether bytes wait in the buffer (before the first read: those that came with the
    /// upgrade request).
    pub(crate) fn has_pending(&self) -> bool {
        self.start < self.buf.len()
    }

    /// The whole length (header and payload) of the frame at the front, once its header is in,
    /// if it is within the limit.
    fn frame_length(&self) -> Option<usize> {
        let mut cursor = Cursor::new(&self.buf[self.start..]);
        let (_, length) = FrameHeader::parse(&mut cursor).ok().flatten()?;
        let length = usize::try_from(length)
            .ok()
            .filter(|l| *l <= self.max_message_bytes)?;
        Some(usize::try_from(cursor.position()).ok()? + length)
    }

    /// Forgets consumed bytes, and frees the buffer when nothing is pending.
    pub(crate) fn end_batch(&mut self) {
        if self.start == self.buf.len() {
            self.buf = Vec::new();
        } else if self.start > 0 && self.buf.capacity() > READ_CHUNK_BYTES + MAX_HEADER_BYTES {
            // A large frame was read; keep only the unread tail, in a buffer of its size.
            self.buf = self.buf.split_off(self.start);
        } else {
            self.buf.drain(..self.start);
        }
        self.start = 0;
    }

    /// Bytes allocated right now (for the property test's bound).
    #[cfg(test)]
    fn allocated(&self) -> usize {
        self.buf.capacity() + self.fragments.as_ref().map_or(0, |f| f.payload.capacity())
    }

    /// The next complete frame or message, `None` until more bytes arrive.
    pub(crate) fn next(&mut self) -> Result<Option<Inbound<'_>>, ReadError> {
        if self.handed_out {
            self.handed_out = false;
            self.fragments = None;
        }
        loop {
            let Some(found) = self.step()? else {
                return Ok(None);
            };
            return Ok(Some(match found {
                Found::Fragment => continue,
                Found::Ping(payload) => Inbound::Ping(&self.buf[payload]),
                Found::Pong => Inbound::Pong,
                Found::Close(code) => Inbound::Close(code),
                Found::Message { text, payload } => message(text, &self.buf[payload])?,
                Found::Joined => match &self.fragments {
                    Some(fragments) => message(fragments.text, &fragments.payload)?,
                    None => return Err(ReadError::Protocol("continuation without a message")),
                },
            }));
        }
    }

    /// Consumes the frame at the front, if it is complete, and says what it was. Payloads are
    /// unmasked in place and named by their range in the buffer, so nothing is copied unless
    /// a message comes in fragments.
    fn step(&mut self) -> Result<Option<Found>, ReadError> {
        let mut cursor = Cursor::new(&self.buf[self.start..]);
        let Some((header, length)) =
            FrameHeader::parse(&mut cursor).map_err(|_| ReadError::Protocol("reserved opcode"))?
        else {
            return Ok(None);
        };
        check_header(&header, length)?;
        let so_far = self.fragments.as_ref().map_or(0, |f| f.payload.len());
        let length = usize::try_from(length).map_err(|_| ReadError::TooBig)?;
        if length > self.max_message_bytes.saturating_sub(so_far) {
            return Err(ReadError::TooBig);
        }
        let header_length = usize::try_from(cursor.position()).unwrap_or(MAX_HEADER_BYTES);
        let payload = self.start + header_length..self.start + header_length + length;
        if self.buf.len() < payload.end {
            return Ok(None);
        }
        self.start = payload.end;
        if let Some(mask) = header.mask {
            unmask(&mut self.buf[payload.clone()], mask);
        }
        let found = match header.opcode {
            OpCode::Control(Control::Ping) => Found::Ping(payload),
            OpCode::Control(Control::Pong) => Found::Pong,
            OpCode::Control(_) => Found::Close(close(&self.buf[payload])?),
            OpCode::Data(Data::Continue) => {
                let fragments = self
                    .fragments
                    .as_mut()
                    .ok_or(ReadError::Protocol("continuation without a message"))?;
                grow_within(&mut fragments.payload, length, self.max_message_bytes);
                fragments.payload.extend_from_slice(&self.buf[payload]);
                if header.is_final {
                    self.handed_out = true;
                    Found::Joined
                } else {
                    Found::Fragment
                }
            }
            OpCode::Data(data) => {
                if self.fragments.is_some() {
                    return Err(ReadError::Protocol("a new message inside a fragmented one"));
                }
                let text = data == Data::Text;
                if header.is_final {
                    Found::Message { text, payload }
                } else {
                    self.fragments = Some(Fragments {
                        text,
                        payload: self.buf[payload].to_vec(),
                    });
                    Found::Fragment
                }
            }
        };
        Ok(Some(found))
    }
}

/// What [`FrameReader::step`] consumed, without borrowing the buffer.
enum Found {
    /// A fragment of a message that is not complete yet.
    Fragment,
    Ping(Range<usize>),
    Pong,
    Close(Option<u16>),
    /// An unfragmented message, in the buffer.
    Message {
        text: bool,
        payload: Range<usize>,
    },
    /// The last fragment of a message, now whole in `fragments`.
    Joined,
}

/// The rules a header must follow whatever the state: masked (clients must mask, §5.1), no
/// extension bits (none was negotiated), control frames short and unfragmented (§5.5).
fn check_header(header: &FrameHeader, length: u64) -> Result<(), ReadError> {
    if header.mask.is_none() {
        return Err(ReadError::Protocol("unmasked client frame"));
    }
    if header.rsv1 || header.rsv2 || header.rsv3 {
        return Err(ReadError::Protocol("reserved bits set"));
    }
    if let OpCode::Control(_) = header.opcode
        && (!header.is_final || length > MAX_CONTROL_PAYLOAD_BYTES as u64)
    {
        return Err(ReadError::Protocol("fragmented or oversized control frame"));
    }
    Ok(())
}

fn message(text: bool, payload: &[u8]) -> Result<Inbound<'_>, ReadError> {
    if !text {
        return Ok(Inbound::Binary);
    }
    std::str::from_utf8(payload)
        .map(Inbound::Text)
        .map_err(|_| ReadError::NotUtf8)
}

/// A close payload is empty, or a valid code followed by a UTF-8 reason (§5.5.1, §7.4).
fn close(payload: &[u8]) -> Result<Option<u16>, ReadError> {
    match payload {
        [] => Ok(None),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !CloseCode::from(code).is_allowed() {
                return Err(ReadError::Protocol("invalid close code"));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(ReadError::NotUtf8);
            }
            Ok(Some(code))
        }
        [_] => Err(ReadError::Protocol("close frame with a one-byte payload")),
    }
}

/// Makes room for `more` bytes in `payload`, doubling as a `Vec` does but never past `limit`
/// (the caller checked that `more` fits), so many small fragments cost amortised copies and a
/// message never holds more than the limit.
fn grow_within(payload: &mut Vec<u8>, more: usize, limit: usize) {
    let needed = payload.len() + more;
    if needed > payload.capacity() {
        let target = (payload.capacity() * 2).clamp(needed, limit.max(needed));
        payload.reserve_exact(target - payload.len());
    }
}

/// XORs `payload` with the client's mask, eight bytes at a time (the mask repeats every four,
/// so a word of it twice covers eight).
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let half = u64::from(u32::from_ne_bytes(mask));
    let key = half | half << 32;
    let mut words = payload.chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ key).to_ne_bytes());
    }
    for (byte, key) in words.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= key;
    }
}

#[cfg(test)]
mod tests;
