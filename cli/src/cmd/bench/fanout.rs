//! `bench fanout`: one publisher and M raw members in each of R rooms. Each publisher keeps at
//! most `--window` messages in flight (published but not yet received by its slowest
//! member), so the run measures what the server sustains instead of queueing without bound;
//! `--rate` caps publishing for a latency-at-load figure instead.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use roomcast_protocol::RoomName;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::publisher::{PublishReceipt, Publisher};
use super::receiver::{BenchShared, receive};
use super::{CONNECT_TIMEOUT, MAX_CONNECTIONS, connect_all, cores, cpu_time};
use crate::cmd::{Ctx, json_line};
use crate::exit::{Code, Usage};
use crate::load::latency::LatencySummary;
use crate::load::stamp;
use roomcast_protocol::raw::RawSocket;

use crate::load::wire::{self, room_socket_as};
use crate::load::{user_name, wait_until};
use crate::units;

/// How long the end of a run waits for in-flight messages.
const DRAIN_WITHIN: Duration = Duration::from_secs(10);

/// Flags of `bench fanout`.
#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// Rooms, each with its own publisher.
    #[arg(long, short = 'r', env = "ROOMCAST_BENCH_ROOMS", default_value_t = 1)]
    pub rooms: usize,
    /// Members (receiving connections) per room.
    #[arg(
        long,
        short = 'm',
        env = "ROOMCAST_BENCH_MEMBERS",
        default_value_t = 100
    )]
    pub members: usize,
    /// How long to measure, after the warm-up.
    #[arg(long, short = 'd', env = "ROOMCAST_BENCH_DURATION", default_value = "5s", value_parser = units::parse_duration)]
    pub duration: Duration,
    /// Publishing before measuring starts.
    #[arg(long, env = "ROOMCAST_BENCH_WARMUP", default_value = "1s", value_parser = units::parse_duration)]
    pub warmup: Duration,
    /// Messages in flight per room (published, not yet received by every member). Larger
    /// windows trade latency for throughput; 128 saturates this 2-core machine.
    #[arg(long, env = "ROOMCAST_BENCH_WINDOW", default_value_t = 128)]
    pub window: u64,
    /// Cap on publishes per second per room (`500`, `500/s`); none: as fast as the window allows.
    #[arg(long, env = "ROOMCAST_BENCH_RATE", value_parser = units::parse_rate)]
    pub rate: Option<f64>,
    /// Message size in bytes (the stamp is padded to it).
    #[arg(long, env = "ROOMCAST_BENCH_SIZE", default_value = "64", value_parser = units::parse_bytes)]
    pub size: usize,
    /// Handshakes in flight while connecting.
    #[arg(long, env = "ROOMCAST_BENCH_CONCURRENCY", default_value_t = 256)]
    pub concurrency: usize,
}

/// `bench fanout`, validated.
#[derive(Debug)]
pub struct FanoutConfig(FanoutArgs);

impl TryFrom<FanoutArgs> for FanoutConfig {
    type Error = anyhow::Error;

    fn try_from(args: FanoutArgs) -> Result<Self> {
        let connections = args.rooms.saturating_mul(args.members + 1);
        if args.rooms == 0 || args.members == 0 || args.window == 0 {
            return Err(Usage::err(
                "--rooms, --members and --window must be at least 1",
            ));
        }
        if connections > MAX_CONNECTIONS {
            return Err(Usage::err(format!(
                "{connections} connections is more than one process opens ({MAX_CONNECTIONS}, \
                 under ulimit -n); run several processes"
            )));
        }
        if args.duration.is_zero() {
            return Err(Usage::err("--duration must be longer than 0"));
        }
        Ok(Self(args))
    }
}

/// The figures of one fanout run.
#[derive(Debug, Serialize)]
struct FanoutResult {
    kind: &'static str,
    rooms: usize,
    members_per_room: usize,
    connections: usize,
    size_bytes: usize,
    window: u64,
    measured_s: f64,
    published: u64,
    delivered: u64,
    delivered_per_s: f64,
    lost: u64,
    /// Receivers the server closed (a slow-consumer eviction would show here).
    closed_by_server: u64,
    /// Close codes of publishers the server closed (their unpublished tail counts as lost).
    publishers_closed: Vec<u16>,
    latency: LatencySummary,
    /// Cores this process kept busy while measuring (the load side's own cost).
    client_cores: Option<f64>,
}

