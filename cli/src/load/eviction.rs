//! What each dead client owes the server's heartbeat, and whether the server paid it.
//!
//! A client that falls silent right after its last sign of life is evicted after the first
//! unanswered ping plus `ping-timeout`: between `timeout` and `interval + timeout` later, plus
//! scheduling `slack`. Earlier is a bug too (the server evicting a client that was not dead
//! long enough). `vanish` is noticed at once when the kernel reports the closed socket, and
//! `noread` may also be evicted early as `slow` once its buffers fill; those have no lower
//! bound. A `pause` shorter than the timeout must survive.

use std::time::Duration;

use anyhow::{Context, Result};
use roomcast_protocol::LeaveReason;
use serde::Serialize;

use crate::api::Api;

use super::ghost::Mode;
use crate::units;

/// The heartbeat and the tolerances a run judges by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// The server's ping interval.
    pub interval: Duration,
    /// The server's ping timeout.
    pub timeout: Duration,
    /// Scheduling tolerance added to the upper bound.
    pub slack: Duration,
    /// `--expect-within`: replaces the window with `[0, this]`.
    pub expect_within: Option<Duration>,
    /// How long `pause` ghosts stay silent.
    pub pause: Duration,
}

/// The flags that shape a [`Heartbeat`]; absent ones come from `/api/info` or defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeartbeatFlags {
    /// `--ping-interval`.
    pub interval: Option<Duration>,
    /// `--ping-timeout`.
    pub timeout: Option<Duration>,
    /// `--slack` [default: 20% of interval + timeout, between 500ms and 5s].
    pub slack: Option<Duration>,
    /// `--expect-within`.
    pub expect_within: Option<Duration>,
    /// `--pause` [default: half the timeout].
    pub pause: Option<Duration>,
}

impl Heartbeat {
    /// The heartbeat to judge by: flags first, then the server's `/api/info`. Also says where
    /// the settings came from, for the report.
    pub async fn learn(api: &Api, flags: HeartbeatFlags) -> Result<(Self, &'static str)> {
        let (interval, timeout, source) = match (flags.interval, flags.timeout) {
            (Some(interval), Some(timeout)) => (interval, timeout, "from flags"),
            (interval, timeout) => {
                let info = api
                    .info()
                    .await
                    .context("learning the heartbeat from /api/info")?;
                (
                    interval.unwrap_or(Duration::from_millis(info.ping_interval_ms)),
                    timeout.unwrap_or(Duration::from_millis(info.ping_timeout_ms)),
                    "from /api/info",
                )
            }
        };
        let slack = flags.slack.unwrap_or_else(|| {
            ((interval + timeout) / 5).clamp(Duration::from_millis(500), Duration::from_secs(5))
        });
        let beat = Self {
            interval,
            timeout,
            slack,
            expect_within: flags.expect_within,
            pause: flags.pause.unwrap_or(timeout / 2),
        };
        Ok((beat, source))
    }

    /// How long a dead client behaves before going dead: a random moment within one ping
    /// interval, so deaths fall at every phase of the heartbeat. Capped, so a server with a
    /// very long (or effectively disabled) interval does not stretch the run.
    pub fn live_phase(&self) -> Duration {
        /// Longest live phase: the phase spread matters, not its length.
        const MAX_LIVE_PHASE: Duration = Duration::from_secs(5);
        let cap = self.interval.min(MAX_LIVE_PHASE).min(self.upper());
        cap.mul_f64(fastrand::f64())
    }

    /// When to stop waiting for evictions, measured from the last client going dead: the upper
    /// bound plus a margin, so a late eviction is reported as late rather than missing.
    pub fn give_up_after(&self) -> Duration {
        self.upper() + self.slack.min(self.upper())
    }

    /// The latest eviction this run accepts, measured from going dead.
    pub fn upper(&self) -> Duration {
        self.expect_within
            .unwrap_or(self.interval + self.timeout + self.slack)
    }

    /// What a ghost of `mode` is owed.
    pub fn expectation(&self, mode: Mode) -> Expect {
        let timely = |reasons: &'static [LeaveReason], floor: bool| Expect::Evict {
            reasons,
            min: match self.expect_within {
                None if floor => self.timeout,
                _ => Duration::ZERO,
            },
            max: self.upper(),
        };
        match mode {
            Mode::Nopong => timely(&[LeaveReason::Timeout], true),
            Mode::Noread => timely(&[LeaveReason::Timeout, LeaveReason::Slow], true),
            Mode::Vanish => timely(&[LeaveReason::Closed, LeaveReason::Timeout], false),
            Mode::Pause if self.pause < self.timeout => Expect::Survive,
            Mode::Pause if self.pause >= self.interval + self.timeout => {
                timely(&[LeaveReason::Timeout], true)
            }
            Mode::Pause => Expect::Either,
        }
    }
}

/// What a ghost is owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Eviction with one of `reasons`, between `min` and `max` after going dead. `min` binds
    /// only `timeout` evictions (the others are noticed as soon as they happen).
    Evict {
        /// Acceptable leave reasons.
        reasons: &'static [LeaveReason],
        /// Earliest acceptable `timeout` eviction.
        min: Duration,
        /// Latest acceptable eviction.
        max: Duration,
    },
    /// No eviction: the pause is shorter than the timeout.
    Survive,
    /// Either outcome is correct (a pause between the timeout and interval + timeout).
    Either,
}

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
