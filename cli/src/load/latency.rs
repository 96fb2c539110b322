//! Latency histograms (HDR, microseconds) and their summary.
//!
//! Thousands of receiver tasks record into a few shards behind mutexes, chosen by the task's
//! number: two worker threads almost never meet on one shard, and one histogram per task would
//! cost hundreds of MiB at 10,000 tasks.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::units;

/// Largest latency recorded exactly, in microseconds (a minute); longer ones count as this.
const MAX_MICROS: u64 = 60_000_000;

/// Three significant figures: 0.1% resolution at every scale.
const SIGNIFICANT_FIGURES: u8 = 3;

/// Shards per [`LatencyShards`]: a few per core is plenty.
const SHARDS: usize = 16;

/// An empty histogram of microseconds.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, SIGNIFICANT_FIGURES)
        .unwrap_or_else(|_| unreachable!("the bounds are constants that hdrhistogram accepts"))
}

/// Latencies recorded by many tasks at once.
#[derive(Debug)]
pub struct LatencyShards {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Default for LatencyShards {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(histogram())).collect(),
        }
    }
}

impl LatencyShards {
    fn shard(&self, task: usize) -> MutexGuard<'_, Histogram<u64>> {
        // A panic while holding the lock leaves counts, never a broken histogram.
        self.shards[task % self.shards.len()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one latency for task number `task`.
    pub fn record(&self, task: usize, latency: Duration) {
        self.shard(task).saturating_record(micros(latency));
    }

    /// Records a batch of latencies (microseconds) under one lock.
    pub fn record_micros(&self, task: usize, batch: &[u64]) {
        let mut shard = self.shard(task);
        for value in batch {
            shard.saturating_record((*value).max(1));
        }
    }

    /// Forgets every latency recorded (between two trials on the same sessions).
    pub fn clear(&self) {
        for task in 0..self.shards.len() {
            self.shard(task).reset();
        }
    }

    /// Every shard merged.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = histogram();
        for task in 0..self.shards.len() {
            // Same bounds everywhere, so adding cannot fail.
            let _added = all.add(&*self.shard(task));
        }
        all
    }
}

fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Percentiles of a latency histogram, in milliseconds for JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// How many latencies were recorded.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarizes `histogram` (microseconds).
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let ms = |micros: u64| units::millis(Duration::from_micros(micros));
        Self {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }

    /// `p50 1.2ms  p90 ...  max ...` for people.
    pub fn human(&self) -> String {
        if self.count == 0 {
            return "no latencies recorded".to_owned();
        }
        let show = |ms: f64| units::show(Duration::from_secs_f64(ms / 1e3));
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            show(self.p50_ms),
            show(self.p90_ms),
            show(self.p99_ms),
            show(self.p999_ms),
            show(self.max_ms)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_into_one_summary() {
        let shards = LatencyShards::default();
        for task in 0..100 {
            shards.record(task, Duration::from_millis(1));
        }
        shards.record_micros(3, &[100_000]);
        let summary = LatencySummary::of(&shards.merged());
        assert_eq!(summary.count, 101);
        assert!((summary.p50_ms - 1.0).abs() < 0.01, "{summary:?}");
        assert!((summary.max_ms - 100.0).abs() < 0.1, "{summary:?}");
        assert!(summary.human().contains("p99.9"));
    }
}
