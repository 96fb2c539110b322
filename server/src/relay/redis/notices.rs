//! What this node's rooms tell the relay: who joined and who left. The registry calls in
//! without waiting; each shard's tasks take the changes when they next run.
//!
//! Changes are coalesced by key (a room, or a room and a user), so the pending sets never hold
//! more than one entry per room or per present user, however fast sessions come and go. While a
//! shard is down its presence changes are dropped: on reconnect it sends its whole presence.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use roomcast_protocol::{LeaveReason, RoomName, UserName};
use tokio::sync::Notify;

use super::ring::shard_of;

/// A cheap, cloneable handle the registry holds.
#[derive(Debug, Clone)]
pub(crate) struct Notices {
    shards: Arc<[ShardNotices]>,
}

/// One shard's pending changes.
#[derive(Debug, Default)]
pub(crate) struct ShardNotices {
    pending: Mutex<Pending>,
    /// A room's local membership changed: check its subscription.
    pub(crate) rooms_changed: Notify,
    /// A user's local session count changed: send it.
    pub(crate) presence_changed: Notify,
}

#[derive(Debug, Default)]
struct Pending {
    rooms: HashSet<RoomName>,
    /// (room, user) → why the user's latest session left (`closed` after a join).
    presence: HashMap<(RoomName, UserName), LeaveReason>,
    /// False while the shard is down: presence will be sent whole on reconnect.
    presence_wanted: bool,
}

impl Notices {
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1))
                .map(|_| ShardNotices::default())
                .collect(),
        }
    }

    /// How many shards rooms are spread over.
    pub(crate) fn shards(&self) -> usize {
        self.shards.len()
    }

    pub(crate) fn shard(&self, index: usize) -> &ShardNotices {
        &self.shards[index % self.shards.len()]
    }

    fn of(&self, room: &RoomName) -> &ShardNotices {
        self.shard(shard_of(room.as_str(), self.shards.len()))
    }

    /// A session of `user` joined `room` here.
    pub(crate) fn joined(&self, room: &RoomName, user: &UserName) {
        self.of(room).changed(room, user, LeaveReason::Closed);
    }

    /// A session of `user` left `room` here, for `reason`.
    pub(crate) fn left(&self, room: &RoomName, user: &UserName, reason: LeaveReason) {
        self.of(room).changed(room, user, reason);
    }

    /// Marks `room` for a subscription check (a join that is being prepared, or was refused).
    pub(crate) fn check(&self, room: &RoomName) {
        let shard = self.of(room);
        shard.lock().rooms.insert(room.clone());
        shard.rooms_changed.notify_one();
    }
}

impl ShardNotices {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn changed(&self, room: &RoomName, user: &UserName, reason: LeaveReason) {
        let mut pending = self.lock();
        pending.rooms.insert(room.clone());
        let presence = pending.presence_wanted;
        if presence {
            pending
                .presence
                .insert((room.clone(), user.clone()), reason);
        }
        drop(pending);
        self.rooms_changed.notify_one();
        if presence {
            self.presence_changed.notify_one();
        }
    }

    /// Rooms whose membership changed since the last call.
    pub(crate) fn take_rooms(&self) -> HashSet<RoomName> {
        std::mem::take(&mut self.lock().rooms)
    }

    /// Presence changes since the last call.
    pub(crate) fn take_presence(&self) -> HashMap<(RoomName, UserName), LeaveReason> {
        std::mem::take(&mut self.lock().presence)
    }

    /// Starts (true) or stops (false, dropping what is pending) collecting presence changes.
    pub(crate) fn want_presence(&self, wanted: bool) {
        let mut pending = self.lock();
        pending.presence_wanted = wanted;
        if !wanted {
            pending.presence = HashMap::new();
        }
    }
}
