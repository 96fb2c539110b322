//! The dead-clients report: one row per dead client, the live members' losses and latency,
//! and the verdict, as a table or as JSON lines.

use std::io::Write;

use anyhow::Result;
use roomcast_protocol::{CloseInfo, LeaveReason, RoomName, UserName};
use serde::Serialize;
use tokio::time::Instant;

use crate::cmd::json_line;
use crate::load::eviction::{Heartbeat, Observed, Verdict};
use crate::load::ghost::{GhostLog, Mode};
use crate::load::latency::LatencySummary;
use crate::load::member::{Drained, Shared};
use crate::units;

/// What happened to one dead client.
#[derive(Debug, Serialize)]
pub struct GhostRow {
    kind: &'static str,
    mode: Mode,
    user: UserName,
    /// From its last sign of life to the observer's `leave` event.
    evicted_after_ms: Option<f64>,
    leave_reason: Option<LeaveReason>,
    /// The close frame its socket received.
    close_code: Option<u16>,
    close_reason: Option<String>,
    /// From its last sign of life to its socket's close.
    closed_after_ms: Option<f64>,
    verdict: Verdict,
    problem: Option<String>,
}

impl GhostRow {
    /// A row from what was seen and judged.
    pub fn new(
        mode: Mode,
        user: UserName,
        dead_at: Option<Instant>,
        observed: Observed,
        log: &GhostLog,
        (verdict, problem): (Verdict, Option<String>),
    ) -> Self {
        // A noread socket is only looked at when the run ends, and nothing reaches a blackhole
        // one, so their close time means nothing.
        let closed_after = log
            .ended_at()
            .zip(dead_at)
            .filter(|_| !matches!(mode, Mode::Noread | Mode::Blackhole))
            .map(|(end, dead)| units::millis(end.saturating_duration_since(dead)));
        let problem = problem.map(|p| format!("{user} ({}): {p}", mode.name()));
        Self {
            kind: "ghost",
            mode,
            evicted_after_ms: observed.left.map(|(after, _)| units::millis(after)),
            leave_reason: observed.left.map(|(_, reason)| reason),
            close_code: log.close.as_ref().map(|c| c.0),
            close_reason: log.close.as_ref().map(|c| c.1.clone()),
            closed_after_ms: closed_after,
            user,
            verdict,
            problem,
        }
    }
}

/// What the live members saw meanwhile.
#[derive(Debug, Serialize)]
pub struct LiveSummary {
    members: usize,
    sent: u64,
    received: u64,
    lost: u64,
    repeated: u64,
    reordered: u64,
    refused: u64,
    dropped: u64,
    latency: LatencySummary,
    #[serde(skip)]
    problems: Vec<String>,
}

impl LiveSummary {
    /// Totals over the drained members.
    pub fn of(drained: &[Drained], shared: &Shared) -> Self {
        let mut summary = Self {
            members: drained.len(),
            sent: 0,
            received: 0,
            lost: 0,
            repeated: 0,
            reordered: 0,
            refused: 0,
            dropped: 0,
            latency: LatencySummary::of(&shared.latency.merged()),
            problems: Vec::new(),
        };
        for member in drained {
            let report = &member.report;
            let who = report
                .user
                .as_ref()
                .map_or("a live member".to_owned(), |u| u.to_string());
            summary.sent += report.sent;
            summary.received += report.received;
            summary.lost += member.lost();
            summary.repeated += report.seqs.repeated;
            summary.reordered += report.reordered;
            if let Some(refusal) = &report.refusal {
                summary.refused += 1;
                summary
                    .problems
                    .push(format!("{who}: the server refused a frame: {refusal}"));
            }
            if let Some(info) = &report.dropped {
                summary.dropped += 1;
                summary
                    .problems
                    .push(format!("{who}: the server closed it ({info})"));
            }
            if let Some(error) = &report.error {
                summary.problems.push(format!("{who}: {error}"));
            }
        }
        if summary.lost + summary.repeated + summary.reordered > 0 {
            summary.problems.push(format!(
                "live members lost {} message(s), got {} twice and {} out of order",
                summary.lost, summary.repeated, summary.reordered
            ));
        }
        summary
    }
}

