//! The soak's summary (a report for people, or one JSON object) and its progress bar.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::assertions::{Observed, Outcome};
use super::haunting::GhostTally;
use crate::cmd::json_line;
use crate::load::latency::LatencySummary;
use crate::load::member::{Drained, MemberReport, Shared};
use crate::units;

/// Growth past which (and past half the starting size) the summary calls memory suspicious:
/// above allocator noise and history buffers filling up.
const LEAK_SUSPECT_BYTES: f64 = 16.0 * 1024.0 * 1024.0;

/// How many member problems the summary spells out.
const PROBLEMS_SHOWN: usize = 10;

/// Everything a soak measured.
#[derive(Debug, Serialize)]
pub struct Summary {
    kind: &'static str,
    /// The run id in user and room names.
    pub run: String,
    /// How long the run took, seconds (the duration plus the eviction wait and the drain).
    pub elapsed_s: f64,
    /// Live clients at any time.
    pub clients: usize,
    /// Rooms.
    pub rooms: usize,
    /// Target messages per second, all clients together.
    pub rate_per_s: f64,
    /// Members replaced by churn.
    pub churned: usize,
    /// Messages sent.
    pub sent: u64,
    /// Messages acknowledged by the server.
    pub acked: u64,
    /// Messages received, all members together.
    pub delivered: u64,
    /// Messages a member should have received and did not.
    pub lost: u64,
    /// Messages received twice or backwards.
    pub repeated: u64,
    /// Messages out of their sender's order.
    pub reordered: u64,
    /// Frames the server refused.
    pub refused: u64,
    /// Live sessions the server closed.
    pub dropped: u64,
    /// Send-to-receive latency.
    pub latency: LatencySummary,
    /// The dead clients.
    pub dead: GhostTally,
    /// Server RSS at start and end, from `/metrics`.
    pub rss_start_bytes: Option<f64>,
    /// See `rss_start_bytes`.
    pub rss_end_bytes: Option<f64>,
    /// The thresholds and how they went.
    pub checks: Vec<Outcome>,
    /// Whether every threshold held.
    pub passed: bool,
    /// Member troubles, in words (the first few).
    pub problems: Vec<String>,
}

/// The parts of a summary that come from the run's setup.
#[derive(Debug)]
pub struct Setup {
    /// Run id.
    pub run: String,
    /// Clients.
    pub clients: usize,
    /// Rooms.
    pub rooms: usize,
    /// Target rate.
    pub rate: f64,
}

impl Summary {
    /// Adds up the members' reports (live and churned) and the dead clients' tally.
    pub fn new(
        setup: Setup,
        elapsed: Duration,
        shared: &Shared,
        drained: &[Drained],
        retired: &[MemberReport],
        dead: GhostTally,
        rss: (Option<f64>, Option<f64>),
    ) -> Self {
        let totals = &shared.totals;
        let mut problems = Vec::new();
        let mut lost = 0;
        let reports = drained.iter().map(|d| &d.report).chain(retired);
        for report in reports {
            let who = report
                .user
                .as_ref()
                .map_or("a member".to_owned(), |u| u.to_string());
            let trouble = [
                report.refusal.as_ref().map(|r| format!("refused: {r}")),
                report
                    .dropped
                    .as_ref()
                    .map(|i| format!("closed by the server ({i})")),
                report.error.clone(),
            ];
            for text in trouble.into_iter().flatten() {
                if problems.len() < PROBLEMS_SHOWN {
                    problems.push(format!("{who}: {text}"));
                }
            }
        }
        lost += drained.iter().map(Drained::lost).sum::<u64>();
        lost += retired.iter().map(|r| r.seqs.lost).sum::<u64>();
        Self {
            kind: "soak",
            run: setup.run,
            elapsed_s: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
            clients: setup.clients,
            rooms: setup.rooms,
            rate_per_s: setup.rate,
            churned: retired.len(),
            sent: totals.sent.load(Ordering::Relaxed),
            acked: totals.acked.load(Ordering::Relaxed),
            delivered: totals.delivered.load(Ordering::Relaxed),
            lost,
            repeated: totals.repeated.load(Ordering::Relaxed),
            reordered: totals.reordered.load(Ordering::Relaxed),
            refused: totals.refused.load(Ordering::Relaxed),
            dropped: totals.dropped.load(Ordering::Relaxed),
            latency: LatencySummary::of(&shared.latency.merged()),
            dead,
            rss_start_bytes: rss.0,
            rss_end_bytes: rss.1,
            checks: Vec::new(),
            passed: true,
            problems,
        }
    }

