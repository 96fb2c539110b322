//! `roomcast soak`: the long run. Live clients in several rooms send stamped messages and check
//! every one they should receive (seq gaps, repeats, each sender's order, latency); dead
//! clients of every mode are created and must be evicted in time; clients churn. A summary
//! with HDR percentiles, server memory growth from `/metrics`, and `--assert` thresholds that
//! turn into exit code 3.

mod assertions;
mod fleet;
mod haunting;
mod summary;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use roomcast_protocol::RoomName;
use tokio::time::{Instant, MissedTickBehavior};

use self::assertions::Checks;
use self::fleet::Fleet;
use self::haunting::Haunting;
use self::summary::{Setup, Summary, progress_bar, progress_line};
use super::Ctx;
use crate::exit::{Code, Usage};
use crate::load::eviction::{Heartbeat, HeartbeatFlags};
use crate::load::latency::LatencyShards;
use crate::load::member::{Shared, Totals};
use crate::load::observer::Observer;
use crate::load::{stamp, user_name};
use crate::units;

/// Most sockets one soak opens: under the 20,000 file descriptors `ulimit -n` allows here.
const MAX_SOCKETS: usize = 15_000;

/// The longest soak: a day; longer runs are a scheduling mistake, not a test.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// How often the progress bar is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Thresholds when `--assert` is not given.
const DEFAULT_ASSERT: &str = "lost=0,repeated=0,reordered=0,dropped=0,refused=0,evicted=all";

/// Flags of `soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// Live clients (at any time; churn replaces them).
    #[arg(long, short = 'c', env = "ROOMCAST_SOAK_CLIENTS", default_value_t = 20)]
    pub clients: usize,
    /// Rooms the clients spread over.
    #[arg(long, short = 'r', env = "ROOMCAST_SOAK_ROOMS", default_value_t = 2)]
    pub rooms: usize,
    /// Messages per second, all clients together (`200`, `200/s`, `6000/m`).
    #[arg(long, env = "ROOMCAST_SOAK_RATE", default_value = "50", value_parser = units::parse_rate)]
    pub rate: f64,
    /// How long to run (the eviction wait and the drain come after).
    #[arg(long, short = 'd', env = "ROOMCAST_SOAK_DURATION", default_value = "30s", value_parser = units::parse_duration)]
    pub duration: Duration,
    /// Dead clients to create over the run, as a fraction of --clients (`0.1` or `10%`).
    #[arg(long, env = "ROOMCAST_SOAK_DEAD_FRACTION", default_value = "0.1", value_parser = units::parse_fraction)]
    pub dead_fraction: f64,
    /// Clients replaced per second (`1`, `1/s`, `30/m`); 0 disables churn.
    #[arg(long, env = "ROOMCAST_SOAK_CHURN", default_value = "1", value_parser = parse_churn)]
    pub churn: f64,
    /// Pad messages to at least this size (`256`, `1KiB`).
    #[arg(long, env = "ROOMCAST_SOAK_SIZE", default_value = "0", value_parser = units::parse_bytes)]
    pub size: usize,
    /// Thresholds; any that fails exits 3. Metrics: lost, repeated, reordered, refused,
    /// dropped, delivered, evicted (=all), wrongly_evicted, p50, p90, p99, p999, max,
    /// rss_growth.
    #[arg(long = "assert", env = "ROOMCAST_SOAK_ASSERT", default_value = DEFAULT_ASSERT)]
    pub checks: Checks,
    /// Prefix of the rooms' names (the run id follows it).
    #[arg(long, env = "ROOMCAST_SOAK_ROOM_PREFIX", default_value = "soak")]
    pub room_prefix: String,
    /// How long paused clients stay silent [default: half the ping timeout].
    #[arg(long, env = "ROOMCAST_SOAK_PAUSE", value_parser = units::parse_duration)]
    pub pause: Option<Duration>,
    /// The server's ping interval [default: from /api/info].
    #[arg(long, env = "ROOMCAST_SOAK_PING_INTERVAL", value_parser = units::parse_duration)]
    pub ping_interval: Option<Duration>,
    /// The server's ping timeout [default: from /api/info].
    #[arg(long, env = "ROOMCAST_SOAK_PING_TIMEOUT", value_parser = units::parse_duration)]
    pub ping_timeout: Option<Duration>,
    /// Tolerance for evictions past interval + timeout [default: 20% of that, 500ms to 5s].
    #[arg(long, env = "ROOMCAST_SOAK_SLACK", value_parser = units::parse_duration)]
    pub slack: Option<Duration>,
}

fn parse_churn(text: &str) -> Result<f64, String> {
    if text.trim() == "0" {
        return Ok(0.0);
    }
    units::parse_rate(text)
}

/// `soak`, validated.
#[derive(Debug)]
pub struct SoakConfig {
    args: SoakArgs,
    dead: usize,
}

impl TryFrom<SoakArgs> for SoakConfig {
    type Error = anyhow::Error;

    fn try_from(args: SoakArgs) -> Result<Self> {
        if args.clients == 0 || args.rooms == 0 || args.rooms > args.clients {
            return Err(Usage::err(
                "--clients and --rooms must be at least 1, with no more rooms than clients",
            ));
        }
        if args.duration.is_zero() || args.duration > MAX_DURATION {
            return Err(Usage::err("--duration must be between 1ms and 24h"));
        }
        let dead = (args.dead_fraction * args.clients as f64).ceil() as usize;
        // Each observer and each dead client is a socket too.
        if args.clients + args.rooms + dead > MAX_SOCKETS {
            return Err(Usage::err(format!(
                "this soak would open more than {MAX_SOCKETS} sockets; run several processes"
            )));
        }
        let probe = format!("{}-abcdef-{}", args.room_prefix, args.rooms);
        RoomName::new(&probe).map_err(|e| Usage::err(format!("--room-prefix: {e}")))?;
        Ok(Self { args, dead })
    }
}

