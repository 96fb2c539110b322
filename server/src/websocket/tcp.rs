//! What the kernel keeps for a session: bounded like our own queue, and freed at eviction.

use std::time::Duration;

use socket2::SockRef;
use tokio::net::TcpStream;
use tracing::debug;

/// Bounds the kernel's side of a session's socket and ties dead-peer detection to the
/// heartbeat:
/// - `send_buffer_bytes` (`--send-buffer-bytes`, 0 leaves the kernel's autotuning) caps
///   `SO_SNDBUF`: autotuning lets a reader that stopped hold up to `net.ipv4.tcp_wmem`'s
///   maximum (4 MiB here) of kernel memory beyond `--max-queue-bytes`.
/// - `TCP_USER_TIMEOUT` is `dead_after` (ping interval + ping timeout): bytes the peer has not
///   acknowledged by then end the connection in the kernel, as the heartbeat would.
///
/// A failure is logged and the session goes on with the kernel's defaults.
pub(crate) fn bound(stream: &TcpStream, send_buffer_bytes: usize, dead_after: Duration) {
    let socket = SockRef::from(stream);
    if send_buffer_bytes > 0
        && let Err(e) = socket.set_send_buffer_size(send_buffer_bytes)
    {
        debug!(error = %e, "could not set SO_SNDBUF");
    }
    if let Err(e) = socket.set_tcp_user_timeout(Some(dead_after)) {
        debug!(error = %e, "could not set TCP_USER_TIMEOUT");
    }
}

/// Makes closing `stream` a reset: the kernel drops what the peer has not read instead of
/// retrying it for minutes in FIN-WAIT-1 (nginx's `reset_timedout_connection`). For peers that
/// stopped taking bytes, whose queue would otherwise outlive their session.
pub(crate) fn reset_on_close(stream: &TcpStream) {
    if let Err(e) = stream.set_zero_linger() {
        debug!(error = %e, "could not set SO_LINGER 0");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use socket2::SockRef;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    async fn connected_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        (client.expect("connect"), accepted.expect("accept").0)
    }

    #[tokio::test]
    async fn the_kernel_side_is_bounded_and_tied_to_the_heartbeat() {
        let (_client, server) = connected_pair().await;
        bound(&server, 64 * 1024, Duration::from_secs(50));
        let socket = SockRef::from(&server);
        // Linux doubles the value for its bookkeeping, and caps it; either way it is no longer
        // the autotuned 4 MiB.
        let send_buffer = socket.send_buffer_size().expect("SO_SNDBUF");
        assert!(send_buffer <= 2 * 64 * 1024, "{send_buffer}");
        assert_eq!(
            socket.tcp_user_timeout().expect("TCP_USER_TIMEOUT"),
            Some(Duration::from_secs(50))
        );
        reset_on_close(&server);
        assert_eq!(socket.linger().expect("SO_LINGER"), Some(Duration::ZERO));
    }

    #[tokio::test]
    async fn zero_leaves_the_send_buffer_to_the_kernel() {
        let (_client, server) = connected_pair().await;
        let before = SockRef::from(&server)
            .send_buffer_size()
            .expect("SO_SNDBUF");
        bound(&server, 0, Duration::from_secs(50));
        assert_eq!(
            SockRef::from(&server)
                .send_buffer_size()
                .expect("SO_SNDBUF"),
            before
        );
    }
}
