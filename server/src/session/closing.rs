//! How a session ends: it leaves its rooms, then closes the socket as RFC 6455 §7.1.1 asks
//! when the peer can still hear it (close frame, then our FIN, then discard what the peer still
//! sends until it closes too), and with a reset when it cannot, so that what the kernel holds
//! for a dead peer is freed at once.

use std::io;
use std::net::Shutdown;
use std::time::Duration;

use roomcast_protocol::close::fit_close_reason;
use socket2::SockRef;
use tokio::net::TcpStream;
use tracing::{debug, info};

use super::writer::Writer;
use super::{Connection, Exit, Session};
use crate::frames::Frame;
use crate::websocket::tcp;

/// How long the close frame may take to reach the kernel (after any half-written frame)
/// before the socket is reset instead: a peer that takes nothing for this long is not reading.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long to keep reading after our close frame for the peer to close its side, so the
/// closing handshake completes and the peer sees a clean close rather than a reset. A peer that
/// has not closed by then is reset.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Bytes discarded per read while lingering.
const DISCARD_CHUNK_BYTES: usize = 1024;

impl Session {
    /// Leaves every room (telling the others why), then closes the socket.
    pub(super) async fn end(mut self, connection: Connection, exit: &Exit) {
        let reason = exit.leave_reason();
        // Members waiting on this session's last publishes must not wait for the next one.
        self.flush_deferred();
        for (_, mut membership) in self.memberships.drain() {
            membership.set_reason(reason);
        }
        // The session is over for everyone else; only its closing handshake remains.
        self.state.metrics.session_closed();
        if let Some(label) = exit.eviction_label() {
            self.state.metrics.record_eviction(label);
        }
        let frame = match exit {
            Exit::ClientClosed(Some(code)) => Some(Frame::close(*code, "")),
            Exit::ClientClosed(None) => Some(Frame::close_empty()),
            _ => exit.close_frame().map(|(code, text)| {
                if exit.eviction_label().is_some_and(|l| l != "shutdown") {
                    info!(session = self.id, user = %self.user, code = code.as_u16(), reason = %text, "evicted");
                }
                Frame::close(code.as_u16(), fit_close_reason(&text))
            }),
        };
        let stream = &connection.stream;
        let Some(frame) = frame.filter(|_| exit.peer_takes_bytes()) else {
            tcp::reset_on_close(stream);
            debug!(session = self.id, ?exit, "session ended; socket reset");
            return;
        };
        self.writer.drop_all_but_current();
        self.writer.put_ahead(frame, &connection.stream);
        let sent = tokio::time::timeout(
            CLOSE_WRITE_TIMEOUT,
            flush(&connection.stream, &mut self.writer),
        )
        .await;
        let stream = &connection.stream;
        if !matches!(sent, Ok(Ok(()))) {
            debug!(session = self.id, "close frame not delivered; socket reset");
            tcp::reset_on_close(stream);
            return;
        }
        if let Err(e) = SockRef::from(stream).shutdown(Shutdown::Write) {
            debug!(session = self.id, error = %e, "shutdown of the write side failed");
        }
        if !linger(stream).await {
            debug!(
                session = self.id,
                "peer did not complete the closing handshake; socket reset"
            );
            tcp::reset_on_close(stream);
            return;
        }
        debug!(session = self.id, ?exit, "session ended");
    }
}

/// Writes everything the writer holds.
async fn flush(stream: &TcpStream, writer: &mut Writer) -> io::Result<()> {
    loop {
        writer.write_turn(stream)?;
        if !writer.has_pending() {
            return Ok(());
        }
        stream.writable().await?;
    }
}

/// Reads and drops input until the peer closes its side (true) or [`CLOSE_LINGER`] passes or
/// the connection fails (false).
async fn linger(stream: &TcpStream) -> bool {
    let closed = tokio::time::timeout(CLOSE_LINGER, async {
        loop {
            if stream.readable().await.is_err() {
                return false;
            }
            match discard(stream) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return false,
            }
        }
    });
    closed.await.unwrap_or(false)
}

/// One read into a throwaway buffer; kept out of the async fn so the buffer lives on the
/// stack, not in every session's future.
fn discard(stream: &TcpStream) -> io::Result<usize> {
    let mut sink = [0; DISCARD_CHUNK_BYTES];
    stream.try_read(&mut sink)
}
