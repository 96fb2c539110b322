//! Members on the far side of a [`Netns`] link, for real silent loss: their sockets are made
//! inside the namespace and reach a server listening on the host end, so [`Netns::cut`] makes
//! them vanish without a word.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use roomcast_netns::{Netns, NetnsError};
use roomcast_protocol::raw::{RawSocket, client_frame, opcode};
use roomcast_server::Config;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

use crate::TestServer;
use crate::wait::{WAIT, within};

/// How much later than its own bound a client may report a cut link: the bound is measured from
/// its last sign of life, which came a little before the cut.
pub const NOTICE_SLACK: Duration = Duration::from_secs(2);

/// A server for clients inside `netns`: it listens on every address (they dial the link's host
/// end) while its `url` stays on loopback, where the test publishes (send-test is loopback-only
/// without an API key). Returns it and the URL a client in the namespace dials.
pub fn server_for(netns: &Netns, config: Config) -> (TestServer, String) {
    let all = SocketAddr::from(([0, 0, 0, 0], 0));
    let mut server = TestServer::start_on(crate::reusable_listener(all), config);
    let port = server.addr.port();
    server.url = format!("http://127.0.0.1:{port}")
        .parse()
        .expect("a loopback URL");
    (server, format!("http://{}:{port}", netns.host_addr()))
}

/// Fails the test unless a loss that began at `lost_at` was noticed by now, within `bound` (the
/// client's own `--server-timeout`) plus [`NOTICE_SLACK`].
pub fn assert_noticed_within(lost_at: Instant, bound: Duration) {
    let noticed_after = lost_at.elapsed();
    let latest = bound + NOTICE_SLACK;
    assert!(
        noticed_after <= latest,
        "noticed after {noticed_after:?}, past the bound plus slack ({latest:?})"
    );
}

/// A new namespace, or a test failure saying what is missing (root): never a silent skip.
pub async fn netns() -> Netns {
    match Netns::create().await {
        Ok(netns) => netns,
        Err(e) => panic!("this test needs a network namespace and could not make one: {e}"),
    }
}

/// A tutorial member whose socket lives in a namespace. It answers pings and counts chat frames
/// until its link is cut; after that nothing reaches it and nothing it sends arrives.
pub struct Remote {
    /// Its address as the server sees it (inside 198.18.0.0/15).
    pub local: SocketAddr,
    received: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Remote {
    /// Connects from inside `netns` to `server` (an address on the host end), joining
    /// `room` as `user` on the tutorial socket.
    pub async fn join(netns: &Netns, server: SocketAddr, room: &str, user: &str) -> Self {
        let stream = within(
            "a connection from the namespace",
            netns.connect(server, WAIT),
        )
        .await
        .expect("connect from the namespace");
        let local = stream.local_addr().expect("local address");
        let mut url: Url = format!("ws://{server}/ws/chat/{room}/")
            .parse()
            .expect("socket URL");
        url.query_pairs_mut().append_pair("user", user);
        let socket = within("the upgrade", RawSocket::upgrade(stream, &url, None))
            .await
            .expect("upgrade from the namespace");
        let received = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(answer(socket, received.clone()));
        Self {
            local,
            received,
            task,
        }
    }

    /// Text frames received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads everything, answers pings, counts text frames; ends with the socket.
async fn answer(mut socket: RawSocket, received: Arc<AtomicU64>) {
    loop {
        match socket.reader.fill(&mut socket.stream).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while let Ok(Some(frame)) = socket.reader.next_frame() {
            match frame.opcode {
                opcode::PING => {
                    let pong = client_frame(opcode::PONG, frame.payload);
                    if socket.stream.write_all(&pong).await.is_err() {
                        return;
                    }
                }
                opcode::TEXT => {
                    received.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    }
}

/// The kernel's TCP sockets (any state but LISTEN) whose peer is `peer`'s IP, as `ss -Htn`
/// lines. Run as a child process, off the async workers.
pub async fn sockets_to(peer: std::net::IpAddr) -> Vec<String> {
    let output = tokio::process::Command::new("ss")
        .args(["-Htn", "state", "all", "dst", &peer.to_string()])
        .output()
        .await
        .expect("ss runs (iproute2)");
    assert!(output.status.success(), "ss failed: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with("LISTEN"))
        .map(str::to_owned)
        .collect()
}
