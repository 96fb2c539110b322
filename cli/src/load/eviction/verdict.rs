//! The verdict on one dead client: what was observed against what it was owed.

use std::time::Duration;

use roomcast_protocol::LeaveReason;
use serde::Serialize;

use super::Expect;
use crate::units;

/// The judgement on one ghost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Evicted in time, for an expected reason.
    Evicted,
    /// Not evicted, as it should not be.
    Survived,
    /// Whatever happened was acceptable (ambiguous pause).
    Accepted,
    /// Evicted before the window opened.
    Early,
    /// Evicted after the window closed.
    Late,
    /// Never evicted within the bound plus margin.
    NotEvicted,
    /// Evicted for an unexpected reason.
    WrongReason,
    /// Evicted although its pause was shorter than the timeout.
    WronglyEvicted,
    /// Its socket ended while it was still behaving.
    ClosedWhileAlive,
    /// Its socket was closed but the room never announced its departure.
    NoLeaveEvent,
}

impl Verdict {
    /// Whether this verdict passes.
    pub fn passed(&self) -> bool {
        matches!(
            self,
            Verdict::Evicted | Verdict::Survived | Verdict::Accepted
        )
    }
}

/// What was observed about one ghost, relative to its going dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// Whether it went dead at all (false: its socket ended while it was alive).
    pub went_dead: bool,
    /// The observer's `leave` event: how long after going dead, and why.
    pub left: Option<(Duration, LeaveReason)>,
    /// Whether its socket saw the server close it (a close frame or the end of the stream).
    pub socket_closed: bool,
}

/// Judges one ghost, with the reason in words when it fails.
pub fn judge(expect: Expect, observed: Observed) -> (Verdict, Option<String>) {
    if !observed.went_dead {
        return (
            Verdict::ClosedWhileAlive,
            Some("its socket ended while it was still answering pings".to_owned()),
        );
    }
    match (expect, observed.left) {
        (Expect::Either, _) => (Verdict::Accepted, None),
        (Expect::Survive, None) => (Verdict::Survived, None),
        (Expect::Survive, Some((after, reason))) => (
            Verdict::WronglyEvicted,
            Some(format!(
                "evicted ({reason}) {} after pausing, although the pause was shorter than the ping timeout",
                units::show(after)
            )),
        ),
        (Expect::Evict { max, .. }, None) if observed.socket_closed => (
            Verdict::NoLeaveEvent,
            Some(format!(
                "its socket was closed but the room announced no leave within {}",
                units::show(max)
            )),
        ),
        (Expect::Evict { max, .. }, None) => (
            Verdict::NotEvicted,
            Some(format!("not evicted within {}", units::show(max))),
        ),
        (Expect::Evict { reasons, min, max }, Some((after, reason))) => {
            if !reasons.contains(&reason) {
                let wanted: Vec<&str> = reasons.iter().map(|r| r.as_str()).collect();
                (
                    Verdict::WrongReason,
                    Some(format!(
                        "left with reason {reason}, expected {}",
                        wanted.join(" or ")
                    )),
                )
            } else if reason == LeaveReason::Timeout && after < min {
                (
                    Verdict::Early,
                    Some(format!(
                        "evicted {} after going dead, before the ping timeout {}",
                        units::show(after),
                        units::show(min)
                    )),
                )
            } else if after > max {
                (
                    Verdict::Late,
                    Some(format!(
                        "evicted {} after going dead, later than {}",
                        units::show(after),
                        units::show(max)
                    )),
                )
            } else {
                (Verdict::Evicted, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::eviction::Heartbeat;
    use crate::load::ghost::Mode;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn heartbeat() -> Heartbeat {
        Heartbeat {
            interval: ms(200),
            timeout: ms(300),
            slack: ms(100),
            expect_within: None,
            pause: ms(150),
        }
    }

    fn left(after: u64, reason: LeaveReason) -> Observed {
        Observed {
            went_dead: true,
            left: Some((ms(after), reason)),
            socket_closed: true,
        }
    }

    #[test]
    fn a_silent_client_is_owed_eviction_between_timeout_and_interval_plus_timeout() {
        let expect = heartbeat().expectation(Mode::Nopong);
        assert_eq!(
            judge(expect, left(450, LeaveReason::Timeout)).0,
            Verdict::Evicted
        );
        assert_eq!(
            judge(expect, left(250, LeaveReason::Timeout)).0,
            Verdict::Early
        );
        assert_eq!(
            judge(expect, left(601, LeaveReason::Timeout)).0,
            Verdict::Late
        );
        assert_eq!(
            judge(expect, left(450, LeaveReason::Slow)).0,
            Verdict::WrongReason
        );
        let never = Observed {
            went_dead: true,
            left: None,
            socket_closed: false,
        };
        let (verdict, reason) = judge(expect, never);
        assert_eq!(verdict, Verdict::NotEvicted);
        assert_eq!(reason.as_deref(), Some("not evicted within 600.0ms"));
    }

    #[test]
    fn vanished_and_slow_clients_have_no_lower_bound() {
        let beat = heartbeat();
        let vanish = beat.expectation(Mode::Vanish);
        assert_eq!(
            judge(vanish, left(2, LeaveReason::Closed)).0,
            Verdict::Evicted
        );
        let noread = beat.expectation(Mode::Noread);
        assert_eq!(
            judge(noread, left(5, LeaveReason::Slow)).0,
            Verdict::Evicted
        );
        assert_eq!(
            judge(noread, left(5, LeaveReason::Timeout)).0,
            Verdict::Early
        );
    }

    #[test]
    fn a_short_pause_must_survive_and_a_long_one_must_not() {
        let mut beat = heartbeat();
        let short = beat.expectation(Mode::Pause);
        assert_eq!(short, Expect::Survive);
        assert_eq!(
            judge(short, left(400, LeaveReason::Timeout)).0,
            Verdict::WronglyEvicted
        );
        beat.pause = ms(600);
        assert!(matches!(
            beat.expectation(Mode::Pause),
            Expect::Evict { .. }
        ));
        beat.pause = ms(400);
        assert_eq!(beat.expectation(Mode::Pause), Expect::Either);
    }

    #[test]
    fn expect_within_replaces_the_window() {
        let mut beat = heartbeat();
        beat.expect_within = Some(ms(100));
        let expect = beat.expectation(Mode::Nopong);
        assert_eq!(
            judge(expect, left(50, LeaveReason::Timeout)).0,
            Verdict::Evicted
        );
        assert_eq!(
            judge(expect, left(450, LeaveReason::Timeout)).0,
            Verdict::Late
        );
    }
}
