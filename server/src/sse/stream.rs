//! One follower's stream: the response body that takes its outbox's events and hands them to
//! hyper, one event per chunk (hyper writes several in one vectored write, without copying).
//!
//! The body only runs while hyper polls it, which stops while the peer does not read. What must
//! happen anyway (the heartbeat, finding a reader that fell behind, letting go of its
//! connection) is the watchdog's job (`watchdog.rs`), which shares [`Watch`] with this stream.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::Stream;
use roomcast_protocol::LeaveReason;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tokio_util::task::task_tracker::TaskTrackerToken;

use super::cursor::Cursor;
use super::event;
use crate::frames::Frame;
use crate::outbox::{Outbox, Ready, charge_of};
use crate::registry::Membership;
use crate::state::AppState;

/// What the stream and its watchdog share.
#[derive(Debug)]
pub(crate) struct Watch {
    /// The follower's rooms, left by whichever ends it first: the stream's last event, the
    /// watchdog's eviction of a peer that does not read (hyper then no longer polls the
    /// stream), or the stream's drop.
    memberships: Mutex<Vec<Membership>>,
    /// Events handed to hyper so far: a watchdog that sees it stand still while bytes are
    /// queued knows the reader stalled.
    pub(crate) yielded: AtomicU64,
    /// Set by whichever of the two first sees the follower fall behind, so the eviction is
    /// counted once.
    evicted: AtomicBool,
    /// Cancelled when the stream ends, however it ends.
    pub(crate) done: CancellationToken,
}

impl Watch {
    /// Shared state for a follower of `memberships`.
    pub(crate) fn new(memberships: Vec<Membership>) -> Self {
        Self {
            memberships: Mutex::new(memberships),
            yielded: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            done: CancellationToken::new(),
        }
    }

    /// Leaves every room, telling them `reason` (once: later calls find nothing to leave).
    pub(crate) fn leave_all(&self, reason: Option<LeaveReason>) {
        let memberships = std::mem::take(
            &mut *self
                .memberships
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        // Dropped outside the lock: leaving takes each room's lock.
        for mut membership in memberships {
            if let Some(reason) = reason {
                membership.set_reason(reason);
            }
        }
    }

    /// Counts the eviction of a slow follower, once.
    pub(crate) fn evict(&self, state: &AppState) {
        if !self.evicted.swap(true, Ordering::Relaxed) {
            state.metrics.record_eviction("slow");
            tracing::info!(
                max_queue_bytes = state.config.max_queue_bytes,
                "SSE follower evicted: it fell --max-queue-bytes behind or stalled past --write-timeout"
            );
        }
    }
}

/// Resources a follower holds for its whole stream and releases by being dropped.
#[derive(Debug)]
pub(crate) struct FollowerGuards {
    /// One of `--max-connections`.
    pub(crate) _permit: OwnedSemaphorePermit,
    /// One of `--max-connections-per-ip` for the client's IP (when that limit is on): a
    /// stream counts like a WebSocket session.
    pub(crate) _ip: Option<crate::access::IpPermit>,
    /// Lets shutdown wait for this stream.
    pub(crate) _tracked: TaskTrackerToken,
}

/// A follower of one or more rooms, as a response body.
#[derive(Debug)]
pub(crate) struct Follower {
    pub(crate) outbox: Outbox,
    /// Multi-room streams: every room's position, whose text replaces each event's one-room
    /// id. `None` for one room, whose events go out exactly as the room encoded them.
    pub(crate) cursor: Option<Cursor>,
    pub(crate) watch: Arc<Watch>,
    pub(crate) state: Arc<AppState>,
    pub(crate) _guards: FollowerGuards,
}

/// The running stream (what [`Follower::into_stream`] returns).
struct Running {
    follower: Follower,
    taken: VecDeque<Frame>,
    /// Fires in this follower's drain wave.
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    ended: bool,
}

impl Follower {
    /// The body: events until the follower is evicted, shutdown (wave `id`) ends it, or the
    /// peer goes.
    pub(crate) fn into_stream(
        self,
        id: crate::session::SessionId,
    ) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
        self.state.metrics.follower_opened();
        let running = Running {
            shutdown: Box::pin(self.state.drain.signal(id)),
            follower: self,
            taken: VecDeque::new(),
            ended: false,
        };
        futures_util::stream::unfold(running, |mut running| async move {
            let chunk = running.next_chunk().await?;
            Some((Ok(chunk), running))
        })
    }
}

impl Running {
    /// The next chunk for hyper, or `None` once the stream has ended.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        loop {
            if let Some(frame) = self.taken.pop_front() {
                let follower = &mut self.follower;
                follower.outbox.release(charge_of(&frame));
                follower.watch.yielded.fetch_add(1, Ordering::Relaxed);
                return Some(follower.with_cursor(&frame));
            }
            let outbox = self.follower.outbox.clone();
            tokio::select! {
                biased;
                () = &mut self.shutdown => {
                    return Some(self.end("shutdown", "shutdown", "the server is shutting down; reconnect", LeaveReason::Shutdown));
                }
                ready = outbox.ready() => match ready {
                    Ready::Frames => outbox.take_all(&mut self.taken),
                    Ready::Overflowed => {
                        let follower = &self.follower;
                        follower.watch.evict(&follower.state);
                        let message = format!(
                            "this follower fell {} bytes behind (--max-queue-bytes) or stalled; reconnect to resume",
                            follower.state.config.max_queue_bytes
                        );
                        return Some(self.end("evicted", "slow", &message, LeaveReason::Slow));
                    }
                },
            }
        }
    }

    /// Leaves every room, and returns the stream's last event.
    fn end(&mut self, event: &str, reason: &str, message: &str, leave: LeaveReason) -> Bytes {
        self.ended = true;
        let follower = &mut self.follower;
        follower.watch.leave_all(Some(leave));
        follower.outbox.close();
        self.taken.clear();
        let config = &follower.state.config;
        let spread = if leave == LeaveReason::Shutdown {
            config.drain_window + config.sse_retry
        } else {
            config.sse_retry
        };
        event::ended(
            event,
            reason,
            message,
            super::jittered_millis(config.sse_retry, spread),
        )
    }
}

impl Follower {
    /// A multi-room stream's events carry the whole cursor: the event's own position (its
    /// first line) is folded into it and the cursor written in its place.
    fn with_cursor(&mut self, frame: &Frame) -> Bytes {
        let bytes = frame.bytes().clone();
        let Some(cursor) = &mut self.cursor else {
            return bytes;
        };
        let Some(rest) = bytes.strip_prefix(b"id: ") else {
            return bytes;
        };
        let Some(end) = rest.iter().position(|b| *b == b'\n') else {
            return bytes;
        };
        let Some(position) = std::str::from_utf8(&rest[..end])
            .ok()
            .and_then(|text| Cursor::parse(text, 1).ok())
            .and_then(|one| one.first().cloned())
        else {
            return bytes;
        };
        cursor.set(position);
        let tail = &rest[end..];
        let text = cursor.to_string();
        let mut out = Vec::with_capacity(4 + text.len() + tail.len());
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(tail);
        Bytes::from(out)
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.watch.leave_all(None);
        self.watch.done.cancel();
        self.outbox.close();
        self.state.metrics.follower_closed();
    }
}
