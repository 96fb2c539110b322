//! The room registry: every room by name, and the one rule for when each goes away.
//!
//! A room is *in use* while it has members or a [`Lease`] (a join or a publish under way). Once
//! unused it waits `--room-ttl` and is removed, or is removed at once with `--room-ttl 0`; any
//! use in between cancels the wait. Whoever created the room (a socket, an HTTP publish, a
//! broadcast), the rule is the same: **an empty room is removed `--room-ttl` after its last
//! activity**, where activity is its creation, its last member leaving, or a publish to it.
//!
//! Expiry costs time in proportion to what expires: unused rooms wait in [`Deadlines`], ordered
//! by deadline, and the janitor takes only the due ones. Cleanup is by ownership: a
//! [`Membership`] leaves its room and a [`Lease`] lets go of it when dropped.

mod deadlines;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use roomcast_protocol::{LeaveReason, Position, Ref, RoomName, UserName};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use self::deadlines::Deadlines;
use crate::bridge::BridgeNotices;
use crate::config::is_latest_on_join;
use crate::frames::{Frame, Protocol};
use crate::metrics::Metrics;
use crate::relay::Notices;
use crate::room::{HistoryLimits, Member, RingLimit, Room, RoomStats};

/// Most expired rooms removed per hold of the registry lock; the janitor lets go between
/// batches, so even 100,000 rooms expiring at once never stall joins for long.
const EXPIRY_BATCH_ROOMS: usize = 1024;

/// A cheap, cloneable handle to the registry.
#[derive(Debug, Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Lock order: this registry lock, then a room's lock; never the other way round.
    rooms: Mutex<Rooms>,
    /// Told when a deadline earlier than every other is queued, so the janitor re-plans.
    earliest_changed: Notify,
    history: HistoryLimits,
    ring: RingLimit,
    room_ttl: Duration,
    max_rooms: usize,
    latest_on_join: Vec<String>,
    relay: RelayHooks,
    metrics: Arc<Metrics>,
    /// Cancelled when shutdown begins. From then on leaving tells nobody: every member is about
    /// to be closed with 1001, and telling each of N members about the N-1 others is O(N²).
    shutdown: CancellationToken,
}

#[derive(Debug, Default)]
struct Rooms {
    by_name: HashMap<RoomName, Entry>,
    /// Unused rooms and when they expire; a room is in it at most once.
    deadlines: Deadlines<RoomName>,
    next_id: u64,
}

#[derive(Debug)]
struct Entry {
    room: Arc<Room>,
    /// Set while the room is unused and waiting in `deadlines`.
    expires_at: Option<Instant>,
}

/// New rooms were refused: they would pass `--max-rooms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoomsFull {
    pub(crate) max_rooms: usize,
    /// Rooms the request needed to create.
    pub(crate) new_rooms: usize,
    /// Rooms that could still be created.
    pub(crate) free: usize,
}

impl std::fmt::Display for RoomsFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let max = self.max_rooms;
        if self.free == 0 {
            write!(
                f,
                "the server holds its maximum of {max} rooms (--max-rooms); try again later"
            )
        } else {
            write!(
                f,
                "{} new rooms needed but only {} fit under --max-rooms ({max}); try again later",
                self.new_rooms, self.free
            )
        }
    }
}

/// What [`Registry::new`] needs to know.
#[derive(Debug, Clone)]
pub(crate) struct RoomSettings {
    pub(crate) history: HistoryLimits,
    pub(crate) ring: RingLimit,
    pub(crate) room_ttl: Duration,
    pub(crate) max_rooms: usize,
    pub(crate) latest_on_join: Vec<String>,
    pub(crate) relay: RelayHooks,
}

/// What the registry tells a relay, and how its rooms behave with one.
#[derive(Debug, Clone, Default)]
pub(crate) struct RelayHooks {
    /// Rooms are numbered by the relay (see [`Room::deliver`]).
    pub(crate) relayed: bool,
    /// Told of every join and leave, so the relay subscribes while a room has local members
    /// and keeps presence on every node current.
    pub(crate) notices: Option<Notices>,
    /// Told of every join and leave too, so the Django Channels bridge listens to a room's
    /// group while the room has local members (`--channels-layer`).
    pub(crate) bridge: Option<BridgeNotices>,
}

