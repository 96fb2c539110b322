//! The bench's WebSocket upgrade, cut to what a handshake needs so the generator can open
//! sessions faster than a server accepts them.
//!
//! Profiling `bench connect` showed user space at about a tenth of the generator's CPU: the
//! rest is the kernel, and on loopback the kernel charges the sender for the receiving side's
//! work too (the server's SYN handling and child socket are built on the generator's core).
//! So what this saves is syscalls and kernel searches, then allocations:
//!
//! - the request is formatted once per distinct URL and written with one `write`;
//! - the answer is checked in the socket's own small read buffer, by the same code as every
//!   raw socket's (`roomcast_protocol::raw::upgrade`: status 101 and `Sec-WebSocket-Accept`);
//! - a loopback session binds its own source address in 127.0.0.0/8 with
//!   `IP_BIND_ADDRESS_NO_PORT`, so the port is chosen at `connect` by the 4-tuple: no
//!   ephemeral port is reserved at `bind`, and the TIME_WAIT sockets of earlier runs never
//!   make the kernel search a nearly full port range (which made back-to-back runs 5-20x
//!   slower with a plain `bind`).

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt::IpBindAddressNoPort};
use roomcast_protocol::raw::{RawError, RawSocket, upgrade};
use tokio::net::TcpSocket;
use url::{Host, Url};

/// A session's first read buffer: a 101 head is about 200 bytes. The usual 8 KiB cost 150 MB
/// of fresh, page-faulted memory over 18,000 sessions, a tenth of the generator's CPU; the
/// buffer still doubles for a larger frame (or a longer head).
pub const HEAD_BUFFER_BYTES: usize = 1024;

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
        Ok(Self {
            url: text,
            servers,
            request: upgrade::request(url, None).into_boxed_slice(),
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

    async fn upgrade(&self, stream: tokio::net::TcpStream) -> Result<RawSocket, RawError> {
        upgrade::finish(stream, &self.request, &self.url, HEAD_BUFFER_BYTES).await
    }
}

/// The source address of session `i` of a run whose addresses start at `base`: each session
/// its own, so no two share a 4-tuple whatever earlier runs left in TIME_WAIT.
pub fn source_address(base: u32, i: usize) -> Ipv4Addr {
    let offset = u32::try_from(i % LOOPBACK_HOSTS as usize).unwrap_or(0);
    let host = 1 + (base % LOOPBACK_HOSTS + offset) % LOOPBACK_HOSTS;
    Ipv4Addr::from((127 << 24) | host)
}

#[cfg(test)]
mod tests {
    use super::*;

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
