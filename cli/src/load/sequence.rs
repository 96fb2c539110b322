//! Checks over what one receiver saw: room seqs without gaps or repeats, and each sender's
//! messages in the order they were sent.

use std::collections::HashMap;

/// What one observed seq meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqEvent {
    /// The next seq, as expected.
    InOrder,
    /// Seqs were skipped: this many messages never arrived.
    Gap(u64),
    /// A seq at or below one already seen: delivered twice, or out of order.
    Repeat,
}

/// Follows one room's seqs as one member receives them, from the seq it joined at.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    /// The last seq received (or the room's seq at join).
    last: u64,
    /// Messages skipped so far.
    pub lost: u64,
    /// Seqs seen twice or going backwards.
    pub repeated: u64,
}

impl SeqTracker {
    /// Starts after `joined_seq`, the room's seq when the member joined.
    pub fn new(joined_seq: u64) -> Self {
        Self {
            last: joined_seq,
            ..Self::default()
        }
    }

    /// Records one received seq.
    pub fn observe(&mut self, seq: u64) -> SeqEvent {
        if seq <= self.last {
            self.repeated += 1;
            return SeqEvent::Repeat;
        }
        let skipped = seq - self.last - 1;
        self.last = seq;
        if skipped == 0 {
            SeqEvent::InOrder
        } else {
            self.lost += skipped;
            SeqEvent::Gap(skipped)
        }
    }

    /// The last seq received.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// Messages up to `final_seq` that never arrived, counting the tail not yet received.
    pub fn lost_by(&self, final_seq: u64) -> u64 {
        self.lost + final_seq.saturating_sub(self.last)
    }
}

/// Follows each sender's counter as one member receives its messages.
#[derive(Debug, Clone, Default)]
pub struct SenderOrder {
    last: HashMap<u32, u64>,
    /// Messages that arrived with a counter not above that sender's previous one.
    pub reordered: u64,
}

impl SenderOrder {
    /// Records `counter` from `sender`; false when it is out of that sender's order.
    pub fn observe(&mut self, sender: u32, counter: u64) -> bool {
        let last = self.last.entry(sender).or_insert(0);
        if counter <= *last {
            self.reordered += 1;
            return false;
        }
        *last = counter;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_repeats_and_the_tail_are_counted() {
        let mut seqs = SeqTracker::new(10);
        assert_eq!(seqs.observe(11), SeqEvent::InOrder);
        assert_eq!(seqs.observe(14), SeqEvent::Gap(2));
        assert_eq!(seqs.observe(14), SeqEvent::Repeat);
        assert_eq!(seqs.observe(12), SeqEvent::Repeat);
        assert_eq!((seqs.lost, seqs.repeated, seqs.last()), (2, 2, 14));
        assert_eq!(seqs.lost_by(17), 5, "15, 16 and 17 never came");
        assert_eq!(
            seqs.lost_by(3),
            2,
            "a final seq below the last adds nothing"
        );
    }

    #[test]
    fn each_sender_must_stay_in_its_own_order() {
        let mut order = SenderOrder::default();
        assert!(
            order.observe(1, 5),
            "the first counter seen is the baseline"
        );
        assert!(order.observe(2, 1));
        assert!(order.observe(1, 6));
        assert!(!order.observe(1, 6));
        assert!(!order.observe(1, 2));
        assert!(
            order.observe(2, 9),
            "a sender's gap is the seq check's business"
        );
        assert_eq!(order.reordered, 2);
    }
}
