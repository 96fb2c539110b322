//! Unused rooms waiting to expire, ordered by when they do.
//!
//! Written by hand over a `BTreeMap` rather than with `tokio_util::time::DelayQueue`: the entries
//! change together with the room map, under the registry lock, from any thread; a `DelayQueue`
//! must be owned and polled by one task, so every change would cross a channel to it, and it
//! needs a runtime's timer even in a unit test. An ordered map gives the same costs that matter:
//! scheduling and cancelling are O(log n), and taking what is due costs only what is due.

use std::collections::BTreeMap;

use tokio::time::Instant;

/// Deadlines, each tagged with the room's id (unique per room ever created) so two rooms with
/// the same deadline, or a removed room and the next one of the same name, never collide.
#[derive(Debug)]
pub(super) struct Deadlines<K> {
    queue: BTreeMap<(Instant, u64), K>,
}

impl<K> Default for Deadlines<K> {
    fn default() -> Self {
        Self {
            queue: BTreeMap::new(),
        }
    }
}

impl<K> Deadlines<K> {
    /// Queues `key` (of room `id`) to expire at `at`. Returns true when it is now the earliest
    /// deadline, so whoever sleeps until the earliest one must wake to re-plan.
    pub(super) fn schedule(&mut self, at: Instant, id: u64, key: K) -> bool {
        self.queue.insert((at, id), key);
        self.queue
            .first_key_value()
            .is_some_and(|(first, _)| *first == (at, id))
    }

    /// Forgets the deadline `at` of room `id`.
    pub(super) fn cancel(&mut self, at: Instant, id: u64) {
        self.queue.remove(&(at, id));
    }

    /// The earliest deadline that has passed at `now`, taken out of the queue.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(Instant, u64, K)> {
        let entry = self.queue.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let ((at, id), key) = entry.remove_entry();
        Some((at, id, key))
    }

    /// The earliest deadline, if any.
    pub(super) fn next(&self) -> Option<Instant> {
        self.queue.first_key_value().map(|((at, _), _)| *at)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn due_deadlines_come_out_in_order_and_later_ones_stay() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut deadlines = Deadlines::default();
        assert!(deadlines.schedule(at(30), 1, "c"));
        assert!(deadlines.schedule(at(10), 2, "a"));
        assert!(!deadlines.schedule(at(20), 3, "b"));
        assert!(
            !deadlines.schedule(at(10), 4, "a-twin"),
            "ties keep the first"
        );
        deadlines.cancel(at(20), 3);

        assert_eq!(deadlines.pop_due(at(15)), Some((at(10), 2, "a")));
        assert_eq!(deadlines.pop_due(at(15)), Some((at(10), 4, "a-twin")));
        assert_eq!(deadlines.pop_due(at(15)), None);
        assert_eq!(deadlines.next(), Some(at(30)));
        assert_eq!(deadlines.pop_due(at(30)), Some((at(30), 1, "c")));
        assert_eq!(deadlines.next(), None);
    }
}
