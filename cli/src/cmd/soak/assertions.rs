//! `--assert 'lost=0,p99<50ms,evicted=all'`: thresholds over the soak summary. Any that fails
//! turns the exit code into 3.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use crate::units;

/// A number a check reads from the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Messages lost (gaps and tails).
    Lost,
    /// Messages received twice or backwards.
    Repeated,
    /// Messages out of their sender's order.
    Reordered,
    /// Frames the server refused.
    Refused,
    /// Live sessions the server closed.
    Dropped,
    /// Messages delivered.
    Delivered,
    /// Dead clients evicted in time (`all` means every one that should be).
    Evicted,
    /// Paused clients wrongly evicted.
    WronglyEvicted,
    /// A latency percentile: 0.5, 0.9, 0.99, 0.999, or 1.0 for the maximum.
    Latency(u16),
    /// Server memory growth over the run, in bytes.
    RssGrowth,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// The value side of a check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// A number (counts, bytes, or milliseconds for latency).
    Number(f64),
    /// `all`: the count that was due (only for `evicted`).
    All,
}

/// One threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    text: String,
    metric: Metric,
    op: Op,
    target: Target,
}

/// The numbers checks read, taken from the summary.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observed {
    /// Counts by metric.
    pub lost: u64,
    /// See [`Metric::Repeated`].
    pub repeated: u64,
    /// See [`Metric::Reordered`].
    pub reordered: u64,
    /// See [`Metric::Refused`].
    pub refused: u64,
    /// See [`Metric::Dropped`].
    pub dropped: u64,
    /// See [`Metric::Delivered`].
    pub delivered: u64,
    /// Dead clients evicted in time.
    pub evicted: u64,
    /// Dead clients that should have been evicted.
    pub evictions_due: u64,
    /// See [`Metric::WronglyEvicted`].
    pub wrongly_evicted: u64,
    /// Dead clients that failed their expectation in any way (late, early, wrong reason...).
    pub ghost_failures: u64,
    /// Latency percentiles in ms: p50, p90, p99, p99.9, max.
    pub latency_ms: [f64; 5],
    /// How many latencies were recorded (none: latency checks cannot pass).
    pub latency_count: u64,
    /// Server RSS growth in bytes, when both readings exist.
    pub rss_growth: Option<f64>,
}

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The check as written.
    pub check: String,
    /// What was measured.
    pub actual: String,
    /// Whether it held.
    pub passed: bool,
}

impl Check {
    /// Evaluates the check.
    pub fn evaluate(&self, observed: &Observed) -> Outcome {
        let (actual, shown) = match self.metric {
            Metric::Latency(which) => {
                let index = match which {
                    500 => 0,
                    900 => 1,
                    990 => 2,
                    999 => 3,
                    _ => 4,
                };
                let ms = observed.latency_ms[index];
                if observed.latency_count == 0 {
                    (None, "no latencies recorded".to_owned())
                } else {
                    (
                        Some(ms),
                        units::show(Duration::from_secs_f64(ms.max(0.0) / 1e3)),
                    )
                }
            }
            Metric::RssGrowth => (
                observed.rss_growth,
                observed.rss_growth.map_or(
                    "unknown (no /metrics memory gauge)".to_owned(),
                    units::show_bytes,
                ),
            ),
            count => {
                let value = match count {
                    Metric::Lost => observed.lost,
                    Metric::Repeated => observed.repeated,
                    Metric::Reordered => observed.reordered,
                    Metric::Refused => observed.refused,
                    Metric::Dropped => observed.dropped,
                    Metric::Delivered => observed.delivered,
                    Metric::Evicted => observed.evicted,
                    _ => observed.wrongly_evicted,
                };
                let shown = if count == Metric::Evicted {
                    match observed.ghost_failures {
                        0 => format!("{value} of {}", observed.evictions_due),
                        failed => {
                            format!("{value} of {} ({failed} failed)", observed.evictions_due)
                        }
                    }
                } else {
                    value.to_string()
                };
                (Some(value as f64), shown)
            }
        };
        let target = match self.target {
            Target::Number(n) => n,
            Target::All => observed.evictions_due as f64,
        };
        // `evicted=all` means every dead client got its due: none late, early, or wrongly kicked.
        let all_well = self.target != Target::All || observed.ghost_failures == 0;
        let passed = all_well
            && actual.is_some_and(|actual| match self.op {
                Op::Eq => (actual - target).abs() < 1e-9,
                Op::Lt => actual < target,
                Op::Le => actual <= target,
                Op::Gt => actual > target,
                Op::Ge => actual >= target,
            });
        Outcome {
            check: self.text.clone(),
            actual: shown,
            passed,
        }
    }
}

