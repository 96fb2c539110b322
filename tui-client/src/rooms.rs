//! What the client knows about each joined room: its timeline, unread state, members, scroll
//! position and input history. Pure data; `App` decides when it changes.

use std::collections::VecDeque;

use roomcast_protocol::{LeaveReason, RoomName, UserName};

use crate::input::History;

/// Timeline entries kept per room; older ones are dropped first. Enough for an afternoon of a
/// busy room, small enough that re-wrapping everything on resize stays instant.
pub const MAX_ENTRIES_PER_ROOM: usize = 2_000;

/// One line of a room's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A chat message (live or replayed).
    Message {
        /// Server time in ms.
        ts: u64,
        /// Its author.
        user: UserName,
        /// The text, as sent (sanitized at render time).
        text: String,
        /// True when this client's user wrote it.
        own: bool,
        /// True when it names this client's user.
        mention: bool,
    },
    /// Someone became present or stopped being present.
    Presence {
        /// When the client learnt it (server-less events carry local time).
        ts: u64,
        /// Who.
        user: UserName,
        /// `None` for a join, the reason for a leave.
        left: Option<LeaveReason>,
    },
    /// A reconnect could not recover everything.
    Missing {
        /// When the gap was noticed.
        ts: u64,
        /// How many messages are gone, when the server's numbering tells.
        count: Option<u64>,
    },
    /// Client-side information (`/who`, errors, first join).
    Notice {
        /// When it was shown.
        ts: u64,
        /// What to show.
        text: String,
        /// Errors are drawn in red, the rest dimmed.
        error: bool,
    },
}

impl Entry {
    /// The entry's time, for timestamps and date separators.
    pub fn ts(&self) -> u64 {
        match self {
            Entry::Message { ts, .. }
            | Entry::Presence { ts, .. }
            | Entry::Missing { ts, .. }
            | Entry::Notice { ts, .. } => *ts,
        }
    }

    /// Join/leave lines, which the user may hide.
    pub fn is_presence(&self) -> bool {
        matches!(self, Entry::Presence { .. })
    }
}

/// A joined (or joining) room.
#[derive(Debug, Clone)]
pub struct Room {
    /// Its name.
    pub name: RoomName,
    /// Oldest first, at most [`MAX_ENTRIES_PER_ROOM`].
    pub entries: VecDeque<Entry>,
    /// Messages that arrived while another room was shown.
    pub unread: usize,
    /// True when one of the unread messages mentions this user.
    pub mentioned: bool,
    /// Present users, sorted.
    pub members: Vec<UserName>,
    /// True once the server answered `joined` (false while joining or offline).
    pub joined: bool,
    /// True after the first `joined`: later ones are rejoins after a reconnect.
    pub ever_joined: bool,
    /// Rows scrolled up from the bottom of the timeline; 0 follows new messages.
    pub scroll: usize,
    /// Messages that arrived below the view while scrolled up.
    pub new_below: usize,
    /// A same-epoch recovery that lost messages: the `since.seq` asked, until the first
    /// replayed message tells how many are gone.
    pub gap_after: Option<u64>,
    /// What was sent here, for Up/Down.
    pub history: History,
}

impl Room {
    /// A room the client is about to join.
    pub fn new(name: RoomName) -> Self {
        Self {
            name,
            entries: VecDeque::new(),
            unread: 0,
            mentioned: false,
            members: Vec::new(),
            joined: false,
            ever_joined: false,
            scroll: 0,
            new_below: 0,
            gap_after: None,
            history: History::default(),
        }
    }

    /// Appends an entry, dropping the oldest past the bound.
    pub fn push(&mut self, entry: Entry) {
        if self.entries.len() == MAX_ENTRIES_PER_ROOM {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Marks everything read (the room is on screen).
    pub fn mark_read(&mut self) {
        self.unread = 0;
        self.mentioned = false;
    }

    /// Adds `user` to the sorted member list.
    pub fn add_member(&mut self, user: UserName) {
        if let Err(at) = self.members.binary_search(&user) {
            self.members.insert(at, user);
        }
    }

    /// Removes `user` from the member list.
    pub fn remove_member(&mut self, user: &UserName) {
        if let Ok(at) = self.members.binary_search(user) {
            self.members.remove(at);
        }
    }
}

/// True when `text` names `me` as a word (case-insensitive), e.g. "hi Ana!" for "ana".
pub fn mentions(text: &str, me: &UserName) -> bool {
    let needle = me.as_str().to_lowercase();
    let haystack = text.to_lowercase();
    let is_word = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
    haystack.match_indices(&needle).any(|(at, found)| {
        is_word(haystack[..at].chars().next_back())
            && is_word(haystack[at + found.len()..].chars().next())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserName {
        UserName::new(name).expect("valid test user")
    }

    #[test]
    fn mentions_match_whole_words_in_any_case() {
        assert!(mentions("hi Ana!", &user("ana")));
        assert!(mentions("ana: look", &user("ana")));
        assert!(!mentions("banana", &user("ana")));
        assert!(mentions("José?", &user("josé")));
    }

    #[test]
    fn the_timeline_keeps_a_bounded_number_of_entries() {
        let mut room = Room::new(RoomName::new("lobby").expect("valid room"));
        for n in 0..MAX_ENTRIES_PER_ROOM + 5 {
            room.push(Entry::Notice {
                ts: n as u64,
                text: String::new(),
                error: false,
            });
        }
        assert_eq!(room.entries.len(), MAX_ENTRIES_PER_ROOM);
        assert_eq!(room.entries.front().map(Entry::ts), Some(5));
    }
}
