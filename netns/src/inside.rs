//! Sockets made inside the namespace. A socket belongs to the namespace of the thread that
//! created it, for its whole life; so a short-lived thread enters the namespace (setns), makes
//! the socket, and hands it back to the caller's runtime. The caller's own threads never move.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use tokio::sync::oneshot;

/// Runs `make` on a new thread inside the namespace mounted at `path`; returns its result.
async fn on_thread_inside<T: Send + 'static>(
    path: String,
    make: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("netns-socket".to_owned())
        .spawn(move || {
            let made = File::open(&path)
                .and_then(|ns| setns(&ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from))
                .and_then(|()| make());
            let _caller_gone = tx.send(made);
        })?;
    rx.await
        .map_err(|_| io::Error::other("the namespace thread ended without an answer"))?
}

/// A TCP connection to `addr`, made from inside the namespace (within `timeout`).
pub(crate) async fn connect(
    path: String,
    addr: SocketAddr,
    timeout: Duration,
) -> io::Result<tokio::net::TcpStream> {
    let stream = on_thread_inside(path, move || {
        let stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nonblocking(true)?;
        Ok(stream)
    })
    .await?;
    tokio::net::TcpStream::from_std(stream)
}

/// A TCP listener on `addr`, bound inside the namespace.
pub(crate) async fn bind(path: String, addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let listener = on_thread_inside(path, move || {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    })
    .await?;
    tokio::net::TcpListener::from_std(listener)
}