impl FromStr for Check {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let at = text
            .find(['=', '<', '>'])
            .ok_or_else(|| format!("{text:?} has no comparison; write lost=0 or p99<50ms"))?;
        let (name, rest) = text.split_at(at);
        let (op, value) = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ]
        .into_iter()
        .find_map(|(symbol, op)| rest.strip_prefix(symbol).map(|v| (op, v.trim())))
        .ok_or_else(|| format!("{text:?}: unknown comparison"))?;
        let metric = match name.trim() {
            "lost" => Metric::Lost,
            "repeated" | "dup" | "duplicates" => Metric::Repeated,
            "reordered" => Metric::Reordered,
            "refused" => Metric::Refused,
            "dropped" => Metric::Dropped,
            "delivered" => Metric::Delivered,
            "evicted" => Metric::Evicted,
            "wrongly_evicted" => Metric::WronglyEvicted,
            "p50" => Metric::Latency(500),
            "p90" => Metric::Latency(900),
            "p99" => Metric::Latency(990),
            "p999" | "p99.9" => Metric::Latency(999),
            "max" => Metric::Latency(1000),
            "rss_growth" => Metric::RssGrowth,
            other => {
                return Err(format!(
                    "unknown metric {other:?}; use lost, repeated, reordered, refused, dropped, \
                     delivered, evicted, wrongly_evicted, p50, p90, p99, p999, max or rss_growth"
                ));
            }
        };
        let target = match metric {
            Metric::Evicted if value == "all" => Target::All,
            Metric::Latency(_) => {
                Target::Number(units::parse_duration(value).map(|d| d.as_secs_f64() * 1e3)?)
            }
            Metric::RssGrowth => Target::Number(units::parse_bytes(value)? as f64),
            _ => Target::Number(
                value
                    .parse::<u64>()
                    .map_err(|_| format!("{text:?}: {value:?} is not a count"))?
                    as f64,
            ),
        };
        Ok(Self {
            text: text.to_owned(),
            metric,
            op,
            target,
        })
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Parses a comma-separated list of checks (the `--assert` value).
pub fn parse_checks(text: &str) -> Result<Vec<Check>, String> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// The checks of one `--assert` value (a newtype, so clap takes the list as one value).
#[derive(Debug, Clone, PartialEq)]
pub struct Checks(pub Vec<Check>);

impl FromStr for Checks {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_checks(text).map(Checks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed() -> Observed {
        Observed {
            lost: 0,
            delivered: 1000,
            evicted: 3,
            evictions_due: 4,
            latency_ms: [1.0, 2.0, 40.0, 80.0, 120.0],
            latency_count: 1000,
            rss_growth: Some(2.0 * 1024.0 * 1024.0),
            ..Observed::default()
        }
    }

    fn passes(text: &str) -> bool {
        let checks = parse_checks(text).expect("valid checks");
        checks.iter().all(|c| c.evaluate(&observed()).passed)
    }

    #[test]
    fn the_standard_thresholds_read_and_judge() {
        assert!(passes("lost=0,p99<50ms"));
        assert!(!passes("p99<30ms"));
        assert!(!passes("evicted=all"), "3 of 4 is not all");
        assert!(passes("evicted>=3, delivered>999"));
        assert!(passes("rss_growth<10MiB"));
        let mut failed = observed();
        failed.evicted = 4;
        failed.ghost_failures = 1;
        let all: Check = "evicted=all".parse().expect("valid check");
        assert!(
            !all.evaluate(&failed).passed,
            "a wrongly evicted pause is not all well"
        );
        assert!(!passes("max<=100ms"));
        let silent = Observed::default();
        let p99: Check = "p99<1s".parse().expect("valid check");
        assert!(!p99.evaluate(&silent).passed, "no latencies is no evidence");
    }

    #[test]
    fn bad_checks_say_what_is_allowed() {
        assert!(parse_checks("lost").is_err_and(|e| e.contains("no comparison")));
        assert!(parse_checks("speed<1").is_err_and(|e| e.contains("unknown metric")));
        assert!(parse_checks("p99<fast").is_err_and(|e| e.contains("500ms")));
        assert!(parse_checks("lost=some").is_err());
        assert_eq!(parse_checks("").map(|c| c.len()), Ok(0));
    }

    #[test]
    fn outcomes_show_what_was_measured() {
        let check: Check = "evicted=all".parse().expect("valid check");
        let outcome = check.evaluate(&observed());
        assert_eq!(outcome.actual, "3 of 4");
        assert!(!outcome.passed);
    }
}
