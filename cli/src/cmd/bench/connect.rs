//! `bench connect`: how fast the server accepts sessions. Opens N tutorial sessions, C
//! handshakes at a time, and reports sessions per second and handshake latency.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use roomcast_protocol::RoomName;
use serde::Serialize;
use tokio::time::Instant;

use super::{MAX_CONNECTIONS, connect_all, cores, cpu_time};
use crate::cmd::{Ctx, json_line};
use crate::exit::{Code, Usage};
use crate::load::latency::LatencySummary;
use crate::load::stamp;

/// Flags of `bench connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
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

/// `bench connect`, validated.
#[derive(Debug)]
pub struct ConnectConfig(ConnectArgs);

impl TryFrom<ConnectArgs> for ConnectConfig {
    type Error = anyhow::Error;

    fn try_from(args: ConnectArgs) -> Result<Self> {
        if args.connections == 0 || args.concurrency == 0 || args.rooms == 0 {
            return Err(Usage::err(
                "--connections, --concurrency and --rooms must be at least 1",
            ));
        }
        if args.connections > MAX_CONNECTIONS {
            return Err(Usage::err(format!(
                "more than {MAX_CONNECTIONS} connections per process would pass ulimit -n; run several"
            )));
        }
        Ok(Self(args))
    }
}

#[derive(Debug, Serialize)]
struct ConnectResult {
    kind: &'static str,
    connections: usize,
    concurrency: usize,
    elapsed_s: f64,
    connections_per_s: f64,
    handshake: LatencySummary,
    client_cores: Option<f64>,
}

/// Runs the connection-rate benchmark.
pub async fn run(ctx: &Ctx, ConnectConfig(args): ConnectConfig) -> Result<Code> {
    let run = stamp::new_run_id();
    let rooms: Vec<RoomName> = (0..args.rooms)
        .map(|r| RoomName::new(&format!("connect-{run}-{r}")))
        .collect::<Result<_, _>>()?;
    let urls = (0..args.connections)
        .map(|i| ctx.server.room_socket(&rooms[i % rooms.len()]))
        .collect();
    let (cpu_before, started) = (cpu_time(), Instant::now());
    let (sockets, handshakes) = connect_all(urls, args.concurrency).await?;
    let elapsed = started.elapsed();
    let result = ConnectResult {
        kind: "connect",
        connections: sockets.len(),
        concurrency: args.concurrency,
        elapsed_s: (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        connections_per_s: (sockets.len() as f64 / elapsed.as_secs_f64().max(1e-9)).round(),
        handshake: LatencySummary::of(&handshakes),
        client_cores: cores(cpu_before, cpu_time(), elapsed),
    };
    // Dropping closes without close frames; the server sees each end at once (EOF).
    drop(sockets);
    print(&mut std::io::stdout().lock(), &result, ctx.json)?;
    Ok(Code::Ok)
}

fn print<W: Write>(out: &mut W, result: &ConnectResult, json: bool) -> Result<()> {
    if json {
        json_line(out, result)?;
        return Ok(());
    }
    writeln!(
        out,
        "connect: {} sessions in {:.2}s ({} at a time): {:.0} sessions/s",
        result.connections, result.elapsed_s, result.concurrency, result.connections_per_s
    )?;
    writeln!(out, "  handshake {}", result.handshake.human())?;
    if let Some(cores) = result.client_cores {
        writeln!(out, "  this process used {cores:.2} cores")?;
    }
    Ok(())
}
