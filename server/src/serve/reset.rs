//! Accepted connections that can be reset instead of closed. A session evicted because its
//! peer stopped answering (a silent network loss: no FIN, no RST) would otherwise leave a socket
//! in FIN-WAIT-1 retransmitting its send queue for minutes; SO_LINGER 0 at close sends a RST and
//! frees the socket and its queue at once.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Shared between a connection and the session it carries (a request extension): arming it
/// makes the connection reset (SO_LINGER 0) when its socket is dropped.
#[derive(Debug, Clone, Default)]
pub(crate) struct ResetOnClose(Arc<AtomicBool>);

impl ResetOnClose {
    /// From now on, dropping the connection resets it.
    pub(crate) fn arm(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// An accepted TCP stream that honours its [`ResetOnClose`] when dropped.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    reset: ResetOnClose,
}

impl Connection {
    pub(crate) fn new(stream: TcpStream, reset: ResetOnClose) -> Self {
        Self { stream, reset }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.reset.0.load(Ordering::Relaxed)
            && let Err(e) = self.stream.set_zero_linger()
        {
            tracing::debug!(error = %e, "could not set SO_LINGER 0 before the reset");
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
