//! An SSE follower's outbound queue, bounded in bytes.
//!
//! Rooms push encoded events into followers' outboxes without ever waiting (WebSocket members
//! read the room's ring instead: `room/ring.rs`): a push either queues the frame or, when the
//! follower has fallen `max_queue_bytes` behind, marks the outbox overflowed and refuses it.
//! The stream takes everything queued at once (one lock per batch, not per frame) and writes
//! it; bytes stay counted until they are written, so the queue plus what the stream holds
//! never exceed the bound.
//!
//! A push wakes the session only when it is waiting for frames (or on overflow), and
//! [`FanOut`] wakes the sessions of a whole fan-out after the room's lock is released.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::frames::Frame;

/// Bytes charged per queued frame on top of its wire bytes: the queue slot itself. Without it
/// a flood of empty frames would be "free" and unbounded in memory.
const FRAME_OVERHEAD_BYTES: usize = mem::size_of::<Frame>();

/// What a frame costs against the byte bound.
pub(crate) fn charge_of(frame: &Frame) -> usize {
    frame.len() + FRAME_OVERHEAD_BYTES
}

/// A cheap, cloneable handle to one session's queue. Rooms hold one per member.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    max_bytes: usize,
    /// Cancelled when the outbox overflows. The waker slot is the stream's, and hyper stops
    /// polling a stream whose peer does not read, so the watchdog, which must see the overflow
    /// of exactly such a reader, waits on this instead.
    overflow_signal: CancellationToken,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Frame>,
    /// Bytes queued plus bytes taken by the session and not written yet.
    bytes: usize,
    overflowed: bool,
    closed: bool,
    /// The session's waker, while it waits in [`Outbox::ready`] or [`Outbox::overflowed`].
    waker: Option<Waker>,
    /// The session waits for frames (not only for an overflow): the next push wakes it.
    wants_frames: bool,
}

impl State {
    fn park(&mut self, cx: &Context<'_>) {
        match &self.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => self.waker = Some(cx.waker().clone()),
        }
    }
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
    /// Frames are waiting: take them with [`Outbox::take_all`].
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
                max_bytes,
                overflow_signal: CancellationToken::new(),
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

    /// Queues `frame` unless that would pass the byte bound. Never waits; wakes the session
    /// right away if it is waiting.
    pub(crate) fn push(&self, frame: Frame) -> Push {
        let (push, waker) = self.push_and_take_waker(frame);
        if let Some(waker) = waker {
            waker.wake();
        }
        push
    }

    /// Queues `frame` and hands back the waker to call, so the caller can wake outside its
    /// own lock.
    fn push_and_take_waker(&self, frame: Frame) -> (Push, Option<Waker>) {
        let cost = charge_of(&frame);
        let mut state = self.state();
        if state.overflowed || state.closed {
            return (Push::Refused, None);
        }
        if state.bytes + cost > self.shared.max_bytes {
            state.overflowed = true;
            state.frames = VecDeque::new();
            let waker = state.waker.take();
            drop(state);
            // Once per outbox, so waking the watchdog here (maybe under a room's lock) is
            // not worth deferring like the stream's waker.
            self.shared.overflow_signal.cancel();
            return (Push::Overflowed, waker);
        }
        state.bytes += cost;
        state.frames.push_back(frame);
        let waker = if mem::take(&mut state.wants_frames) {
            state.waker.take()
        } else {
            None
        };
        (Push::Queued, waker)
    }

    /// Waits until frames are queued or the outbox overflowed. Cancel-safe.
    pub(crate) async fn ready(&self) -> Ready {
        poll_fn(|cx| {
            let mut state = self.state();
            if state.overflowed {
                return Poll::Ready(Ready::Overflowed);
            }
            if !state.frames.is_empty() {
                return Poll::Ready(Ready::Frames);
            }
            state.park(cx);
            state.wants_frames = true;
            Poll::Pending
        })
        .await
    }

    /// Moves every queued frame to the back of `taken`, oldest first, in one lock. Their bytes
    /// stay charged until [`Outbox::release`].
    pub(crate) fn take_all(&self, taken: &mut VecDeque<Frame>) {
        let mut state = self.state();
        if state.frames.is_empty() {
            return;
        }
        if taken.is_empty() {
            // Swapping hands the emptied queue's capacity back to the room side for reuse.
            mem::swap(taken, &mut state.frames);
        } else {
            taken.append(&mut state.frames);
        }
    }

    /// Gives back the bytes of written frames.
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
        state.waker = None;
    }

    /// Bytes queued or in flight (the SSE watchdog's stall check, tests).
    pub(crate) fn queued_bytes(&self) -> usize {
        self.state().bytes
    }

    /// Completes once the outbox has overflowed, however it did (a push past the bound or
    /// [`Outbox::overflow`]), without taking the session's waker slot. Cancel-safe.
    pub(crate) fn overflow_signal(&self) -> WaitForCancellationFutureOwned {
        self.shared.overflow_signal.clone().cancelled_owned()
    }

    /// Marks the outbox overflowed (a reader that stalled past its write timeout) and wakes
    /// its reader, which then ends as if the queue had passed its bound.
    pub(crate) fn overflow(&self) {
        let mut state = self.state();
        state.overflowed = true;
        state.frames = VecDeque::new();
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        self.shared.overflow_signal.cancel();
    }
}

/// Wakers a fan-out makes room for at its first wake: growing from one, a fan-out to a
/// hundred waiting members reallocated five times (measured with callgrind).
const FAN_OUT_WAKERS_RESERVED: usize = 64;

/// Counts from one fan-out, folded into metrics once per fan-out rather than per member, and
/// the sessions it must wake. Dropping it wakes them: drop it after releasing the room's lock,
/// so a woken session never waits for that lock and the room never waits for the scheduler.
#[derive(Debug, Default)]
pub(crate) struct FanOut {
    pub(crate) delivered: usize,
    pub(crate) bytes: usize,
    pub(crate) overflowed: usize,
    wakers: Vec<Waker>,
}

impl FanOut {
    /// Pushes `frame` into `outbox` and counts what happened.
    pub(crate) fn push(&mut self, outbox: &Outbox, frame: Frame) {
        let len = frame.payload_len();
        let (push, waker) = outbox.push_and_take_waker(frame);
        match push {
            Push::Queued => {
                self.delivered += 1;
                self.bytes += len;
            }
            Push::Overflowed => self.overflowed += 1,
            Push::Refused => {}
        }
        self.keep_waker(waker);
    }

    fn keep_waker(&mut self, waker: Option<Waker>) {
        if let Some(waker) = waker {
            self.wake_later(waker);
        }
    }

    /// Wakes `waker` when this is dropped (after the room's lock is released).
    pub(crate) fn wake_later(&mut self, waker: Waker) {
        if self.wakers.capacity() == 0 {
            self.wakers.reserve(FAN_OUT_WAKERS_RESERVED);
        }
        self.wakers.push(waker);
    }
}

impl Drop for FanOut {
    fn drop(&mut self) {
        self.wakers.drain(..).for_each(Waker::wake);
    }
}

#[cfg(test)]
mod tests;
