//! `roomcast bench fanout|connect|idle`: the figures `docs/BENCHMARKS.md` keeps: delivery
//! throughput and latency, connection rate, and server memory per idle session.
//!
//! The client side is built not to be the bottleneck: raw sockets with one buffered read per
//! batch of frames, latency recorded per batch into sharded histograms, no per-message
//! allocation on the receive path.

mod connect;
mod fanout;
mod idle;
mod publisher;
mod receiver;

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::time::Instant;
use url::Url;

use roomcast_protocol::RoomName;

use super::Ctx;
use crate::exit::{Code, Usage};
use crate::load::latency::histogram;
use crate::load::stamp;
use roomcast_protocol::raw::{RawError, RawSocket};

use crate::load::wire;

/// How long one connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Most connections one bench process opens: under the 20,000 file descriptors `ulimit -n`
/// allows here, with room for the process's own.
pub const MAX_CONNECTIONS: usize = 19_000;

/// Flags of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which figure to measure.
    #[command(subcommand)]
    pub which: BenchCommand,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Delivery throughput and latency: publishers and M members in each of R rooms.
    Fanout(fanout::FanoutArgs),
    /// Connection rate: open N sessions, C at a time.
    Connect(connect::ConnectArgs),
    /// Server memory per idle session, from its RSS in /metrics.
    Idle(idle::IdleArgs),
}

/// Runs one benchmark.
pub async fn run(ctx: &Ctx, args: BenchArgs) -> Result<Code> {
    match args.which {
        BenchCommand::Fanout(args) => fanout::run(ctx, args.try_into()?).await,
        BenchCommand::Connect(args) => connect::run(ctx, args.try_into()?).await,
        BenchCommand::Idle(args) => idle::run(ctx, args.try_into()?).await,
    }
}

/// The sessions `bench connect` and `bench idle` open: how many, how fast, over how many rooms.
#[derive(Debug, Args)]
pub struct Population {
    /// Sessions to open.
    #[arg(
        long,
        short = 'n',
        env = "ROOMCAST_BENCH_CONNECTIONS",
        default_value_t = 1000
    )]
    pub connections: usize,
    /// Handshakes in flight at once.
    #[arg(
        long,
        short = 'c',
        env = "ROOMCAST_BENCH_CONCURRENCY",
        default_value_t = 64
    )]
    pub concurrency: usize,
    /// Rooms the sessions spread over.
    #[arg(long, short = 'r', env = "ROOMCAST_BENCH_ROOMS", default_value_t = 10)]
    pub rooms: usize,
}

impl Population {
    /// Refuses zero counts and more sessions than one process may hold.
    pub fn validate(&self) -> Result<()> {
        if self.connections == 0 || self.concurrency == 0 || self.rooms == 0 {
            return Err(Usage::err(
                "--connections, --concurrency and --rooms must be at least 1",
            ));
        }
        if self.connections > MAX_CONNECTIONS {
            return Err(Usage::err(format!(
                "more than {MAX_CONNECTIONS} connections per process would pass ulimit -n; run several"
            )));
        }
        Ok(())
    }

    /// Opens the sessions over fresh rooms named `{prefix}-{run}-{n}`; see [`connect_all`].
    pub async fn open(&self, ctx: &Ctx, prefix: &str) -> Result<(Vec<RawSocket>, Histogram<u64>)> {
        let run = stamp::new_run_id();
        let rooms: Vec<RoomName> = (0..self.rooms)
            .map(|r| RoomName::new(&format!("{prefix}-{run}-{r}")))
            .collect::<Result<_, _>>()?;
        let urls = (0..self.connections)
            .map(|i| ctx.server.room_socket(&rooms[i % rooms.len()]))
            .collect();
        connect_all(urls, self.concurrency).await
    }
}

/// Opens a raw socket to each URL, `concurrency` handshakes at a time, in order. Returns the
/// sockets and the handshake times (µs).
pub async fn connect_all(
    urls: Vec<Url>,
    concurrency: usize,
) -> Result<(Vec<RawSocket>, Histogram<u64>)> {
    let mut handshakes = histogram();
    let mut sockets = Vec::with_capacity(urls.len());
    let mut opening = futures_util::stream::iter(urls)
        .map(|url| async move {
            let started = Instant::now();
            let socket = RawSocket::connect(&url, None, CONNECT_TIMEOUT).await;
            (socket, started.elapsed())
        })
        .buffered(concurrency.max(1));
    while let Some((socket, took)) = opening.next().await {
        let socket = socket.map_err(too_many_files).map_err(|e| match e {
            Ok(raw) => wire::into_cli(raw, "opening a bench connection"),
            Err(hint) => hint,
        })?;
        handshakes.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
        sockets.push(socket);
    }
    Ok((sockets, handshakes))
}

/// Out of file descriptors is a setup problem with a known fix; say it.
fn too_many_files(error: RawError) -> Result<RawError, anyhow::Error> {
    let descriptors_out = error
        .io_error()
        .is_some_and(|e| e.raw_os_error() == Some(24));
    if descriptors_out {
        Err(anyhow::Error::new(error).context(
            "out of file descriptors: raise `ulimit -n`, or use fewer connections per process",
        ))
    } else {
        Ok(error)
    }
}

/// CPU time this process has used (user + system), from `/proc/self/stat`; `None` off Linux.
pub fn cpu_time() -> Option<Duration> {
    /// Linux reports CPU time in clock ticks, 100 per second on every mainstream build.
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis(
        (user + system) * 1000 / TICKS_PER_SECOND,
    ))
}

/// Cores busy on average between two CPU readings over `wall`.
pub fn cores(before: Option<Duration>, after: Option<Duration>, wall: Duration) -> Option<f64> {
    let used = after?.checked_sub(before?)?;
    (!wall.is_zero()).then(|| (used.as_secs_f64() / wall.as_secs_f64() * 100.0).round() / 100.0)
}

/// Reads the server's metrics, with what to do when they are missing.
pub async fn server_memory(ctx: &Ctx) -> Result<(f64, f64)> {
    let sample = ctx
        .api
        .metrics()
        .await
        .context("reading the server's /metrics")?;
    let rss = sample.resident_bytes.context(
        "the server's /metrics has no roomcast_process_resident_memory_bytes (not Linux?)",
    )?;
    Ok((rss, sample.sessions_open.unwrap_or(0.0)))
}
