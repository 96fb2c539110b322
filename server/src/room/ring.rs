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

use std::collections::VecDeque;
use std::task::Waker;

use roomcast_protocol::UserName;

use crate::frames::{Frame, Protocol};
use crate::outbox::charge_of;

/// Capacity an emptied ring keeps; a burst's larger allocation is given back.
const KEPT_CAPACITY: usize = 16;

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
}

impl Ring {
    /// An empty ring holding at most `max_bytes` (but always its newest slot).
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            slots: VecDeque::new(),
            first: 0,
            bytes: 0,
            max_bytes,
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
        for slot in self.slots.range_mut(start..end) {
            slot.unread -= 1;
            if let Some(frame) = slot.frame_for(protocol, user) {
                pulled.frames += 1;
                pulled.charged += charge_of(frame);
                into.push_back(frame.clone());
            }
        }
        cursor.next = Some(self.first + end as u64);
        if start == 0 {
            self.drop_read();
        }
        Ok(pulled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::tests::texts_of as texts;

    /// A message's tutorial and typed frames.
    fn message(text: &str) -> Frames {
        let json = format!(r#"{{"message":"{text}"}}"#);
        [Some(Frame::text(&json)), Some(Frame::text(&json))]
    }

    #[test]
    fn a_slot_goes_when_its_last_reader_passed_it() {
        let user = UserName::new("ana").expect("valid user");
        let mut ring = Ring::new(1 << 20);
        let (mut a, mut b) = (ring.cursor(), ring.cursor());
        ring.append(message("one"), None, 2);
        ring.append(message("two"), None, 2);
        let mut frames = VecDeque::new();
        let pulled = ring
            .pull(&mut a, (Protocol::Typed, &user), &mut frames, 1)
            .expect("in place");
        assert_eq!((pulled.frames, texts(&frames)), (1, vec!["one".to_owned()]));
        assert_eq!(ring.slots.len(), 2, "b has read nothing yet");
        ring.pull(&mut b, (Protocol::Typed, &user), &mut frames, 10)
            .expect("in place");
        assert_eq!(ring.slots.len(), 1, "both passed the first slot");
        ring.forget(&a);
        assert!(
            ring.slots.is_empty(),
            "the leaver no longer holds the second"
        );
        assert_eq!(ring.bytes, 0);
    }

    #[test]
    fn a_reader_past_the_bound_loses_its_place() {
        let user = UserName::new("ana").expect("valid user");
        // Each slot is 17 bytes: two fit, three do not.
        let mut ring = Ring::new(40);
        let (mut slow, mut fast) = (ring.cursor(), ring.cursor());
        for _ in 0..2 {
            assert_eq!(ring.append(message("m"), None, 2), None);
            ring.pull(
                &mut fast,
                (Protocol::Typed, &user),
                &mut VecDeque::new(),
                10,
            )
            .expect("in place");
        }
        let first = ring.append(message("m"), None, 2).expect("over the bound");
        assert!(Ring::lost(&slow, first) && !Ring::lost(&fast, first));
        ring.lag(&mut slow);
        let mut frames = VecDeque::new();
        assert_eq!(
            ring.pull(&mut slow, (Protocol::Typed, &user), &mut frames, 10)
                .map(|p| p.frames),
            Err(Lagged)
        );
        ring.pull(&mut fast, (Protocol::Typed, &user), &mut frames, 10)
            .expect("in place");
        assert!(
            ring.slots.is_empty(),
            "the lagged reader holds nothing back"
        );
    }

    #[test]
    fn presence_skips_tutorial_members_and_the_excepted_user() {
        let (ana, bob) = (
            UserName::new("ana").expect("valid user"),
            UserName::new("bob").expect("valid user"),
        );
        let mut ring = Ring::new(1 << 20);
        let mut cursors = [ring.cursor(), ring.cursor(), ring.cursor()];
        let frame = Frame::text(r#"{"type":"join"}"#);
        ring.append([None, Some(frame)], Some(ana.clone()), 3);
        let members = [
            (Protocol::Typed, &ana),
            (Protocol::Typed, &bob),
            (Protocol::Tutorial, &bob),
        ];
        let got: Vec<usize> = cursors
            .iter_mut()
            .zip(members)
            .map(|(cursor, member)| {
                let mut frames = VecDeque::new();
                ring.pull(cursor, member, &mut frames, 10)
                    .expect("in place")
                    .frames
            })
            .collect();
        assert_eq!(got, [0, 1, 0]);
        assert!(ring.slots.is_empty(), "every reader passed it");
    }
}
