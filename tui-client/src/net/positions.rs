//! Where this client is in each joined room's stream, so a rejoin asks for exactly what it
//! missed (`join` with `since`).

use roomcast_protocol::{Position, RoomName};

/// The rooms to be in, in join order, each with the last position seen.
#[derive(Debug, Clone, Default)]
pub(super) struct Positions {
    rooms: Vec<(RoomName, Option<Position>)>,
}

impl Positions {
    pub(super) fn new(rooms: &[RoomName]) -> Self {
        let mut positions = Self::default();
        for room in rooms {
            positions.add(room.clone());
        }
        positions
    }

    /// Adds `room`; false when it was already there.
    pub(super) fn add(&mut self, room: RoomName) -> bool {
        if self.rooms.iter().any(|(r, _)| *r == room) {
            return false;
        }
        self.rooms.push((room, None));
        true
    }

    /// Forgets `room` and its position.
    pub(super) fn remove(&mut self, room: &RoomName) {
        self.rooms.retain(|(r, _)| r != room);
    }

    /// Every room with the `since` to send.
    pub(super) fn joins(&self) -> Vec<(RoomName, Option<Position>)> {
        self.rooms.clone()
    }

    /// Records a `joined`. When a replay follows, the position stays where the replay starts,
    /// so a session lost mid-replay asks again for the rest.
    pub(super) fn joined(
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
    pub(super) fn saw(&mut self, room: &RoomName, seq: u64) {
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
