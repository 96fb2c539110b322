//! The heartbeat: ping every interval, evict when a ping goes unanswered for the timeout.
//!
//! A ping is due every `ping_interval`. The first unanswered ping starts the clock; anything
//! heard from the client (a pong or any frame) stops it. A client that dies right after being
//! heard is therefore evicted between `ping_timeout` and `ping_interval + ping_timeout` later.
//!
//! It keeps deadlines, not timers: the session loop has one timer for all of its deadlines
//! (a timer costs memory in every idle session).

use std::time::Duration;

use tokio::time::Instant;

/// The shortest interval acted on. Config validation refuses a zero `--ping-interval`; this
/// only guarantees that a zero slipping through can never make the loop spin.
const MIN_PING_INTERVAL: Duration = Duration::from_millis(1);

#[derive(Debug)]
pub(crate) struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    next_ping: Instant,
    /// When the oldest unanswered ping was sent.
    unanswered_since: Option<Instant>,
}

impl Heartbeat {
    pub(crate) fn new(interval: Duration, timeout: Duration, now: Instant) -> Self {
        let interval = interval.max(MIN_PING_INTERVAL);
        Self {
            interval,
            timeout,
            next_ping: now + interval,
            unanswered_since: None,
        }
    }

    /// Whether a ping is due at `now`. If so, it counts as sent: the next one is due an interval
    /// later (once, not once per missed interval, after a stall), and the eviction clock starts
    /// unless an earlier ping is still unanswered.
    pub(crate) fn ping_due(&mut self, now: Instant) -> bool {
        if now < self.next_ping {
            return false;
        }
        self.next_ping = now + self.interval;
        self.unanswered_since.get_or_insert(now);
        true
    }

    /// Records that the client was heard from: it is alive.
    pub(crate) fn heard(&mut self) {
        self.unanswered_since = None;
    }

    /// When the session must be evicted, if a ping is unanswered.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.unanswered_since.map(|since| since + self.timeout)
    }

    /// The next moment something is due: a ping or the eviction.
    pub(crate) fn next_event(&self) -> Instant {
        self.deadline()
            .map_or(self.next_ping, |deadline| deadline.min(self.next_ping))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_runs_from_the_first_unanswered_ping() {
        let start = Instant::now();
        let (interval, timeout) = (Duration::from_secs(20), Duration::from_secs(30));
        let mut heartbeat = Heartbeat::new(interval, timeout, start);
        assert_eq!(heartbeat.deadline(), None);
        assert_eq!(heartbeat.next_event(), start + interval);
        assert!(!heartbeat.ping_due(start + interval - Duration::from_millis(1)));

        let first = start + interval;
        assert!(heartbeat.ping_due(first));
        assert_eq!(heartbeat.deadline(), Some(first + timeout));
        assert_eq!(heartbeat.next_event(), first + interval);

        assert!(heartbeat.ping_due(first + interval));
        assert_eq!(
            heartbeat.deadline(),
            Some(first + timeout),
            "a second ping does not re-arm the deadline"
        );
        assert_eq!(heartbeat.next_event(), first + timeout);

        heartbeat.heard();
        assert_eq!(heartbeat.deadline(), None);
    }

    #[test]
    fn after_a_stall_one_ping_is_due_not_one_per_missed_interval() {
        let start = Instant::now();
        let interval = Duration::from_secs(1);
        let mut heartbeat = Heartbeat::new(interval, Duration::from_secs(5), start);
        let late = start + 10 * interval;
        assert!(heartbeat.ping_due(late));
        assert!(!heartbeat.ping_due(late));
        assert_eq!(heartbeat.next_event(), late + interval);
    }
}
