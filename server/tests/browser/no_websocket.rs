//! A proxy that passes plain HTTP (pages, scripts, SSE streams) and refuses every WebSocket
//! upgrade with 403, like a corporate proxy or an old load balancer that breaks WebSockets.
//! It counts the upgrades it refused, so a test knows the page really tried one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Longest request head read before deciding; a longer one is dropped (a browser's is ~1 KiB).
const MAX_HEAD_BYTES: usize = 16 * 1024;

pub struct NoWebSocketProxy {
    pub addr: SocketAddr,
    refused: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl NoWebSocketProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let refused = Arc::new(AtomicU64::new(0));
        let counter = refused.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(serve(inbound, target, counter.clone()));
            }
        });
        Self {
            addr,
            refused,
            task,
        }
    }

    /// `http://PROXY` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// WebSocket upgrades refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Drop for NoWebSocketProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the first request head: an upgrade gets 403; anything else is piped to `target`,
/// head included. Chromium opens a connection of its own for each WebSocket, so deciding on
/// the first request of a connection sees every upgrade.
async fn serve(mut inbound: TcpStream, target: SocketAddr, refused: Arc<AtomicU64>) {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match inbound.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        if head.len() > MAX_HEAD_BYTES {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if text.contains("\r\nupgrade: websocket") {
        refused.fetch_add(1, Ordering::Relaxed);
        let answer = "HTTP/1.1 403 Forbidden\r\ncontent-length: 22\r\nconnection: close\r\n\r\n\
                      websockets are blocked";
        let _gone = inbound.write_all(answer.as_bytes()).await;
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(target).await else {
        return;
    };
    if outbound.write_all(&head).await.is_err() {
        return;
    }
    let _ended = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}
