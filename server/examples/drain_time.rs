//! How long shutdown takes with MEMBERS typed sessions (each its own user) in one room.
//!
//! Typed members get `join`/`leave` presence events, so every leave during a drain could cost
//! a push to every remaining member. The program connects the members (raw sockets asking for
//! `roomcast.v1`, each read by a task that counts frames and answers the server's close), waits
//! until every member has read every presence event of the joins, then triggers the library's
//! shutdown and times `run` until it returns.
//!
//! ```sh
//! cargo run --release -p roomcast-server --example drain_time -- 5000
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use roomcast_protocol::raw::{RawSocket, client_frame, opcode};
use roomcast_protocol::{SUBPROTOCOL_V1, ServerUrl};
use roomcast_server::{Config, run};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};

/// Members when no count is given.
const DEFAULT_MEMBERS: u64 = 5_000;
/// Upgrades in flight while connecting.
const CONNECTING: usize = 64;
/// Longest wait for any phase (connecting, reading the presence storm).
const PHASE_LIMIT: Duration = Duration::from_secs(900);
/// No frame read for this long: the presence storm is over.
const QUIET: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let members: u64 = match std::env::args().nth(1) {
        Some(text) => text.parse()?,
        None => DEFAULT_MEMBERS,
    };
    let config = Config {
        // The drain is measured, not cut short.
        shutdown_grace: Duration::from_secs(120),
        // Connecting takes minutes on a busy machine; no member may be evicted meanwhile.
        ping_interval: Duration::from_secs(3600),
        // The presence storm of 5,000 joins is up to 300 KB per member; evict nobody for it.
        max_queue_bytes: 16 * 1024 * 1024,
        ..Config::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url: ServerUrl = format!("http://{}", listener.local_addr()?).parse()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let config = config.validate()?;
    let server = tokio::spawn(run(listener, config, async move {
        let _ = stopped.await;
    }));

    let frames_read = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));
    let connecting = Arc::new(Semaphore::new(CONNECTING));
    let started = Instant::now();
    let mut readers = Vec::new();
    for member in 0..members {
        let permit = connecting.clone().acquire_owned().await?;
        let mut socket_url = url.ws("ws/chat/drain/");
        socket_url
            .query_pairs_mut()
            .append_pair("user", &format!("m{member}"));
        let socket = RawSocket::connect(&socket_url, Some(SUBPROTOCOL_V1), PHASE_LIMIT).await?;
        drop(permit);
        readers.push(tokio::spawn(read_until_closed(
            socket,
            frames_read.clone(),
            closed.clone(),
        )));
    }
    // welcome + joined for each, and one `join` event per earlier member for every later one.
    let expected = 2 * members + members * (members - 1) / 2;
    let waiting = Instant::now();
    let mut last = (0, Instant::now());
    loop {
        let read = frames_read.load(Ordering::Relaxed);
        if read >= expected {
            break;
        }
        if read != last.0 {
            last = (read, Instant::now());
        } else if last.1.elapsed() > QUIET {
            eprintln!("frames stopped at {read} of {expected}; measuring anyway");
            break;
        }
        anyhow::ensure!(
            waiting.elapsed() < PHASE_LIMIT,
            "read {read} of {expected} frames"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let closed_early = closed.load(Ordering::Relaxed);
    eprintln!(
        "{members} members joined and read {} of {expected} frames in {:?}; {closed_early} \
         were closed before shutdown",
        frames_read.load(Ordering::Relaxed),
        started.elapsed()
    );

    let draining = Instant::now();
    let _ = stop.send(());
    server.await?;
    let drain = draining.elapsed();
    println!(
        "members {members}: run returned {drain:?} after shutdown began; {} of {members} \
         members saw a close frame",
        closed.load(Ordering::Relaxed)
    );
    for reader in readers {
        reader.abort();
    }
    Ok(())
}

/// Reads and counts text frames (answering pings) until the server's close frame, which it
/// answers.
async fn read_until_closed(
    mut socket: RawSocket,
    frames_read: Arc<AtomicU64>,
    closed: Arc<AtomicU64>,
) {
    loop {
        loop {
            match socket.reader.next_frame() {
                Ok(Some(frame)) if frame.opcode == opcode::CLOSE => {
                    closed.fetch_add(1, Ordering::Relaxed);
                    let reply = client_frame(opcode::CLOSE, &1000u16.to_be_bytes());
                    let _ = socket.stream.write_all(&reply).await;
                    return;
                }
                Ok(Some(frame)) if frame.opcode == opcode::PING => {
                    let pong = client_frame(opcode::PONG, frame.payload);
                    if socket.stream.write_all(&pong).await.is_err() {
                        return;
                    }
                }
                Ok(Some(_)) => {
                    frames_read.fetch_add(1, Ordering::Relaxed);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        match socket.reader.fill(&mut socket.stream).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
