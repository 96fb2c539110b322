//! A session's publishes of one read, fanned out together.
//!
//! A client that sends several messages in one read (a busy publisher does, many per TCP
//! segment) would otherwise cost every member of the room one outbox lock, one queue push and
//! possibly one wake per message. Locally, a session's publishes are numbered and kept at once
//! but queued for the members only when the session flushes: at the end of the read, before
//! any other command, and before anything is queued for the session itself. The room queues
//! them first whenever its members change, so no member gets a message from before its join
//! nor misses one from before its leave (`room.rs`, `Dispatch::Batched`).
//!
//! The session's own answers to those publishes (typed `ack`s) wait with them, so the session
//! still receives its copy of a message before the `ack` for it.

use std::sync::Arc;

use super::Session;
use crate::frames::Frame;
use crate::room::Room;

/// What a flush will do, in order: rooms to flush, then answers to queue for the session.
/// Bounded by the frames of one read (the reader's buffer and `--max-message-bytes` bound
/// those), and emptied before the session waits again.
#[derive(Debug)]
pub(super) enum Deferred {
    /// A room holding this session's batched publishes.
    Room(Arc<Room>),
    /// An answer to one of them, queued after every room was flushed.
    Answer(Frame),
}

impl Session {
    /// Remembers that `room` holds a batched publish of this session (once per room).
    pub(super) fn defer_room(&mut self, room: &Arc<Room>) {
        let known = self
            .deferred
            .iter()
            .any(|d| matches!(d, Deferred::Room(r) if Arc::ptr_eq(r, room)));
        if !known {
            self.deferred.push(Deferred::Room(room.clone()));
        }
    }

    /// Whether a flush has anything to do.
    pub(super) fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Fans out every batched publish, then queues the answers that waited for them.
    pub(super) fn flush_deferred(&mut self) {
        if self.deferred.is_empty() {
            return;
        }
        let deferred = std::mem::take(&mut self.deferred);
        for entry in &deferred {
            if let Deferred::Room(room) = entry {
                room.flush();
            }
        }
        for entry in deferred {
            if let Deferred::Answer(frame) = entry {
                let _pushed = self.outbox.push(frame);
            }
        }
    }
}
