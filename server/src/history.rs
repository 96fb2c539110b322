//! A room's recent messages, bounded in count and bytes, and the frames each one encodes to.

mod data;

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use roomcast_protocol::{Position, RoomName, UserName};

pub(crate) use self::data::MessageData;
use crate::frames::{self, Frame, Protocol};

/// Bytes charged per history entry beyond its text and encodings: the JSON envelope (room,
/// user, seq, ts), the `Arc` and the names it holds. An estimate, so a history of many tiny
/// messages is still bounded by `--history-bytes`.
const ENTRY_OVERHEAD_BYTES: usize = 256;

/// One published message. It is encoded at most once per protocol, however many members and
/// replays deliver it; every delivery shares those bytes.
#[derive(Debug)]
pub(crate) struct Publication {
    pub(crate) room: RoomName,
    pub(crate) user: UserName,
    pub(crate) seq: u64,
    pub(crate) ts: u64,
    pub(crate) text: Box<str>,
    /// Structured fields beside the text: in typed frames, SSE events, history and the relay;
    /// never in tutorial frames (the Channels tutorial page shows `message` only).
    pub(crate) data: Option<MessageData>,
    typed: OnceLock<Frame>,
    tutorial: OnceLock<Frame>,
    sse: OnceLock<Frame>,
}

impl Publication {
    /// A message without data (tests build these).
    #[cfg(test)]
    pub(crate) fn new(room: RoomName, user: UserName, seq: u64, ts: u64, text: &str) -> Self {
        Self::with_data(room, user, seq, ts, text, None)
    }

    /// A message with `data` beside its text.
    pub(crate) fn with_data(
        room: RoomName,
        user: UserName,
        seq: u64,
        ts: u64,
        text: &str,
        data: Option<MessageData>,
    ) -> Self {
        Self {
            room,
            user,
            seq,
            ts,
            text: text.into(),
            data,
            typed: OnceLock::new(),
            tutorial: OnceLock::new(),
            sse: OnceLock::new(),
        }
    }

    /// The frame for members speaking `protocol` (WebSocket header included, or the SSE
    /// event whose `id` names `epoch`, the room's epoch this message was numbered in), encoded
    /// on first use; every delivery shares those bytes.
    pub(crate) fn frame(&self, protocol: Protocol, epoch: &str) -> Frame {
        match protocol {
            Protocol::Typed => &self.typed,
            Protocol::Tutorial => &self.tutorial,
            Protocol::Sse => {
                return self
                    .sse
                    .get_or_init(|| crate::sse::event::message(self, epoch))
                    .clone();
            }
        }
        .get_or_init(|| frames::message(self, protocol))
        .clone()
    }

    /// The text's and the data's bytes: what a message's encodings grow with.
    pub(crate) fn body_bytes(&self) -> usize {
        self.text.len() + self.data.as_ref().map_or(0, MessageData::len)
    }

    /// What this entry costs in history: the text and data, the three possible encodings
    /// (the tutorial's has no data), and the rest.
    fn charged_bytes(&self) -> usize {
        let data_bytes = self.data.as_ref().map_or(0, MessageData::len);
        4 * self.text.len() + 3 * data_bytes + ENTRY_OVERHEAD_BYTES
    }
}

/// The last messages of a room: at most `max_entries` and about `max_bytes`, oldest dropped
/// first. Sequence numbers in it are consecutive.
#[derive(Debug)]
pub(crate) struct History {
    entries: VecDeque<Arc<Publication>>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

/// The outcome of asking for what came after a position.
#[derive(Debug)]
enum Since<'a> {
    /// Every message after the position is still held (possibly none).
    Complete(Vec<&'a Arc<Publication>>),
    /// Some are gone; these are the ones still held after the position.
    Partial(Vec<&'a Arc<Publication>>),
}

impl History {
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    /// Forgets every message (a relayed room loading another epoch's history).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The newest kept message's seq.
    pub(crate) fn last_seq(&self) -> Option<u64> {
        self.entries.back().map(|m| m.seq)
    }

    /// Keeps `message` (unless history is disabled), dropping the oldest past either bound.
    pub(crate) fn push(&mut self, message: Arc<Publication>) {
        if self.max_entries == 0 {
            return;
        }
        self.bytes += message.charged_bytes();
        self.entries.push_back(message);
        while self.entries.len() > self.max_entries
            || (self.bytes > self.max_bytes && self.entries.len() > 1)
        {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.charged_bytes();
            }
        }
    }

    /// The newest message, for latest-state rooms.
    fn latest(&self) -> Option<&Arc<Publication>> {
        self.entries.back()
    }

    /// Messages after `seq`, given that the room's last seq is `last_seq`.
    fn after(&self, seq: u64, last_seq: u64) -> Since<'_> {
        if seq > last_seq {
            // A position from the future of this epoch cannot be ours: do not claim recovery.
            return Since::Partial(Vec::new());
        }
        let held: Vec<_> = self.entries.iter().filter(|m| m.seq > seq).collect();
        let complete = seq == last_seq || held.first().is_some_and(|first| first.seq == seq + 1);
        if complete {
            Since::Complete(held)
        } else {
            Since::Partial(held)
        }
    }