    /// The numbers thresholds read.
    pub fn observed(&self) -> Observed {
        let l = &self.latency;
        Observed {
            lost: self.lost,
            repeated: self.repeated,
            reordered: self.reordered,
            refused: self.refused,
            dropped: self.dropped,
            delivered: self.delivered,
            evicted: self.dead.evicted as u64,
            evictions_due: self.dead.evictions_due as u64,
            wrongly_evicted: self.dead.wrongly_evicted as u64,
            ghost_failures: self.dead.failed as u64,
            latency_ms: [l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms],
            latency_count: l.count,
            rss_growth: self
                .rss_start_bytes
                .zip(self.rss_end_bytes)
                .map(|(a, b)| b - a),
        }
    }

    /// Prints the summary for people, or as one JSON object.
    pub fn print<W: Write>(&self, out: &mut W, json: bool) -> Result<()> {
        if json {
            json_line(out, self)?;
            return Ok(());
        }
        writeln!(
            out,
            "soak {}: {:.1}s, {} clients in {} rooms, {} msg/s, {} churned",
            self.run, self.elapsed_s, self.clients, self.rooms, self.rate_per_s, self.churned
        )?;
        writeln!(
            out,
            "messages: sent {}, delivered {}, lost {}, repeated {}, out of order {}, refused {}, dropped sessions {}",
            self.sent,
            self.delivered,
            self.lost,
            self.repeated,
            self.reordered,
            self.refused,
            self.dropped
        )?;
        writeln!(out, "latency:  {}", self.latency.human())?;
        let dead = &self.dead;
        let modes: Vec<String> = dead
            .by_mode
            .iter()
            .map(|(mode, t)| format!("{mode} {}/{}", t.evicted + t.survived, t.created))
            .collect();
        writeln!(
            out,
            "dead clients: {} created, {} of {} due evicted in time, {} paused kept, {} failed ({}); eviction after {}",
            dead.created,
            dead.evicted,
            dead.evictions_due,
            dead.survived,
            dead.failed,
            modes.join(", "),
            dead.eviction.human()
        )?;
        if let (Some(start), Some(end)) = (self.rss_start_bytes, self.rss_end_bytes) {
            writeln!(
                out,
                "server memory (same clients connected): {} -> {} ({}{})",
                units::show_bytes(start),
                units::show_bytes(end),
                if end >= start { "+" } else { "" },
                units::show_bytes(end - start)
            )?;
            if end - start > LEAK_SUSPECT_BYTES && end > start * 1.5 {
                writeln!(
                    out,
                    "  ! server memory grew by half or more over the run: look for a leak \
                     (assert rss_growth<... to fail on it)"
                )?;
            }
        }
        for problem in self.dead.problems.iter().chain(&self.problems) {
            writeln!(out, "  ! {problem}")?;
        }
        for check in &self.checks {
            let mark = if check.passed { "ok" } else { "FAILED" };
            writeln!(out, "check {}: {mark} ({})", check.check, check.actual)?;
        }
        writeln!(out, "{}", if self.passed { "ok" } else { "FAILED" })?;
        Ok(())
    }
}

/// The progress bar on stderr: hidden when stderr is not a terminal or with `--quiet`.
pub fn progress_bar(duration: Duration, quiet: bool) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let length = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let style = ProgressStyle::with_template("{elapsed_precise} [{bar:24}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::with_draw_target(Some(length), target).with_style(style)
}

/// The bar's message: the counters that matter while it runs.
pub fn progress_line(shared: &Shared, evicted: usize) -> String {
    let totals = &shared.totals;
    let p99 = shared.latency.merged().value_at_quantile(0.99);
    format!(
        "sent {} delivered {} lost {} evicted {evicted} p99 {}",
        totals.sent.load(Ordering::Relaxed),
        totals.delivered.load(Ordering::Relaxed),
        totals.lost.load(Ordering::Relaxed),
        units::show(Duration::from_micros(p99))
    )
}
