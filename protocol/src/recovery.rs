//! Where a client is in each joined room's stream, so a rejoin after a lost session asks for
//! exactly what it missed (`join` with `since`). The TUI and `roomcast listen` both keep one.

use crate::room::RoomName;
use crate::v1::Position;

/// The rooms to be in, in join order, each with the last position seen.
#[derive(Debug, Clone, Default)]
pub struct Positions {
    rooms: Vec<(RoomName, Option<Position>)>,
}

impl Positions {
    /// `rooms` in order (repeats once), no position yet.
    pub fn new(rooms: &[RoomName]) -> Self {
        let mut positions = Self::default();
        for room in rooms {
            positions.add(room.clone());
        }
        positions
    }

    /// Adds `room`; false when it was already there.
    pub fn add(&mut self, room: RoomName) -> bool {
        if self.rooms.iter().any(|(r, _)| *r == room) {
            return false;
        }
        self.rooms.push((room, None));
        true
    }

    /// Makes the next join of `room` (already added) ask for what follows `since`.
    pub fn start_from(&mut self, room: &RoomName, since: Position) {
        if let Some((_, position)) = self.rooms.iter_mut().find(|(r, _)| r == room) {
            *position = Some(since);
        }
    }

    /// Forgets `room` and its position.
    pub fn remove(&mut self, room: &RoomName) {
        self.rooms.retain(|(r, _)| r != room);
    }

    /// Every room with the `since` to send.
    pub fn joins(&self) -> Vec<(RoomName, Option<Position>)> {
        self.rooms.clone()
    }

    /// Records a `joined`. When a replay follows, the position stays where the replay starts,
    /// so a session lost mid-replay asks again for the rest.
    pub fn joined(
        &mut self,
        room: &RoomName,
        epoch: &str,
        seq: u64,
        replay: usize,
        since: Option<&Position>,
    ) {
        let start = match since {
            _ if replay == 0 => seq,
            Some(since) if since.epoch == epoch => since.seq,
            _ => 0,
        };
        if let Some((_, position)) = self.rooms.iter_mut().find(|(r, _)| r == room) {
            *position = Some(Position {
                epoch: epoch.to_owned(),
                seq: start,
            });
        }
    }

    /// Records a message's seq.
    pub fn saw(&mut self, room: &RoomName, seq: u64) {
        if let Some((_, Some(position))) = self.rooms.iter_mut().find(|(r, _)| r == room) {
            position.seq = position.seq.max(seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::new(name).expect("valid room")
    }

    fn since(positions: &Positions, name: &str) -> Option<Position> {
        positions
            .joins()
            .into_iter()
            .find(|(r, _)| r.as_str() == name)
            .and_then(|(_, p)| p)
    }

    #[test]
    fn a_rejoin_asks_from_the_last_message_seen() {
        let mut p = Positions::new(&[room("lobby")]);
        assert_eq!(since(&p, "lobby"), None);
        p.joined(&room("lobby"), "e1", 7, 0, None);
        p.saw(&room("lobby"), 8);
        assert_eq!(
            since(&p, "lobby"),
            Some(Position {
                epoch: "e1".into(),
                seq: 8
            })
        );
    }

    #[test]
    fn a_replay_in_progress_keeps_the_position_where_it_starts() {
        let mut p = Positions::new(&[room("lobby")]);
        let old = Position {
            epoch: "e1".into(),
            seq: 3,
        };
        p.joined(&room("lobby"), "e1", 9, 6, Some(&old));
        assert_eq!(since(&p, "lobby").map(|p| p.seq), Some(3));
        p.joined(&room("lobby"), "e2", 4, 4, Some(&old));
        assert_eq!(since(&p, "lobby").map(|p| p.seq), Some(0));
    }

    #[test]
    fn rooms_are_kept_once_in_join_order() {
        let mut p = Positions::new(&[room("b"), room("a"), room("b")]);
        assert!(!p.add(room("a")));
        assert!(p.add(room("c")));
        p.remove(&room("b"));
        let names: Vec<String> = p.joins().iter().map(|(r, _)| r.to_string()).collect();
        assert_eq!(names, ["a", "c"]);
    }
}
