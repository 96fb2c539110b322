//! How a client notices a server that vanished without a word (a laptop that slept, a NAT that
//! forgot the flow, a cable pulled on the far side): no FIN and no RST arrive, so the socket
//! looks open for as long as the kernel keeps retransmitting (up to about 15 minutes). The
//! client pings, and when nothing at all (no pong, no message) has arrived for the bound, it
//! drops the session and reconnects.

use std::time::Duration;

use tokio::time::Instant;

/// The default bound on silence from the server (`--server-timeout`): several pings' worth,
/// and well under the time a person waits before deciding the chat is broken.
pub const DEFAULT_SERVER_TIMEOUT: Duration = Duration::from_secs(10);

/// The smallest bound accepted: below it a loaded machine's scheduling delay alone could look
/// like a dead server.
pub const MIN_SERVER_TIMEOUT: Duration = Duration::from_millis(100);

/// Reads a `--server-timeout` value (`10s`, `1500ms`), refusing one below
/// [`MIN_SERVER_TIMEOUT`].
pub fn parse_server_timeout(text: &str) -> Result<Duration, String> {
    let timeout = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}; write durations like 500ms, 10s or 1m"))?;
    if timeout < MIN_SERVER_TIMEOUT {
        return Err(format!(
            "must be at least {}: a shorter bound mistakes a busy machine for a dead server",
            humantime::format_duration(MIN_SERVER_TIMEOUT)
        ));
    }
    Ok(timeout)
}

/// What the session should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Send a ping: the server owes an answer.
    Ping,
    /// Nothing arrived for the whole bound: the server is gone; drop the session.
    Silent,
}

/// The ping schedule and the silence deadline of one session. Call [`Liveness::heard`] on
/// every frame from the server and select on [`Liveness::next`].
#[derive(Debug, Clone)]
pub struct Liveness {
    timeout: Duration,
    ping_every: Duration,
    last_heard: Instant,
    next_ping: Instant,
}

impl Liveness {
    /// A session that just heard from the server. It pings every `ping_every`, but at least
    /// twice per `timeout`, so a live server always has time to answer within the bound.
    pub fn new(timeout: Duration, ping_every: Duration) -> Self {
        let ping_every = ping_every.min(timeout / 2);
        let now = Instant::now();
        Self {
            timeout,
            ping_every,
            last_heard: now,
            next_ping: now,
        }
    }

    /// Something arrived from the server (any frame): it is alive.
    pub fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// How often pings go out.
    pub fn ping_every(&self) -> Duration {
        self.ping_every
    }

    /// When the silence bound ends, unless something arrives first.
    pub fn deadline(&self) -> Instant {
        self.last_heard + self.timeout
    }

    /// Waits for the next ping to be due, or for the silence bound to end. The first ping is
    /// due at once. Cancel-safe: dropping the future changes nothing.
    pub async fn next(&mut self) -> Beat {
        let deadline = self.deadline();
        if self.next_ping < deadline {
            tokio::time::sleep_until(self.next_ping).await;
            self.next_ping = Instant::now() + self.ping_every;
            Beat::Ping
        } else {
            tokio::time::sleep_until(deadline).await;
            Beat::Silent
        }
    }

    /// Why the session is dropped, for a person: `no answer from the server for 10s`.
    pub fn silence_reason(&self) -> String {
        silence_reason(self.timeout)
    }
}

/// `no answer from the server for 10s`: what clients show when the server stayed silent for
/// `timeout` (a session's, or a connect that got no answer).
pub fn silence_reason(timeout: Duration) -> String {
    format!(
        "no answer from the server for {}",
        humantime::format_duration(timeout)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_read_like_other_durations_and_too_short_ones_are_refused() {
        assert_eq!(parse_server_timeout("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(
            parse_server_timeout("1500ms"),
            Ok(Duration::from_millis(1500))
        );
        let refused = parse_server_timeout("0s").expect_err("zero cannot work");
        assert!(refused.contains("at least 100ms"), "{refused}");
        assert!(parse_server_timeout("soon").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn pings_go_out_while_the_server_answers_and_silence_ends_the_session() {
        let mut liveness = Liveness::new(Duration::from_secs(10), Duration::from_secs(5));
        let start = Instant::now();
        assert_eq!(liveness.next().await, Beat::Ping, "the first ping at once");
        assert_eq!(liveness.next().await, Beat::Ping);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        // The server answered at 5 s: the deadline moves to 15 s.
        liveness.heard();
        assert_eq!(liveness.next().await, Beat::Ping);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // Nothing more: silent 10 s after the last thing heard.
        assert_eq!(liveness.next().await, Beat::Silent);
        assert_eq!(start.elapsed(), Duration::from_secs(15));
        assert_eq!(
            liveness.silence_reason(),
            "no answer from the server for 10s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_bound_shorter_than_the_ping_interval_pings_twice_within_it() {
        let mut liveness = Liveness::new(Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(liveness.ping_every(), Duration::from_millis(500));
        let start = Instant::now();
        assert_eq!(liveness.next().await, Beat::Ping);
        assert_eq!(liveness.next().await, Beat::Ping);
        assert_eq!(start.elapsed(), Duration::from_millis(500));
        assert_eq!(liveness.next().await, Beat::Silent);
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }
}
