//! `bench fanout --search`: the highest publish rate whose deliveries keep p99 under a bound.
//!
//! A window trial first says roughly what the server sustains; open-loop trials at fixed rates
//! then grow past it or shrink below it until one passes and one fails, and bisect
//! (geometrically) between the two. The number of trials is bounded, and every trial is
//! bounded in time. A trial passes when its p99 is under the bound, nothing was lost, refused
//! or closed, and members received at least [`KEPT_UP`] of the offered rate. Last, one trial at
//! a fraction of the rate found gives the latency of a server that is not saturated.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use clap::builder::FalseyValueParser;

use super::fanout::Shape;
use super::fanout::crowd::Crowd;
use super::fanout::trial::Trial;
use super::publisher::Pace;
use crate::cmd::Ctx;
use crate::exit::Usage;
use crate::units;

/// Share of the offered deliveries a passing trial must see arrive during its window: a
/// server that falls behind the rate is saturated even before its latency shows it.
const KEPT_UP: f64 = 0.95;

/// The light trial's publisher tick, whatever `--tick` the search used. The light trial
/// measures latency, and a tick sends all the messages that came due during it in one burst:
/// with 5 ms, the server's queueing behind that burst is what gets measured (100 rooms x 10
/// members x 10 publishers at 20% of the rate: p50 1.4 ms with a 5 ms tick, 0.55 ms with
/// 1 ms, for roomcast and the reference alike). A coarse tick is for the searched rates, where
/// it lets a publisher write several messages per syscall; at 20% of them a 1 ms tick costs
/// the generator little.
pub const LIGHT_TRIAL_TICK: Duration = Duration::from_millis(1);

/// Most trials one search may run (the window trial and the light trial come on top).
const MAX_TRIALS: usize = 20;

/// Growth and shrink factors before both a passing and a failing rate are known.
const GROW: f64 = 1.5;
const SHRINK: f64 = 0.6;

/// The search stops once the failing rate is within this factor of the passing one.
const CLOSE_ENOUGH: f64 = 1.05;

/// Flags of the search.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Find the highest rate per room whose p99 stays under --p99-under (then measure latency
    /// at --light of it).
    #[arg(long, env = "ROOMCAST_BENCH_SEARCH", value_parser = FalseyValueParser::new(), default_value_t = false)]
    pub search: bool,
    /// The latency bound a rate must keep at p99.
    #[arg(long, env = "ROOMCAST_BENCH_P99_UNDER", default_value = "100ms", value_parser = units::parse_duration)]
    pub p99_under: Duration,
    /// Fixed-rate trials the search may run.
    #[arg(long, env = "ROOMCAST_BENCH_TRIALS", default_value_t = 6)]
    pub trials: usize,
    /// Fraction of the rate found at which the last trial measures latency (its publishers
    /// write every millisecond, whatever --tick says).
    #[arg(long, env = "ROOMCAST_BENCH_LIGHT", default_value = "20%", value_parser = units::parse_fraction)]
    pub light: f64,
}

impl SearchArgs {
    /// Refuses a search that cannot run or cannot end.
    pub fn validate(&self) -> Result<()> {
        if self.trials == 0 || self.trials > MAX_TRIALS {
            return Err(Usage::err(format!(
                "--trials must be between 1 and {MAX_TRIALS}"
            )));
        }
        if self.p99_under.is_zero() || self.light <= 0.0 {
            return Err(Usage::err("--p99-under and --light must be greater than 0"));
        }
        Ok(())
    }
}

/// What a search runs with.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    /// Its flags.
    pub args: &'a SearchArgs,
    /// The first trial's window.
    pub window: u64,
    /// Each trial's warm-up.
    pub warmup: Duration,
    /// Each trial's measured time.
    pub duration: Duration,
}

/// What a search found.
pub struct Found {
    /// The sessions, still open (a fresh set if a trial had some closed).
    pub crowd: Crowd,
    /// The fastest passing rate trial (or, when none passed, the slowest one tried).
    pub best: Trial,
    /// The trial at `--light` of the best rate.
    pub light: Trial,
    /// Every trial, in order.
    pub trials: Vec<Trial>,
}

