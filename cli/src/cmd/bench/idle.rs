//! `bench idle`: server memory per idle session. Reads the server's RSS (from `/metrics`, or
//! from `/proc/<pid>/status` with `--server-pid`, which also serves a server without
//! `/metrics` such as the reference broadcaster), opens N sessions that only answer pings, waits
//! until the server counts them (when it has `/metrics`) and its RSS settles, and divides the
//! growth by N. Closing them afterwards shows how much comes back.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Population;
use super::member::{Member, MemberSocket, Role, Shared, receive};
use super::process::Process;
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
    /// The server's PID: read its RSS from `/proc/<pid>/status` instead of `/metrics`.
    #[arg(long, env = "ROOMCAST_BENCH_SERVER_PID")]
    pub server_pid: Option<u32>,
}

/// `bench idle`, validated.
#[derive(Debug)]
pub struct IdleConfig(IdleArgs);

impl TryFrom<IdleArgs> for IdleConfig {
    type Error = anyhow::Error;

    fn try_from(args: IdleArgs) -> Result<Self> {
        args.population.validate()?;
        Ok(Self(args))
    }
}

#[derive(Debug, Serialize)]
struct IdleResult {
    kind: &'static str,
    connections: usize,
    rooms: usize,
    /// Where RSS was read: `metrics` or `proc`.
    rss_source: &'static str,
    rss_before_bytes: f64,
    rss_open_bytes: f64,
    per_session_bytes: f64,
    rss_after_close_bytes: Option<f64>,
}

/// Where the server's memory and session count come from.
struct Gauges<'a> {
    ctx: &'a Ctx,
    pid: Option<u32>,
    has_metrics: bool,
}

impl Gauges<'_> {
    /// RSS, and the open-session count when the server has `/metrics`.
    async fn read(&self) -> Result<(f64, Option<f64>)> {
        let sample = if self.has_metrics {
            Some(self.ctx.api.metrics().await?)
        } else {
            None
        };
        let open = sample.and_then(|s| s.sessions_open);
        let rss = match self.pid {
            Some(pid) => Process::Pid(pid).resident_bytes(),
            None => sample.and_then(|s| s.resident_bytes),
        };
        match rss {
            Some(rss) => Ok((rss, open)),
            None => bail!(
                "no server RSS: its /metrics has no roomcast_process_resident_memory_bytes and \
                 no readable /proc/<pid>/status was given (--server-pid)"
            ),
        }
    }
}

/// Runs the memory-per-session benchmark.
pub async fn run(ctx: &Ctx, IdleConfig(config): IdleConfig) -> Result<Code> {
    // Memory per session is one server's RSS over its own sessions: spreading them would
    // divide one node's growth by every node's sessions.
    super::one_server(ctx, "idle", "reads one server's memory")?;
    let has_metrics = match ctx.api.metrics().await {
        Ok(_) => true,
        Err(_) if config.server_pid.is_some() => false,
        Err(e) => return Err(e.context("reading the server's /metrics (or pass --server-pid)")),
    };
    let gauges = Gauges {
        ctx,
        pid: config.server_pid,
        has_metrics,
    };
    let args = &config.population;
    let (rss_before, sessions_before) = quiet_server(&gauges).await?;
    let (sockets, _, _) = args.open(ctx, "idle").await?;
    let shared = Arc::new(Shared::default());
    let (stop, stopped) = watch::channel(false);
    for (task_no, socket) in sockets.into_iter().enumerate() {
        let socket = MemberSocket::from(socket);
        let member = Arc::new(Member::default());
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
    if let Some(before) = sessions_before {
        let expected = before + args.connections as f64;
        if !sessions_reach(&gauges, |open| open >= expected).await? {
            bail!("the server never counted {expected} open sessions within {COUNT_WITHIN:?}");
        }
    }
    let rss_open = settled_rss(&gauges).await?;
    let _stopped = stop.send(true);
    let closed = match sessions_before {
        Some(before) => sessions_reach(&gauges, |open| open <= before).await?,
        None => true,
    };
    let rss_after_close = if closed {
        Some(settled_rss(&gauges).await?)
    } else {
        None
    };
    let result = IdleResult {
        kind: "idle",
        connections: args.connections,
        rooms: args.rooms,
        rss_source: if config.server_pid.is_some() {
            "proc"
        } else {
            "metrics"
        },
        rss_before_bytes: rss_before,
        rss_open_bytes: rss_open,
        per_session_bytes: ((rss_open - rss_before) / args.connections as f64).round(),
        rss_after_close_bytes: rss_after_close,
    };
    print(&mut std::io::stdout().lock(), &result, ctx.json)?;
    Ok(Code::Ok)
}

/// Waits until the server's session count (or, without one, its RSS) stops moving: sessions
/// of an earlier run may still be closing. Returns its RSS and session count.
async fn quiet_server(gauges: &Gauges<'_>) -> Result<(f64, Option<f64>)> {
    let (mut last_rss, mut last) = gauges.read().await?;
    for _ in 0..SETTLE_READINGS {
        tokio::time::sleep(SETTLE_STEP).await;
        let (rss, open) = gauges.read().await?;
        let still = match open {
            Some(open) => Some(open) == last,
            None => (rss - last_rss).abs() <= last_rss * 0.01,
        };
        if still {
            return Ok((rss, open));
        }
        (last_rss, last) = (rss, open);
    }
    bail!("the server's sessions or memory kept changing; run the idle bench on a quiet server")
}

/// Polls the open-session gauge until it satisfies `done`, bounded by [`COUNT_WITHIN`].
async fn sessions_reach(gauges: &Gauges<'_>, done: impl Fn(f64) -> bool) -> Result<bool> {
    let deadline = Instant::now() + COUNT_WITHIN;
    while Instant::now() < deadline {
        if gauges.read().await?.1.is_some_and(&done) {
            return Ok(true);
        }
        tokio::time::sleep(SETTLE_STEP).await;
    }
    Ok(false)
}

/// Reads RSS until two readings in a row agree within 1% (or the readings run out).
async fn settled_rss(gauges: &Gauges<'_>) -> Result<f64> {
    let (mut last, _) = gauges.read().await?;
    for _ in 0..SETTLE_READINGS {
        tokio::time::sleep(SETTLE_STEP).await;
        let (now, _) = gauges.read().await?;
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
        "idle: {} sessions in {} rooms: server RSS ({}) {} -> {}: {} per session",
        result.connections,
        result.rooms,
        result.rss_source,
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