    /// What a joiner is replayed, and whether recovery succeeded (when it asked to recover).
    /// `epoch` and `last_seq` are the room's.
    pub(crate) fn replay(
        &self,
        since: Option<&Position>,
        epoch: &str,
        last_seq: u64,
        latest_on_join: bool,
    ) -> (Vec<Arc<Publication>>, Option<bool>) {
        match since {
            Some(position) if position.epoch == epoch => match self.after(position.seq, last_seq) {
                Since::Complete(list) => (list.into_iter().cloned().collect(), Some(true)),
                Since::Partial(list) => (list.into_iter().cloned().collect(), Some(false)),
            },
            // Another epoch: everything held is news to this client, and something may be lost.
            Some(_) => (self.page(0, usize::MAX), Some(false)),
            None if latest_on_join => (self.latest().into_iter().cloned().collect(), None),
            None => (Vec::new(), None),
        }
    }

    /// Messages with seq greater than `since`, oldest first, at most `limit` (HTTP history).
    pub(crate) fn page(&self, since: u64, limit: usize) -> Vec<Arc<Publication>> {
        self.entries
            .iter()
            .filter(|m| m.seq > since)
            .take(limit)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64) -> Arc<Publication> {
        let room = RoomName::new("r").expect("valid room");
        let user = UserName::new("u").expect("valid user");
        Arc::new(Publication::new(room, user, seq, 0, "hello"))
    }

    fn filled(max_entries: usize, last: u64) -> History {
        let mut history = History::new(max_entries, usize::MAX);
        (1..=last).for_each(|seq| history.push(message(seq)));
        history
    }

    fn seqs(list: &[&Arc<Publication>]) -> Vec<u64> {
        list.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn keeps_the_newest_entries() {
        let history = filled(3, 10);
        assert_eq!(
            history
                .page(0, 10)
                .iter()
                .map(|m| m.seq)
                .collect::<Vec<_>>(),
            [8, 9, 10]
        );
    }

    #[test]
    fn recovery_is_complete_only_without_a_gap() {
        let history = filled(5, 10);
        assert!(matches!(history.after(6, 10), Since::Complete(l) if seqs(&l) == [7, 8, 9, 10]));
        assert!(matches!(history.after(5, 10), Since::Complete(l) if seqs(&l) == [6, 7, 8, 9, 10]));
        assert!(matches!(history.after(4, 10), Since::Partial(l) if seqs(&l) == [6, 7, 8, 9, 10]));
        assert!(matches!(history.after(10, 10), Since::Complete(l) if l.is_empty()));
        assert!(matches!(history.after(11, 10), Since::Partial(l) if l.is_empty()));
    }

    #[test]
    fn a_disabled_history_recovers_only_when_nothing_was_missed() {
        let history = filled(0, 3);
        assert!(matches!(history.after(3, 3), Since::Complete(_)));
        assert!(matches!(history.after(2, 3), Since::Partial(l) if l.is_empty()));
    }

    #[test]
    fn the_byte_bound_drops_the_oldest_but_keeps_one() {
        let mut history = History::new(100, 1);
        history.push(message(1));
        history.push(message(2));
        assert_eq!(history.page(0, 10).len(), 1);
        assert_eq!(history.latest().map(|m| m.seq), Some(2));
    }
}
