//! Raw WebSocket sockets: the upgrade done by hand over a plain TCP stream.
//!
//! `roomcast_protocol::raw` reads its upgrade response byte by byte, which is right for a
//! handful of misbehaving sockets but costs a syscall per byte. The load commands open
//! thousands, so this upgrade reads the response into the [`FrameReader`] that then serves the
//! socket's frames; bytes that follow the response are kept, not lost.

use std::io;
use std::time::Duration;

use roomcast_protocol::raw::{client_frame, opcode};
use roomcast_protocol::{RoomName, ServerUrl, UserName};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use url::Url;

use super::frames::FrameReader;
use crate::exit::Unreachable;

/// Read buffer per raw socket, in bytes: several small chat frames per read, and small enough
/// that 10,000 sockets cost 80 MiB at most.
pub const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Longest upgrade response head accepted, in bytes.
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// `room`'s socket, naming the session `user` (so the room's presence can tell it apart).
pub fn room_socket_as(server: &ServerUrl, room: &RoomName, user: &UserName) -> Url {
    let mut url = server.room_socket(room);
    url.query_pairs_mut().append_pair("user", user.as_str());
    url
}

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
