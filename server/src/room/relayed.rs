//! The hooks a relay (`--redis-url`) uses on a room whose messages are numbered in Redis:
//! load the relay's state, deliver an already-numbered message, announce presence events from
//! every node, and read this node's own members for the relay's presence.
//!
//! Everything happens under the room's lock, like a local publish, so a joiner's replay and
//! the live messages around it keep their order: no duplicate, no gap.

use std::sync::Arc;

use roomcast_protocol::{LeaveReason, ServerFrame, UserName};

use super::Room;
use crate::history::Publication;
use crate::outbox::FanOut;

/// A room's state as the relay holds it, read at one instant.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) epoch: Arc<str>,
    pub(crate) seq: u64,
    /// Kept messages, oldest first, consecutive seqs ending at `seq` (or empty).
    pub(crate) history: Vec<Arc<Publication>>,
    /// Users present on any node.
    pub(crate) users: Vec<UserName>,
}

/// What [`Room::deliver`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Queued for this many local sessions.
    Queued(usize),
    /// Already delivered (a replay of history overlapping the live stream); dropped.
    Duplicate,
    /// Not the next message of the stream this room holds: the relay must load it again.
    Gap,
}

impl Room {
    /// Delivers `message`, numbered by the relay in `epoch`, if it is the next one.
    pub(crate) fn deliver(&self, epoch: &str, message: Arc<Publication>) -> Delivered {
        let mut state = self.state();
        if !state.loaded || *state.epoch != *epoch {
            return Delivered::Gap;
        }
        if message.seq <= state.seq {
            return Delivered::Duplicate;
        }
        if message.seq != state.seq + 1 {
            return Delivered::Gap;
        }
        state.seq = message.seq;
        let mut fan_out = FanOut::default();
        state.fan_out_message(&message, &mut fan_out);
        state.wake_parked(&mut fan_out);
        state.history.push(message);
        drop(state);
        self.record(&fan_out);
        Delivered::Queued(fan_out.delivered)
    }

    /// Takes the relay's state. When it continues the stream this room holds, the messages
    /// members missed are delivered now, in order; otherwise (another epoch, or a gap history
    /// no longer covers) the room jumps to it and members see the seq jump. Returns whether
    /// members' streams stayed complete.
    pub(crate) fn load(&self, snapshot: Snapshot) -> bool {
        let mut state = self.state();
        let mut fan_out = FanOut::default();
        let continues =
            state.loaded && *state.epoch == *snapshot.epoch && snapshot.seq >= state.seq;
        let complete = if continues {
            let from = state.seq;
            let missing: Vec<_> = snapshot.history.iter().filter(|m| m.seq > from).collect();
            let complete =
                snapshot.seq == from || missing.first().is_some_and(|m| m.seq == from + 1);
            for message in missing {
                state.fan_out_message(message, &mut fan_out);
                state.history.push(message.clone());
            }
            state.wake_parked(&mut fan_out);
            complete
        } else {
            state.epoch = snapshot.epoch;
            state.history.clear();
            for message in snapshot.history {
                state.history.push(message);
            }
            !state.loaded || state.members.is_empty()
        };
        state.seq = snapshot.seq;
        if state
            .history
            .last_seq()
            .is_some_and(|last| last != state.seq)
        {
            // Kept messages must end at the room's seq for replay to judge gaps right.
            state.history.clear();
        }
        let users: std::collections::BTreeSet<UserName> = snapshot.users.into_iter().collect();
        if state.loaded {
            // Presence events this node missed (a reload after a gap, or a link that came
            // back) are told as the difference, so typed members never keep a user who left.
            let left: Vec<UserName> = state.cluster_users.difference(&users).cloned().collect();
            let joined: Vec<UserName> = users.difference(&state.cluster_users).cloned().collect();
            for user in &left {
                let event = ServerFrame::Leave {
                    room: self.name.clone(),
                    user: user.clone(),
                    reason: LeaveReason::Closed,
                };
                state.announce(&self.name, &event, Some(user), &mut fan_out);
            }
            for user in &joined {
                let event = ServerFrame::Join {
                    room: self.name.clone(),
                    user: user.clone(),
                };
                state.announce(&self.name, &event, Some(user), &mut fan_out);
            }
        }
        state.cluster_users = users;
        state.loaded = true;
        drop(state);
        self.record(&fan_out);
        complete
    }

    /// `user` became present on some node: typed members other than `user`'s own sessions
    /// get `join`.
    pub(crate) fn announce_join(&self, user: &UserName) {
        let mut state = self.state();
        if !state.cluster_users.insert(user.clone()) {
            return;
        }
        let event = ServerFrame::Join {
            room: self.name.clone(),
            user: user.clone(),
        };
        let mut fan_out = FanOut::default();
        state.announce(&self.name, &event, Some(user), &mut fan_out);
        drop(state);
        self.record(&fan_out);
    }

    /// `user`'s last session anywhere left: typed members get `leave` with `reason`.
    pub(crate) fn announce_leave(&self, user: &UserName, reason: LeaveReason) {
        let mut state = self.state();
        if !state.cluster_users.remove(user) {
            return;
        }
        let event = ServerFrame::Leave {
            room: self.name.clone(),
            user: user.clone(),
            reason,
        };
        let mut fan_out = FanOut::default();
        state.announce(&self.name, &event, Some(user), &mut fan_out);
        drop(state);
        self.record(&fan_out);
    }

    /// This node's sessions of `user` in the room.
    pub(crate) fn local_sessions_of(&self, user: &UserName) -> usize {
        self.state().presence.get(user).map_or(0, |n| *n as usize)
    }

    /// This node's users in the room with their session counts.
    pub(crate) fn local_users(&self) -> Vec<(UserName, usize)> {
        self.state()
            .presence
            .iter()
            .map(|(user, n)| (user.clone(), *n as usize))
            .collect()
    }

    /// Sessions on this node in the room.
    pub(crate) fn local_sessions(&self) -> usize {
        self.state().members.len()
    }

    /// Whether any session on this node is in the room.
    pub(crate) fn has_members(&self) -> bool {
        !self.state().members.is_empty()
    }
}
