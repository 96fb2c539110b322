//! `roomcast dead-clients`: open clients that go dead on purpose, watch the room from a live
//! observer, and check that the server evicts each one inside the window its heartbeat
//! promises, while live members keep receiving everything.
//!
//! Exit 0 when every expectation held, 3 with the reasons when one did not. Every wait is
//! bounded: the run gives up at the window's upper bound plus the slack.
//!
//! `--mode blackhole` runs its clients in a network namespace (root only: exit 1 saying so
//! otherwise) and removes it at the end, on error and on Ctrl-C; see [`blackhole`].

pub(crate) mod blackhole;
mod report;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use roomcast_protocol::RoomName;
use tokio::time::Instant;

use self::blackhole::Blackhole;
use self::report::{GhostRow, LiveSummary, Report};
use super::Ctx;
use crate::exit::{Code, Usage};
use crate::load::eviction::{Expect, Heartbeat, HeartbeatFlags, Observed, judge};
use crate::load::ghost::{self, Ghost, GhostPlan, Mode};
use crate::load::latency::LatencyShards;
use crate::load::member::{self, Member, MemberPlan, Shared, Totals};
use crate::load::observer::Observer;
use crate::load::wire::{self, room_socket_as};
use crate::load::{stamp, user_name, wait_until};
use crate::units;

/// How long connecting one client may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the observer may take to see a dead client join.
const JOIN_GRACE: Duration = Duration::from_secs(5);

/// Messages each live member sends at least, whatever else happens.
const LIVE_MESSAGES: f64 = 5.0;

/// Most dead clients one run opens (each is a socket; `ulimit -n` is the real bound).
const MAX_GHOSTS: usize = 5_000;

/// Flags of `dead-clients`.
#[derive(Debug, Args)]
pub struct DeadClientsArgs {
    /// The room the dead and live clients join.
    #[arg(
        long,
        short,
        env = "ROOMCAST_DEAD_ROOM",
        default_value = "dead-clients"
    )]
    pub room: RoomName,
    /// Dead clients per mode.
    #[arg(long, short = 'n', env = "ROOMCAST_DEAD_COUNT", default_value_t = 3)]
    pub count: usize,
    /// How they go dead: nopong, noread, vanish, pause, blackhole (comma-separated for
    /// several). blackhole needs root and a server listening on all addresses (--host 0.0.0.0).
    #[arg(
        long,
        short,
        env = "ROOMCAST_DEAD_MODE",
        value_enum,
        value_delimiter = ',',
        default_value = "nopong"
    )]
    pub mode: Vec<Mode>,
    /// How long `pause` clients stay silent [default: half the ping timeout].
    #[arg(long, env = "ROOMCAST_DEAD_PAUSE", value_parser = units::parse_duration)]
    pub pause: Option<Duration>,
    /// Live members that send to the room and must receive everything meanwhile.
    #[arg(long, env = "ROOMCAST_DEAD_LIVE", default_value_t = 2)]
    pub live: usize,
    /// Messages per second each live member sends.
    #[arg(long, env = "ROOMCAST_DEAD_RATE", default_value = "10", value_parser = units::parse_rate)]
    pub rate: f64,
    /// The server's ping interval [default: from /api/info].
    #[arg(long, env = "ROOMCAST_DEAD_PING_INTERVAL", value_parser = units::parse_duration)]
    pub ping_interval: Option<Duration>,
    /// The server's ping timeout [default: from /api/info].
    #[arg(long, env = "ROOMCAST_DEAD_PING_TIMEOUT", value_parser = units::parse_duration)]
    pub ping_timeout: Option<Duration>,
    /// Tolerance for evictions past interval + timeout [default: 20% of that, 500ms to 5s].
    #[arg(long, env = "ROOMCAST_DEAD_SLACK", value_parser = units::parse_duration)]
    pub slack: Option<Duration>,
    /// Expect every eviction within this long instead of the heartbeat's window.
    #[arg(long, env = "ROOMCAST_DEAD_EXPECT_WITHIN", value_parser = units::parse_duration)]
    pub expect_within: Option<Duration>,
}

/// `dead-clients`, validated (the heartbeat is learned when it runs).
#[derive(Debug)]
pub struct DeadClientsConfig {
    args: DeadClientsArgs,
    modes: Vec<Mode>,
}

