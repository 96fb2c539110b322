//! Idempotent publishing: a repeated `idempotency_key` within [`IDEMPOTENCY_WINDOW`] answers the
//! first result instead of publishing again (per room for single publishes, per key for
//! broadcasts).
//!
//! The cache's lock is held only to look a key up and to record a result, never while a
//! publish runs: the first request with a key leaves an in-flight marker, and a concurrent retry
//! with the same key waits for that publish's answer instead of publishing again. Requests with
//! other keys never wait for it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use roomcast_protocol::{Broadcast, PublishReceipt};
use tokio::sync::watch;

/// How long a key is remembered (what Centrifugo does too: long enough to cover a client's
/// retries, short enough to stay small).
pub(crate) const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Most receipts one cache remembers at once (a broadcast's answer counts one per room). Past
/// it the oldest keys are forgotten early, which only weakens deduplication for very old
/// retries; memory stays bounded whatever publishers send.
pub(crate) const MAX_REMEMBERED_RECEIPTS: usize = 100_000;

/// Longest accepted key, in bytes.
pub(crate) const MAX_IDEMPOTENCY_KEY_BYTES: usize = 128;

/// Longest a retry waits for the publish in flight with its key before it is answered 503.
/// Publishing never waits, so this is reached only if a publish hangs; it keeps waiters from
/// piling up behind it forever.
pub(crate) const IN_FLIGHT_WAIT: Duration = Duration::from_secs(5);

/// How many receipts a remembered answer holds, for [`MAX_REMEMBERED_RECEIPTS`].
pub(crate) trait Receipts: Clone {
    fn receipts(&self) -> usize;
}

impl Receipts for PublishReceipt {
    fn receipts(&self) -> usize {
        1
    }
}

impl Receipts for Broadcast {
    fn receipts(&self) -> usize {
        self.results.len().max(1)
    }
}

/// Remembered answers by key.
#[derive(Debug)]
pub(crate) struct IdempotencyCache<K, V> {
    inner: Mutex<Inner<K, V>>,
    max_receipts: usize,
}

#[derive(Debug)]
struct Inner<K, V> {
    slots: HashMap<K, Slot<V>>,
    /// Settled keys in the order they settled, for expiry and for the size bound.
    order: VecDeque<(Instant, K)>,
    receipts: usize,
    next_claim: u64,
}

#[derive(Debug)]
enum Slot<V> {
    Settled {
        at: Instant,
        answer: V,
    },
    /// A publish with this key is under way; `settled` changes (closes) when it ends.
    InFlight {
        claim: u64,
        settled: watch::Receiver<()>,
    },
}

/// What a lookup found.
#[derive(Debug)]
pub(crate) enum Lookup<'a, K: Eq + Hash + Clone, V: Receipts> {
    /// The key's first answer.
    Known(V),
    /// Another request is publishing with this key; wait, then look again.
    InFlight(watch::Receiver<()>),
    /// Nobody has used this key: publish, then [`Claim::settle`].
    Claimed(Claim<'a, K, V>),
}

/// The right to publish with a key. Dropped without settling (the publish failed), the key is
/// forgotten and waiting retries try themselves.
#[derive(Debug)]
pub(crate) struct Claim<'a, K: Eq + Hash + Clone, V: Receipts> {
    cache: &'a IdempotencyCache<K, V>,
    key: K,
    claim: u64,
    /// Dropping it wakes every waiter.
    _settled: watch::Sender<()>,
}

/// Why a keyed publish has no answer.
#[derive(Debug)]
pub(crate) enum Keyed<E> {
    /// The publish itself failed (and its key was not remembered).
    Failed(E),
    /// Another publish with the key was still in flight after [`IN_FLIGHT_WAIT`].
    StillInFlight,
}

impl<K: Eq + Hash + Clone, V: Receipts> Default for IdempotencyCache<K, V> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                slots: HashMap::new(),
                order: VecDeque::new(),
                receipts: 0,
                next_claim: 0,
            }),
            max_receipts: MAX_REMEMBERED_RECEIPTS,
        }
    }
}

