//! `bench fanout`: R rooms of M members, the first P of each room publishing (every member,
//! publishers included, receives every message of its room, as tutorial sessions do).
//!
//! One trial publishes with a window (at most W messages in flight per room: what the server
//! sustains), at a fixed rate per room (open loop: latency at a load), or as a burst (every
//! publisher at once: nothing may be lost). `--search` finds the highest rate whose p99 stays
//! under a bound, in a bounded number of trials on the same sessions.

pub mod crowd;
pub mod trial;

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use reqwest::StatusCode;
use serde::Serialize;

use self::crowd::Crowd;
use self::trial::Trial;
use super::publisher::Pace;
use super::sample::MIN_SIZE_BYTES;
use super::search::{self, SearchArgs};
use super::{NodeCount, Spread, check_connections};
use crate::api::ApiError;
use crate::cmd::{Ctx, json_line};
use crate::exit::{Code, Usage};
use crate::units;

/// Longest publisher tick: past it, messages come in bursts that measure the tick, not the server.
const MAX_TICK: Duration = Duration::from_secs(1);

/// Flags of `bench fanout`.
#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// Rooms.
    #[arg(long, short = 'r', env = "ROOMCAST_BENCH_ROOMS", default_value_t = 1)]
    pub rooms: usize,
    /// Members (sessions) per room, publishers included.
    #[arg(
        long,
        short = 'm',
        env = "ROOMCAST_BENCH_MEMBERS",
        default_value_t = 100
    )]
    pub members: usize,
    /// Members of each room that publish.
    #[arg(
        long,
        short = 'p',
        env = "ROOMCAST_BENCH_PUBLISHERS",
        default_value_t = 1
    )]
    pub publishers: usize,
    /// How long each trial measures, after its warm-up.
    #[arg(long, short = 'd', env = "ROOMCAST_BENCH_DURATION", default_value = "5s", value_parser = units::parse_duration)]
    pub duration: Duration,
    /// Publishing before each trial starts measuring.
    #[arg(long, env = "ROOMCAST_BENCH_WARMUP", default_value = "1s", value_parser = units::parse_duration)]
    pub warmup: Duration,
    /// Messages in flight per room (published, not yet received by every member) when no
    /// --rate is given, and in the search's first trial.
    #[arg(long, env = "ROOMCAST_BENCH_WINDOW", default_value_t = 128)]
    pub window: u64,
    /// Publish this many messages per second per room (`500`, `500/s`) instead of a window.
    #[arg(long, env = "ROOMCAST_BENCH_RATE", value_parser = units::parse_rate, conflicts_with = "search")]
    pub rate: Option<f64>,
    /// Every publisher sends this many messages at once; the run checks none is lost.
    #[arg(long, env = "ROOMCAST_BENCH_BURST", conflicts_with_all = ["rate", "search"])]
    pub burst: Option<u64>,
    /// The search for the highest rate under a p99 bound.
    #[command(flatten)]
    pub search: SearchArgs,
    /// Message size in bytes (the text; the frame adds the JSON around it).
    #[arg(long, env = "ROOMCAST_BENCH_SIZE", default_value = "64", value_parser = units::parse_bytes)]
    pub size: usize,
    /// One message in this many carries its send time (latency is measured on those only).
    #[arg(long, env = "ROOMCAST_BENCH_SAMPLE_EVERY", default_value_t = 16)]
    pub sample_every: u64,
    /// Time between two rounds of publisher writes.
    #[arg(long, env = "ROOMCAST_BENCH_TICK", default_value = "1ms", value_parser = units::parse_duration)]
    pub tick: Duration,
    /// Handshakes in flight while connecting.
    #[arg(long, env = "ROOMCAST_BENCH_CONCURRENCY", default_value_t = 256)]
    pub concurrency: usize,
    /// The server's PID, to report its CPU use beside the generator's.
    #[arg(long, env = "ROOMCAST_BENCH_SERVER_PID")]
    pub server_pid: Option<u32>,
}

