//! `bench evict`: eviction at scale. Live members in R rooms receive a steady rate; their
//! latency is measured first alone, then while as many silent clients join the same rooms.
//! The silent ones read but never answer a ping (nor send anything), so the heartbeat owes
//! each an eviction between `ping-timeout` and `ping-interval + ping-timeout` (+ slack) after
//! it connected. The figures: how many were evicted in that window, and how much the live
//! members' p99 moved meanwhile.
//!
//! The silent clients read every message, so while they are there each room has twice the
//! readers, and the live members' latency moves with that alone (a 200-member room takes
//! longer to reach its last member than a 100-member one, on any server). A third trial
//! separates the two: as many clients that answer pings join the same rooms, and each batch
//! of them leaves with a close of their own as long after connecting as the silent ones were
//! evicted (their median). Its p99 against the silent trial's is what the evictions
//! themselves cost the live members.
//!
//! `--mode blackhole` makes the silent clients vanish instead: their network is cut once they
//! have joined, as a dropped connection's would be (see [`blackhole`]).

mod blackhole;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use hdrhistogram::Histogram;
use roomcast_protocol::CloseCode;
use serde::Serialize;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::fanout::Shape;
use super::fanout::crowd::Crowd;
use super::fanout::trial::Trial;
use super::member::{Member, MemberSocket, Role, Shared, receive};
use super::publisher::Pace;
use super::{NodeCount, Spread, check_connections, connect_all};
use crate::cmd::{Ctx, json_line};
use crate::exit::{Code, Usage};
use crate::load::eviction::{Expect, Heartbeat, HeartbeatFlags};
use crate::load::ghost::Mode;
use crate::load::latency::{LatencySummary, histogram};
use crate::units;

/// Flags of `bench evict`.
#[derive(Debug, Args)]
pub struct EvictArgs {
    /// Live members (answering pings), spread over --rooms; one per room publishes.
    #[arg(long, env = "ROOMCAST_BENCH_LIVE", default_value_t = 5000)]
    pub live: usize,
    /// Silent clients that join the same rooms and never answer a ping.
    #[arg(long, env = "ROOMCAST_BENCH_SILENT", default_value_t = 5000)]
    pub silent: usize,
    /// How the silent clients are silent: nopong (they read every message, never answer a
    /// ping) or blackhole (their network is cut once they joined: root only, and the server
    /// must listen on all addresses, --host 0.0.0.0).
    #[arg(
        long,
        env = "ROOMCAST_BENCH_EVICT_MODE",
        value_enum,
        default_value = "nopong"
    )]
    pub mode: Silence,
    /// Rooms.
    #[arg(long, short = 'r', env = "ROOMCAST_BENCH_ROOMS", default_value_t = 50)]
    pub rooms: usize,
    /// Messages per second published in each room (a chat room's pace, so that what moves the
    /// live members' latency is the eviction work, not the fan-out).
    #[arg(long, env = "ROOMCAST_BENCH_RATE", default_value = "2", value_parser = units::parse_rate)]
    pub rate: f64,
    /// How long live latency is measured without the silent clients.
    #[arg(long, env = "ROOMCAST_BENCH_DURATION", default_value = "5s", value_parser = units::parse_duration)]
    pub duration: Duration,
    /// Handshakes in flight while connecting.
    #[arg(long, env = "ROOMCAST_BENCH_CONCURRENCY", default_value_t = 256)]
    pub concurrency: usize,
    /// Tolerance for evictions past interval + timeout [default: 20% of that, 500ms to 5s].
    #[arg(long, env = "ROOMCAST_BENCH_SLACK", value_parser = units::parse_duration)]
    pub slack: Option<Duration>,
    /// The server's PID, to report its CPU use beside the generator's.
    #[arg(long, env = "ROOMCAST_BENCH_SERVER_PID")]
    pub server_pid: Option<u32>,
}

/// How `bench evict`'s silent clients are silent (`--mode`): the two of dead-clients' modes
/// whose clients never answer a ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Silence {
    /// They read every message and never answer a ping.
    Nopong,
    /// Their network is cut once they joined (a network namespace; root only).
    Blackhole,
}

impl Silence {
    /// The mode's command-line name.
    fn name(self) -> &'static str {
        match self {
            Self::Nopong => Mode::Nopong.name(),
            Self::Blackhole => Mode::Blackhole.name(),
        }
    }
}

/// `bench evict`, validated.
#[derive(Debug)]
pub struct EvictConfig(EvictArgs);

