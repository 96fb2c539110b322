//! Per-session rate limit: a token bucket over inbound data frames.

use std::time::Instant;

/// What to do with one inbound frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Within the rate: handle it.
    Yes,
    /// Over the rate: refuse it with `rate_limited`, keep the session.
    Refuse,
    /// Over the rate for a whole burst in a row: close the session (4002).
    Flood,
}

#[derive(Debug)]
pub(crate) struct RateLimit {
    per_second: f64,
    burst: f64,
    tokens: f64,
    refilled_at: Instant,
    /// Frames refused in a row; reset by the next admitted frame.
    strikes: u32,
    max_strikes: u32,
}

impl RateLimit {
    /// `per_second` 0 disables the limit.
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        let burst = burst.max(1);
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            refilled_at: Instant::now(),
            strikes: 0,
            max_strikes: burst,
        }
    }

    pub(crate) fn admit(&mut self, now: Instant) -> Admit {
        if self.per_second == 0.0 {
            return Admit::Yes;
        }
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.strikes = 0;
            return Admit::Yes;
        }
        self.strikes += 1;
        if self.strikes > self.max_strikes {
            Admit::Flood
        } else {
            Admit::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_refusals_then_flood() {
        let start = Instant::now();
        let mut limit = RateLimit::new(10, 3);
        for _ in 0..3 {
            assert_eq!(limit.admit(start), Admit::Yes);
        }
        for _ in 0..3 {
            assert_eq!(limit.admit(start), Admit::Refuse);
        }
        assert_eq!(limit.admit(start), Admit::Flood);
    }

    #[test]
    fn tokens_come_back_with_time() {
        let start = Instant::now();
        let mut limit = RateLimit::new(10, 1);
        assert_eq!(limit.admit(start), Admit::Yes);
        assert_eq!(limit.admit(start), Admit::Refuse);
        assert_eq!(limit.admit(start + Duration::from_millis(100)), Admit::Yes);
    }

    #[test]
    fn zero_disables_the_limit() {
        let start = Instant::now();
        let mut limit = RateLimit::new(0, 1);
        assert!((0..1000).all(|_| limit.admit(start) == Admit::Yes));
    }
}
