//! A bench member: one raw tutorial session that counts what it receives.
//!
//! The receive path is built so that the load generator does not set the ceiling: each wake-up
//! reads everything the socket holds into one large buffer shared by all members on the worker
//! thread (a member keeps only the bytes of a frame cut by a read), and
//! [`count_frames`] counts frames from their headers. Counters and
//! latencies are published once per wake-up, not per message.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use roomcast_protocol::raw::{MAX_FRAME_BYTES, RawSocket, client_frame, opcode};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;
use tokio::time::Instant;

use super::count::{Tally, count_frames};
use crate::load::latency::LatencyShards;
use crate::load::stamp::now_micros;

/// One read's buffer, in bytes, shared by every member on a thread: large, so that a member
/// far behind catches up in few syscalls; shared, so that 10,000 members do not each hold it.
const READ_CHUNK_BYTES: usize = 256 * 1024;

/// Pings a publisher's member hands to the publisher to answer; the server sends one per
/// interval, so a few is plenty (a full queue drops the extra, and the next one is answered).
const PENDING_PINGS: usize = 4;

thread_local! {
    static READ_CHUNK: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK_BYTES]);
}

/// What every member of a bench shares.
#[derive(Debug, Default)]
pub struct Shared {
    /// The run id that stamps must carry.
    pub run: String,
    /// Whether latencies count yet (false during warm-up and between trials).
    pub measuring: AtomicBool,
    /// Latencies of stamped messages, µs.
    pub latency: LatencyShards,
}

/// How a member treats the server's pings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Answers them itself (it is the only writer on its socket).
    Live,
    /// Hands them to its publisher, which owns the writing side.
    Publisher,
    /// Never answers, never sends anything: a dead client for the heartbeat to evict.
    Silent,
}

/// One member's counters, read by publishers (their window) and by the bench's report.
#[derive(Debug, Default)]
pub struct Member {
    /// Chat messages received.
    pub received: AtomicU64,
    /// Refusals received (`{"error":...}` frames).
    pub refused: AtomicU64,
    /// Whether its session ended (closed by the server, or its socket failed).
    pub ended: AtomicBool,
    /// The close code and when it arrived, if the server closed it.
    pub closed: Mutex<Option<(u16, Instant)>>,
    /// Pings waiting for the publisher to answer ([`Role::Publisher`] only).
    pub pings: Mutex<Vec<Vec<u8>>>,
}

