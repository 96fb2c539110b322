//! The bench's WebSocket upgrade, cut to what a handshake needs so the generator can open
//! sessions faster than a server accepts them.
//!
//! Profiling `bench connect` showed user space at about a tenth of the generator's CPU: the
//! rest is the kernel, and on loopback the kernel charges the sender for the receiving side's
//! work too (the server's SYN handling and child socket are built on the generator's core).
//! So what this saves is syscalls and kernel searches, then allocations:
//!
//! - the request is formatted once per distinct URL and written with one `write`;
//! - the response head is checked by hand, status line and `Sec-WebSocket-Accept` only, in
//!   the socket's own read buffer (no HTTP library, no copy);
//! - a loopback session binds its own source address in 127.0.0.0/8 with
//!   `IP_BIND_ADDRESS_NO_PORT`, so the port is chosen at `connect` by the 4-tuple: no
//!   ephemeral port is reserved at `bind`, and the TIME_WAIT sockets of earlier runs never
//!   make the kernel search a nearly full port range (which made back-to-back runs 5-20x
//!   slower with a plain `bind`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt::IpBindAddressNoPort};
use roomcast_protocol::raw::{FrameReader, READ_BUFFER_BYTES, RawError, RawSocket};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;
use url::{Host, Url};

/// The key every bench session sends: RFC 6455's sample nonce. Servers check its shape, never
/// its freshness, and a fixed key makes the expected answer a constant.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// `base64(sha1(KEY + GUID))`, RFC 6455 §1.3 (checked against tungstenite in the tests).
const ACCEPT: &[u8] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A session's first read buffer: a 101 head is about 200 bytes. The usual 8 KiB cost 150 MB
/// of fresh, page-faulted memory over 18,000 sessions, a tenth of the generator's CPU; the
/// buffer still doubles for a larger frame (or a longer head, up to [`READ_BUFFER_BYTES`]).
const HEAD_BUFFER_BYTES: usize = 1024;

/// Addresses in 127.0.0.0/8 a session may bind, skipping the network (127.0.0.0) and the
/// broadcast address (127.255.255.255).
const LOOPBACK_HOSTS: u32 = (1 << 24) - 2;

/// One URL's upgrade, prepared once: where to connect and the request bytes.
#[derive(Debug)]
pub struct Target {
    /// The URL for error messages (credentials redacted).
    url: String,
    /// The server's addresses, tried in order (one for an IP literal).
    servers: Vec<SocketAddr>,
    /// The whole request, headers and blank line.
    request: Box<[u8]>,
}

