//! A room's ring: what the room sends its WebSocket members, appended once for all of them,
//! and a cursor per member.
//!
//! Pushing every message into every member's queue cost a `Bytes` clone, a lock, a queue push
//! and maybe a wake per member per message, all under the room's lock (at 1,000 members that
//! was most of the server's user time; measured with `perf`, see docs/BENCHMARKS.md). Here a
//! message is appended once; each member's session copies the handles from its cursor to the
//! head when it writes, many messages per lock, and only members waiting for frames are woken.
//!
//! Every slot counts the members that have not passed it yet, so a slot is dropped as soon as
//! the last one has: an idle room holds nothing. A member that falls more than the ring's byte
//! bound behind loses its place (it is *lagged*) and its session ends as slow, like an outbox
//! that passed `--max-queue-bytes`.
//!
//! *Runs.* The members of a busy room wake together after a publisher's batch and pull the
//! same slots. The first to pull two or more consecutive messages copies their frames into one
//! buffer, a run, kept on the slot where it starts; the others take that run with one clone
//! and write it as one slice. Per message per member that saves a `Bytes` clone and drop and
//! one slice of the kernel's copy, which at 100 members was a third of the server's time
//! (`perf`, docs/BENCHMARKS.md). A run goes with its first slot. What runs hold together is
//! bounded by the ring's byte bound, so a ring holds at most twice that bound.

use std::collections::VecDeque;
use std::task::Waker;

use roomcast_protocol::UserName;

use crate::frames::{Frame, Protocol};
use crate::outbox::charge_of;

/// Capacity an emptied ring keeps; a burst's larger allocation is given back.
const KEPT_CAPACITY: usize = 16;

/// Most bytes of frames one run holds: far more than a batch of chat messages, and a control
/// frame queued behind a half-written run waits for at most this much.
pub(crate) const MAX_RUN_BYTES: usize = 64 * 1024;

/// What a slot holds for each protocol among the room's readers when it was appended,
/// encoded once: [tutorial, typed]. A member reads only slots appended after it joined, so
/// its protocol is always among them.
pub(crate) type Frames = [Option<Frame>; 2];

/// The protocols a ring holds frames for, in [`Frames`] order (SSE followers do not read it).
pub(crate) const RING_PROTOCOLS: [Protocol; 2] = [Protocol::Tutorial, Protocol::Typed];

/// Where a protocol's frame is in [`Frames`].
pub(crate) fn index_of_protocol(protocol: Protocol) -> usize {
    usize::from(protocol == Protocol::Typed)
}

#[derive(Debug)]
struct Slot {
    /// Stored encoded, not as the publication, so a reader's copy is one clone (measured with
    /// callgrind at 1,000 members: the publication's cached-frame lookup per reader was a fifth
    /// of the pull).
    frames: Frames,
    /// A presence event is not told to this user's own sessions (on a relayed room, a user's
    /// sessions are not told of themselves).
    except: Option<UserName>,
    /// Members that have not passed this slot yet.
    unread: u32,
    /// What the slot counts against the ring's bound: its largest encoding.
    bytes: usize,
    /// Per protocol, as in [`Frames`]: this slot's frame and the next ones', back to back.
    runs: [Option<Run>; 2],
}

/// Frames of consecutive slots in one buffer, from the slot that holds it up to `end`.
#[derive(Debug)]
struct Run {
    /// Position after its last slot.
    end: u64,
    frame: Frame,
}

impl Slot {
    /// The frame a member speaking `protocol` as `user` gets, if any.
    fn frame_for(&self, protocol: usize, user: &UserName) -> Option<&Frame> {
        if let Some(except) = &self.except
            && except == user
        {
            return None;
        }
        self.frames[protocol].as_ref()
    }

    /// This slot's frame if every `protocol` reader gets it: only such slots join a run
    /// (presence events skip someone, and tutorial members skip them).
    fn frame_for_all(&self, protocol: usize) -> Option<&Frame> {
        if self.except.is_some() {
            return None;
        }
        self.frames[protocol].as_ref()
    }
}

/// A member's place in the ring, kept in the room (under its lock) so the room can tell who
/// lags and whom to wake.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    /// Position of the next slot to read; `None` once the member lagged.
    next: Option<u64>,
    /// The session's waker, while it waits in `Room::poll_feed`.
    pub(super) waker: Option<Waker>,
    /// In the room's list of members waiting for frames.
    pub(super) parked: bool,
}

impl Cursor {
    pub(super) fn is_lagged(&self) -> bool {
        self.next.is_none()
    }
}

/// The member fell more than the ring's bound behind and lost its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lagged;

/// What a pull appended.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Pulled {
    pub(crate) frames: usize,
    /// What they are charged against the session's own bound (`outbox::charge_of`).
    pub(crate) charged: usize,
}

#[derive(Debug)]
pub(crate) struct Ring {
    slots: VecDeque<Slot>,
    /// Position of `slots[0]`.
    first: u64,
    bytes: usize,
    max_bytes: usize,
    /// What the slots' runs hold; no run is made that would take it past `max_bytes`.
    run_bytes: usize,
}

