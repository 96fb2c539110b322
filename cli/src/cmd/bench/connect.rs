//! `bench connect`: how fast the server accepts sessions. Opens N tutorial sessions, C
//! handshakes at a time, and reports sessions per second and handshake latency.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use tokio::time::Instant;

use super::{Population, cores, cpu_time};
use crate::cmd::{Ctx, json_line};
use crate::exit::Code;
use crate::load::latency::LatencySummary;

/// Flags of `bench connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The sessions to open.
    #[command(flatten)]
    pub population: Population,
}

/// `bench connect`, validated.
#[derive(Debug)]
pub struct ConnectConfig(Population);

impl TryFrom<ConnectArgs> for ConnectConfig {
    type Error = anyhow::Error;

    fn try_from(args: ConnectArgs) -> Result<Self> {
        args.population.validate()?;
        Ok(Self(args.population))
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
    let (cpu_before, started) = (cpu_time(), Instant::now());
    let (sockets, handshakes) = args.open(ctx, "connect").await?;
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
