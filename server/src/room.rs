//! One room: its members, presence, sequence numbers, history and ring, behind one short lock.
//!
//! Everything that must be ordered with the room's messages happens under that lock: a joiner's
//! `joined` answer and replay come before any later live message, and a member's `leave` event
//! after every message it saw. WebSocket members read the room's messages and presence events
//! from its ring (`ring.rs`), each from its own cursor; SSE followers get them pushed into their
//! outboxes. The lock is a std `Mutex` because it is never held across an `.await`: appending
//! and pushing only queue bytes.
//!
//! When the room goes away is the registry's business (`registry.rs`); the room only says
//! whether it is in use (members, or leases held by joins and publishes under way).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use roomcast_protocol::{LeaveReason, Position, Ref, RoomName, ServerFrame, UserName};
use slab::Slab;

use crate::frames::{self, Frame, Protocol};
use crate::history::{History, MessageData, Publication};
use crate::metrics::Metrics;
use crate::outbox::{FanOut, Outbox};
use crate::relay::Source;
use crate::sse;

mod relayed;
mod ring;

pub(crate) use self::relayed::{Delivered, Snapshot};
use self::ring::{Cursor, Frames, RING_PROTOCOLS, Ring, index_of_protocol};
pub(crate) use self::ring::{Lagged, MAX_RUN_BYTES, Pulled};

/// A session's entry in a room.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) user: UserName,
    pub(crate) protocol: Protocol,
    sink: Sink,
}

/// How a member gets the room's messages.
#[derive(Debug)]
enum Sink {
    /// A WebSocket session reads them from the ring, from its cursor.
    Ring(Cursor),
    /// An SSE follower gets them pushed into its outbox (its frames are SSE events, encoded
    /// apart from the WebSocket ones).
    Outbox(Outbox),
}

impl Member {
    /// A WebSocket session (tutorial or typed): it reads from the room's ring.
    pub(crate) fn session(user: UserName, protocol: Protocol) -> Self {
        debug_assert!(protocol != Protocol::Sse);
        Self {
            user,
            protocol,
            // Placed at the ring's head when it joins.
            sink: Sink::Ring(Cursor::default()),
        }
    }

    /// An SSE follower, fed through `outbox`.
    pub(crate) fn follower(user: UserName, outbox: Outbox) -> Self {
        Self {
            user,
            protocol: Protocol::Sse,
            sink: Sink::Outbox(outbox),
        }
    }
}

/// How a room keeps history; the same for every room of a server.
#[derive(Debug, Clone)]
pub(crate) struct HistoryLimits {
    pub(crate) entries: usize,
    pub(crate) bytes: usize,
}

/// How far a WebSocket member may fall behind its room before it is evicted as slow (the
/// ring's byte bound: `--max-queue-bytes`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingLimit(pub(crate) usize);

/// When a publish is fanned out to the room's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dispatch {
    /// Before `publish` returns (HTTP, broadcasts, the bridge).
    Now,
    /// Appended to the ring at once, but members waiting for frames are woken only at the
    /// next [`Room::flush`] (or the room's next wake): a session publishing several messages
    /// from one read wakes each member once, not once per message, and flushes before it
    /// waits again. SSE followers get it at once either way.
    Batched,
}

/// What a publish did.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) seq: u64,
    pub(crate) epoch: Arc<str>,
    /// Local sessions the message was queued for: WebSocket members still in place in the
    /// ring, and SSE followers whose outbox took it.
    pub(crate) delivered: usize,
}

/// A room's numbers, for the stats API.
#[derive(Debug, Clone)]
pub(crate) struct RoomStats {
    pub(crate) name: RoomName,
    pub(crate) sessions: usize,
    /// SSE followers among the sessions.
    pub(crate) followers: usize,
    pub(crate) users: Vec<UserName>,
    pub(crate) seq: u64,
    pub(crate) epoch: Arc<str>,
}

#[derive(Debug)]
pub(crate) struct Room {
    /// Unique among every room this server created, so a removed room and a later one of the
    /// same name are never mistaken for each other.
    pub(crate) id: u64,
    pub(crate) name: RoomName,
    latest_on_join: bool,
    /// Numbered by the relay (`--redis-url`): seq, epoch, history and presence mirror Redis,
    /// and presence events come from the relay rather than from local joins and leaves.
    relayed: bool,
    metrics: Arc<Metrics>,
    state: Mutex<RoomState>,
}

