//! Idempotent publishing: a repeated `idempotency_key` for the same room within
//! [`IDEMPOTENCY_WINDOW`] answers the first result instead of publishing again.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use roomcast_protocol::{PublishReceipt, RoomName};

/// How long a key is remembered (what Centrifugo does too: long enough to cover a client's
/// retries, short enough to stay small).
pub(crate) const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Most keys remembered at once. Past it the oldest are forgotten early, which only weakens
/// deduplication for very old retries; memory stays bounded whatever publishers send.
pub(crate) const MAX_IDEMPOTENCY_KEYS: usize = 100_000;

/// Longest accepted key, in bytes.
pub(crate) const MAX_IDEMPOTENCY_KEY_BYTES: usize = 128;

type Key = (RoomName, String);

#[derive(Debug, Default)]
pub(crate) struct IdempotencyCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    results: HashMap<Key, PublishReceipt>,
    /// Keys in insertion order, for expiry and for the size bound.
    order: VecDeque<(Instant, Key)>,
}

impl IdempotencyCache {
    /// Returns the remembered result for `key` in `room`, or runs `publish` and remembers its
    /// result. Runs under the cache lock so two concurrent retries cannot both publish;
    /// `publish` never waits, so the lock is held only for a fan-out.
    pub(crate) fn get_or_publish<E>(
        &self,
        room: &RoomName,
        key: &str,
        now: Instant,
        publish: impl FnOnce() -> Result<PublishReceipt, E>,
    ) -> Result<PublishReceipt, E> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.expire(now);
        let key = (room.clone(), key.to_owned());
        if let Some(known) = inner.results.get(&key) {
            return Ok(known.clone());
        }
        let published = publish()?;
        if inner.order.len() >= MAX_IDEMPOTENCY_KEYS
            && let Some((_, oldest)) = inner.order.pop_front()
        {
            inner.results.remove(&oldest);
        }
        inner.results.insert(key.clone(), published.clone());
        inner.order.push_back((now, key));
        Ok(published)
    }

    /// Forgets keys older than the window (also done on every publish).
    pub(crate) fn sweep(&self, now: Instant) {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .expire(now);
    }
}

impl Inner {
    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < IDEMPOTENCY_WINDOW {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.results.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    fn result(seq: u64) -> PublishReceipt {
        let room = RoomName::new("r").expect("valid room");
        PublishReceipt {
            room,
            seq,
            epoch: "e".into(),
            delivered: 1,
        }
    }

    #[test]
    fn a_repeated_key_answers_the_first_result_until_it_expires() {
        let cache = IdempotencyCache::default();
        let room = RoomName::new("r").expect("valid room");
        let start = Instant::now();
        let first = cache.get_or_publish(&room, "k", start, || Ok::<_, Infallible>(result(1)));
        let again = cache.get_or_publish(&room, "k", start, || Ok::<_, Infallible>(result(2)));
        assert_eq!(first.map(|p| p.seq), Ok(1));
        assert_eq!(again.map(|p| p.seq), Ok(1));
        let later = start + IDEMPOTENCY_WINDOW;
        let after = cache.get_or_publish(&room, "k", later, || Ok::<_, Infallible>(result(3)));
        assert_eq!(after.map(|p| p.seq), Ok(3));
    }

    #[test]
    fn keys_are_per_room_and_failures_are_not_remembered() {
        let cache = IdempotencyCache::default();
        let (a, b) = (
            RoomName::new("a").expect("room"),
            RoomName::new("b").expect("room"),
        );
        let now = Instant::now();
        let failed = cache.get_or_publish(&a, "k", now, || Err::<PublishReceipt, _>("nope"));
        assert!(failed.is_err());
        assert_eq!(
            cache
                .get_or_publish(&a, "k", now, || Ok::<_, ()>(result(1)))
                .map(|p| p.seq),
            Ok(1)
        );
        assert_eq!(
            cache
                .get_or_publish(&b, "k", now, || Ok::<_, ()>(result(2)))
                .map(|p| p.seq),
            Ok(2)
        );
    }
}