/// The whole run's report.
#[derive(Debug, Serialize)]
pub struct Report {
    kind: &'static str,
    room: RoomName,
    ping_interval_ms: f64,
    ping_timeout_ms: f64,
    slack_ms: f64,
    expect_within_ms: Option<f64>,
    heartbeat_source: &'static str,
    #[serde(skip)]
    rows: Vec<GhostRow>,
    ghosts: usize,
    evicted: usize,
    survived: usize,
    live: LiveSummary,
    /// Whether every expectation held.
    pub passed: bool,
    /// Each failed expectation, in words.
    pub problems: Vec<String>,
}

impl Report {
    /// Judges the run as a whole.
    pub fn new(
        room: &RoomName,
        beat: Heartbeat,
        source: &'static str,
        rows: Vec<GhostRow>,
        live: LiveSummary,
        observer_closed: Option<CloseInfo>,
    ) -> Self {
        let mut problems: Vec<String> = rows.iter().filter_map(|r| r.problem.clone()).collect();
        problems.extend(live.problems.iter().cloned());
        if let Some(info) = observer_closed {
            problems.push(format!("the observer's own session ended early ({info})"));
        }
        Self {
            kind: "summary",
            room: room.clone(),
            ping_interval_ms: units::millis(beat.interval),
            ping_timeout_ms: units::millis(beat.timeout),
            slack_ms: units::millis(beat.slack),
            expect_within_ms: beat.expect_within.map(units::millis),
            heartbeat_source: source,
            ghosts: rows.len(),
            evicted: rows
                .iter()
                .filter(|r| r.verdict == Verdict::Evicted)
                .count(),
            survived: rows
                .iter()
                .filter(|r| r.verdict == Verdict::Survived)
                .count(),
            passed: problems.is_empty() && rows.iter().all(|r| r.verdict.passed()),
            rows,
            live,
            problems,
        }
    }

    /// Prints the table and summary (or JSON lines: one per dead client, then the summary).
    pub fn print<W: Write>(&self, out: &mut W, json: bool) -> Result<()> {
        if json {
            for row in &self.rows {
                json_line(out, row)?;
            }
            json_line(out, self)?;
            return Ok(());
        }
        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |ms| format!("{ms:.1}ms"));
        writeln!(
            out,
            "{:<7} {:<24} {:>10} {:<8} {:<12} VERDICT",
            "MODE", "USER", "EVICTED", "REASON", "CLOSE"
        )?;
        for row in &self.rows {
            let close = row
                .close_code
                .map_or("-".to_owned(), |code| match row.closed_after_ms {
                    Some(_) => format!("{code} {}", ms(row.closed_after_ms)),
                    None => code.to_string(),
                });
            let reason = row.leave_reason.map_or("-", LeaveReason::as_str);
            let verdict = serde_json::to_value(&row.verdict).ok();
            let verdict = verdict.as_ref().and_then(|v| v.as_str()).unwrap_or("?");
            writeln!(
                out,
                "{:<7} {:<24} {:>10} {:<8} {:<12} {verdict}",
                row.mode.name(),
                row.user.as_str(),
                ms(row.evicted_after_ms),
                reason,
                close
            )?;
        }
        let live = &self.live;
        writeln!(
            out,
            "live: {} member(s) sent {}, received {}, lost {}, repeated {}, out of order {}; latency {}",
            live.members,
            live.sent,
            live.received,
            live.lost,
            live.repeated,
            live.reordered,
            live.latency.human()
        )?;
        let verdict = if self.passed { "ok" } else { "FAILED" };
        writeln!(
            out,
            "{verdict}: {} of {} dead client(s) evicted in time, {} paused client(s) rightly kept",
            self.evicted, self.ghosts, self.survived
        )?;
        Ok(())
    }
}