#[derive(Debug)]
struct RoomState {
    members: Slab<Member>,
    /// Sessions per present user: presence events fire on 0 → 1 and 1 → 0 only. SSE
    /// followers are not in it: they listen without being present.
    presence: BTreeMap<UserName, u32>,
    /// Members told of presence events: typed sessions and SSE followers.
    presence_listeners: usize,
    /// SSE followers among the members (the room API shows them apart from `members`).
    followers: usize,
    seq: u64,
    epoch: Arc<str>,
    history: History,
    /// What WebSocket members read, each from its cursor.
    ring: Ring,
    /// Members reading the ring (not lagged), per protocol: [tutorial, typed]. A slot is
    /// encoded for the protocols among them, and counts them all as its readers.
    readers: [u32; 2],
    /// Members whose sessions wait for frames: the next wake wakes them (and empties it).
    parked: Vec<usize>,
    /// Joins and publishes under way (see `registry::Lease`); the room stays while any is.
    leases: usize,
    /// Relayed rooms: users present on any node, as the relay last said.
    cluster_users: std::collections::BTreeSet<UserName>,
    /// Relayed rooms: whether seq, epoch and history were loaded from the relay yet.
    loaded: bool,
}

impl Room {
    pub(crate) fn new(
        id: u64,
        name: RoomName,
        history: &HistoryLimits,
        ring: RingLimit,
        latest_on_join: bool,
        relayed: bool,
        metrics: Arc<Metrics>,
    ) -> Self {
        let epoch: Arc<str> = format!("{:016x}", fastrand::u64(..)).into();
        Self {
            id,
            name,
            latest_on_join,
            relayed,
            metrics,
            state: Mutex::new(RoomState {
                members: Slab::new(),
                presence: BTreeMap::new(),
                presence_listeners: 0,
                followers: 0,
                seq: 0,
                epoch,
                history: History::new(history.entries, history.bytes),
                ring: Ring::new(ring.0),
                readers: [0; 2],
                parked: Vec::new(),
                leases: 0,
                cluster_users: std::collections::BTreeSet::new(),
                loaded: false,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, RoomState> {
        // Every mutation below leaves the state consistent before it can panic; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, fan_out: &FanOut) {
        self.metrics
            .record_fan_out(fan_out.delivered, fan_out.bytes, fan_out.overflowed);
    }

    /// Adds `member`. Gives it, in order and before any later message: the `joined` answer
    /// (typed sessions), the replay (missed messages, or the latest one in latest-state rooms),
    /// and tells the other members with a `join` event when this user was not present yet.
    /// A WebSocket member's own frames are appended to `direct` (its session queues them ahead
    /// of what it reads from the ring, where its cursor starts now); a follower's are pushed
    /// into its outbox.
    /// An SSE follower gets `gap` first when recovery failed, then the replay, then `joined`
    /// (whose `id` is the room's position now), and is not announced: it is not present.
    /// Returns the member's slot, for leaving.
    pub(crate) fn join(
        &self,
        mut member: Member,
        since: Option<&Position>,
        reference: Option<&Ref>,
        direct: &mut Vec<Frame>,
    ) -> usize {
        let mut state = self.state();
        let mut fan_out = FanOut::default();
        let (replay, recovered) =
            state
                .history
                .replay(since, &state.epoch, state.seq, self.latest_on_join);
        let follower = member.protocol == Protocol::Sse;
        let joined = || ServerFrame::Joined {
            room: self.name.clone(),
            epoch: state.epoch.to_string(),
            seq: state.seq,
            // A follower is not present, so it is not among the members it is told of.
            members: if follower {
                state.users(self.relayed)
            } else {
                state.user_list_with(&member.user, self.relayed)
            },
            recovered,
            replay: replay.len(),
            reference: reference.cloned(),
        };
        match &member.sink {
            Sink::Ring(_) => {
                if member.protocol == Protocol::Typed {
                    direct.push(frames::typed(&joined()));
                }
                direct.extend(
                    replay
                        .iter()
                        .map(|message| message.frame(member.protocol, &state.epoch)),
                );
            }
            Sink::Outbox(outbox) => {
                if recovered == Some(false) {
                    let gap = sse::event::gap(&self.name, &state.epoch, state.seq, since, &replay);
                    fan_out.push(outbox, gap);
                }
                for message in &replay {
                    fan_out.push(outbox, message.frame(member.protocol, &state.epoch));
                }
                let position = sse::Position::of(&self.name, &state.epoch, state.seq);
                fan_out.push(outbox, sse::event::presence(&joined(), &position));
            }
        }
        if let Some(recovered) = recovered {
            self.metrics.record_replay(recovered);
        }

        if !follower {
            let sessions_of_user = state.presence.entry(member.user.clone()).or_insert(0);
            *sessions_of_user += 1;
            if *sessions_of_user == 1 && state.presence_listeners > 0 && !self.relayed {
                let event = ServerFrame::Join {
                    room: self.name.clone(),
                    user: member.user.clone(),
                };
                state.announce(&self.name, &event, None, &mut fan_out);
            }
        }
        if follower {
            state.followers += 1;
        }
        if member.protocol != Protocol::Tutorial {
            state.presence_listeners += 1;
        }
        if let Sink::Ring(cursor) = &mut member.sink {
            // After the `join` event: a member is not told of its own arrival.
            *cursor = state.ring.cursor();
            state.readers[index_of_protocol(member.protocol)] += 1;
        }
        let key = state.members.insert(member);
        drop(state);
        self.record(&fan_out);
        key
    }

    /// Numbers `text` (with its `data`), keeps it in history, and appends it to the ring
    /// (waking its readers now or at the next flush, see [`Dispatch`]); SSE followers get it
    /// at once. Never waits.
    ///
    /// Only the publish hook (`Relay::publish`) calls this, so every source of messages is
    /// numbered and fanned out the same way.
    pub(crate) fn publish(
        &self,
        user: &UserName,
        text: &str,
        data: Option<&MessageData>,
        source: Source,
        dispatch: Dispatch,
    ) -> Delivery {
        let mut state = self.state();
        state.seq += 1;
        let published = Arc::new(Publication::with_data(
            self.name.clone(),
            user.clone(),
            state.seq,
            frames::now_ms(),
            text,
            data.cloned(),
        ));
        state.history.push(published.clone());
        let mut fan_out = FanOut::default();
        state.fan_out_message(&published, &mut fan_out);
        if dispatch == Dispatch::Now {
            state.wake_parked(&mut fan_out);
        }
        let delivery = Delivery {
            seq: state.seq,
            epoch: state.epoch.clone(),
            delivered: fan_out.delivered,
        };
        drop(state);
        self.metrics.record_publish(source);
        self.record(&fan_out);
        delivery
    }

    /// Wakes the members waiting for frames, after messages published
    /// [`Dispatch::Batched`]. Cheap when none waits.
    pub(crate) fn flush(&self) {
        let mut state = self.state();
        if state.parked.is_empty() {
            return;
        }
        let mut fan_out = FanOut::default();
        state.wake_parked(&mut fan_out);
        // Woken when `fan_out` drops, after the lock is released.
        drop(state);
    }

    /// Appends to `into` up to `max` of the ring's frames past member `key`'s cursor, oldest
    /// first, and moves the cursor past them. `Lagged` once the member fell more than the
    /// ring's bound behind: its session must end as slow.
    pub(crate) fn pull(
        &self,
        key: usize,
        into: &mut VecDeque<Frame>,
        max: usize,
    ) -> Result<Pulled, Lagged> {
        let mut state = self.state();
        let RoomState { members, ring, .. } = &mut *state;
        let Some(Member {
            user,
            protocol,
            sink: Sink::Ring(cursor),
        }) = members.get_mut(key)
        else {
            return Ok(Pulled::default());
        };
        ring.pull(cursor, (*protocol, user), into, max)
    }

    /// Ready when member `key` has frames to read in the ring (only if `wants_frames`) or lost
    /// its place (`Lagged`); otherwise keeps the session's waker, to be woken by the next
    /// append (if it wants frames) or by its lagging.
    pub(crate) fn poll_feed(
        &self,
        key: usize,
        cx: &Context<'_>,
        wants_frames: bool,
    ) -> Poll<Result<(), Lagged>> {
        let mut state = self.state();
        let RoomState {
            members,
            ring,
            parked,
            ..
        } = &mut *state;
        let Some(Member {
            sink: Sink::Ring(cursor),
            ..
        }) = members.get_mut(key)
        else {
            return Poll::Pending;
        };
        if cursor.is_lagged() {
            return Poll::Ready(Err(Lagged));
        }
        if wants_frames && ring.has_unread(cursor) {
            return Poll::Ready(Ok(()));
        }
        match &cursor.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => cursor.waker = Some(cx.waker().clone()),
        }
        if wants_frames && !cursor.parked {
            cursor.parked = true;
            parked.push(key);
        }
        Poll::Pending
    }

    /// Counts a publish the relay numbered: this room fans it out only when Redis relays it
    /// back, so [`Room::publish`]'s count does not run for it.
    pub(crate) fn record_relayed_publish(&self, source: Source) {
        self.metrics.record_publish(source);
    }

    /// Removes the member in slot `key`. If that was the user's last session here and
    /// `announce` is set, sends `leave` with `reason` to the remaining members. Returns true
    /// if the room is now unused.
    pub(crate) fn leave(&self, key: usize, reason: LeaveReason, announce: bool) -> bool {
        let mut state = self.state();
        let mut fan_out = FanOut::default();
        let Some(member) = state.members.try_remove(key) else {
            drop(state);
            return self.is_unused();
        };
        if member.protocol != Protocol::Tutorial {
            state.presence_listeners -= 1;
        }
        match &member.sink {
            Sink::Ring(cursor) => {
                if !cursor.is_lagged() {
                    state.readers[index_of_protocol(member.protocol)] -= 1;
                }
                state.ring.forget(cursor);
                if cursor.parked {
                    state.parked.retain(|parked| *parked != key);
                }
            }
            Sink::Outbox(_) => {
                state.followers -= 1;
                // Followers were never present: nothing to announce.
                let unused = state.is_unused();
                drop(state);
                return unused;
            }
        }
        let last_session_of_user = match state.presence.get_mut(&member.user) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            _ => true,
        };
        if last_session_of_user {
            state.presence.remove(&member.user);
            if announce && state.presence_listeners > 0 && !self.relayed {
                let event = ServerFrame::Leave {
                    room: self.name.clone(),
                    user: member.user,
                    reason,
                };
                state.announce(&self.name, &event, None, &mut fan_out);
            }
        }
        let unused = state.is_unused();
        drop(state);
        self.record(&fan_out);
        unused
    }

    /// SSE followers among the members (the room API's `followers`).
    pub(crate) fn followers(&self) -> usize {
        self.state().followers
    }

    /// Takes a lease (the registry does, under its lock).
    pub(crate) fn hold(&self) {
        self.state().leases += 1;
    }

    /// Gives a lease back; returns true if the room is now unused.
    pub(crate) fn let_go(&self) -> bool {
        let mut state = self.state();
        state.leases = state.leases.saturating_sub(1);
        state.is_unused()
    }

    /// No members and no lease: the room may expire.
    pub(crate) fn is_unused(&self) -> bool {
        self.state().is_unused()
    }

    pub(crate) fn stats(&self) -> RoomStats {
        let state = self.state();
        RoomStats {
            name: self.name.clone(),
            sessions: state.members.len(),
            followers: state.followers,
            users: if self.relayed {
                state.cluster_users.iter().cloned().collect()
            } else {
                state.presence.keys().cloned().collect()
            },
            seq: state.seq,
            epoch: state.epoch.clone(),
        }
    }

    /// History after `since` (oldest first, at most `limit`), with the room's epoch and last seq.
    pub(crate) fn history_page(
        &self,
        since: u64,
        limit: usize,
    ) -> (Arc<str>, u64, Vec<Arc<Publication>>) {
        let state = self.state();
        (
            state.epoch.clone(),
            state.seq,
            state.history.page(since, limit),
        )
    }
}

impl RoomState {
    fn is_unused(&self) -> bool {
        self.members.is_empty() && self.leases == 0
    }

    /// Members reading the ring, whatever their protocol.
    fn ring_readers(&self) -> u32 {
        self.readers.iter().sum()
    }

    /// Appends `message` to the ring for the WebSocket members and pushes it to every SSE
    /// follower, counting what was queued. Wakes no one waiting on the ring (the caller does,
    /// now or at a flush).
    fn fan_out_message(&mut self, message: &Arc<Publication>, fan_out: &mut FanOut) {
        let readers = self.ring_readers();
        if readers > 0 {
            let frames: Frames = RING_PROTOCOLS.map(|protocol| {
                (self.readers[index_of_protocol(protocol)] > 0)
                    .then(|| message.frame(protocol, &self.epoch))
            });
            let payload = frames
                .each_ref()
                .map(|frame| frame.as_ref().map_or(0, Frame::payload_len));
            self.append(frames, None, readers, fan_out);
            // Counted after the append: a member it left behind is no reader any more.
            for (count, payload) in self.readers.into_iter().zip(payload) {
                fan_out.delivered += count as usize;
                fan_out.bytes += payload * count as usize;
            }
        }
        if self.followers > 0 {
            for (_, member) in &self.members {
                if let Sink::Outbox(outbox) = &member.sink {
                    fan_out.push(outbox, message.frame(member.protocol, &self.epoch));
                }
            }
        }
    }

    /// Appends a slot for `readers` members; members it left more than the ring's bound
    /// behind lose their place, and are woken to end as slow.
    fn append(
        &mut self,
        frames: Frames,
        except: Option<UserName>,
        readers: u32,
        fan_out: &mut FanOut,
    ) {
        let Some(first) = self.ring.append(frames, except, readers) else {
            return;
        };
        let Self {
            members,
            ring,
            readers,
            ..
        } = self;
        for (_, member) in members.iter_mut() {
            if let Sink::Ring(cursor) = &mut member.sink
                && Ring::lost(cursor, first)
            {
                ring.lag(cursor);
                readers[index_of_protocol(member.protocol)] -= 1;
                fan_out.overflowed += 1;
                if let Some(waker) = cursor.waker.take() {
                    fan_out.wake_later(waker);
                }
            }
        }
    }

    /// Wakes (when `fan_out` drops) every member waiting for frames.
    fn wake_parked(&mut self, fan_out: &mut FanOut) {
        let Self {
            members, parked, ..
        } = self;
        for key in parked.drain(..) {
            if let Some(Member {
                sink: Sink::Ring(cursor),
                ..
            }) = members.get_mut(key)
            {
                cursor.parked = false;
                if let Some(waker) = cursor.waker.take() {
                    fan_out.wake_later(waker);
                }
            }
        }
    }

    /// Tells the presence `event` to every typed member (except `user`'s own sessions, when
    /// given) through the ring, and pushes it to every SSE follower, each encoding made once;
    /// wakes the members waiting for frames.
    fn announce(
        &mut self,
        room: &RoomName,
        event: &ServerFrame,
        except: Option<&UserName>,
        fan_out: &mut FanOut,
    ) {
        let readers = self.ring_readers();
        if self.readers[index_of_protocol(Protocol::Typed)] > 0 {
            // Tutorial members pass the slot without a frame, but count as its readers: every
            // reader passes every slot.
            let frames = [None, Some(frames::typed(event))];
            self.append(frames, except.cloned(), readers, fan_out);
            self.wake_parked(fan_out);
        }
        if self.followers > 0 {
            let position = sse::Position::of(room, &self.epoch, self.seq);
            let followed = sse::event::presence(event, &position);
            for (_, member) in &self.members {
                if let Sink::Outbox(outbox) = &member.sink {
                    fan_out.push(outbox, followed.clone());
                }
            }
        }
    }

    /// Present users (on every node when `relayed`), sorted.
    fn users(&self, relayed: bool) -> Vec<UserName> {
        if relayed {
            self.cluster_users.iter().cloned().collect()
        } else {
            self.presence.keys().cloned().collect()
        }
    }

    /// Present users (on every node when `relayed`) plus `joining`, sorted, each once.
    fn user_list_with(&self, joining: &UserName, relayed: bool) -> Vec<UserName> {
        let mut users = self.users(relayed);
        if let Err(at) = users.binary_search(joining) {
            users.insert(at, joining.clone());
        }
        users
    }
}

#[cfg(test)]
mod tests;
