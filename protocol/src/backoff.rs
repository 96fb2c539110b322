//! Reconnect delays: jittered exponential backoff, so a restarted server is not hit by every
//! client at the same instant. The TUI and `roomcast listen` reconnect on this schedule.

use std::time::Duration;

/// The reconnect schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay's upper bound.
    pub base: Duration,
    /// No delay exceeds this.
    pub cap: Duration,
}

impl Default for Backoff {
    /// 0.5 s doubling to 30 s: a restart is usually over in a second, and 30 s keeps a long
    /// outage from costing the server much.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0 for the first), with `unit` a random number
    /// in `[0, 1)`: between half and all of `min(cap, base * 2^attempt)` ("equal jitter", so
    /// a delay never collapses to zero).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let grown = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(20)))
            .min(self.cap);
        grown.div_f64(2.0).mul_f64(1.0 + unit.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_stay_within_the_jitter() {
        let b = Backoff::default();
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(250));
        assert_eq!(b.delay(0, 1.0), Duration::from_millis(500));
        assert_eq!(b.delay(3, 1.0), Duration::from_secs(4));
        assert_eq!(b.delay(30, 1.0), Duration::from_secs(30));
        assert_eq!(b.delay(30, 0.0), Duration::from_secs(15));
    }
}
