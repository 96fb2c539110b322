//! The `id` of SSE events: where a follower stands in each of its rooms.
//!
//! One position is `room:epoch:seq` (room names and epochs never hold `:` or `,`); a cursor is
//! one or more positions joined by `,`, one per room, in the order the stream lists its rooms.
//! A single-room stream's ids are one position; a multi-room stream's ids carry every room's.
//! The browser sends the last one back as `Last-Event-ID`, other clients as `?since=`.

use std::fmt;

use roomcast_protocol::RoomName;

/// Longest epoch accepted in a cursor. Ours are 16 hex digits; the bound keeps a forged
/// header from costing more than a few bytes per room.
const MAX_EPOCH_CHARS: usize = 64;

/// Where a follower stands in one room: the last message it has in `epoch` is `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) room: RoomName,
    pub(crate) epoch: String,
    pub(crate) seq: u64,
}

impl Position {
    /// The position after message `seq` of `room`'s `epoch`.
    pub(crate) fn of(room: &RoomName, epoch: &str, seq: u64) -> Self {
        Self {
            room: room.clone(),
            epoch: epoch.to_owned(),
            seq,
        }
    }

    /// What a join with `since` needs.
    pub(crate) fn to_protocol(&self) -> roomcast_protocol::Position {
        roomcast_protocol::Position {
            epoch: self.epoch.clone(),
            seq: self.seq,
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split(':');
        let (Some(room), Some(epoch), Some(seq), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("{text:?} is not room:epoch:seq"));
        };
        let room = RoomName::new(room).map_err(|e| format!("{text:?}: {e}"))?;
        let epoch_ok = !epoch.is_empty()
            && epoch.len() <= MAX_EPOCH_CHARS
            && epoch
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !epoch_ok {
            return Err(format!(
                "{text:?}: the epoch must be 1 to {MAX_EPOCH_CHARS} of A-Z a-z 0-9 - _"
            ));
        }
        let seq = seq
            .parse()
            .map_err(|_| format!("{text:?}: the seq must be a whole number"))?;
        Ok(Self {
            room,
            epoch: epoch.to_owned(),
            seq,
        })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.room.as_str(), self.epoch, self.seq)
    }
}

/// Positions in several rooms, at most one per room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    positions: Vec<Position>,
}

impl Cursor {
    /// Reads a cursor of at most `max_rooms` positions; the error names what is wrong.
    pub(crate) fn parse(text: &str, max_rooms: usize) -> Result<Self, String> {
        let mut cursor = Self::default();
        for part in text.trim().split(',') {
            if cursor.positions.len() >= max_rooms {
                return Err(format!(
                    "more than {max_rooms} rooms (--max-rooms-per-session)"
                ));
            }
            cursor.set(Position::parse(part.trim())?);
        }
        Ok(cursor)
    }

    /// The first position (a single-room id's only one).
    pub(crate) fn first(&self) -> Option<&Position> {
        self.positions.first()
    }

    /// The position in `room`, if known.
    pub(crate) fn get(&self, room: &RoomName) -> Option<&Position> {
        self.positions.iter().find(|p| p.room == *room)
    }

    /// Records `position`, replacing the one of its room.
    pub(crate) fn set(&mut self, position: Position) {
        match self.positions.iter_mut().find(|p| p.room == position.room) {
            Some(known) => *known = position,
            None => self.positions.push(position),
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, position) in self.positions.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{position}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::new(name).expect("valid room")
    }

    #[test]
    fn a_cursor_reads_back_what_it_writes() {
        let mut cursor = Cursor::default();
        cursor.set(Position::of(&room("a"), "00ff", 3));
        cursor.set(Position::of(&room("b.c"), "1234", 0));
        cursor.set(Position::of(&room("a"), "00ff", 4));
        let text = cursor.to_string();
        assert_eq!(text, "a:00ff:4,b.c:1234:0");
        assert_eq!(Cursor::parse(&text, 10), Ok(cursor));
    }

    #[test]
    fn bad_cursors_say_what_is_wrong() {
        let error = |text: &str| Cursor::parse(text, 2).err().unwrap_or_default();
        assert!(error("lobby:e1").contains("room:epoch:seq"));
        assert!(error("lobby:e1:x").contains("whole number"));
        assert!(error("lo by:e1:1").contains("room name"));
        assert!(error("lobby:e 1:1").contains("epoch"));
        assert!(error("a:e:1,b:e:2,c:e:3").contains("--max-rooms-per-session"));
    }
}