impl Member {
    /// The close code and its time, if the server sent one.
    pub fn close(&self) -> Option<(u16, Instant)> {
        *self.closed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the pings waiting to be answered.
    pub fn take_pings(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.pings.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A member's socket, split.
#[derive(Debug)]
pub struct MemberSocket {
    /// The reading side.
    pub read: OwnedReadHalf,
    /// The writing side, for a member that writes its own pongs and close ([`Role::Live`]) or
    /// must keep it open without using it ([`Role::Silent`]: dropping it would send a FIN,
    /// which is not silence). A publisher takes it; its member keeps `None`.
    pub write: Option<OwnedWriteHalf>,
    /// What the upgrade read past the response head.
    pub leftover: Vec<u8>,
}

/// Receives until `stop` or the session ends; the bytes the upgrade read past the response
/// head are counted first.
pub async fn receive(
    socket: MemberSocket,
    me: Arc<Member>,
    shared: Arc<Shared>,
    task_no: usize,
    role: Role,
    mut stop: watch::Receiver<bool>,
) {
    let MemberSocket {
        mut read,
        write,
        leftover,
    } = socket;
    let mut tally = Tally::default();
    let run = shared.run.as_bytes().to_vec();
    let mut carry = Vec::new();
    // Frames that arrived with the upgrade response are counted like any other read.
    let mut outcome = absorb(&leftover, &mut carry, &run, &mut tally);
    loop {
        me.received.fetch_add(tally.messages, Ordering::Relaxed);
        if tally.refused > 0 {
            me.refused.fetch_add(tally.refused, Ordering::Relaxed);
        }
        if !tally.latencies.is_empty() && shared.measuring.load(Ordering::Relaxed) {
            shared.latency.record_micros(task_no, &tally.latencies);
        }
        if let Some(code) = tally.close {
            *me.closed.lock().unwrap_or_else(PoisonError::into_inner) =
                Some((code, Instant::now()));
            break;
        }
        if outcome.is_err()
            || answer_pings(write.as_ref(), &me, role, &mut tally)
                .await
                .is_err()
        {
            break;
        }
        tally.clear();
        outcome = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => {
                if let (Some(write), Role::Live) = (&write, role) {
                    let _best_effort = write.try_write(&close_frame());
                }
                return;
            }
            read = poll_fn(|cx| read_and_count(cx, &mut read, &mut carry, &run, &mut tally)) => read,
        };
    }
    me.ended.store(true, Ordering::Relaxed);
}

/// One read into the thread's buffer, after the carried partial frame, counted. A read that
/// does not fill the buffer drained the socket, and tokio then waits for the next readiness
/// instead of trying again: one syscall per wake-up.
fn read_and_count(
    cx: &mut Context<'_>,
    read: &mut OwnedReadHalf,
    carry: &mut Vec<u8>,
    run: &[u8],
    tally: &mut Tally,
) -> Poll<io::Result<()>> {
    READ_CHUNK.with_borrow_mut(|chunk| {
        let kept = carry.len();
        if kept + READ_CHUNK_BYTES / 2 > chunk.len() {
            // A large frame in progress: room for it and a full read after it.
            chunk.resize((kept + READ_CHUNK_BYTES).min(MAX_FRAME_BYTES * 2), 0);
        }
        chunk[..kept].copy_from_slice(carry);
        let mut buf = ReadBuf::new(&mut chunk[kept..]);
        match Pin::new(read).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()))
            }
            Poll::Ready(Ok(())) => {
                let filled = kept + buf.filled().len();
                Poll::Ready(absorb(&chunk[..filled], carry, run, tally))
            }
        }
    })
}

/// Counts the whole frames of `bytes` and keeps the cut one in `carry` (which `bytes` may
/// have been built from: it is replaced, not appended to).
fn absorb(bytes: &[u8], carry: &mut Vec<u8>, run: &[u8], tally: &mut Tally) -> io::Result<()> {
    let used = count_frames(bytes, run, now_micros(), tally)?;
    carry.clear();
    carry.extend_from_slice(&bytes[used..]);
    Ok(())
}

async fn answer_pings(
    write: Option<&OwnedWriteHalf>,
    me: &Member,
    role: Role,
    tally: &mut Tally,
) -> io::Result<()> {
    match (role, write) {
        (Role::Silent, _) => {}
        (Role::Live, Some(write)) => {
            for ping in tally.pings.drain(..) {
                write_whole(write, &client_frame(opcode::PONG, &ping)).await?;
            }
        }
        (Role::Publisher | Role::Live, _) => {
            let mut pings = me.pings.lock().unwrap_or_else(PoisonError::into_inner);
            for ping in tally.pings.drain(..) {
                if pings.len() < PENDING_PINGS {
                    pings.push(ping);
                }
            }
        }
    }
    Ok(())
}

/// Writes all of `bytes` on a socket whose only writer is the caller.
pub async fn write_whole(write: &OwnedWriteHalf, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        write.writable().await?;
        match write.try_write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A normal close (1000) from the client.
pub fn close_frame() -> Vec<u8> {
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"done");
    client_frame(opcode::CLOSE, &payload)
}

impl From<RawSocket> for MemberSocket {
    fn from(socket: RawSocket) -> Self {
        let leftover = socket.reader.pending().to_vec();
        let (read, write) = socket.stream.into_split();
        Self {
            read,
            write: Some(write),
            leftover,
        }
    }
}
