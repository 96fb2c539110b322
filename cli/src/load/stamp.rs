//! The text of a load message: which run and sender it came from, its place in that sender's
//! stream, and when it was sent, so any receiver in this process can check order and latency.
//!
//! `rc|<run>|<sender>|<counter>|<sent µs>|<padding>`. The run id keeps two load runs in one
//! room apart: a receiver only trusts stamps of its own run (another process's clock and
//! sender numbers mean nothing here).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The process clock's origin; stamps carry microseconds since it.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Microseconds since this process's clock origin.
pub fn now_micros() -> u64 {
    u64::try_from(origin().elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A fresh run id: 6 hex digits, enough to keep concurrent runs apart.
pub fn new_run_id() -> String {
    format!("{:06x}", fastrand::u32(..0x100_0000))
}

/// What a stamp says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The sending client's number within the run.
    pub sender: u32,
    /// The sender's message counter, from 1.
    pub counter: u64,
    /// When it was sent, in [`now_micros`] units.
    pub sent_micros: u64,
}

impl Stamp {
    /// The message text for this stamp, padded with `x` to at least `size` bytes.
    pub fn encode(&self, run: &str, size: usize) -> String {
        let mut text = format!(
            "rc|{run}|{}|{}|{}|",
            self.sender, self.counter, self.sent_micros
        );
        if text.len() < size {
            text.extend(std::iter::repeat_n('x', size - text.len()));
        }
        text
    }

    /// Reads a stamp of run `run` from a message text; `None` for anything else.
    pub fn decode(text: &str, run: &str) -> Option<Self> {
        let mut parts = text.strip_prefix("rc|")?.splitn(5, '|');
        if parts.next()? != run {
            return None;
        }
        Some(Self {
            sender: parts.next()?.parse().ok()?,
            counter: parts.next()?.parse().ok()?,
            sent_micros: parts.next()?.parse().ok()?,
        })
    }

    /// Time from sending to now.
    pub fn age(&self) -> Duration {
        Duration::from_micros(now_micros().saturating_sub(self.sent_micros))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_pad_to_size() {
        let stamp = Stamp {
            sender: 7,
            counter: 42,
            sent_micros: 123_456,
        };
        let text = stamp.encode("abc123", 100);
        assert_eq!(text.len(), 100);
        assert_eq!(Stamp::decode(&text, "abc123"), Some(stamp));
        assert_eq!(
            Stamp::decode(&stamp.encode("abc123", 0), "abc123"),
            Some(stamp)
        );
    }

    #[test]
    fn other_runs_and_plain_chat_are_not_stamps() {
        let stamp = Stamp {
            sender: 1,
            counter: 1,
            sent_micros: 1,
        };
        assert_eq!(Stamp::decode(&stamp.encode("aaaaaa", 0), "bbbbbb"), None);
        assert_eq!(Stamp::decode("hello", "aaaaaa"), None);
        assert_eq!(Stamp::decode("rc|aaaaaa|x|1|1|", "aaaaaa"), None);
    }
}
