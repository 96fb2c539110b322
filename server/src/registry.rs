//! The room registry: rooms are created on first use and removed when empty (at once, or after
//! `--room-ttl` when they hold history worth recovering). Cleanup is by ownership: a
//! [`Membership`] leaves its room when dropped, whatever ended the session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use roomcast_protocol::{LeaveReason, Position, Ref, RoomName, UserName};

use crate::config::is_latest_on_join;
use crate::metrics::Metrics;
use crate::relay::Notices;
use crate::room::{Delivery, HistoryLimits, Member, Room, RoomStats};

/// A cheap, cloneable handle to the registry.
#[derive(Debug, Clone)]
pub struct Registry {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Lock order: this registry lock, then a room's lock; never the other way round.
    rooms: Mutex<HashMap<RoomName, Arc<Room>>>,
    history: HistoryLimits,
    room_ttl: Duration,
    max_rooms: usize,
    latest_on_join: Vec<String>,
    relay: RelayHooks,
    metrics: Arc<Metrics>,
}

/// A new room was refused: `--max-rooms` rooms exist already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoomsFull {
    pub(crate) max_rooms: usize,
}

impl std::fmt::Display for RoomsFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server holds its maximum of {} rooms (--max-rooms); try again later",
            self.max_rooms
        )
    }
}

/// What [`Registry::new`] needs to know.
#[derive(Debug, Clone)]
pub(crate) struct RoomSettings {
    pub(crate) history: HistoryLimits,
    pub(crate) room_ttl: Duration,
    pub(crate) max_rooms: usize,
    pub(crate) latest_on_join: Vec<String>,
    /// How rooms relate to a relay (`--redis-url`); `default()` for a node alone.
    pub(crate) relay: RelayHooks,
}

/// What the registry does for a relay: number rooms there, and tell it who joined and left.
#[derive(Debug, Clone, Default)]
pub(crate) struct RelayHooks {
    /// Rooms are numbered by the relay (see [`Room::deliver`]).
    pub(crate) relayed: bool,
    /// Told of every join and leave, so the relay subscribes while a room has local members
    /// and keeps presence on every node current.
    pub(crate) notices: Option<Notices>,
}