impl Registry {
    pub(crate) fn new(
        settings: RoomSettings,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                rooms: Mutex::new(Rooms::default()),
                earliest_changed: Notify::new(),
                history: settings.history,
                ring: settings.ring,
                room_ttl: settings.room_ttl,
                max_rooms: settings.max_rooms,
                latest_on_join: settings.latest_on_join,
                relay: settings.relay,
                metrics,
                shutdown,
            }),
        }
    }

    fn rooms(&self) -> MutexGuard<'_, Rooms> {
        // Every mutation below leaves the map consistent before it can panic; keep serving.
        self.shared
            .rooms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Holds the room named `name`, creating it if needed, so it cannot expire until the lease
    /// is dropped.
    pub(crate) fn lease(&self, name: &RoomName) -> Result<Lease, RoomsFull> {
        let mut leases = self.lease_all(std::slice::from_ref(name))?;
        Ok(leases.swap_remove(0))
    }

    /// Holds every room in `names` (creating the missing ones), or none: if the new rooms would
    /// pass `--max-rooms`, nothing is created and nothing is held. One hold of the registry
    /// lock, so no other request can take the places in between.
    pub(crate) fn lease_all(&self, names: &[RoomName]) -> Result<Vec<Lease>, RoomsFull> {
        let shared = &self.shared;
        let mut rooms = self.rooms();
        let missing: HashSet<&RoomName> = names
            .iter()
            .filter(|name| !rooms.by_name.contains_key(*name))
            .collect();
        let free = shared.max_rooms.saturating_sub(rooms.by_name.len());
        if missing.len() > free {
            shared.metrics.record_rooms_refused(missing.len());
            warn!(
                new_rooms = missing.len(),
                free,
                max_rooms = shared.max_rooms,
                "new rooms refused: --max-rooms reached"
            );
            return Err(RoomsFull {
                max_rooms: shared.max_rooms,
                new_rooms: missing.len(),
                free,
            });
        }
        let mut leases = Vec::with_capacity(names.len());
        for name in names {
            let room = rooms.hold(name, shared);
            leases.push(Lease {
                registry: self.clone(),
                room,
            });
        }
        shared.metrics.set_rooms(rooms.by_name.len());
        Ok(leases)
    }

    /// Joins `member` to `name` (creating the room if needed); see [`Room::join`].
    pub(crate) fn join(
        &self,
        name: &RoomName,
        member: Member,
        since: Option<&Position>,
        reference: Option<&Ref>,
        direct: &mut Vec<Frame>,
    ) -> Result<Membership, RoomsFull> {
        let lease = self.lease(name)?;
        let user = member.user.clone();
        let follower = member.protocol == Protocol::Sse;
        let key = lease.room.join(member, since, reference, direct);
        if let Some(notices) = &self.shared.relay.notices {
            if follower {
                // Not present anywhere, but the room must stay subscribed while it listens.
                notices.check(name);
            } else {
                notices.joined(name, &user);
            }
        }
        if let Some(bridge) = &self.shared.relay.bridge {
            bridge.check(name);
        }
        Ok(Membership {
            registry: self.clone(),
            room: lease.room.clone(),
            key,
            user,
            reason: LeaveReason::Closed,
            follower,
        })
    }

    /// Starts `room`'s wait for expiry if it is unused (or removes it, with `--room-ttl 0`).
    /// Called whenever a room may have become unused: its last member left, a lease ended.
    fn release(&self, room: &Arc<Room>) {
        let shared = &self.shared;
        let mut rooms = self.rooms();
        let Rooms {
            by_name, deadlines, ..
        } = &mut *rooms;
        let Some(entry) = by_name.get_mut(&room.name) else {
            return;
        };
        if !Arc::ptr_eq(&entry.room, room) || !room.is_unused() {
            return;
        }
        if let Some(at) = entry.expires_at.take() {
            deadlines.cancel(at, room.id);
        }
        let expires_at = Instant::now().checked_add(shared.room_ttl);
        match expires_at {
            Some(at) if !shared.room_ttl.is_zero() => {
                entry.expires_at = Some(at);
                if deadlines.schedule(at, room.id, room.name.clone()) {
                    shared.earliest_changed.notify_one();
                }
            }
            // Zero, or a TTL past the clock's end (refused at start): remove at once.
            _ => {
                by_name.remove(&room.name);
                shared.metrics.set_rooms(by_name.len());
            }
        }
    }

    /// Removes the rooms whose deadline passed by `now`; returns the next deadline. Run by the
    /// janitor, and only ever touches rooms that expire.
    pub(crate) fn expire(&self, now: Instant) -> Option<Instant> {
        loop {
            let mut rooms = self.rooms();
            let Rooms {
                by_name, deadlines, ..
            } = &mut *rooms;
            let mut removed = 0;
            while removed < EXPIRY_BATCH_ROOMS {
                let Some((at, id, name)) = deadlines.pop_due(now) else {
                    self.shared.metrics.set_rooms(by_name.len());
                    return deadlines.next();
                };
                let expired = by_name.get(&name).is_some_and(|entry| {
                    entry.room.id == id && entry.expires_at == Some(at) && entry.room.is_unused()
                });
                if expired {
                    by_name.remove(&name);
                    removed += 1;
                }
            }
            self.shared.metrics.set_rooms(by_name.len());
            // Let joins and publishes in before the next batch.
        }
    }

    /// Completes when a deadline earlier than all others was queued since the last call.
    pub(crate) async fn earliest_changed(&self) {
        self.shared.earliest_changed.notified().await;
    }

    /// Every room that exists now.
    pub(crate) fn all(&self) -> Vec<Arc<Room>> {
        self.rooms()
            .by_name
            .values()
            .map(|e| e.room.clone())
            .collect()
    }

    /// The room named `name`, if it exists.
    pub(crate) fn get(&self, name: &RoomName) -> Option<Arc<Room>> {
        self.rooms().by_name.get(name).map(|e| e.room.clone())
    }

    /// Every room's numbers, sorted by name.
    pub(crate) fn snapshot(&self) -> Vec<RoomStats> {
        let rooms: Vec<Arc<Room>> = self
            .rooms()
            .by_name
            .values()
            .map(|e| e.room.clone())
            .collect();
        let mut stats: Vec<RoomStats> = rooms.iter().map(|room| room.stats()).collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }

    /// How many rooms exist (in use, or empty and waiting out `--room-ttl`).
    pub fn len(&self) -> usize {
        self.rooms().by_name.len()
    }

    /// True when no room exists.
    pub fn is_empty(&self) -> bool {
        self.rooms().by_name.is_empty()
    }
}

