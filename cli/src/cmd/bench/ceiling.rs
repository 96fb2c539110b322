//! `bench ceiling`: what the load generator absorbs when the source costs next to nothing.
//!
//! Point it at `roomcast bench reference --firehose` (on the other core): every member then
//! receives one pre-encoded block of message frames over and over, with no publish, no fan-out
//! and one write per ~100 KiB on the source's side. The members count frames with exactly the
//! receive path of `bench fanout`, so deliveries per second here, and per core of the
//! generator, bound what the generator can measure: a fanout figure well below it, with the
//! generator's CPU well below one core, is the server's, not the generator's.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use roomcast_protocol::RoomName;
use serde::Serialize;
use tokio::sync::watch;

use super::member::{Member, MemberSocket, Role, Shared, receive};
use super::process::Meters;
use super::{check_connections, connect_all};
use crate::cmd::{Ctx, json_line};
use crate::exit::{Code, Usage};
use crate::load::stamp;
use crate::units;

/// Flags of `bench ceiling`.
#[derive(Debug, Args)]
pub struct CeilingArgs {
    /// Receiving sessions.
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
    /// Receiving before measuring starts.
    #[arg(long, env = "ROOMCAST_BENCH_WARMUP", default_value = "1s", value_parser = units::parse_duration)]
    pub warmup: Duration,
    /// Handshakes in flight while connecting.
    #[arg(long, env = "ROOMCAST_BENCH_CONCURRENCY", default_value_t = 256)]
    pub concurrency: usize,
    /// The source's PID, to report its CPU use beside the generator's.
    #[arg(long, env = "ROOMCAST_BENCH_SERVER_PID")]
    pub server_pid: Option<u32>,
}

/// `bench ceiling`, validated.
#[derive(Debug)]
pub struct CeilingConfig(CeilingArgs);

impl TryFrom<CeilingArgs> for CeilingConfig {
    type Error = anyhow::Error;

    fn try_from(args: CeilingArgs) -> Result<Self> {
        if args.members == 0 || args.duration.is_zero() {
            return Err(Usage::err(
                "--members and --duration must be greater than 0",
            ));
        }
        check_connections(args.members)?;
        Ok(Self(args))
    }
}

#[derive(Debug, Serialize)]
struct CeilingResult {
    kind: &'static str,
    members: usize,
    measured_s: f64,
    delivered: u64,
    delivered_per_s: f64,
    /// Cores the generator used while measuring.
    generator_cores: Option<f64>,
    /// `delivered_per_s` per generator core: what one full core of it would count.
    per_generator_core: Option<f64>,
    /// Cores the source used (with `--server-pid`).
    source_cores: Option<f64>,
}

/// Runs the ceiling benchmark.
pub async fn run(ctx: &Ctx, CeilingConfig(args): CeilingConfig) -> Result<Code> {
    super::one_server(ctx, "ceiling", "measures the generator against one source")?;
    let room = RoomName::new(&format!("ceiling-{}", stamp::new_run_id()))?;
    let urls = vec![ctx.server.room_socket(&room); args.members];
    let (sockets, _) = connect_all(urls, args.concurrency.max(1)).await?;
    let shared = Arc::new(Shared::default());
    let (stop, stopped) = watch::channel(false);
    let mut members = Vec::with_capacity(sockets.len());
    for (task_no, socket) in sockets.into_iter().enumerate() {
        let socket = MemberSocket::from(socket);
        let member = Arc::new(Member::default());
        members.push(member.clone());
        let task = receive(
            socket,
            member,
            shared.clone(),
            task_no,
            Role::Live,
            stopped.clone(),
        );
        tokio::spawn(task);
    }
    let delivered_now = || -> u64 {
        members
            .iter()
            .map(|m| m.received.load(Ordering::Relaxed))
            .sum()
    };
    tokio::time::sleep(args.warmup).await;
    let (meters, start, before) = (
        Meters::start(args.server_pid),
        tokio::time::Instant::now(),
        delivered_now(),
    );
    tokio::time::sleep(args.duration).await;
    let delivered = delivered_now() - before;
    let ((generator_cores, source_cores), measured) = (meters.read(), start.elapsed());
    let _stopped = stop.send(true);
    if delivered == 0 {
        bail!(
            "nothing arrived: `bench ceiling` needs a source that sends by itself, such as `roomcast bench reference --firehose`"
        );
    }
    let delivered_per_s = (delivered as f64 / measured.as_secs_f64()).round();
    let result = CeilingResult {
        kind: "ceiling",
        members: args.members,
        measured_s: units::millis(measured) / 1e3,
        delivered,
        delivered_per_s,
        generator_cores,
        per_generator_core: generator_cores
            .filter(|c| *c > 0.0)
            .map(|c| (delivered_per_s / c).round()),
        source_cores,
    };
    print(&mut std::io::stdout().lock(), &result, ctx.json)?;
    Ok(Code::Ok)
}

fn print<W: Write>(out: &mut W, result: &CeilingResult, json: bool) -> Result<()> {
    if json {
        json_line(out, result)?;
        return Ok(());
    }
    let cores = |c: Option<f64>| c.map_or("?".to_owned(), |c| format!("{c:.2}"));
    writeln!(
        out,
        "ceiling: {} members counted {:.0} deliveries/s for {:.2}s; generator {} cores ({} per core), source {} cores",
        result.members,
        result.delivered_per_s,
        result.measured_s,
        cores(result.generator_cores),
        result
            .per_generator_core
            .map_or("?".to_owned(), |p| format!("{p:.0}")),
        cores(result.source_cores),
    )?;
    Ok(())
}
