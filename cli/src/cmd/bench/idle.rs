//! `bench idle`: server memory per idle session. Reads the server's RSS from `/metrics`, opens
//! N sessions that only answer pings, waits until the server counts them and its RSS settles,
//! and divides the growth by N. Closing them afterwards shows how much comes back.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::receiver::{BenchShared, receive};
use super::{Population, server_memory};
use crate::cmd::{Ctx, json_line};
use crate::exit::Code;
use crate::units;

/// How long the server may take to count every new session, or to let them all go.
const COUNT_WITHIN: Duration = Duration::from_secs(30);

/// Time between RSS readings while waiting for it to settle.
const SETTLE_STEP: Duration = Duration::from_millis(250);

/// Most readings taken while waiting for RSS to settle.
const SETTLE_READINGS: usize = 20;

/// Flags of `bench idle`.
#[derive(Debug, Args)]
pub struct IdleArgs {
    /// The idle sessions to open.
    #[command(flatten)]
    pub population: Population,
}

/// `bench idle`, validated.
#[derive(Debug)]
pub struct IdleConfig(Population);

impl TryFrom<IdleArgs> for IdleConfig {
    type Error = anyhow::Error;

    fn try_from(args: IdleArgs) -> Result<Self> {
        args.population.validate()?;
        Ok(Self(args.population))
    }
}

#[derive(Debug, Serialize)]
struct IdleResult {
    kind: &'static str,
    connections: usize,
    rooms: usize,
    rss_before_bytes: f64,
    rss_open_bytes: f64,
    per_session_bytes: f64,
    rss_after_close_bytes: Option<f64>,
}

/// Runs the memory-per-session benchmark.
pub async fn run(ctx: &Ctx, IdleConfig(args): IdleConfig) -> Result<Code> {
    let (rss_before, sessions_before) = quiet_server(ctx).await?;
    let (sockets, _) = args.open(ctx, "idle").await?;
    let shared = Arc::new(BenchShared::default());
    let (stop, stopped) = watch::channel(false);
    for (task_no, socket) in sockets.into_iter().enumerate() {
        let counter = Arc::new(AtomicU64::new(0));
        tokio::spawn(receive(
            socket,
            counter,
            shared.clone(),
            task_no,
            stopped.clone(),
        ));
    }
    let expected = sessions_before + args.connections as f64;
    if !sessions_reach(ctx, |open| open >= expected).await? {
        bail!("the server never counted {expected} open sessions within {COUNT_WITHIN:?}");
    }
    let rss_open = settled_rss(ctx).await?;
    let _stopped = stop.send(true);
    let closed = sessions_reach(ctx, |open| open <= sessions_before).await?;
    let rss_after_close = if closed {
        Some(settled_rss(ctx).await?)
    } else {
        None
    };
    let result = IdleResult {
        kind: "idle",
        connections: args.connections,
        rooms: args.rooms,
        rss_before_bytes: rss_before,
        rss_open_bytes: rss_open,
        per_session_bytes: ((rss_open - rss_before) / args.connections as f64).round(),
        rss_after_close_bytes: rss_after_close,
    };
    print(&mut std::io::stdout().lock(), &result, ctx.json)?;
    Ok(Code::Ok)
}

/// Waits until the server's session count stops moving (sessions of an earlier run may still
/// be closing), then returns its RSS and that count.
async fn quiet_server(ctx: &Ctx) -> Result<(f64, f64)> {
    let (_, mut last) = server_memory(ctx).await?;
    for _ in 0..SETTLE_READINGS {
        tokio::time::sleep(SETTLE_STEP).await;
        let (rss, open) = server_memory(ctx).await?;
        if open == last {
            return Ok((rss, open));
        }
        last = open;
    }
    bail!("the server's session count kept changing; run the idle bench on a quiet server")
}

/// Polls `/metrics` until the open-session gauge satisfies `done`, bounded by [`COUNT_WITHIN`].
async fn sessions_reach(ctx: &Ctx, done: impl Fn(f64) -> bool) -> Result<bool> {
    let deadline = Instant::now() + COUNT_WITHIN;
    while Instant::now() < deadline {
        let (_, open) = server_memory(ctx).await?;
        if done(open) {
            return Ok(true);
        }
        tokio::time::sleep(SETTLE_STEP).await;
    }
    Ok(false)
}

/// Reads RSS until two readings in a row agree within 1% (or the readings run out).
async fn settled_rss(ctx: &Ctx) -> Result<f64> {
    let (mut last, _) = server_memory(ctx).await?;
    for _ in 0..SETTLE_READINGS {
        tokio::time::sleep(SETTLE_STEP).await;
        let (now, _) = server_memory(ctx).await?;
        if (now - last).abs() <= last * 0.01 {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

fn print<W: Write>(out: &mut W, result: &IdleResult, json: bool) -> Result<()> {
    if json {
        json_line(out, result)?;
        return Ok(());
    }
    writeln!(
        out,
        "idle: {} sessions in {} rooms: server RSS {} -> {}: {} per session",
        result.connections,
        result.rooms,
        units::show_bytes(result.rss_before_bytes),
        units::show_bytes(result.rss_open_bytes),
        units::show_bytes(result.per_session_bytes)
    )?;
    if let Some(after) = result.rss_after_close_bytes {
        writeln!(
            out,
            "  after closing them all: {}",
            units::show_bytes(after)
        )?;
    }
    Ok(())
}
