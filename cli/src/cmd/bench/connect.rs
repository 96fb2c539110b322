//! `bench connect`: how fast the server accepts sessions. Opens N tutorial sessions, C
//! handshakes at a time, and reports sessions per second and handshake latency.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use tokio::time::Instant;

use super::process::Meters;
use super::{NodeCount, Population, Spread};
use crate::cmd::{Ctx, json_line};
use crate::exit::Code;
use crate::load::latency::LatencySummary;

/// Flags of `bench connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The sessions to open.
    #[command(flatten)]
    pub population: Population,
    /// The server's PID, to report its CPU use beside the generator's.
    #[arg(long, env = "ROOMCAST_BENCH_SERVER_PID")]
    pub server_pid: Option<u32>,
}

/// `bench connect`, validated.
#[derive(Debug)]
pub struct ConnectConfig(ConnectArgs);

impl TryFrom<ConnectArgs> for ConnectConfig {
    type Error = anyhow::Error;

    fn try_from(args: ConnectArgs) -> Result<Self> {
        args.population.validate()?;
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
    /// Sessions per `--url` (they take the nodes in turn).
    nodes: Vec<NodeCount>,
    /// Cores the load generator used while connecting.
    generator_cores: Option<f64>,
    /// Cores the server used meanwhile (with `--server-pid`).
    server_cores: Option<f64>,
}

/// Runs the connection-rate benchmark.
pub async fn run(ctx: &Ctx, ConnectConfig(config): ConnectConfig) -> Result<Code> {
    let args = &config.population;
    let (meters, started) = (Meters::start(config.server_pid), Instant::now());
    let (sockets, handshakes, nodes) = args.open(ctx, "connect").await?;
    let elapsed = started.elapsed();
    let (generator_cores, server_cores) = meters.read();
    let result = ConnectResult {
        kind: "connect",
        connections: sockets.len(),
        concurrency: args.concurrency,
        elapsed_s: (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        connections_per_s: (sockets.len() as f64 / elapsed.as_secs_f64().max(1e-9)).round(),
        handshake: LatencySummary::of(&handshakes),
        nodes,
        generator_cores,
        server_cores,
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
    let nodes = Spread::line(&result.nodes);
    if !nodes.is_empty() {
        writeln!(out, "  {nodes}")?;
    }
    if let Some(cores) = result.generator_cores {
        writeln!(out, "  the load generator used {cores:.2} cores")?;
    }
    if let Some(cores) = result.server_cores {
        writeln!(out, "  the server used {cores:.2} cores")?;
    }
    Ok(())
}