impl Target {
    /// Prepares a `ws://` URL (a host name is resolved here, once).
    pub async fn new(url: &Url) -> Result<Self, RawError> {
        let text = roomcast_protocol::redact::redacted(url).to_string();
        let unsupported = |why: &str| RawError::Io {
            url: text.clone(),
            source: io::Error::new(io::ErrorKind::Unsupported, why.to_owned()),
        };
        if url.scheme() != "ws" {
            return Err(unsupported(
                "raw sockets speak ws:// only; point --url at a plain http:// or ws:// server",
            ));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let servers = match url.host() {
            Some(Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
            Some(Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
            Some(Host::Domain(name)) => tokio::net::lookup_host((name, port))
                .await
                .map_err(|source| RawError::Connect {
                    url: text.clone(),
                    source,
                })?
                .collect(),
            None => return Err(unsupported("the URL has no host")),
        };
        let host = url.host_str().unwrap_or("127.0.0.1");
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        Ok(Self {
            url: text,
            servers,
            request: request.into_bytes().into_boxed_slice(),
        })
    }

    /// Whether sessions to this target can spread their source addresses over 127.0.0.0/8.
    pub fn on_loopback(&self) -> bool {
        self.servers
            .iter()
            .all(|s| matches!(s.ip(), IpAddr::V4(ip) if ip.is_loopback()))
    }

    /// Connects (from `source` when given), writes the request, and checks the answer: status
    /// 101 and the right `Sec-WebSocket-Accept`, all within `timeout`. Anything else is an
    /// error, never a session.
    pub async fn open(
        &self,
        source: Option<Ipv4Addr>,
        timeout: Duration,
    ) -> Result<RawSocket, RawError> {
        match tokio::time::timeout(timeout, self.try_servers(source)).await {
            Ok(opened) => opened,
            Err(_) => Err(RawError::Connect {
                url: self.url.clone(),
                source: io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer in {timeout:?}"),
                ),
            }),
        }
    }

    async fn try_servers(&self, source: Option<Ipv4Addr>) -> Result<RawSocket, RawError> {
        let mut last = None;
        for server in &self.servers {
            match self.connect(*server, source).await {
                Ok(stream) => return self.upgrade(stream).await,
                Err(e) => last = Some(e),
            }
        }
        Err(RawError::Connect {
            url: self.url.clone(),
            source: last.unwrap_or_else(|| io::Error::other("the host resolved to no address")),
        })
    }

    async fn connect(
        &self,
        server: SocketAddr,
        source: Option<Ipv4Addr>,
    ) -> io::Result<tokio::net::TcpStream> {
        let socket = match server {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        // Frames written later (fan-out publishers) must not wait for Nagle.
        socket.set_nodelay(true)?;
        // Delayed-ACK ("pingpong") mode from the start: the handshake's last ACK then rides on
        // the request instead of crossing loopback as a packet of its own.
        socket2::SockRef::from(&socket).set_tcp_quickack(false)?;
        if let (Some(source), SocketAddr::V4(_)) = (source, server) {
            setsockopt(&socket, IpBindAddressNoPort, &true).map_err(io::Error::from)?;
            socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
        }
        socket.connect(server).await
    }

    async fn upgrade(&self, mut stream: tokio::net::TcpStream) -> Result<RawSocket, RawError> {
        let io_error = |source| RawError::Io {
            url: self.url.clone(),
            source,
        };
        stream.write_all(&self.request).await.map_err(io_error)?;
        let mut reader = FrameReader::new(HEAD_BUFFER_BYTES);
        let head_end = loop {
            if let Some(end) = head_end(reader.pending()) {
                break end;
            }
            // The buffer does not grow for a head; a longer one is not a server we talk to.
            if reader.pending().len() >= READ_BUFFER_BYTES {
                let long = io::Error::new(io::ErrorKind::InvalidData, "upgrade response too long");
                return Err(io_error(long));
            }
            if reader.fill(&mut stream).await.map_err(io_error)? == 0 {
                return Err(io_error(io::ErrorKind::UnexpectedEof.into()));
            }
        };
        check_head(&reader.pending()[..head_end]).map_err(|e| match e {
            HeadError::Status(status) => RawError::Refused {
                url: self.url.clone(),
                status,
            },
            HeadError::Accept(why) => {
                io_error(io::Error::new(io::ErrorKind::InvalidData, why.to_owned()))
            }
        })?;
        reader.consume(head_end);
        Ok(RawSocket { stream, reader })
    }
}

/// The source address of session `i` of a run whose addresses start at `base`: each session
/// its own, so no two share a 4-tuple whatever earlier runs left in TIME_WAIT.
pub fn source_address(base: u32, i: usize) -> Ipv4Addr {
    let offset = u32::try_from(i % LOOPBACK_HOSTS as usize).unwrap_or(0);
    let host = 1 + (base % LOOPBACK_HOSTS + offset) % LOOPBACK_HOSTS;
    Ipv4Addr::from((127 << 24) | host)
}

/// Why a response head is not a WebSocket upgrade.
#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    /// Not status 101: the status line, for the error.
    Status(String),
    /// 101 without the right `Sec-WebSocket-Accept`.
    Accept(&'static str),
}

/// Where the head ends (after its blank line), once it is all buffered.
fn head_end(pending: &[u8]) -> Option<usize> {
    pending
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// Checks the status line and `Sec-WebSocket-Accept` of a response head.
fn check_head(head: &[u8]) -> Result<(), HeadError> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let status = lines.next().unwrap_or_default();
    let switched = status
        .strip_prefix(b"HTTP/1.1 101")
        .is_some_and(|rest| rest.is_empty() || rest[0] == b' ');
    if !switched {
        return Err(HeadError::Status(
            String::from_utf8_lossy(status).into_owned(),
        ));
    }
    let accept = lines.find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        line[..colon]
            .eq_ignore_ascii_case(b"sec-websocket-accept")
            .then(|| line[colon + 1..].trim_ascii())
    });
    match accept {
        Some(value) if value == ACCEPT => Ok(()),
        Some(_) => Err(HeadError::Accept("wrong Sec-WebSocket-Accept in the 101")),
        None => Err(HeadError::Accept("no Sec-WebSocket-Accept in the 101")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_accept_is_the_one_the_key_derives() {
        let derived = tokio_tungstenite::tungstenite::handshake::derive_accept_key(KEY.as_bytes());
        assert_eq!(derived.as_bytes(), ACCEPT);
    }

    #[test]
    fn a_101_with_the_right_accept_passes_in_any_header_case() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\
            sec-websocket-accept:s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(check_head(head), Ok(()));
        let head = b"HTTP/1.1 101\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n\r\n";
        assert_eq!(check_head(head), Ok(()));
    }

    #[test]
    fn other_statuses_and_wrong_or_missing_accepts_fail() {
        let refused = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            check_head(refused),
            Err(HeadError::Status("HTTP/1.1 403 Forbidden".to_owned()))
        );
        assert!(matches!(
            check_head(b"HTTP/1.1 1010 Odd\r\n\r\n"),
            Err(HeadError::Status(_))
        ));
        let wrong = b"HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: AAAA\r\n\r\n";
        assert!(matches!(check_head(wrong), Err(HeadError::Accept(_))));
        let missing = b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n\r\n";
        assert!(matches!(check_head(missing), Err(HeadError::Accept(_))));
    }

    #[test]
    fn the_head_ends_after_its_blank_line() {
        assert_eq!(head_end(b"HTTP/1.1 101\r\n\r\n\x81\x00"), Some(16));
        assert_eq!(head_end(b"HTTP/1.1 101\r\n"), None);
    }

    #[test]
    fn source_addresses_stay_in_loopback_and_differ_per_session() {
        let first = source_address(u32::MAX, 0);
        let second = source_address(u32::MAX, 1);
        assert!(first.is_loopback() && second.is_loopback());
        assert_ne!(first, second);
        for i in [0, 1, LOOPBACK_HOSTS as usize - 1, LOOPBACK_HOSTS as usize] {
            let address = source_address(7, i);
            assert!(address.is_loopback());
            assert_ne!(address, Ipv4Addr::new(127, 0, 0, 0));
            assert_ne!(address, Ipv4Addr::new(127, 255, 255, 255));
        }
    }
}
