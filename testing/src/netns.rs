//! Members on the far side of a [`Netns`] link, for real silent loss: their sockets are made
//! inside the namespace and reach a server listening on the host end, so [`Netns::cut`] makes
//! them vanish without a word.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use roomcast_netns::{Netns, NetnsError};
use roomcast_protocol::raw::{RawSocket, client_frame, opcode};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;
use url::Url;

use crate::wait::{WAIT, within};

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
