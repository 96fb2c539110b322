//! Tokens that expire mid-session: a member admitted to a private room by a token holds the
//! room only until the token's `exp` (with the leeway a join gets). Then it is removed from
//! that room: a typed session gets an error frame `forbidden` (`forbidden: expired: ...`) naming
//! the room and stays open; a tutorial session, whose one room it was, is closed with 4503.
//! A typed `join` of the room with a fresh token before then extends the hold.
//!
//! Rooms opened by the app's join proxy, and public rooms, are not held here: they never expire.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use roomcast_protocol::RoomName;
use tokio::time::Instant;

/// The longest hold kept as an instant (a later `exp` is kept as this): far beyond any
/// session, and far from the overflow of `Instant + Duration`.
const MAX_HOLD: Duration = Duration::from_secs(365 * 24 * 3600);

/// The private rooms one session holds by a token, and until when. Empty for most sessions
/// (no allocation); a handful of entries at most (`--max-rooms-per-session`).
#[derive(Debug, Default)]
pub(crate) struct Expiries {
    held: Vec<(RoomName, Instant)>,
}

impl Expiries {
    /// Records that `room` is held until `until` (seconds since the Unix epoch). The later of
    /// this and an earlier record wins: a fresh token extends a hold, an older one never
    /// shortens it.
    pub(crate) fn hold(&mut self, room: &RoomName, until: u64) {
        let until = instant_of(until);
        match self.held.iter_mut().find(|(held, _)| held == room) {
            Some((_, at)) => *at = (*at).max(until),
            None => self.held.push((room.clone(), until)),
        }
    }

    /// Extends the hold on `room` to `until`, if the room is held by a token at all (a room the
    /// join proxy opened does not start to expire because a later `join` carried a token).
    pub(crate) fn extend(&mut self, room: &RoomName, until: u64) {
        if self.held.iter().any(|(held, _)| held == room) {
            self.hold(room, until);
        }
    }

    /// Forgets `room` (the member left it).
    pub(crate) fn forget(&mut self, room: &RoomName) {
        self.held.retain(|(held, _)| held != room);
    }

    /// When the next hold ends, if any.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.held.iter().map(|(_, at)| *at).min()
    }

    /// A room whose hold has ended at `now`, taken out of the record.
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<RoomName> {
        let at = self.held.iter().position(|(_, until)| *until <= now)?;
        Some(self.held.swap_remove(at).0)
    }
}

/// The loop's instant for a wall-clock second (`exp` is wall-clock time).
fn instant_of(unix_secs: u64) -> Instant {
    let left = UNIX_EPOCH
        .checked_add(Duration::from_secs(unix_secs))
        .map_or(MAX_HOLD, |at| {
            at.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        });
    Instant::now() + left.min(MAX_HOLD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_secs() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    #[test]
    fn a_later_hold_extends_and_an_earlier_one_never_shortens() {
        let room = RoomName::new("pagamento_1").expect("a room");
        let mut expiries = Expiries::default();
        expiries.hold(&room, now_secs() + 10);
        let first = expiries.next().expect("held");
        expiries.hold(&room, now_secs() + 1);
        assert_eq!(expiries.next(), Some(first));
        expiries.hold(&room, now_secs() + 100);
        assert!(expiries.next().expect("held") > first);
        assert_eq!(expiries.take_due(Instant::now()), None);
        assert_eq!(expiries.take_due(first + MAX_HOLD), Some(room));
        assert_eq!(expiries.next(), None);
    }
}
