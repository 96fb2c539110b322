//! Server frames out of a read buffer: one `read` fills it, then every complete frame in it
//! is walked without copying. `fill` is cancel-safe (a cancelled read consumed nothing), so the
//! reader can sit in a `select!` next to timers.

use std::io;

use super::opcode;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest server frame accepted, in bytes; a larger one is an error, not an allocation the
/// server chose.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// A server frame, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The opcode (see [`opcode`](super::opcode)).
    pub opcode: u8,
    /// The payload (servers never mask).
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// For a close frame: its code (1005 when it carries none).
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == opcode::CLOSE).then(|| match self.payload {
            [high, low, ..] => u16::from_be_bytes([*high, *low]),
            _ => 1005,
        })
    }

    /// For a close frame: its reason text.
    pub fn close_reason(&self) -> String {
        String::from_utf8_lossy(self.payload.get(2..).unwrap_or_default()).into_owned()
    }

    /// A copy that outlives the reader's buffer.
    pub fn to_owned_frame(&self) -> OwnedFrame {
        OwnedFrame {
            opcode: self.opcode,
            payload: self.payload.to_vec(),
        }
    }
}

/// A server frame copied out of the reader's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFrame {
    /// The opcode (see [`opcode`](super::opcode)).
    pub opcode: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

impl OwnedFrame {
    /// For a close frame: its code (1005 when it carries none) and reason.
    pub fn close(&self) -> Option<(u16, String)> {
        let frame = Frame {
            opcode: self.opcode,
            payload: &self.payload,
        };
        frame.close_code().map(|code| (code, frame.close_reason()))
    }
}

/// A read buffer that yields whole server frames.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl FrameReader {
    /// An empty reader with `capacity` bytes of buffer (it grows for a larger frame).
    pub fn new(capacity: usize) -> Self {
        Self {
            buf: vec![0; capacity],
            start: 0,
            end: 0,
        }
    }

    /// Reads what the socket has into the buffer; `Ok(0)` is end of stream. Cancel-safe.
    pub async fn fill<R: AsyncRead + Unpin>(&mut self, stream: &mut R) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len()
            || (self.start > 0 && self.end > self.buf.len() * 3 / 4)
        {
            // Full, or nearly: move the partial frame to the front rather than reading a few
            // bytes per syscall.
            self.make_room()?;
        }
        let read = stream.read(&mut self.buf[self.end..]).await?;
        self.end += read;
        Ok(read)
    }

    /// Moves pending bytes to the front, growing the buffer when a frame needs more room.
    fn make_room(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        } else if self.buf.len() >= MAX_FRAME_BYTES + 14 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "server frame larger than the reader accepts",
            ));
        } else {
            let bigger = (self.buf.len() * 2).min(MAX_FRAME_BYTES + 14);
            self.buf.resize(bigger, 0);
        }
        Ok(())
    }

    /// The buffered bytes not consumed yet (the upgrade reads its response head from here).
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Drops `bytes` from the front of the pending bytes.
    pub fn consume(&mut self, bytes: usize) {
        self.start = (self.start + bytes).min(self.end);
    }

    /// The next complete frame in the buffer, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame<'_>>> {
        let Some((opcode, header, len)) = parse_header(self.pending())? else {
            return Ok(None);
        };
        if self.pending().len() < header + len {
            return Ok(None);
        }
        let payload_start = self.start + header;
        self.start = payload_start + len;
        Ok(Some(Frame {
            opcode,
            payload: &self.buf[payload_start..payload_start + len],
        }))
    }
}

/// Parses a frame header: opcode, header length, payload length; `None` if incomplete.
fn parse_header(bytes: &[u8]) -> io::Result<Option<(u8, usize, usize)>> {
    let [first, second, rest @ ..] = bytes else {
        return Ok(None);
    };
    let masked = second & 0x80 != 0;
    let (len, extended) = match second & 0x7f {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(eight) => {
                let mut array = [0u8; 8];
                array.copy_from_slice(eight);
                (u64::from_be_bytes(array), 8)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 0),
    };
    if masked {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the server sent a masked frame",
        ));
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|len| *len <= MAX_FRAME_BYTES)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "server frame too large"))?;
    Ok(Some((first & 0x0f, 2 + extended, len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            len if len < 126 => frame.push(len as u8),
            len => {
                frame.push(126);
                frame.extend_from_slice(&u16::try_from(len).expect("test frame").to_be_bytes());
            }
        }
        frame.extend_from_slice(payload);
        frame
    }

    fn reader_with(bytes: &[u8]) -> FrameReader {
        let mut reader = FrameReader::new(bytes.len().max(16));
        reader.buf[..bytes.len()].copy_from_slice(bytes);
        reader.end = bytes.len();
        reader
    }

    #[test]
    fn frames_split_across_reads_wait_for_their_tail() {
        let mut bytes = server_frame(opcode::TEXT, b"hello");
        bytes.extend(server_frame(opcode::PING, b""));
        bytes.extend(server_frame(opcode::TEXT, &[b'x'; 300]));
        let cut = bytes.len() - 10;
        let mut reader = reader_with(&bytes[..cut]);
        let first = reader.next_frame().expect("valid").expect("complete");
        assert_eq!((first.opcode, first.payload), (opcode::TEXT, &b"hello"[..]));
        let ping = reader.next_frame().expect("valid").expect("complete");
        assert_eq!(ping.opcode, opcode::PING);
        assert!(
            reader.next_frame().expect("valid").is_none(),
            "the tail is missing"
        );
    }

    #[test]
    fn close_frames_carry_their_code_and_reason() {
        let mut payload = 4000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"no pong");
        let bytes = server_frame(opcode::CLOSE, &payload);
        let mut reader = reader_with(&bytes);
        let close = reader.next_frame().expect("valid").expect("complete");
        assert_eq!(close.close_code(), Some(4000));
        assert_eq!(close.close_reason(), "no pong");
    }

    #[test]
    fn masked_or_huge_server_frames_are_refused() {
        assert!(parse_header(&[0x81, 0x85, 0, 0, 0, 0]).is_err());
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(parse_header(&huge).is_err());
    }
}