/// Runs the fanout benchmark.
pub async fn run(ctx: &Ctx, FanoutConfig(args): FanoutConfig) -> Result<Code> {
    let info = ctx.api.info().await.context("reading /api/info")?;
    if info.rate_per_second > 0
        && args
            .rate
            .is_none_or(|r| r > f64::from(info.rate_per_second))
    {
        return Err(Usage::err(format!(
            "the server limits each session to {} frames/s, which caps a publisher; start it with \
             --rate-per-second 0 for benchmarks, or pass --rate below the limit",
            info.rate_per_second
        )));
    }
    let run = stamp::new_run_id();
    let shared = Arc::new(BenchShared {
        run: run.clone(),
        ..BenchShared::default()
    });
    let rooms: Vec<RoomName> = (0..args.rooms)
        .map(|r| RoomName::new(&format!("bench-{run}-{r}")))
        .collect::<Result<_, _>>()?;
    let urls = rooms
        .iter()
        .flat_map(|room| std::iter::repeat_n(ctx.server.room_socket(room), args.members))
        .collect();
    ctx.status(format!(
        "fanout: connecting {} members in {} rooms",
        args.members * args.rooms,
        args.rooms
    ));
    let (sockets, _) = connect_all(urls, args.concurrency).await?;
    // Receivers stop only after the publishers, once in-flight messages had their chance.
    let (stop_receivers, receivers_stopped) = watch::channel(false);
    let (stop, stopped) = watch::channel(false);
    let mut counters = Vec::with_capacity(sockets.len());
    for (task_no, socket) in sockets.into_iter().enumerate() {
        let received = Arc::new(AtomicU64::new(0));
        counters.push(received.clone());
        let stopped = receivers_stopped.clone();
        tokio::spawn(receive(socket, received, shared.clone(), task_no, stopped));
    }
    let mut publishers = Vec::with_capacity(rooms.len());
    for (r, room) in rooms.iter().enumerate() {
        let user = user_name(&format!("pub-{run}-{r}"))?;
        let url = room_socket_as(&ctx.server, room, &user);
        let socket = RawSocket::connect(&url, None, CONNECT_TIMEOUT)
            .await
            .map_err(|e| wire::into_cli(e, "connecting a publisher"))?;
        let members = counters[r * args.members..(r + 1) * args.members].to_vec();
        let publisher = Publisher {
            socket,
            members,
            sender: u32::try_from(r).unwrap_or(u32::MAX),
            window: args.window,
            rate: args.rate,
            size: args.size,
            run: run.clone(),
        };
        publishers.push(tokio::spawn(publisher.run(stopped.clone())));
    }
    ctx.status(format!(
        "fanout: warming up for {}",
        units::show(args.warmup)
    ));
    tokio::time::sleep(args.warmup).await;
    shared.measuring.store(true, Ordering::Relaxed);
    let (delivered_before, cpu_before, measure_start) = (
        shared.delivered.load(Ordering::Relaxed),
        cpu_time(),
        Instant::now(),
    );
    tokio::time::sleep(args.duration).await;
    let delivered = shared.delivered.load(Ordering::Relaxed) - delivered_before;
    let measured = measure_start.elapsed();
    let client_cores = cores(cpu_before, cpu_time(), measured);
    shared.measuring.store(false, Ordering::Relaxed);
    let published = stop_publishers(&stop, publishers).await;
    let due: u64 = published
        .iter()
        .map(|p| p.messages * args.members as u64)
        .sum();
    let all_in = Instant::now() + DRAIN_WITHIN;
    wait_until(all_in, || shared.delivered.load(Ordering::Relaxed) >= due).await;
    let received: u64 = counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    let _stopped = stop_receivers.send(true);
    let result = FanoutResult {
        kind: "fanout",
        rooms: args.rooms,
        members_per_room: args.members,
        connections: args.rooms * (args.members + 1),
        size_bytes: args.size,
        window: args.window,
        measured_s: units::millis(measured) / 1e3,
        published: published.iter().map(|p| p.messages).sum(),
        publishers_closed: published.iter().filter_map(|p| p.closed_with).collect(),
        delivered,
        delivered_per_s: (delivered as f64 / measured.as_secs_f64()).round(),
        lost: due.saturating_sub(received),
        closed_by_server: shared.closed.load(Ordering::Relaxed),
        latency: LatencySummary::of(&shared.latency.merged()),
        client_cores,
    };
    print(&mut std::io::stdout().lock(), &result, ctx.json)?;
    Ok(Code::Ok)
}

async fn stop_publishers(
    stop: &watch::Sender<bool>,
    publishers: Vec<JoinHandle<PublishReceipt>>,
) -> Vec<PublishReceipt> {
    let _stopped = stop.send(true);
    let mut published = Vec::with_capacity(publishers.len());
    for publisher in publishers {
        published.push(publisher.await.unwrap_or_default());
    }
    published
}

fn print<W: Write>(out: &mut W, result: &FanoutResult, json: bool) -> Result<()> {
    if json {
        json_line(out, result)?;
        return Ok(());
    }
    writeln!(
        out,
        "fanout: {} room(s) x {} members ({} connections), {}-byte messages, window {}",
        result.rooms, result.members_per_room, result.connections, result.size_bytes, result.window
    )?;
    writeln!(
        out,
        "  delivered {} in {:.2}s: {:.0} msgs/s ({} published); lost {}, closed by server {}",
        result.delivered,
        result.measured_s,
        result.delivered_per_s,
        result.published,
        result.lost,
        result.closed_by_server
    )?;
    writeln!(out, "  latency {}", result.latency.human())?;
    if !result.publishers_closed.is_empty() {
        writeln!(
            out,
            "  ! the server closed publisher session(s) with {:?}",
            result.publishers_closed
        )?;
    }
    if let Some(cores) = result.client_cores {
        writeln!(out, "  this process used {cores:.2} cores")?;
    }
    Ok(())
}
