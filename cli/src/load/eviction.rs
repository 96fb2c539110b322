//! What each dead client owes the server's heartbeat, and whether the server paid it.
//!
//! A client that falls silent right after its last sign of life is evicted after the first
//! unanswered ping plus `ping-timeout`: between `timeout` and `interval + timeout` later, plus
//! scheduling `slack`. Earlier is a bug too (the server evicting a client that was not dead
//! long enough). `vanish` is noticed at once when the kernel reports the closed socket, and
//! `noread` may also be evicted early as `slow` once its buffers fill; those have no lower
//! bound. A `pause` shorter than the timeout must survive.

mod verdict;

use std::time::Duration;

use anyhow::{Context, Result};
use roomcast_protocol::LeaveReason;

pub use self::verdict::{Observed, Verdict, judge};
use super::ghost::Mode;
use crate::api::Api;

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
            // The server cannot tell a cut link from a client that stopped answering; its
            // writes pile up too, so `slow` may come first under load.
            Mode::Blackhole => timely(&[LeaveReason::Timeout, LeaveReason::Slow], true),
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
