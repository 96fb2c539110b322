//! A session's outbound queue, bounded in bytes.
//!
//! Rooms push encoded frames into members' outboxes without ever waiting: a push either queues
//! the frame or, when the member has fallen `max_queue_bytes` behind, marks the outbox
//! overflowed and refuses it. The session task drains frames in batches and writes each batch
//! with one flush. Bytes stay counted until they are written, so the queue plus the batch in
//! flight never hold more than the bound.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::Notify;

/// Bytes charged per queued frame on top of its payload: the queue slot itself. Without it a
/// flood of empty frames would be "free" and unbounded in memory.
const FRAME_OVERHEAD_BYTES: usize = std::mem::size_of::<Utf8Bytes>();

/// Most payload bytes taken in one batch. A batch is written with one flush; capping it lets the
/// session loop get back to reading pongs and ticking the heartbeat between batches.
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// A cheap, cloneable handle to one session's queue. Rooms hold one per member.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Woken on the empty → non-empty transition and on overflow; a single consumer waits.
    wake: Notify,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Utf8Bytes>,
    /// Bytes queued plus bytes taken by the batch being written.
    bytes: usize,
    overflowed: bool,
    closed: bool,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Push {
    /// The frame was queued.
    Queued,
    /// This push passed the bound: the frame was refused and the session will be evicted.
    Overflowed,
    /// The outbox had already overflowed or closed; the frame was refused.
    Refused,
}

/// What the session should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    /// Frames are waiting: take them with [`Outbox::take_batch`].
    Frames,
    /// The reader fell too far behind: evict the session as slow.
    Overflowed,
}

impl Outbox {
    /// An empty outbox holding at most `max_bytes`.
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                wake: Notify::new(),
                max_bytes,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves only a queue behind; keep serving.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `frame` unless that would pass the byte bound. Never waits.
    pub(crate) fn push(&self, frame: Utf8Bytes) -> Push {
        let cost = frame.len() + FRAME_OVERHEAD_BYTES;
        let mut state = self.state();
        if state.overflowed || state.closed {
            return Push::Refused;
        }
        if state.bytes + cost > self.shared.max_bytes {
            state.overflowed = true;
            state.frames.clear();
            drop(state);
            self.shared.wake.notify_one();
            return Push::Overflowed;
        }
        let was_empty = state.frames.is_empty();
        state.bytes += cost;
        state.frames.push_back(frame);
        drop(state);
        if was_empty {
            self.shared.wake.notify_one();
        }
        Push::Queued
    }

    /// Waits until frames are queued or the outbox overflowed. Cancel-safe.
    pub(crate) async fn ready(&self) -> Ready {
        loop {
            let woken = self.shared.wake.notified();
            {
                let state = self.state();
                if state.overflowed {
                    return Ready::Overflowed;
                }
                if !state.frames.is_empty() {
                    return Ready::Frames;
                }
            }
            woken.await;
        }
    }

    /// Waits until the outbox overflows (raced against a stalled write). Cancel-safe.
    pub(crate) async fn overflowed(&self) {
        loop {
            let woken = self.shared.wake.notified();
            if self.state().overflowed {
                return;
            }
            woken.await;
        }
    }

    /// Moves up to [`MAX_BATCH_BYTES`] of frames (at least one) into `batch` and returns the
    /// bytes they are charged; pass that to [`Outbox::release`] once they are written.
    pub(crate) fn take_batch(&self, batch: &mut Vec<Utf8Bytes>) -> usize {
        let mut state = self.state();
        let mut taken = 0;
        while let Some(frame) = state.frames.pop_front() {
            taken += frame.len() + FRAME_OVERHEAD_BYTES;
            batch.push(frame);
            if taken >= MAX_BATCH_BYTES {
                break;
            }
        }
        taken
    }

    /// Gives back the bytes of a written batch.
    pub(crate) fn release(&self, bytes: usize) {
        let mut state = self.state();
        state.bytes = state.bytes.saturating_sub(bytes);
    }

    /// Refuses every later push and frees what is queued (the session is ending).
    pub(crate) fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        state.frames = VecDeque::new();
        state.bytes = 0;
    }

    /// Bytes queued or in flight (for tests and stats).
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.state().bytes
    }
}

/// Counts from one fan-out, folded into metrics once per fan-out rather than per member.
#[derive(Debug, Default)]
pub(crate) struct FanOut {
    pub(crate) delivered: usize,
    pub(crate) bytes: usize,
    pub(crate) overflowed: usize,
}

impl FanOut {
    /// Pushes `frame` into `outbox` and counts what happened.
    pub(crate) fn push(&mut self, outbox: &Outbox, frame: Utf8Bytes) {
        let len = frame.len();
        match outbox.push(frame) {
            Push::Queued => {
                self.delivered += 1;
                self.bytes += len;
            }
            Push::Overflowed => self.overflowed += 1,
            Push::Refused => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Utf8Bytes {
        Utf8Bytes::from("x".repeat(len))
    }

    #[test]
    fn pushes_past_the_bound_overflow_once_then_refuse() {
        let outbox = Outbox::new(1000);
        assert_eq!(outbox.push(frame(500)), Push::Queued);
        assert_eq!(outbox.push(frame(500)), Push::Overflowed);
        assert_eq!(outbox.push(frame(1)), Push::Refused);
        assert_eq!(outbox.queued_bytes(), 500 + FRAME_OVERHEAD_BYTES);
    }

    #[test]
    fn bytes_in_flight_count_until_released() {
        let outbox = Outbox::new(1000);
        assert_eq!(outbox.push(frame(600)), Push::Queued);
        let mut batch = Vec::new();
        let taken = outbox.take_batch(&mut batch);
        assert_eq!(batch.len(), 1);
        // The batch is still being written: a second 600-byte frame does not fit.
        assert_eq!(outbox.push(frame(600)), Push::Overflowed);
        outbox.release(taken);
        assert_eq!(outbox.queued_bytes(), 0);
    }

    #[test]
    fn batches_are_capped_but_never_empty() {
        let outbox = Outbox::new(usize::MAX);
        for _ in 0..3 {
            assert_eq!(outbox.push(frame(MAX_BATCH_BYTES)), Push::Queued);
        }
        let mut batch = Vec::new();
        outbox.take_batch(&mut batch);
        assert_eq!(batch.len(), 1);
    }

    #[tokio::test]
    async fn ready_wakes_on_the_first_frame_and_on_overflow() {
        let outbox = Outbox::new(100);
        let waiter = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.ready().await }
        });
        outbox.push(frame(10));
        assert_eq!(waiter.await.ok(), Some(Ready::Frames));
        outbox.push(frame(200));
        assert_eq!(outbox.ready().await, Ready::Overflowed);
    }
}
