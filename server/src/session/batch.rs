//! A session's publishes of one read, woken together.
//!
//! A client that sends several messages in one read (a busy publisher does, many per TCP
//! segment) would otherwise wake every waiting member of the room once per message, and a
//! member woken after the first would read it alone, then wait to be woken again. Locally, a
//! session's publishes are numbered, kept and appended to the room's ring at once
//! ([`crate::room::Dispatch::Batched`]), but the members are woken only when the session
//! flushes: at the end of the read, before any other command, and when the session ends.
//! Order needs no flush: it is the ring's, and the session's own answers are queued behind
//! what its rings hold (`writer.rs`).

use std::sync::Arc;

use super::Session;
use crate::room::Room;

impl Session {
    /// Remembers that `room` holds a batched publish of this session (once per room). Bounded
    /// by `--max-rooms-per-session`: at most one entry per room the session is in.
    pub(super) fn defer_room(&mut self, room: &Arc<Room>) {
        if !self.deferred.iter().any(|r| Arc::ptr_eq(r, room)) {
            self.deferred.push(room.clone());
        }
    }

    /// Wakes the members of every room holding a batched publish.
    pub(super) fn flush_deferred(&mut self) {
        for room in self.deferred.drain(..) {
            room.flush();
        }
    }
}
