//! The rooms one session is in.
//!
//! A `Vec`, not a `HashMap`: most sessions are in one room, and `--max-rooms-per-session`
//! keeps the rest to a short list. With one room, a `HashMap` allocated four buckets and their
//! control bytes (276 bytes per idle session, measured with massif); the `Vec` holds one entry.

use std::future::poll_fn;
use std::task::Poll;

use roomcast_protocol::RoomName;

use crate::registry::Membership;
use crate::room::Lagged;

/// A session's memberships by room, at most one per room.
#[derive(Debug, Default)]
pub(crate) struct Memberships(Vec<(RoomName, Membership)>);

impl Memberships {
    pub(crate) fn contains_key(&self, room: &RoomName) -> bool {
        self.0.iter().any(|(name, _)| name == room)
    }

    pub(crate) fn get(&self, room: &RoomName) -> Option<&Membership> {
        self.0
            .iter()
            .find_map(|(name, membership)| (name == room).then_some(membership))
    }

    /// Adds the membership of `room`, replacing (and returning) an earlier one.
    pub(crate) fn insert(&mut self, room: RoomName, membership: Membership) -> Option<Membership> {
        let earlier = self.remove(&room);
        self.0.push((room, membership));
        earlier
    }

    pub(crate) fn remove(&mut self, room: &RoomName) -> Option<Membership> {
        let at = self.0.iter().position(|(name, _)| name == room)?;
        Some(self.0.swap_remove(at).1)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The rooms, in no particular order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &RoomName> {
        self.0.iter().map(|(name, _)| name)
    }

    /// The memberships, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Membership> {
        self.0.iter().map(|(_, membership)| membership)
    }

    /// Waits until a room's ring holds frames for this session (only if `wants_frames`: not
    /// while the socket still has frames to take) or a room says it lagged. Cancel-safe; with
    /// no rooms, never ready.
    pub(crate) async fn ready(&self, wants_frames: bool) -> Result<(), Lagged> {
        poll_fn(|cx| {
            for (_, membership) in &self.0 {
                if let Poll::Ready(ready) =
                    membership
                        .room()
                        .poll_feed(membership.key(), cx, wants_frames)
                {
                    return Poll::Ready(ready);
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Takes every membership out.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (RoomName, Membership)> + '_ {
        self.0.drain(..)
    }
}