/// The sessions a fanout bench opens, and how its publishers behave.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Rooms.
    pub rooms: usize,
    /// Members per room.
    pub members: usize,
    /// Publishers per room, among the members.
    pub publishers: usize,
    /// Message text size, bytes.
    pub size: usize,
    /// One message in this many is stamped.
    pub sample_every: u64,
    /// Publisher tick.
    pub tick: Duration,
    /// Handshakes in flight.
    pub concurrency: usize,
    /// The server's PID.
    pub server_pid: Option<u32>,
}

/// What the run does.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Window(u64),
    Rate(f64),
    Burst(u64),
    Search,
}

/// `bench fanout`, validated.
#[derive(Debug)]
pub struct FanoutConfig {
    shape: Shape,
    mode: Mode,
    args: FanoutArgs,
}

impl TryFrom<FanoutArgs> for FanoutConfig {
    type Error = anyhow::Error;

    fn try_from(args: FanoutArgs) -> Result<Self> {
        if args.rooms == 0 || args.members == 0 || args.window == 0 || args.sample_every == 0 {
            return Err(Usage::err(
                "--rooms, --members, --window and --sample-every must be at least 1",
            ));
        }
        if args.publishers == 0 || args.publishers > args.members {
            return Err(Usage::err("--publishers must be between 1 and --members"));
        }
        check_connections(args.rooms.saturating_mul(args.members))?;
        if args.duration.is_zero() || args.tick.is_zero() || args.tick > MAX_TICK {
            return Err(Usage::err(
                "--duration must be longer than 0, --tick between 1ms and 1s",
            ));
        }
        if args.size < MIN_SIZE_BYTES {
            return Err(Usage::err(format!(
                "--size must be at least {MIN_SIZE_BYTES} bytes (the send time's stamp)"
            )));
        }
        if args.burst == Some(0) {
            return Err(Usage::err("--burst must be at least 1"));
        }
        args.search.validate()?;
        let mode = match (args.burst, args.rate, args.search.search) {
            (Some(count), _, _) => Mode::Burst(count),
            (None, Some(rate), _) => Mode::Rate(rate),
            (None, None, true) => Mode::Search,
            (None, None, false) => Mode::Window(args.window),
        };
        let shape = Shape {
            rooms: args.rooms,
            members: args.members,
            publishers: args.publishers,
            size: args.size,
            sample_every: args.sample_every,
            tick: args.tick,
            concurrency: args.concurrency.max(1),
            server_pid: args.server_pid,
        };
        Ok(Self { shape, mode, args })
    }
}

/// The figures of one fanout run: the headline trial's fields at the top level.
#[derive(Debug, Serialize)]
struct FanoutResult {
    kind: &'static str,
    mode: &'static str,
    rooms: usize,
    members_per_room: usize,
    publishers_per_room: usize,
    connections: usize,
    size_bytes: usize,
    sample_every: u64,
    /// Sessions per `--url`: members and publishers take the nodes in turn.
    nodes: Vec<NodeCount>,
    /// The search's p99 bound, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_under_ms: Option<f64>,
    /// The headline: the fastest passing trial of a search, or the only trial.
    #[serde(flatten)]
    headline: Trial,
    /// The search's trial at a fraction of the rate found.
    #[serde(skip_serializing_if = "Option::is_none")]
    light: Option<Trial>,
    /// Every trial of a search, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    trials: Vec<Trial>,
}