impl Registry {
    pub(crate) fn new(settings: RoomSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            shared: Arc::new(Shared {
                rooms: Mutex::new(HashMap::new()),
                history: settings.history,
                room_ttl: settings.room_ttl,
                max_rooms: settings.max_rooms,
                latest_on_join: settings.latest_on_join,
                relay: settings.relay,
                metrics,
            }),
        }
    }

    fn by_name(&self) -> MutexGuard<'_, HashMap<RoomName, Arc<Room>>> {
        self.shared
            .rooms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get_or_create(&self, name: &RoomName) -> Result<Arc<Room>, RoomsFull> {
        let mut rooms = self.by_name();
        if let Some(room) = rooms.get(name) {
            return Ok(room.clone());
        }
        if rooms.len() >= self.shared.max_rooms {
            self.shared.metrics.record_room_refused();
            return Err(RoomsFull {
                max_rooms: self.shared.max_rooms,
            });
        }
        let latest = is_latest_on_join(&self.shared.latest_on_join, name.as_str());
        let room = Arc::new(Room::new(
            name.clone(),
            &self.shared.history,
            latest,
            self.shared.relay.relayed,
            self.shared.metrics.clone(),
        ));
        rooms.insert(name.clone(), room.clone());
        self.shared.metrics.set_rooms(rooms.len());
        Ok(room)
    }

    /// The room named `name`, if it exists.
    pub(crate) fn get(&self, name: &RoomName) -> Option<Arc<Room>> {
        self.by_name().get(name).cloned()
    }

    /// Joins `member` to `name` (creating the room if needed); see [`Room::join`].
    pub(crate) fn join(
        &self,
        name: &RoomName,
        member: Member,
        since: Option<&Position>,
        reference: Option<&Ref>,
    ) -> Result<Membership, RoomsFull> {
        let mut member = member;
        let user = member.user.clone();
        loop {
            let room = self.get_or_create(name)?;
            match room.try_join(member, since, reference.cloned()) {
                Ok(key) => {
                    if let Some(notices) = &self.shared.relay.notices {
                        notices.joined(name, &user);
                    }
                    return Ok(Membership {
                        rooms: self.clone(),
                        room,
                        key,
                        user,
                        reason: LeaveReason::Closed,
                    });
                }
                // Retired between lookup and join: look it up again.
                Err(returned) => member = returned,
            }
        }
    }

    /// Publishes `text` as `user` to `name`, creating the room if needed so its history keeps
    /// the message for later joiners.
    pub(crate) fn publish(
        &self,
        name: &RoomName,
        user: &UserName,
        text: &str,
    ) -> Result<Delivery, RoomsFull> {
        loop {
            let room = self.get_or_create(name)?;
            if let Ok(delivery) = room.publish(user, text) {
                if delivery.delivered == 0 {
                    self.release_if_empty(&room);
                }
                return Ok(delivery);
            }
        }
    }

    /// Removes `room` if it is empty and has nothing worth keeping for `--room-ttl`.
    fn release_if_empty(&self, room: &Arc<Room>) {
        let ttl = self.shared.room_ttl;
        let mut rooms = self.by_name();
        let retired = room.retire_if_empty(|history_empty, _| !history_empty && !ttl.is_zero());
        if retired && rooms.get(&room.name).is_some_and(|r| Arc::ptr_eq(r, room)) {
            rooms.remove(&room.name);
            self.shared.metrics.set_rooms(rooms.len());
        }
    }

    /// Removes empty rooms whose history outlived `--room-ttl`. Run by the janitor task.
    pub(crate) fn sweep(&self, now: Instant) {
        let ttl = self.shared.room_ttl;
        let mut rooms = self.by_name();
        rooms.retain(|_, room| {
            !room.retire_if_empty(|history_empty, since| {
                !history_empty && now.saturating_duration_since(since) < ttl
            })
        });
        self.shared.metrics.set_rooms(rooms.len());
    }

    /// The room named `name`, created when missing (a relay preparing a join loads it first).
    pub(crate) fn get_or_create_room(&self, name: &RoomName) -> Result<Arc<Room>, RoomsFull> {
        self.get_or_create(name)
    }

    /// Every room that exists now.
    pub(crate) fn all(&self) -> Vec<Arc<Room>> {
        self.by_name().values().cloned().collect()
    }

    /// Every room's numbers, sorted by name.
    pub(crate) fn snapshot(&self) -> Vec<RoomStats> {
        let rooms: Vec<Arc<Room>> = self.by_name().values().cloned().collect();
        let mut stats: Vec<RoomStats> = rooms.iter().map(|room| room.stats()).collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }

    /// How many rooms exist (with members, or keeping history for `--room-ttl`).
    pub fn len(&self) -> usize {
        self.by_name().len()
    }

    /// True when no room exists.
    pub fn is_empty(&self) -> bool {
        self.by_name().is_empty()
    }
}

/// A session's place in a room. Dropping it leaves the room (sending `leave` with the reason
/// set by [`Membership::set_reason`], `closed` by default) and removes the room if it emptied.
#[derive(Debug)]
pub(crate) struct Membership {
    rooms: Registry,
    room: Arc<Room>,
    key: usize,
    user: UserName,
    reason: LeaveReason,
}

impl Membership {
    pub(crate) fn room(&self) -> &Arc<Room> {
        &self.room
    }

    /// Why the member leaves, reported to the others when this is dropped.
    pub(crate) fn set_reason(&mut self, reason: LeaveReason) {
        self.reason = reason;
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if self.room.leave(self.key, self.reason) {
            self.rooms.release_if_empty(&self.room);
        }
        if let Some(notices) = &self.rooms.shared.relay.notices {
            notices.left(&self.room.name, &self.user, self.reason);
        }
    }
}
