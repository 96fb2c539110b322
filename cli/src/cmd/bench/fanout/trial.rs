//! What one fanout trial measured, as JSON and as a line for people.

use serde::Serialize;

use crate::load::latency::LatencySummary;

/// What one trial measured.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    /// `window`, `rate` or `burst`.
    pub pace: &'static str,
    /// Messages in flight per room (`window` trials).
    pub window: Option<u64>,
    /// Messages published per second per room (`rate` trials).
    pub rate_per_room: Option<f64>,
    /// Deliveries per second the rate asks for (rate x members, all rooms).
    pub offered_per_s: Option<f64>,
    /// Length of the measured window, seconds.
    pub measured_s: f64,
    /// Messages published during the whole trial (warm-up included).
    pub published: u64,
    /// Messages received by members during the measured window.
    pub delivered: u64,
    /// `delivered` per second.
    pub delivered_per_s: f64,
    /// Deliveries owed by the trial's publishes and never received after the drain.
    pub lost: u64,
    /// Refusals members received (`{"error":...}`).
    pub refused: u64,
    /// Members whose session ended during the trial (a slow-consumer close shows here).
    pub closed_by_server: u64,
    /// Publisher ticks skipped because the server was not reading (open loop only).
    pub backlogged_ticks: u64,
    /// Time between two rounds of publisher writes in this trial, milliseconds (none for a
    /// burst, which is written at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tick_ms: Option<f64>,
    /// From the publisher stamping a sampled message to a member's read returning it.
    pub latency: LatencySummary,
    /// Cores the load generator used during the measured window.
    pub generator_cores: Option<f64>,
    /// Cores the server used meanwhile (with `--server-pid`).
    pub server_cores: Option<f64>,
    /// The search's verdict on this trial (search only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passed: Option<bool>,
}

impl Trial {
    /// One line for people: pace, deliveries, latency, counts, CPU, verdict.
    pub fn line(&self) -> String {
        let trial = self;
        let pace = match (trial.window, trial.rate_per_room) {
            (Some(window), _) => format!("window {window}"),
            (_, Some(rate)) => format!("{rate:.0} msg/s per room"),
            _ => "burst".to_owned(),
        };
        let verdict = match trial.passed {
            Some(true) => " pass",
            Some(false) => " FAIL",
            None => "",
        };
        let cores = |c: Option<f64>| c.map_or("?".to_owned(), |c| format!("{c:.2}"));
        format!(
            "{pace}: {:.0} deliveries/s, p50 {:.3}ms p99 {:.3}ms, published {}, lost {}, refused {}, closed {}; generator {} cores, server {} cores{verdict}",
            trial.delivered_per_s,
            trial.latency.p50_ms,
            trial.latency.p99_ms,
            trial.published,
            trial.lost,
            trial.refused,
            trial.closed_by_server,
            cores(trial.generator_cores),
            cores(trial.server_cores),
        )
    }
}
