//! A WebSocket upgrade done by hand on a plain TCP socket, for clients that must misbehave.
//!
//! tungstenite answers pings whenever its stream is polled, so a client built on it cannot
//! "read but never pong". Eviction tests and `roomcast dead-clients` need exactly that client:
//! [`upgrade`] completes the handshake and hands back the bare [`TcpStream`], after which the
//! caller reads and discards, stops reading, or drops it without a close frame.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

/// Longest HTTP upgrade response accepted, in bytes; a server sending more is not a WebSocket
/// server we can talk to.
const MAX_RESPONSE_HEAD_BYTES: usize = 8 * 1024;

/// WebSocket opcodes, for [`client_frame`].
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

/// Connects to a `ws://` URL, performs the HTTP upgrade, and returns the socket positioned just
/// after the server's `101` response (no frame byte consumed). `wss://` is not supported here.
pub async fn upgrade(url: &Url, subprotocol: Option<&str>) -> io::Result<TcpStream> {
    if url.scheme() != "ws" {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("raw sockets speak ws:// only, not {}", url.scheme()),
        ));
    }
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port_or_known_default().unwrap_or(80);
    let stream = TcpStream::connect((host, port)).await?;
    upgrade_on(stream, url, subprotocol).await
}

/// Performs the upgrade of [`upgrade`] on a socket the caller connected (for example with a
/// small receive buffer, to make a slow reader fill up sooner).
pub async fn upgrade_on(
    mut stream: TcpStream,
    url: &Url,
    subprotocol: Option<&str>,
) -> io::Result<TcpStream> {
    stream.set_nodelay(true)?;
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port_or_known_default().unwrap_or(80);
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let protocol_header = subprotocol
        .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
        .unwrap_or_default();
    // The key is RFC 6455's sample nonce: servers check its shape, never its freshness.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n{protocol_header}\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let head = read_response_head(&mut stream).await?;
    let status_line = head.lines().next().unwrap_or_default();
    if !status_line.starts_with("HTTP/1.1 101") {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("upgrade refused: {status_line}"),
        ));
    }
    Ok(stream)
}

/// Reads byte by byte up to the blank line, so no frame byte after it is consumed.
async fn read_response_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_RESPONSE_HEAD_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "upgrade response too long",
            ));
        }
        head.push(stream.read_u8().await?);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// One frame as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// The opcode (see [`opcode`]).
    pub opcode: u8,
    /// The unmasked payload.
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// For a close frame: the code and reason it carries.
    pub fn close_code(&self) -> Option<(u16, String)> {
        if self.opcode != opcode::CLOSE || self.payload.len() < 2 {
            return None;
        }
        let code = u16::from_be_bytes([self.payload[0], self.payload[1]]);
        Some((
            code,
            String::from_utf8_lossy(&self.payload[2..]).into_owned(),
        ))
    }
}

/// Reads one server frame (servers never mask). Frames longer than `max_payload` bytes are an
/// error rather than an allocation the peer chose.
pub async fn read_server_frame(stream: &mut TcpStream, max_payload: usize) -> io::Result<RawFrame> {
    let first = stream.read_u8().await?;
    let second = stream.read_u8().await?;
    let len = match second & 0x7f {
        126 => u64::from(stream.read_u16().await?),
        127 => stream.read_u64().await?,
        short => u64::from(short),
    };
    let len = usize::try_from(len)
        .ok()
        .filter(|len| *len <= max_payload)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "server frame too large"))?;
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).await?;
    Ok(RawFrame {
        opcode: first & 0x0f,
        payload,
    })
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
}