/// Runs the fanout benchmark.
pub async fn run(ctx: &Ctx, config: FanoutConfig) -> Result<Code> {
    check_rate_limit(ctx, config.mode).await?;
    let shape = &config.shape;
    ctx.status(format!(
        "fanout: connecting {} rooms x {} members ({} publishing in each)",
        shape.rooms, shape.members, shape.publishers
    ));
    let mut crowd = Crowd::connect(ctx, shape).await?;
    let (warmup, duration) = (config.args.warmup, config.args.duration);
    let (headline, light, trials, mode) = match config.mode {
        Mode::Window(window) => {
            let trial = crowd.trial(Pace::Window(window), warmup, duration).await;
            (trial, None, Vec::new(), "window")
        }
        Mode::Rate(rate) => {
            let trial = crowd.trial(Pace::Rate(rate), warmup, duration).await;
            (trial, None, Vec::new(), "rate")
        }
        Mode::Burst(count) => (crowd.burst(count).await, None, Vec::new(), "burst"),
        Mode::Search => {
            let plan = search::Plan {
                args: &config.args.search,
                window: config.args.window,
                warmup,
                duration,
            };
            let found = search::run(ctx, crowd, shape, plan).await?;
            crowd = found.crowd;
            (found.best, Some(found.light), found.trials, "search")
        }
    };
    let nodes = crowd.nodes();
    crowd.close();
    let failed = match config.mode {
        Mode::Burst(_) => headline.lost > 0 || headline.closed_by_server > 0,
        Mode::Search => headline.passed != Some(true),
        _ => false,
    };
    let result = FanoutResult {
        kind: "fanout",
        mode,
        rooms: shape.rooms,
        members_per_room: shape.members,
        publishers_per_room: shape.publishers,
        connections: shape.rooms * shape.members,
        size_bytes: shape.size,
        sample_every: shape.sample_every,
        nodes,
        p99_under_ms: matches!(config.mode, Mode::Search)
            .then(|| units::millis(config.args.search.p99_under)),
        headline,
        light,
        trials,
    };
    print(&mut std::io::stdout().lock(), &result, ctx.json)?;
    Ok(if failed { Code::Failed } else { Code::Ok })
}

/// A roomcast server's per-session rate limit would cap the publishers; refuse to measure
/// that. A server without `/api/info` (the reference broadcaster) has no limit.
async fn check_rate_limit(ctx: &Ctx, mode: Mode) -> Result<()> {
    let info = match ctx.api.info().await {
        Ok(info) => info,
        Err(e) if e.downcast_ref::<ApiError>().map(|e| e.status) == Some(StatusCode::NOT_FOUND) => {
            ctx.status(
                "fanout: the server has no /api/info (not roomcast): no rate limit to check",
            );
            return Ok(());
        }
        Err(e) => return Err(e.context("reading /api/info")),
    };
    let capped = match mode {
        Mode::Rate(rate) => rate > f64::from(info.rate_per_second),
        _ => true,
    };
    if info.rate_per_second > 0 && capped {
        return Err(Usage::err(format!(
            "the server limits each session to {} frames/s, which caps a publisher; start it with \
             --rate-per-second 0 for benchmarks, or pass --rate below the limit",
            info.rate_per_second
        )));
    }
    Ok(())
}

fn print<W: Write>(out: &mut W, result: &FanoutResult, json: bool) -> Result<()> {
    if json {
        json_line(out, result)?;
        return Ok(());
    }
    writeln!(
        out,
        "fanout ({}): {} room(s) x {} members, {} publishing in each, {}-byte messages, 1 in {} stamped",
        result.mode,
        result.rooms,
        result.members_per_room,
        result.publishers_per_room,
        result.size_bytes,
        result.sample_every
    )?;
    for trial in &result.trials {
        writeln!(out, "  trial {}", trial.line())?;
    }
    let nodes = Spread::line(&result.nodes);
    if !nodes.is_empty() {
        writeln!(out, "  {nodes}")?;
    }
    writeln!(out, "  result {}", result.headline.line())?;
    writeln!(out, "    latency {}", result.headline.latency.human())?;
    if let Some(light) = &result.light {
        writeln!(out, "  light  {}", light.line())?;
        writeln!(out, "    latency {}", light.latency.human())?;
    }
    Ok(())
}
