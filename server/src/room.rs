//! One room: its members, presence, sequence numbers and history, behind one short lock.
//!
//! Everything that must be ordered with the room's messages happens under that lock: a joiner's
//! `joined` answer and replay are queued before any later live message, and a member's `leave`
//! event after every message it saw. The lock is a std `Mutex` because it is never held across
//! an `.await`: pushing into an outbox only queues bytes.
//!
//! When the room goes away is the registry's business (`registry.rs`); the room only says
//! whether it is in use (members, or leases held by joins and publishes under way).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use roomcast_protocol::{LeaveReason, Position, Ref, RoomName, ServerFrame, UserName};
use slab::Slab;

use crate::frames::{self, Protocol};
use crate::history::{History, MessageData, Publication};
use crate::metrics::Metrics;
use crate::outbox::{FanOut, Outbox};
use crate::relay::Source;
use crate::sse;

mod relayed;

pub(crate) use self::relayed::{Delivered, Snapshot};

/// A session's entry in a room.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) user: UserName,
    pub(crate) protocol: Protocol,
    pub(crate) outbox: Outbox,
}

/// How a room keeps history; the same for every room of a server.
#[derive(Debug, Clone)]
pub(crate) struct HistoryLimits {
    pub(crate) entries: usize,
    pub(crate) bytes: usize,
}

/// When a publish is fanned out to the room's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dispatch {
    /// Before `publish` returns (HTTP, broadcasts, the bridge).
    Now,
    /// At the next [`Room::flush`] or the room's next change of members or publish `Now`,
    /// whichever comes first: a session publishing several messages from one read hands them
    /// to each member in one push (one outbox lock and one wake per member, not one per
    /// message), and flushes before it waits again.
    Batched,
}

/// What a publish did.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) seq: u64,
    pub(crate) epoch: Arc<str>,
    /// Local sessions the message was queued for (for a [`Dispatch::Batched`] publish: the
    /// sessions in the room when it was numbered, which it will be queued for).
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
    /// Messages numbered (and in history) but not yet queued for the members: published
    /// [`Dispatch::Batched`]. Every change of members queues them first, so no member gets a
    /// message it joined after, and none misses one it was present for.
    pending: Vec<Arc<Publication>>,
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
                pending: Vec::new(),
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

    /// Adds `member`. Queues, in order and before any later message: the `joined` answer (typed
    /// sessions), the replay (missed messages, or the latest one in latest-state rooms), and a
    /// `join` event for the other typed members when this user was not present yet.
    /// An SSE follower gets `gap` first when recovery failed, then the replay, then `joined`
    /// (whose `id` is the room's position now), and is not announced: it is not present.
    /// Returns the member's slot, for leaving.
    pub(crate) fn join(
        &self,
        member: Member,
        since: Option<&Position>,
        reference: Option<&Ref>,
    ) -> usize {
        let mut state = self.state();
        let mut fan_out = FanOut::default();
        state.queue_pending(&mut fan_out);
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
        if member.protocol == Protocol::Typed {
            fan_out.push(&member.outbox, frames::typed(&joined()));
        }
        if follower && recovered == Some(false) {
            let gap = sse::event::gap(&self.name, &state.epoch, state.seq, since, &replay);
            fan_out.push(&member.outbox, gap);
        }
        for message in &replay {
            fan_out.push(&member.outbox, message.frame(member.protocol, &state.epoch));
        }
        if follower {
            let position = sse::Position::of(&self.name, &state.epoch, state.seq);
            fan_out.push(&member.outbox, sse::event::presence(&joined(), &position));
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
        let key = state.members.insert(member);
        drop(state);
        self.record(&fan_out);
        key
    }

    /// Numbers `text` (with its `data`), keeps it in history, and queues it for every member,
    /// now or batched (see [`Dispatch`]). Never waits.
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
        let delivery = Delivery {
            seq: state.seq,
            epoch: state.epoch.clone(),
            delivered: state.members.len(),
        };
        state.history.push(published.clone());
        state.pending.push(published);
        self.metrics.record_publish(source);
        if dispatch == Dispatch::Batched {
            return delivery;
        }
        // Alone (the usual case), the count of queued frames is exact; behind batched
        // messages of another session, it is the member count above.
        let alone = state.pending.len() == 1;
        let mut fan_out = FanOut::default();
        state.queue_pending(&mut fan_out);
        drop(state);
        self.record(&fan_out);
        if alone {
            return Delivery {
                delivered: fan_out.delivered,
                ..delivery
            };
        }
        delivery
    }

    /// Queues the messages published [`Dispatch::Batched`] for every member, one push per
    /// member; wakes them after the lock is released. Cheap when there are none.
    pub(crate) fn flush(&self) {
        let mut state = self.state();
        if state.pending.is_empty() {
            return;
        }
        let mut fan_out = FanOut::default();
        state.queue_pending(&mut fan_out);
        drop(state);
        self.record(&fan_out);
    }

    /// Counts a publish the relay numbered: this room fans it out only when Redis relays it
    /// back, so [`Room::publish`]'s count does not run for it.
    pub(crate) fn record_relayed_publish(&self, source: Source) {
        self.metrics.record_publish(source);
    }

    /// Removes the member in slot `key`. If that was the user's last session here and
    /// `announce` is set, sends `leave` with `reason` to the remaining typed members. Returns
    /// true if the room is now unused.
    pub(crate) fn leave(&self, key: usize, reason: LeaveReason, announce: bool) -> bool {
        let mut state = self.state();
        let mut fan_out = FanOut::default();
        // The leaver was present for these: it gets them (if it still reads) before it goes.
        state.queue_pending(&mut fan_out);
        let Some(member) = state.members.try_remove(key) else {
            drop(state);
            self.record(&fan_out);
            return self.is_unused();
        };
        if member.protocol != Protocol::Tutorial {
            state.presence_listeners -= 1;
        }
        if member.protocol == Protocol::Sse {
            state.followers -= 1;
            // Followers were never present: nothing to announce.
            let unused = state.is_unused();
            drop(state);
            self.record(&fan_out);
            return unused;
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

    /// Queues every pending message for every member, in seq order, one push per member.
    fn queue_pending(&mut self, fan_out: &mut FanOut) {
        if self.pending.is_empty() {
            return;
        }
        for (_, member) in &self.members {
            let frames = self
                .pending
                .iter()
                .map(|message| message.frame(member.protocol, &self.epoch));
            fan_out.push_all(&member.outbox, frames);
        }
        self.pending.clear();
    }

    /// Queues the presence `event` for every typed member (except `user`'s own sessions, when
    /// given) and every SSE follower, each encoding made once.
    fn announce(
        &self,
        room: &RoomName,
        event: &ServerFrame,
        except: Option<&UserName>,
        fan_out: &mut FanOut,
    ) {
        let mut typed = None;
        let mut followed = None;
        for (_, member) in &self.members {
            let frame = match member.protocol {
                Protocol::Tutorial => continue,
                Protocol::Typed if except == Some(&member.user) => continue,
                Protocol::Typed => typed.get_or_insert_with(|| frames::typed(event)),
                Protocol::Sse => followed.get_or_insert_with(|| {
                    let position = sse::Position::of(room, &self.epoch, self.seq);
                    sse::event::presence(event, &position)
                }),
            };
            fan_out.push(&member.outbox, frame.clone());
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
