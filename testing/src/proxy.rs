//! [`TcpProxy`]: a loopback TCP proxy between a client and the server that a test can make go
//! silent (a vanished peer: no FIN, no RST, nothing) or cut (every connection closed).
//!
//! A silent link is what a sleeping laptop, a Wi-Fi change or a NAT that forgot the flow look
//! like: both sockets stay open and nothing arrives. Without network namespaces this is the
//! closest a test gets on loopback: the proxy keeps every socket open and stops reading and
//! writing, so neither side's kernel ever reports anything.

use std::net::SocketAddr;

use roomcast_protocol::ServerUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Bytes moved per read: a few chat frames; the kernel buffers the rest.
const PUMP_CHUNK_BYTES: usize = 16 * 1024;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Bytes flow both ways.
    Forward,
    /// Sockets stay open, nothing is read or written; new connections are accepted and held
    /// (the server never sees them) until [`TcpProxy::resume`].
    Silent,
    /// Connections are closed and new ones refused until [`TcpProxy::reopen`].
    Cut,
}

#[derive(Debug, Clone, Copy)]
struct State {
    mode: Mode,
    /// Bumped by every cut: a connection from an older generation closes.
    generation: u64,
}

/// A TCP proxy in front of `target` whose link the test controls.
pub struct TcpProxy {
    /// The proxy's base URL: what the client under test dials instead of the server's.
    pub url: ServerUrl,
    state: watch::Sender<State>,
    accepting: JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding from a free loopback port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (state, watcher) = watch::channel(State {
            mode: Mode::Forward,
            generation: 0,
        });
        let accepting = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let now = *watcher.borrow();
                if now.mode == Mode::Cut {
                    continue;
                }
                tokio::spawn(carry(inbound, target, watcher.clone(), now.generation));
            }
        });
        Self {
            url: format!("http://{addr}").parse().expect("proxy URL"),
            state,
            accepting,
        }
    }

    /// Stops every byte in both directions and holds every socket open: no FIN, no RST.
    pub fn go_silent(&self) {
        self.state.send_modify(|s| s.mode = Mode::Silent);
    }

    /// Forwards again, starting with whatever was held.
    pub fn resume(&self) {
        self.state.send_modify(|s| s.mode = Mode::Forward);
    }

    /// Closes every connection (both sides see the end of the stream) and refuses new ones.
    pub fn cut(&self) {
        self.state.send_modify(|s| {
            s.mode = Mode::Cut;
            s.generation += 1;
        });
    }

    /// Accepts and forwards new connections again after a [`TcpProxy::cut`].
    pub fn reopen(&self) {
        self.state.send_modify(|s| s.mode = Mode::Forward);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        // Ends every connection's tasks, which own its sockets.
        self.cut();
    }
}

/// One client connection: held until the link forwards, then connected to `target` and pumped
/// both ways until either side ends or a cut.
async fn carry(
    inbound: TcpStream,
    target: SocketAddr,
    mut state: watch::Receiver<State>,
    generation: u64,
) {
    // While silent the server must not see the connection either: nothing has reached it.
    if !forwarding(&mut state, generation).await {
        return;
    }
    let Ok(outbound) = TcpStream::connect(target).await else {
        return;
    };
    let (client_read, client_write) = inbound.into_split();
    let (server_read, server_write) = outbound.into_split();
    tokio::join!(
        pump(client_read, server_write, state.clone(), generation),
        pump(server_read, client_write, state, generation),
    );
}

/// Waits until bytes may flow; false when the connection was cut meanwhile.
async fn forwarding(state: &mut watch::Receiver<State>, generation: u64) -> bool {
    match state
        .wait_for(|s| s.generation != generation || s.mode == Mode::Forward)
        .await
    {
        Ok(now) => now.generation == generation,
        Err(_proxy_dropped) => false,
    }
}

/// Copies `from` to `to` while the link forwards; a chunk read just before the link went
/// silent is held until it forwards again. Ends the write side when `from` ends.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut state: watch::Receiver<State>,
    generation: u64,
) {
    let mut chunk = vec![0u8; PUMP_CHUNK_BYTES];
    loop {
        if !forwarding(&mut state, generation).await {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut chunk) => read,
            // The mode changed while waiting for bytes: look again before reading on.
            _ = state.changed() => continue,
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !forwarding(&mut state, generation).await {
            return;
        }
        if to.write_all(&chunk[..n]).await.is_err() {
            return;
        }
    }
    let _peer_may_be_gone = to.shutdown().await;
}
