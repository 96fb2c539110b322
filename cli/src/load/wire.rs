//! Raw WebSocket sockets: the upgrade done by hand, and a buffered frame reader.
//!
//! `roomcast_protocol::raw` reads its upgrade response byte by byte and frames one read at a
//! time, which is right for a handful of misbehaving sockets but costs a syscall per byte. The
//! load commands open thousands, so this reader fills a buffer with one `read` and walks every
//! complete frame in it. `fill` is cancel-safe (a cancelled read consumed nothing), so the
//! reader can sit in a `select!` next to timers.

use std::io;
use std::time::Duration;

use roomcast_protocol::raw::{client_frame, opcode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

use crate::exit::Unreachable;

/// Read buffer per raw socket, in bytes: several small chat frames per read, and small enough
/// that 10,000 sockets cost 80 MiB at most.
pub const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Largest server frame accepted, in bytes; a larger one is an error, not an allocation the
/// server chose.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Longest upgrade response head accepted, in bytes.
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Why a raw connection failed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// TCP could not connect (refused, unreachable, timed out).
    #[error("could not connect to {url}: {source}")]
    Connect {
        /// The address tried.
        url: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The server did not switch protocols.
    #[error("{url} refused the WebSocket upgrade: {status}")]
    Refused {
        /// The address tried.
        url: String,
        /// The response's status line.
        status: String,
    },
    /// Reading or writing failed during the upgrade.
    #[error("upgrade to {url} failed: {source}")]
    Io {
        /// The address tried.
        url: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
}

impl WireError {
    /// The error for the CLI's printer: [`Unreachable`] (exit 4) when nothing answered.
    pub fn into_cli(self, doing: &'static str) -> anyhow::Error {
        match self {
            WireError::Connect { url, source } => anyhow::Error::new(Unreachable {
                what: url,
                detail: source.to_string(),
            }),
            other => anyhow::Error::new(other).context(doing),
        }
    }
}

/// A server frame, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The opcode (see `roomcast_protocol::raw::opcode`).
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
}

/// A socket past its upgrade, with the bytes that followed the response already buffered.
#[derive(Debug)]
pub struct RawSocket {
    /// The TCP stream; write client frames with [`RawSocket::send`].
    pub stream: TcpStream,
    /// Buffered server bytes.
    pub reader: FrameReader,
}

impl RawSocket {
    /// Connects to a `ws://` URL and performs the upgrade, within `timeout`.
    pub async fn connect(url: &Url, timeout: Duration) -> Result<Self, WireError> {
        let text = url.to_string();
        match tokio::time::timeout(timeout, Self::connect_now(url, &text)).await {
            Ok(result) => result,
            Err(_) => Err(WireError::Connect {
                url: text,
                source: io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer in {timeout:?}"),
                ),
            }),
        }
    }

    async fn connect_now(url: &Url, text: &str) -> Result<Self, WireError> {
        let io_error = |source| WireError::Io {
            url: text.to_owned(),
            source,
        };
        if url.scheme() != "ws" {
            return Err(io_error(io::Error::new(
                io::ErrorKind::Unsupported,
                "raw sockets speak ws:// only; point --url at a plain http:// or ws:// server",
            )));
        }
        let host = url.host_str().unwrap_or("127.0.0.1");
        let port = url.port_or_known_default().unwrap_or(80);
        let mut stream =
            TcpStream::connect((host, port))
                .await
                .map_err(|source| WireError::Connect {
                    url: text.to_owned(),
                    source,
                })?;
        stream.set_nodelay(true).map_err(io_error)?;
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        // The key is RFC 6455's sample nonce: servers check its shape, never its freshness.
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(io_error)?;
        let mut reader = FrameReader::new(READ_BUFFER_BYTES);
        let head_end = loop {
            if let Some(at) = reader.pending().windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if reader.pending().len() >= MAX_HEAD_BYTES {
                return Err(io_error(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "upgrade response head too long",
                )));
            }
            if reader.fill(&mut stream).await.map_err(io_error)? == 0 {
                return Err(io_error(io::ErrorKind::UnexpectedEof.into()));
            }
        };
        let head = String::from_utf8_lossy(&reader.pending()[..head_end]).into_owned();
        let status = head.lines().next().unwrap_or_default().to_owned();
        if !status.starts_with("HTTP/1.1 101") {
            return Err(WireError::Refused {
                url: text.to_owned(),
                status,
            });
        }
        reader.consume(head_end);
        Ok(Self { stream, reader })
    }

    /// Writes one masked client frame.
    pub async fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.stream.write_all(&client_frame(opcode, payload)).await
    }

    /// Answers a ping (echoing its payload, as RFC 6455 asks).
    pub async fn pong(&mut self, payload: &[u8]) -> io::Result<()> {
        self.send(opcode::PONG, payload).await
    }

    /// Sends a normal close (1000) and drops the socket without waiting for the reply.
    pub async fn close(mut self) {
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"done");
        // Best effort: a server that already closed just makes this write fail.
        if self.send(opcode::CLOSE, &payload).await.is_ok() {
            let _flushed = self.stream.flush().await;
        }
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
        } else if self.end == self.buf.len() {
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

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, bytes: usize) {
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