impl TryFrom<EvictArgs> for EvictConfig {
    type Error = anyhow::Error;

    fn try_from(args: EvictArgs) -> Result<Self> {
        if args.rooms == 0 || args.live < args.rooms || args.silent == 0 {
            return Err(Usage::err(
                "--rooms and --silent must be at least 1, with at least one live member per room",
            ));
        }
        check_connections(args.live + args.silent)?;
        Ok(Self(args))
    }
}

/// How the silent clients ended.
#[derive(Debug, Default, Serialize)]
struct Evictions {
    in_time: usize,
    early: usize,
    late: usize,
    /// Closed with another code than the heartbeat's.
    wrong_code: usize,
    /// Their socket ended without a close frame.
    dropped: usize,
    not_evicted: usize,
    /// Time from connecting to the close, for the evicted ones.
    after: LatencySummary,
}

impl Evictions {
    /// Counts one heartbeat eviction that came between `shortest` and `longest` after the
    /// client last spoke: early, late or in time against the window `[min, max]`, and
    /// `shortest` into `after`.
    fn count(
        &mut self,
        after: &mut Histogram<u64>,
        shortest: Duration,
        longest: Duration,
        (min, max): (Duration, Duration),
    ) {
        after.saturating_record(
            u64::try_from(shortest.as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
        );
        if longest < min {
            self.early += 1;
        } else if shortest > max {
            self.late += 1;
        } else {
            self.in_time += 1;
        }
    }
}

#[derive(Debug, Serialize)]
struct EvictResult {
    kind: &'static str,
    /// How the silent clients were silent (`--mode`).
    mode: &'static str,
    live: usize,
    silent: usize,
    rooms: usize,
    rate_per_room: f64,
    ping_interval_ms: f64,
    ping_timeout_ms: f64,
    /// The window an eviction must fall in, from connecting: [min, max].
    bound_min_ms: f64,
    bound_max_ms: f64,
    evictions: Evictions,
    /// `--mode blackhole`: chat messages the silent clients read once their link was cut (it
    /// must be 0, or the cut did not hold; the run then fails).
    #[serde(skip_serializing_if = "Option::is_none")]
    silent_received_after_cut: Option<u64>,
    /// Live members alone.
    without: Trial,
    /// Live members from the moment every silent client is connected until the last is owed
    /// its eviction.
    with: Trial,
    /// Live members while as many answering clients are in the rooms for as long, over the
    /// same span (the module's doc).
    control: Trial,
    /// `with` p99 over `without` p99, minus one (0.1 = 10% worse).
    p99_change: Option<f64>,
    /// `with` p99 over `control` p99, minus one: what the evictions cost, beyond the rooms'
    /// larger size.
    p99_change_vs_control: Option<f64>,
    /// Live sessions per `--url` (they take the nodes in turn).
    live_nodes: Vec<NodeCount>,
    /// Silent sessions per `--url`.
    silent_nodes: Vec<NodeCount>,
}

/// Runs the eviction benchmark.
pub async fn run(ctx: &Ctx, EvictConfig(args): EvictConfig) -> Result<Code> {
    let flags = HeartbeatFlags {
        slack: args.slack,
        ..HeartbeatFlags::default()
    };
    let (beat, _) = Heartbeat::learn(&ctx.api, flags).await?;
    let (min, max) = match beat.expectation(Mode::Nopong) {
        Expect::Evict { min, max, .. } => (min, max),
        Expect::Survive | Expect::Either => (beat.timeout, beat.upper()),
    };
    let shape = Shape {
        rooms: args.rooms,
        members: args.live / args.rooms,
        publishers: 1,
        size: 64,
        sample_every: 1,
        tick: Duration::from_millis(1),
        concurrency: args.concurrency.max(1),
        server_pid: args.server_pid,
    };
    ctx.status(format!(
        "evict: connecting {} live members in {} rooms",
        shape.rooms * shape.members,
        shape.rooms
    ));
    let mut crowd = Crowd::connect(ctx, &shape).await?;
    let warmup = Duration::from_secs(1);
    let without = crowd
        .trial(Pace::Rate(args.rate), warmup, args.duration)
        .await;
    ctx.status(format!(
        "evict: live p99 {:.2}ms alone; opening {} silent clients",
        without.latency.p99_ms, args.silent
    ));
    // The second trial publishes while the silent ones connect, and measures from the moment
    // they all have until the last of them is owed its eviction.
    let mut spread = Spread::new(ctx);
    let silent_urls: Vec<_> = (0..args.silent)
        .map(|i| {
            spread
                .next(false)
                .1
                .room_socket(&crowd.room_names[i % args.rooms])
        })
        .collect();
    let (live_nodes, silent_nodes) = (crowd.nodes(), spread.counts());
    let blackhole = match args.mode {
        Silence::Blackhole => {
            let hole = blackhole::Blackhole::open().await?;
            ctx.status(format!("evict: blackhole clients in {}", hole.describe()));
            Some(hole)
        }
        Silence::Nopong => None,
    };
    let (connected, all_connected) = connected_signal();
    let batch = args.concurrency.max(1);
    let silence = async {
        match &blackhole {
            Some(hole) => blackhole::haunt(
                hole,
                &ctx.api,
                silent_urls.clone(),
                batch,
                beat.give_up_after(),
                (min, max),
                connected,
            )
            .await
            .map(|v| (v.evictions, Some(v.received_after_cut))),
            None => haunt(silent_urls.clone(), batch, beat.give_up_after(), connected)
                .await
                .map(|silent| (judge(&silent, min, max), None)),
        }
    };
    let (with, evictions) = tokio::join!(
        crowd.trial_after(Pace::Rate(args.rate), all_connected, beat.give_up_after()),
        silence,
    );
    if let Some(hole) = blackhole {
        hole.remove().await;
    }
    let (evictions, received_after_cut) = evictions?;
    let leave_after = Duration::from_secs_f64(evictions.after.p50_ms.max(0.0) / 1e3);
    ctx.status(format!(
        "evict: live p99 {:.2}ms with them; control: {} answering clients that leave after {}",
        with.latency.p99_ms,
        args.silent,
        units::show(leave_after)
    ));
    let (connected, all_connected) = connected_signal();
    let (control, answering) = tokio::join!(
        crowd.trial_after(Pace::Rate(args.rate), all_connected, beat.give_up_after()),
        visit(silent_urls, batch, leave_after, connected),
    );
    crowd.close();
    answering?;
    let failed = evictions.in_time < args.silent
        || with.lost > 0
        || without.lost > 0
        || control.lost > 0
        || received_after_cut.is_some_and(|n| n > 0);
    let change = |from: &Trial| {
        (from.latency.p99_ms > 0.0)
            .then(|| ((with.latency.p99_ms / from.latency.p99_ms - 1.0) * 1000.0).round() / 1000.0)
    };
    let (p99_change, p99_change_vs_control) = (change(&without), change(&control));
    let result = EvictResult {
        kind: "evict",
        mode: args.mode.name(),
        live: shape.rooms * shape.members,
        silent: args.silent,
        rooms: args.rooms,
        rate_per_room: args.rate,
        ping_interval_ms: units::millis(beat.interval),
        ping_timeout_ms: units::millis(beat.timeout),
        bound_min_ms: units::millis(min),
        bound_max_ms: units::millis(max),
        evictions,
        silent_received_after_cut: received_after_cut,
        without,
        with,
        control,
        p99_change,
        p99_change_vs_control,
        live_nodes,
        silent_nodes,
    };
    print(&mut std::io::stdout().lock(), &result, ctx.json)?;
    Ok(if failed { Code::Failed } else { Code::Ok })
}

/// The sender the extra clients' opener completes once all are connected, and the future a
/// trial waits on to start measuring. A failed opener drops the sender, which ends the wait
/// too; its error is reported after the trial.
fn connected_signal() -> (oneshot::Sender<()>, impl std::future::Future<Output = ()>) {
    let (connected, all_connected) = oneshot::channel();
    (connected, async {
        let _connected = all_connected.await;
    })
}

/// One client joined beside the live members (silent, or answering in the control): its
/// member and the span in which it connected.
struct Extra {
    member: Arc<Member>,
    connected: (Instant, Instant),
}

/// Opens the silent clients, says when all are connected, and waits until all are closed or
/// `within` has passed since.
async fn haunt(
    urls: Vec<url::Url>,
    batch: usize,
    within: Duration,
    connected: oneshot::Sender<()>,
) -> Result<Vec<Extra>> {
    let (silent, stop) = open(urls, batch, Role::Silent).await?;
    let _told = connected.send(());
    let deadline = Instant::now() + within;
    crate::load::wait_until(deadline, || {
        silent
            .iter()
            .all(|s| s.member.ended.load(std::sync::atomic::Ordering::Relaxed))
    })
    .await;
    let _stopped = stop.send(true);
    Ok(silent)
}

/// The control's clients: opened like the silent ones, but answering pings; says when all are
/// connected, and has each handshake batch send its own close (1000) and end `leave_after`
/// after the batch connected, so they leave spread as the silent ones were evicted, not all
/// at one moment.
async fn visit(
    urls: Vec<url::Url>,
    batch: usize,
    leave_after: Duration,
    connected: oneshot::Sender<()>,
) -> Result<()> {
    let mut batches = Vec::new();
    for chunk in urls.chunks(batch) {
        let (clients, stop) = open(chunk.to_vec(), batch, Role::Live).await?;
        let connected_at = clients.first().map_or_else(Instant::now, |c| c.connected.1);
        batches.push((connected_at, stop));
    }
    let _told = connected.send(());
    for (connected_at, stop) in batches {
        tokio::time::sleep_until(connected_at + leave_after).await;
        let _stopped = stop.send(true);
    }
    Ok(())
}

/// Opens a client per URL, a handshake batch at a time (each batch's span bounds when its
/// clients last spoke), each counting what it receives in its own task with `role`; they run
/// until the returned sender says stop (or the server closes them).
async fn open(
    urls: Vec<url::Url>,
    batch: usize,
    role: Role,
) -> Result<(Vec<Extra>, watch::Sender<bool>)> {
    let shared = Arc::new(Shared::default());
    let (stop, stopped) = watch::channel(false);
    let mut clients = Vec::with_capacity(urls.len());
    for chunk in urls.chunks(batch) {
        let started = Instant::now();
        let (sockets, _) = connect_all(chunk.to_vec(), batch).await?;
        let connected = (started, Instant::now());
        for socket in sockets {
            let socket = MemberSocket::from(socket);
            let member = Arc::new(Member::default());
            let task_no = clients.len();
            tokio::spawn(receive(
                socket,
                member.clone(),
                shared.clone(),
                task_no,
                role,
                stopped.clone(),
            ));
            clients.push(Extra { member, connected });
        }
    }
    Ok((clients, stop))
}

/// Sorts each silent client by how it ended, against the window `[min, max]` after connecting.
fn judge(silent: &[Extra], min: Duration, max: Duration) -> Evictions {
    let timeout_code = CloseCode::HeartbeatTimeout.as_u16();
    let mut evictions = Evictions::default();
    let mut after = histogram();
    for client in silent {
        let (first, last) = client.connected;
        match client.member.close() {
            Some((code, at)) if code == timeout_code => {
                // Benefit of the doubt both ways: the batch's span bounds its last word.
                evictions.count(&mut after, at - last, at - first, (min, max));
            }
            Some(_) => evictions.wrong_code += 1,
            None if client
                .member
                .ended
                .load(std::sync::atomic::Ordering::Relaxed) =>
            {
                evictions.dropped += 1
            }
            None => evictions.not_evicted += 1,
        }
    }
    evictions.after = LatencySummary::of(&after);
    evictions
}

fn print<W: Write>(out: &mut W, result: &EvictResult, json: bool) -> Result<()> {
    if json {
        json_line(out, result)?;
        return Ok(());
    }
    let e = &result.evictions;
    writeln!(
        out,
        "evict: {} silent ({}) among {} live in {} rooms ({} msg/s each); heartbeat {} + {}",
        result.silent,
        result.mode,
        result.live,
        result.rooms,
        result.rate_per_room,
        units::show(Duration::from_secs_f64(result.ping_interval_ms / 1e3)),
        units::show(Duration::from_secs_f64(result.ping_timeout_ms / 1e3)),
    )?;
    writeln!(
        out,
        "  silent: {} evicted in time, {} early, {} late, {} other close, {} dropped, {} never; after connecting {}",
        e.in_time,
        e.early,
        e.late,
        e.wrong_code,
        e.dropped,
        e.not_evicted,
        e.after.human()
    )?;
    if let Some(n) = result.silent_received_after_cut {
        writeln!(
            out,
            "  silent: {n} messages read after their link was cut (0 expected)"
        )?;
    }
    writeln!(
        out,
        "  live alone:        {}",
        result.without.latency.human()
    )?;
    writeln!(out, "  live with silent:  {}", result.with.latency.human())?;
    writeln!(
        out,
        "  live with as many answering (control): {}",
        result.control.latency.human()
    )?;
    if let Some(change) = result.p99_change {
        writeln!(out, "  p99 change against alone: {:+.1}%", change * 100.0)?;
    }
    if let Some(change) = result.p99_change_vs_control {
        writeln!(
            out,
            "  p99 change against the control: {:+.1}%",
            change * 100.0
        )?;
    }
    Ok(())
}