/// Runs the search on `crowd`.
pub async fn run(ctx: &Ctx, mut crowd: Crowd, shape: &Shape, plan: Plan<'_>) -> Result<Found> {
    let bound_ms = units::millis(plan.args.p99_under);
    let members = crowd.len() as f64;
    let mut probe = crowd
        .trial(Pace::Window(plan.window), plan.warmup, plan.duration)
        .await;
    probe.passed = Some(passes(&probe, bound_ms));
    ctx.status(format!(
        "fanout search: window {} delivered {:.0}/s, p99 {:.1}ms",
        plan.window, probe.delivered_per_s, probe.latency.p99_ms
    ));
    let mut rate = probe.delivered_per_s / members;
    let mut trials = vec![probe];
    if rate <= 0.0 {
        bail!("the window trial delivered nothing; is the server relaying messages?");
    }
    crowd = fresh_if_damaged(ctx, crowd, shape, &trials[0]).await?;
    let (mut best, mut fastest_failing): (Option<Trial>, Option<f64>) = (None, None);
    for _ in 0..plan.args.trials {
        let mut trial = crowd
            .trial(Pace::Rate(rate), plan.warmup, plan.duration)
            .await;
        let passed = passes(&trial, bound_ms);
        trial.passed = Some(passed);
        ctx.status(format!(
            "fanout search: {rate:.0} msg/s per room: delivered {:.0}/s, p99 {:.1}ms, lost {}: {}",
            trial.delivered_per_s,
            trial.latency.p99_ms,
            trial.lost,
            if passed { "pass" } else { "fail" }
        ));
        crowd = fresh_if_damaged(ctx, crowd, shape, &trial).await?;
        trials.push(trial.clone());
        if passed {
            best = Some(trial);
        } else {
            fastest_failing = Some(fastest_failing.map_or(rate, |f: f64| f.min(rate)));
        }
        let passing = best.as_ref().and_then(|b| b.rate_per_room);
        rate = match (passing, fastest_failing) {
            (Some(pass), Some(fail)) if fail / pass < CLOSE_ENOUGH => break,
            (Some(pass), Some(fail)) => (pass * fail).sqrt(),
            (Some(pass), None) => pass * GROW,
            (None, Some(fail)) => fail * SHRINK,
            (None, None) => rate,
        };
    }
    let best = match best {
        Some(best) => best,
        None => slowest_rate_trial(&trials),
    };
    let light_rate = best.rate_per_room.unwrap_or(rate) * plan.args.light;
    crowd.set_tick(LIGHT_TRIAL_TICK);
    let light = crowd
        .trial(Pace::Rate(light_rate), plan.warmup, plan.duration)
        .await;
    Ok(Found {
        crowd,
        best,
        light,
        trials,
    })
}

/// Whether a trial meets the bound without losing, refusing, closing or falling behind.
fn passes(trial: &Trial, bound_ms: f64) -> bool {
    let kept_up = trial
        .offered_per_s
        .is_none_or(|offered| trial.delivered_per_s >= offered * KEPT_UP);
    trial.latency.count > 0
        && trial.latency.p99_ms < bound_ms
        && trial.lost == 0
        && trial.refused == 0
        && trial.closed_by_server == 0
        && kept_up
}

fn slowest_rate_trial(trials: &[Trial]) -> Trial {
    let rate = |t: &Trial| t.rate_per_room.unwrap_or(f64::INFINITY);
    let mut slowest = trials[trials.len() - 1].clone();
    for trial in trials {
        if rate(trial) < rate(&slowest) {
            slowest = trial.clone();
        }
    }
    slowest
}

/// A trial that overloaded the server may have had members closed as slow, or left messages
/// still in flight past the drain; later trials need every member and a quiet start, so they
/// get a fresh set of sessions.
async fn fresh_if_damaged(ctx: &Ctx, crowd: Crowd, shape: &Shape, last: &Trial) -> Result<Crowd> {
    if crowd.intact() && last.lost == 0 {
        return Ok(crowd);
    }
    ctx.status(
        "fanout search: the last trial closed or lost members' messages; connecting a fresh set",
    );
    crowd.close();
    Crowd::connect(ctx, shape).await
}