impl Rooms {
    /// The room named `name`, created if missing, held by one more lease and taken out of the
    /// expiry queue. The caller checked `--max-rooms`.
    fn hold(&mut self, name: &RoomName, shared: &Shared) -> Arc<Room> {
        let Self {
            by_name,
            deadlines,
            next_id,
        } = self;
        let entry = by_name.entry(name.clone()).or_insert_with(|| {
            *next_id += 1;
            let latest = is_latest_on_join(&shared.latest_on_join, name.as_str());
            Entry {
                room: Arc::new(Room::new(
                    *next_id,
                    name.clone(),
                    &shared.history,
                    shared.ring,
                    latest,
                    shared.relay.relayed,
                    shared.metrics.clone(),
                )),
                expires_at: None,
            }
        });
        if let Some(at) = entry.expires_at.take() {
            deadlines.cancel(at, entry.room.id);
        }
        entry.room.hold();
        entry.room.clone()
    }
}

/// A hold on a room while a join or a publish is under way: the room cannot expire until it is
/// dropped. Dropping the last hold of an empty room starts its `--room-ttl`.
#[derive(Debug)]
pub(crate) struct Lease {
    registry: Registry,
    room: Arc<Room>,
}

impl Lease {
    pub(crate) fn room(&self) -> &Arc<Room> {
        &self.room
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.room.let_go() {
            self.registry.release(&self.room);
        }
    }
}

/// A session's place in a room. Dropping it leaves the room (sending `leave` with the reason
/// set by [`Membership::set_reason`], `closed` by default, unless shutdown has begun) and starts
/// the room's `--room-ttl` if it was the last member.
#[derive(Debug)]
pub(crate) struct Membership {
    registry: Registry,
    room: Arc<Room>,
    key: usize,
    user: UserName,
    reason: LeaveReason,
    /// An SSE follower: never present, so its leaving changes only the subscription.
    follower: bool,
}

impl Membership {
    pub(crate) fn room(&self) -> &Arc<Room> {
        &self.room
    }

    /// The member's slot in its room (for reading the room's ring).
    pub(crate) fn key(&self) -> usize {
        self.key
    }

    /// Why the member leaves, reported to the others when this is dropped.
    pub(crate) fn set_reason(&mut self, reason: LeaveReason) {
        self.reason = reason;
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let announce = !self.registry.shared.shutdown.is_cancelled();
        if self.room.leave(self.key, self.reason, announce) {
            self.registry.release(&self.room);
        }
        // Even at shutdown: the other nodes' members must hear that this node's users left.
        if let Some(notices) = &self.registry.shared.relay.notices {
            if self.follower {
                notices.check(&self.room.name);
            } else {
                notices.left(&self.room.name, &self.user, self.reason);
            }
        }
        if let Some(bridge) = &self.registry.shared.relay.bridge {
            bridge.check(&self.room.name);
        }
    }
}

#[cfg(test)]
mod tests;