impl TryFrom<DeadClientsArgs> for DeadClientsConfig {
    type Error = anyhow::Error;

    fn try_from(args: DeadClientsArgs) -> Result<Self> {
        let mut modes = args.mode.clone();
        modes.sort();
        modes.dedup();
        if args.count == 0 || modes.is_empty() {
            return Err(Usage::err(
                "--count and --mode must ask for at least one dead client",
            ));
        }
        if args.count * modes.len() > MAX_GHOSTS {
            return Err(Usage::err(format!(
                "{} dead clients is more than one run opens ({MAX_GHOSTS}); lower --count",
                args.count * modes.len()
            )));
        }
        if args.expect_within.is_some_and(|d| d.is_zero()) {
            return Err(Usage::err("--expect-within must be longer than 0"));
        }
        Ok(Self { args, modes })
    }
}

/// Runs the scenario and judges it; with `blackhole`, inside a namespace that is removed
/// whatever happens (Ctrl-C included).
pub async fn run(ctx: &Ctx, config: DeadClientsConfig) -> Result<Code> {
    let blackhole = match config.modes.contains(&Mode::Blackhole) {
        true => Some(Blackhole::open().await?),
        false => None,
    };
    if let Some(blackhole) = &blackhole {
        ctx.status(format!(
            "dead-clients: blackhole clients in {}",
            blackhole.describe()
        ));
    }
    let interrupted = async {
        match &blackhole {
            Some(_) => tokio::signal::ctrl_c().await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        outcome = scenario(ctx, &config, blackhole.as_ref()) => outcome,
        signal = interrupted => match signal {
            Ok(()) => Err(anyhow::anyhow!("interrupted; the namespace and its link are removed")),
            Err(e) => Err(anyhow::Error::new(e).context("waiting for Ctrl-C")),
        },
    };
    if let Some(blackhole) = blackhole {
        blackhole.remove().await;
    }
    outcome
}

async fn scenario(
    ctx: &Ctx,
    config: &DeadClientsConfig,
    blackhole: Option<&Blackhole>,
) -> Result<Code> {
    let args = &config.args;
    let flags = HeartbeatFlags {
        interval: args.ping_interval,
        timeout: args.ping_timeout,
        slack: args.slack,
        expect_within: args.expect_within,
        pause: args.pause,
    };
    let (beat, source) = Heartbeat::learn(&ctx.api, flags).await?;
    let room = &args.room;
    let run = stamp::new_run_id();
    let credentials = &ctx.credentials;
    let observer_name = user_name(&format!("observer-{run}"))?;
    let token = credentials.for_client(&observer_name, room)?;
    let observer = Observer::connect(&ctx.server, room, observer_name, token)
        .await
        .context("connecting the observer")?;
    let shared = Arc::new(Shared {
        run: run.clone().into(),
        totals: Totals::default(),
        latency: LatencyShards::default(),
    });
    let mut members = Vec::with_capacity(args.live);
    for i in 0..args.live {
        let user = user_name(&format!("live-{run}-{i}"))?;
        let plan = MemberPlan {
            room: room.clone(),
            token: credentials.for_client(&user, room)?,
            user,
            sender: u32::try_from(i).unwrap_or(u32::MAX),
            rate: Some(args.rate),
            size: 0,
        };
        let member = Member::connect(&ctx.server, plan, shared.clone(), i).await;
        members.push(member.context("connecting a live member")?);
    }
    // Live members must talk long enough for their verdict to mean something, even when every
    // dead client is gone at once (vanish).
    let talked_enough = Instant::now() + Duration::from_secs_f64(LIVE_MESSAGES / args.rate);
    ctx.status(format!(
        "dead-clients: {} x {} in {room}; ping every {}, timeout {} ({source}); evictions expected within {}",
        args.count,
        config.modes.iter().map(|m| m.name()).collect::<Vec<_>>().join(","),
        units::show(beat.interval),
        units::show(beat.timeout),
        units::show(beat.upper()),
    ));
    let mut ghosts = Vec::new();
    // One link for all blackhole clients, cut once: they go dead together.
    let blackhole_phase = beat.live_phase();
    for mode in &config.modes {
        for i in 0..args.count {
            let user = user_name(&format!("{}-{run}-{i}", mode.name()))?;
            let plan = GhostPlan {
                mode: *mode,
                live_for: match mode {
                    Mode::Blackhole => blackhole_phase,
                    _ => beat.live_phase(),
                },
                pause: beat.pause,
            };
            let token = credentials.for_client(&user, room)?;
            let url = room_socket_as(&ctx.server, room, &user, token.as_deref());
            let ghost = match (mode, blackhole) {
                (Mode::Blackhole, Some(link)) => {
                    link.ghost(&url, user, plan, CONNECT_TIMEOUT).await?
                }
                _ => Ghost::connect(&url, user, plan, CONNECT_TIMEOUT)
                    .await
                    .map_err(|e| wire::into_cli(e, "opening a dead client"))?,
            };
            ghosts.push(ghost);
        }
    }
    let seen = Instant::now() + JOIN_GRACE;
    if !wait_until(seen, || {
        ghosts.iter().all(|g| observer.joined(&g.user).is_some())
    })
    .await
    {
        anyhow::bail!("the observer never saw some dead clients join {room} within {JOIN_GRACE:?}");
    }
    let (dead_at, last_death) = deaths_and_cut(&mut ghosts, blackhole).await?;
    let give_up = last_death + beat.give_up_after();
    let settled = || {
        ghosts
            .iter()
            .zip(&dead_at)
            .all(|(ghost, dead)| match beat.expectation(ghost.mode) {
                Expect::Evict { .. } => dead.is_none() || observer.left(&ghost.user).is_some(),
                Expect::Survive | Expect::Either => false,
            })
    };
    wait_until(give_up, settled).await;
    if args.live > 0 {
        tokio::time::sleep_until(talked_enough).await;
    }

    let mut rows = Vec::with_capacity(ghosts.len());
    for (ghost, dead) in ghosts.into_iter().zip(dead_at) {
        let departure = observer.left(&ghost.user);
        let (user, mode) = (ghost.user.clone(), ghost.mode);
        let log = ghost.finish(departure.is_some()).await;
        let observed = Observed {
            went_dead: dead.is_some(),
            left: departure.and_then(|d| Some((d.at.checked_duration_since(dead?)?, d.reason))),
            socket_closed: log.ended_at().is_some(),
        };
        let judged = judge(beat.expectation(mode), observed);
        rows.push(GhostRow::new(mode, user, dead, observed, &log, judged));
    }
    let drained = member::drain(members, Duration::from_secs(5)).await;
    let observer_closed = observer.closed();
    observer.close().await;
    let live = LiveSummary::of(&drained, &shared);
    let report = Report::new(room, beat, source, rows, live, observer_closed);
    report.print(&mut std::io::stdout().lock(), ctx.json)?;
    if report.passed {
        Ok(Code::Ok)
    } else {
        for problem in &report.problems {
            eprintln!("failed: {problem}");
        }
        Ok(Code::Failed)
    }
}

/// When each ghost went dead and the latest of those (see [`ghost::deaths`]); blackhole ghosts
/// are awaited first, and their link is cut the moment they have all sent their last sign of
/// life.
async fn deaths_and_cut(
    ghosts: &mut [Ghost],
    blackhole: Option<&Blackhole>,
) -> Result<(Vec<Option<Instant>>, Instant)> {
    let lost = |g: &&mut Ghost| g.mode == Mode::Blackhole;
    let (lost_at, _) = ghost::deaths(ghosts.iter_mut().filter(lost)).await;
    if let Some(blackhole) = blackhole {
        blackhole.cut().await?;
    }
    let (others_at, _) = ghost::deaths(ghosts.iter_mut().filter(|g| !lost(g))).await;
    let (mut lost_at, mut others_at) = (lost_at.into_iter(), others_at.into_iter());
    let dead_at: Vec<Option<Instant>> = ghosts
        .iter()
        .map(|g| match g.mode {
            Mode::Blackhole => lost_at.next().flatten(),
            _ => others_at.next().flatten(),
        })
        .collect();
    let last = dead_at
        .iter()
        .flatten()
        .max()
        .copied()
        .unwrap_or_else(Instant::now);
    Ok((dead_at, last))
}
