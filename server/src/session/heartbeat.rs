//! The heartbeat: ping every interval, evict when a ping goes unanswered for the timeout.
//!
//! A ping is sent every `ping_interval`. The first unanswered ping starts the clock; anything
//! heard from the client (a pong or any frame) stops it. A client that dies right after being
//! heard is therefore evicted between `ping_timeout` and `ping_interval + ping_timeout` later.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

#[derive(Debug)]
pub(crate) struct Heartbeat {
    ticks: Interval,
    timeout: Duration,
    /// When the oldest unanswered ping was sent.
    unanswered_since: Option<Instant>,
}

impl Heartbeat {
    pub(crate) fn new(interval: Duration, timeout: Duration) -> Self {
        let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
        // After a stall (a long write), ping once, not once per missed tick.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            ticks,
            timeout,
            unanswered_since: None,
        }
    }

    /// Completes when the next ping is due. Cancel-safe.
    pub(crate) async fn ping_due(&mut self) {
        self.ticks.tick().await;
    }

    /// Records that a ping was just sent. Returns the eviction deadline when this ping started
    /// the clock (no earlier ping was unanswered), so the caller can arm its timer once.
    pub(crate) fn pinged(&mut self) -> Option<Instant> {
        if self.unanswered_since.is_some() {
            return None;
        }
        let now = Instant::now();
        self.unanswered_since = Some(now);
        Some(now + self.timeout)
    }

    /// Records that the client was heard from: it is alive.
    pub(crate) fn heard(&mut self) {
        self.unanswered_since = None;
    }

    /// When the session must be evicted, if a ping is unanswered.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.unanswered_since.map(|since| since + self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_deadline_runs_from_the_first_unanswered_ping() {
        let mut heartbeat = Heartbeat::new(Duration::from_secs(20), Duration::from_secs(30));
        assert_eq!(heartbeat.deadline(), None);
        heartbeat.ping_due().await;
        let first = heartbeat.pinged();
        assert!(first.is_some());
        assert_eq!(heartbeat.deadline(), first);
        heartbeat.ping_due().await;
        assert_eq!(
            heartbeat.pinged(),
            None,
            "a second ping does not re-arm the deadline"
        );
        assert_eq!(heartbeat.deadline(), first);
        heartbeat.heard();
        assert_eq!(heartbeat.deadline(), None);
    }
}