impl Ring {
    /// An empty ring holding at most `max_bytes` (but always its newest slot).
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            slots: VecDeque::new(),
            first: 0,
            bytes: 0,
            max_bytes,
            run_bytes: 0,
        }
    }

    /// Whether no slot is kept (every reader passed every slot).
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Position after the newest slot: where a new member starts.
    pub(crate) fn head(&self) -> u64 {
        self.first + self.slots.len() as u64
    }

    /// A cursor at the head: the member reads what is appended from now on.
    pub(crate) fn cursor(&self) -> Cursor {
        Cursor {
            next: Some(self.head()),
            ..Cursor::default()
        }
    }

    /// Whether `cursor` has slots to read.
    pub(crate) fn has_unread(&self, cursor: &Cursor) -> bool {
        cursor.next.is_some_and(|next| next < self.head())
    }

    /// Appends `frames` for `readers` members (`except`'s sessions skip it). When that passes
    /// the byte bound, drops the oldest slots and returns the position below which cursors
    /// lost their place: the room must then call [`Ring::lag`] on those members.
    pub(crate) fn append(
        &mut self,
        frames: Frames,
        except: Option<UserName>,
        readers: u32,
    ) -> Option<u64> {
        if readers == 0 {
            return None;
        }
        let bytes = frames.iter().flatten().map(Frame::len).max().unwrap_or(0);
        self.bytes += bytes;
        self.slots.push_back(Slot {
            frames,
            except,
            unread: readers,
            bytes,
            runs: [None, None],
        });
        let mut dropped = false;
        while self.bytes > self.max_bytes && self.slots.len() > 1 {
            self.pop_front();
            dropped = true;
        }
        dropped.then_some(self.first)
    }

    fn pop_front(&mut self) {
        if let Some(slot) = self.slots.pop_front() {
            self.bytes -= slot.bytes;
            for run in slot.runs.iter().flatten() {
                self.run_bytes -= run.frame.len();
            }
            self.first += 1;
        }
    }

    /// Drops the slots every member has passed.
    fn drop_read(&mut self) {
        while self.slots.front().is_some_and(|slot| slot.unread == 0) {
            self.pop_front();
        }
        if self.slots.is_empty() && self.slots.capacity() > KEPT_CAPACITY {
            self.slots.shrink_to(KEPT_CAPACITY);
        }
    }

    /// Whether `cursor` lost its place when the slots below `first` were dropped.
    pub(crate) fn lost(cursor: &Cursor, first: u64) -> bool {
        cursor.next.is_some_and(|next| next < first)
    }

    /// Takes `cursor`'s place away: it no longer counts as a reader of the slots it had not
    /// read.
    pub(crate) fn lag(&mut self, cursor: &mut Cursor) {
        self.forget(cursor);
        cursor.next = None;
    }

    /// A member leaves: it no longer counts as a reader of the slots it had not read.
    pub(crate) fn forget(&mut self, cursor: &Cursor) {
        let Some(next) = cursor.next else {
            return;
        };
        let start = self.index_of(next);
        for slot in self.slots.range_mut(start..) {
            slot.unread -= 1;
        }
        self.drop_read();
    }

    fn index_of(&self, position: u64) -> usize {
        usize::try_from(position.saturating_sub(self.first))
            .unwrap_or(usize::MAX)
            .min(self.slots.len())
    }

    /// Appends to `into` the frames of up to `max` slots past `cursor` that a `protocol`
    /// member named `user` gets, and moves the cursor past them.
    pub(crate) fn pull(
        &mut self,
        cursor: &mut Cursor,
        (protocol, user): (Protocol, &UserName),
        into: &mut VecDeque<Frame>,
        max: usize,
    ) -> Result<Pulled, Lagged> {
        let next = cursor.next.ok_or(Lagged)?;
        let start = self.index_of(next);
        let end = start.saturating_add(max).min(self.slots.len());
        if start == end {
            return Ok(Pulled::default());
        }
        let protocol = index_of_protocol(protocol);
        let mut pulled = Pulled::default();
        let mut at = start;
        while at < end {
            if let Some((run_end, run)) = self.run_from(at, end, protocol) {
                for slot in self.slots.range_mut(at..run_end) {
                    slot.unread -= 1;
                }
                pulled.frames += run_end - at;
                pulled.charged += charge_of(&run);
                into.push_back(run);
                at = run_end;
                continue;
            }
            let slot = &mut self.slots[at];
            slot.unread -= 1;
            if let Some(frame) = slot.frame_for(protocol, user) {
                pulled.frames += 1;
                pulled.charged += charge_of(frame);
                into.push_back(frame.clone());
            }
            at += 1;
        }
        cursor.next = Some(self.first + end as u64);
        if start == 0 {
            self.drop_read();
        }
        Ok(pulled)
    }

    /// The run that starts at slot `at` for `protocol` readers and ends by `end`, with the
    /// index after it: the one already there, or one made now from the slots up to `end` when
    /// two or more of them go to every such reader. `None`: read slot `at` alone.
    fn run_from(&mut self, at: usize, end: usize, protocol: usize) -> Option<(usize, Frame)> {
        if let Some(run) = &self.slots[at].runs[protocol] {
            // One that ends past `end` is not used: it would pull more than was asked.
            let run_end = usize::try_from(run.end - self.first).ok()?;
            return (run_end <= end).then(|| (run_end, run.frame.clone()));
        }
        let budget = self
            .max_bytes
            .checked_sub(self.run_bytes)?
            .min(MAX_RUN_BYTES);
        let mut bytes = 0;
        let mut run_end = at;
        for slot in self.slots.range(at..end) {
            match slot.frame_for_all(protocol) {
                Some(frame) if bytes + frame.len() <= budget => bytes += frame.len(),
                _ => break,
            }
            run_end += 1;
        }
        if run_end - at < 2 {
            return None;
        }
        let frames = self
            .slots
            .range(at..run_end)
            .filter_map(|slot| slot.frames[protocol].as_ref());
        let frame = Frame::back_to_back(frames, bytes);
        self.run_bytes += frame.len();
        self.slots[at].runs[protocol] = Some(Run {
            end: self.first + run_end as u64,
            frame: frame.clone(),
        });
        Some((run_end, frame))
    }
}

#[cfg(test)]
mod tests;