/// Runs the soak and judges it.
pub async fn run(ctx: &Ctx, config: SoakConfig) -> Result<Code> {
    let args = &config.args;
    let rate_each = args.rate / args.clients as f64;
    let info = ctx.api.info().await.context("reading /api/info")?;
    if info.rate_per_second > 0 && rate_each > f64::from(info.rate_per_second) * 0.8 {
        return Err(Usage::err(format!(
            "each client would send {rate_each:.0}/s, too close to the server's limit of {} \
             frames/s per session; add --clients, lower --rate, or start the server with \
             --rate-per-second 0",
            info.rate_per_second
        )));
    }
    let flags = HeartbeatFlags {
        interval: args.ping_interval,
        timeout: args.ping_timeout,
        slack: args.slack,
        expect_within: None,
        pause: args.pause,
    };
    let (beat, source) = Heartbeat::learn(&ctx.api, flags).await?;
    let run = stamp::new_run_id();
    let rooms: Vec<RoomName> = (0..args.rooms)
        .map(|r| RoomName::new(&format!("{}-{run}-{r}", args.room_prefix)))
        .collect::<Result<_, _>>()?;
    let mut observers = Vec::with_capacity(rooms.len());
    for (r, room) in rooms.iter().enumerate() {
        let user = user_name(&format!("observer-{run}-{r}"))?;
        // Observers are spread over the nodes too: each checks its room from where it is.
        let node = &ctx.servers[r % ctx.servers.len().max(1)];
        let token = ctx.credentials.for_client(&user, room)?;
        let observer = Observer::connect(node, room, user, token).await;
        observers.push(observer.context("connecting an observer")?);
    }
    let shared = Arc::new(Shared {
        run: run.clone().into(),
        totals: Totals::default(),
        latency: LatencyShards::default(),
    });
    let started = Instant::now();
    let mut fleet = Fleet::connect(
        &ctx.servers,
        ctx.credentials.clone(),
        shared.clone(),
        rooms.clone(),
        args.clients,
        Some(rate_each),
        args.size,
    )
    .await?;
    // Memory is compared with the same live clients connected at both readings, so growth is
    // what the run's traffic, churn and dead clients left behind.
    let rss_start = ctx.api.metrics().await.ok().and_then(|m| m.resident_bytes);
    ctx.status(format!(
        "soak {run}: {} clients in {} rooms, {} msg/s, {} dead clients, churn {}/s, for {}; \
         ping every {}, timeout {} ({source})",
        fleet.len(),
        rooms.len(),
        args.rate,
        config.dead,
        args.churn,
        units::show(args.duration),
        units::show(beat.interval),
        units::show(beat.timeout),
    ));
    let mut haunting = Haunting::new(
        &ctx.server,
        ctx.credentials.clone(),
        beat,
        rooms,
        &run,
        config.dead,
        args.duration,
    );
    let bar = progress_bar(args.duration, ctx.quiet);
    let end = Instant::now() + args.duration;
    let mut churn = (args.churn > 0.0).then(|| {
        let period = Duration::from_secs_f64(1.0 / args.churn);
        let mut ticks = tokio::time::interval_at(Instant::now() + period, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticks
    });
    let mut redraw = tokio::time::interval(PROGRESS_EVERY);
    loop {
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(end) => break,
            () = sleep_until_some(haunting.next_due()) => haunting.spawn_next().await?,
            () = tick(churn.as_mut()) => fleet.churn_one().await?,
            _ = redraw.tick() => {
                let elapsed = end.saturating_duration_since(Instant::now());
                bar.set_position(
                    u64::try_from(args.duration.saturating_sub(elapsed).as_millis()).unwrap_or(0),
                );
                bar.set_message(progress_line(&shared, haunting.departed(&observers)));
            }
        }
    }
    bar.set_message("waiting for the last evictions, then draining");
    let dead = haunting.finish(&observers).await;
    let rss_end = ctx.api.metrics().await.ok().and_then(|m| m.resident_bytes);
    let (drained, retired) = fleet.drain().await;
    let mut observer_problems = Vec::new();
    for observer in observers {
        if let Some(info) = observer.closed() {
            observer_problems.push(format!("an observer's session ended early ({info})"));
        }
        observer.close().await;
    }
    bar.finish_and_clear();
    let setup = Setup {
        run,
        clients: args.clients,
        rooms: args.rooms,
        rate: args.rate,
    };
    let elapsed = started.elapsed();
    let mut summary = Summary::new(
        setup,
        elapsed,
        &shared,
        &drained,
        &retired,
        dead,
        (rss_start, rss_end),
    );
    summary.problems.extend(observer_problems);
    let observed = summary.observed();
    summary.checks = args
        .checks
        .0
        .iter()
        .map(|c| c.evaluate(&observed))
        .collect();
    summary.passed = summary.checks.iter().all(|c| c.passed);
    summary.print(&mut std::io::stdout().lock(), ctx.json)?;
    if summary.passed {
        return Ok(Code::Ok);
    }
    for check in summary.checks.iter().filter(|c| !c.passed) {
        eprintln!("failed: {} (measured {})", check.check, check.actual);
    }
    Ok(Code::Failed)
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn tick(ticks: Option<&mut tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}
