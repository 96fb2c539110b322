//! A WebSocket upgrade done by hand on a plain TCP socket, for clients that must misbehave or
//! must be cheap.
//!
//! tungstenite answers pings whenever its stream is polled, so a client built on it cannot
//! "read but never pong". Eviction tests and `roomcast dead-clients` need exactly that client,
//! and load tools need thousands of sockets that read many frames per syscall: [`RawSocket`]
//! completes the handshake, then hands the caller the bare [`TcpStream`] and a [`FrameReader`]
//! holding whatever bytes followed the response, to read and discard, answer late, stop reading,
//! or drop without a close frame.

mod frames;
pub mod upgrade;

use std::io;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use url::Url;

pub use self::frames::{Frame, FrameReader, MAX_FRAME_BYTES, OwnedFrame};

/// WebSocket opcodes, for [`client_frame`] and [`Frame::opcode`].
pub mod opcode {
    /// A text frame.
    pub const TEXT: u8 = 0x1;
    /// A binary frame.
    pub const BINARY: u8 = 0x2;
    /// A close frame.
    pub const CLOSE: u8 = 0x8;
    /// A ping frame.
    pub const PING: u8 = 0x9;
    /// A pong frame.
    pub const PONG: u8 = 0xA;
}

/// Read buffer per raw socket, in bytes: several small chat frames per read, and small enough
/// that 10,000 sockets cost 80 MiB at most. It grows for a larger frame.
pub const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Why a raw connection failed.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    /// TCP could not connect (refused, unreachable, timed out).
    #[error("could not connect to {url}: {source}")]
    Connect {
        /// The address tried.
        url: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The server answered, but did not switch protocols.
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

impl RawError {
    /// The socket error underneath, when there is one (to recognise "out of file descriptors").
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            RawError::Connect { source, .. } | RawError::Io { source, .. } => Some(source),
            RawError::Refused { .. } => None,
        }
    }
}

/// A socket past its upgrade, with the bytes that followed the response already buffered.
#[derive(Debug)]
pub struct RawSocket {
    /// The TCP stream; write client frames with [`RawSocket::send`].
    pub stream: TcpStream,
    /// Buffered server bytes; fill it from `stream` and take whole frames out of it.
    pub reader: FrameReader,
}

impl RawSocket {
    /// Connects to a `ws://` URL and performs the upgrade (asking for `subprotocol` when given),
    /// all within `timeout`. `wss://` is not supported here.
    pub async fn connect(
        url: &Url,
        subprotocol: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, RawError> {
        let text = crate::redact::redacted(url).to_string();
        let connecting = async {
            check_scheme(url)?;
            let (host, port) = host_port(url);
            let stream =
                TcpStream::connect((host, port))
                    .await
                    .map_err(|source| RawError::Connect {
                        url: text.clone(),
                        source,
                    })?;
            Self::upgrade(stream, url, subprotocol).await
        };
        match tokio::time::timeout(timeout, connecting).await {
            Ok(result) => result,
            Err(_) => Err(RawError::Connect {
                url: text,
                source: io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer in {timeout:?}"),
                ),
            }),
        }
    }

    /// Performs the upgrade on a socket the caller connected (for example with a small receive
    /// buffer, to make a slow reader fill up sooner).
    pub async fn upgrade(
        stream: TcpStream,
        url: &Url,
        subprotocol: Option<&str>,
    ) -> Result<Self, RawError> {
        check_scheme(url)?;
        let text = crate::redact::redacted(url).to_string();
        stream.set_nodelay(true).map_err(|source| RawError::Io {
            url: text.clone(),
            source,
        })?;
        let request = upgrade::request(url, subprotocol);
        upgrade::finish(stream, &request, &text, READ_BUFFER_BYTES).await
    }

    /// Writes one masked client frame.
    pub async fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.stream.write_all(&client_frame(opcode, payload)).await
    }

    /// Answers a ping (echoing its payload, as RFC 6455 asks).
    pub async fn pong(&mut self, payload: &[u8]) -> io::Result<()> {
        self.send(opcode::PONG, payload).await
    }

    /// The next whole server frame, reading as needed; `None` at end of stream. Cancel-safe:
    /// bytes read before a cancellation stay buffered.
    pub async fn read_frame(&mut self) -> io::Result<Option<OwnedFrame>> {
        loop {
            if let Some(frame) = self.reader.next_frame()? {
                return Ok(Some(frame.to_owned_frame()));
            }
            if self.reader.fill(&mut self.stream).await? == 0 {
                return Ok(None);
            }
        }
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

fn check_scheme(url: &Url) -> Result<(), RawError> {
    if url.scheme() == "ws" {
        return Ok(());
    }
    Err(RawError::Io {
        url: crate::redact::redacted(url).to_string(),
        source: io::Error::new(
            io::ErrorKind::Unsupported,
            "raw sockets speak ws:// only; point --url at a plain http:// or ws:// server",
        ),
    })
}

fn host_port(url: &Url) -> (&str, u16) {
    (
        url.host_str().unwrap_or("127.0.0.1"),
        url.port_or_known_default().unwrap_or(80),
    )
}

/// Encodes one final, masked client frame (clients must mask, RFC 6455 §5.3).
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    // A fixed mask is fine: masking defends proxies against chosen plaintext, not us.
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | (opcode & 0x0f));
    let len = payload.len();
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else if let Ok(len16) = u16::try_from(len) {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&len16.to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_length_in_the_right_width() {
        assert_eq!(client_frame(opcode::TEXT, b"hi")[..2], [0x81, 0x82]);
        let medium = client_frame(opcode::TEXT, &[0; 300]);
        assert_eq!(medium[..4], [0x81, 0xfe, 0x01, 0x2c]);
        let large = client_frame(opcode::BINARY, &[0; 70_000]);
        assert_eq!(large[1], 0xff);
        assert_eq!(large.len(), 70_000 + 2 + 8 + 4);
    }

    #[tokio::test]
    async fn only_plain_ws_urls_are_accepted() {
        let url = Url::parse("wss://example.com/ws").expect("URL");
        let refused = RawSocket::connect(&url, None, Duration::from_secs(1)).await;
        assert!(matches!(refused, Err(RawError::Io { .. })));
    }
}