impl<K: Eq + Hash + Clone, V: Receipts> IdempotencyCache<K, V> {
    /// A cache that remembers at most `max_receipts` (tests use a small one).
    #[cfg(test)]
    pub(crate) fn bounded(max_receipts: usize) -> Self {
        Self {
            max_receipts,
            ..Self::default()
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner<K, V>> {
        // Every mutation leaves the maps consistent before it can panic; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Looks `key` up and, when nobody has used it, claims it. Never waits.
    pub(crate) fn lookup(&self, key: &K, now: Instant) -> Lookup<'_, K, V> {
        let mut inner = self.inner();
        inner.expire(now);
        match inner.slots.get(key) {
            Some(Slot::Settled { answer, .. }) => Lookup::Known(answer.clone()),
            Some(Slot::InFlight { settled, .. }) => Lookup::InFlight(settled.clone()),
            None => {
                inner.next_claim += 1;
                let claim = inner.next_claim;
                let (sender, settled) = watch::channel(());
                inner
                    .slots
                    .insert(key.clone(), Slot::InFlight { claim, settled });
                Lookup::Claimed(Claim {
                    cache: self,
                    key: key.clone(),
                    claim,
                    _settled: sender,
                })
            }
        }
    }

    /// Answers `key`'s first result, or runs `publish` and remembers its result. A concurrent
    /// request with the same key waits for this one's answer (at most [`IN_FLIGHT_WAIT`]) and
    /// publishes only if this one failed. Failures are not remembered.
    pub(crate) async fn get_or_publish<E, F>(
        &self,
        key: &K,
        publish: impl FnOnce() -> F,
    ) -> Result<V, Keyed<E>>
    where
        F: Future<Output = Result<V, E>>,
    {
        let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
        let claim = loop {
            match self.lookup(key, Instant::now()) {
                Lookup::Known(answer) => return Ok(answer),
                Lookup::Claimed(claim) => break claim,
                Lookup::InFlight(mut settled) => {
                    // Ends (with an error: the sender is gone) when that publish settles or
                    // fails; either way, look again.
                    let waited = tokio::time::timeout_at(deadline, settled.changed()).await;
                    if waited.is_err() {
                        return Err(Keyed::StillInFlight);
                    }
                }
            }
        };
        // A dropped request drops the claim too, which forgets the key and wakes the waiters.
        let answer = publish().await.map_err(Keyed::Failed)?;
        claim.settle(&answer, Instant::now());
        Ok(answer)
    }

    /// Forgets keys older than the window (also done on every lookup).
    pub(crate) fn expire(&self, now: Instant) {
        self.inner().expire(now);
    }
}

impl<K: Eq + Hash + Clone, V: Receipts> Claim<'_, K, V> {
    /// Remembers `answer` as the key's result from `now` on, and wakes whoever waits for it.
    pub(crate) fn settle(self, answer: &V, now: Instant) {
        let mut inner = self.cache.inner();
        let ours = matches!(
            inner.slots.get(&self.key),
            Some(Slot::InFlight { claim, .. }) if *claim == self.claim
        );
        if !ours {
            return;
        }
        inner.receipts += answer.receipts();
        inner.slots.insert(
            self.key.clone(),
            Slot::Settled {
                at: now,
                answer: answer.clone(),
            },
        );
        inner.order.push_back((now, self.key.clone()));
        while inner.receipts > self.cache.max_receipts && inner.forget_oldest() {}
    }
}

impl<K: Eq + Hash + Clone, V: Receipts> Drop for Claim<'_, K, V> {
    fn drop(&mut self) {
        let mut inner = self.cache.inner();
        // Still in flight means the publish failed (or panicked): forget the key.
        if matches!(
            inner.slots.get(&self.key),
            Some(Slot::InFlight { claim, .. }) if *claim == self.claim
        ) {
            inner.slots.remove(&self.key);
        }
    }
}

impl<K: Eq + Hash + Clone, V: Receipts> Inner<K, V> {
    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < IDEMPOTENCY_WINDOW {
                break;
            }
            self.forget_oldest();
        }
    }

    /// Forgets the key that settled first; false when none is left.
    fn forget_oldest(&mut self) -> bool {
        let Some((at, key)) = self.order.pop_front() else {
            return false;
        };
        if let Some(Slot::Settled {
            at: settled,
            answer,
        }) = self.slots.get(&key)
            && *settled == at
        {
            self.receipts -= answer.receipts();
            self.slots.remove(&key);
        }
        true
    }
}

#[cfg(test)]
mod tests;
