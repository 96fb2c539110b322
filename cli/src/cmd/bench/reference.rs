//! `bench reference`: the minimal broadcaster roomcast is measured against.
//!
//! It speaks the tutorial protocol at `/ws/chat/<room>/` (a client sends `{"message": ...}`,
//! every member, sender included, receives `{"room","user","seq","ts","message"}` as roomcast
//! sends it), so the same load generator drives both. What makes it fast is what the issue
//! asks of roomcast: each frame is encoded once with its header, every member writes those same
//! bytes from its cursor into the room's log, several queued frames per vectored write. It has
//! no heartbeat, history, limits or metrics: it is the yardstick, not a server to deploy.
//!
//! `--firehose` turns it into a source cheaper than any server: every member receives one
//! pre-encoded block of frames over and over, so `bench ceiling` can show what the load
//! generator absorbs.

mod room;
mod session;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use clap::Args;
use clap::builder::FalseyValueParser;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

use self::room::Registry;
use super::process::{CpuMeter, Process};
use crate::cmd::{Ctx, json_line};
use crate::exit::{Code, Usage};
use crate::units;

/// Frames in the firehose's block: one write of about 100 KiB.
const FIREHOSE_FRAMES: u64 = 1024;

/// The firehose's message text, the bench's default size.
const FIREHOSE_TEXT_BYTES: usize = 64;

/// How long to wait before accepting again after an accept error (out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Flags of `bench reference`.
#[derive(Debug, Args)]
pub struct ReferenceArgs {
    /// Address to listen on (loopback: the bench is local).
    #[arg(long, env = "ROOMCAST_REFERENCE_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on; 0 picks a free one (announced on stderr).
    #[arg(long, env = "ROOMCAST_REFERENCE_PORT", default_value_t = 0)]
    pub port: u16,
    /// Stop after this long, whatever happens (SIGINT and SIGTERM stop it sooner).
    #[arg(long = "for", env = "ROOMCAST_REFERENCE_FOR", default_value = "1h", value_parser = units::parse_duration)]
    pub lifetime: Duration,
    /// Bytes of frames a room's log keeps; a member further behind is closed as slow (4001),
    /// as roomcast closes one whose queue passes --max-queue-bytes.
    #[arg(long, env = "ROOMCAST_REFERENCE_MAX_LAG_BYTES", default_value = "1MiB", value_parser = units::parse_bytes)]
    pub max_lag_bytes: usize,
    /// Send every member the same block of message frames, endlessly, instead of broadcasting.
    #[arg(long, env = "ROOMCAST_REFERENCE_FIREHOSE", value_parser = FalseyValueParser::new(), default_value_t = false)]
    pub firehose: bool,
}

/// `bench reference`, validated.
#[derive(Debug)]
pub struct ReferenceConfig(ReferenceArgs);

impl TryFrom<ReferenceArgs> for ReferenceConfig {
    type Error = anyhow::Error;

    fn try_from(args: ReferenceArgs) -> Result<Self> {
        if args.lifetime.is_zero() || args.max_lag_bytes == 0 {
            return Err(Usage::err(
                "--for and --max-lag-bytes must be greater than 0",
            ));
        }
        Ok(Self(args))
    }
}

/// What every session shares.
#[derive(Debug)]
pub struct Reference {
    registry: Arc<Registry>,
    max_lag_bytes: usize,
    firehose: Option<Bytes>,
    stats: Stats,
}

/// Counters for the summary printed at the end.
#[derive(Debug, Default)]
struct Stats {
    sessions: AtomicU64,
    published: AtomicU64,
    frames: AtomicU64,
    writes: AtomicU64,
    slow_closed: AtomicU64,
}

#[derive(Debug, Serialize)]
struct Summary {
    kind: &'static str,
    address: String,
    firehose: bool,
    uptime_s: f64,
    sessions: u64,
    published: u64,
    frames_written: u64,
    writes: u64,
    frames_per_write: f64,
    slow_closed: u64,
    /// Cores this process used over its life.
    cores: Option<f64>,
    /// Its resident memory at the end.
    rss_bytes: Option<f64>,
}

/// Serves until `--for` passes or a signal comes, then prints what it did.
pub async fn run(ctx: &Ctx, ReferenceConfig(args): ReferenceConfig) -> Result<Code> {
    let listener = TcpListener::bind(SocketAddr::new(args.host, args.port))
        .await
        .with_context(|| format!("could not listen on {}:{}", args.host, args.port))?;
    let address = format!("ws://{}", listener.local_addr()?);
    // Always said, even with --quiet: scripts read the port from this line.
    eprintln!("reference broadcaster listening on {address}");
    let reference = Arc::new(Reference {
        registry: Arc::new(Registry::default()),
        max_lag_bytes: args.max_lag_bytes,
        firehose: args.firehose.then(firehose_block),
        stats: Stats::default(),
    });
    let (meter, started) = (CpuMeter::start(Process::Myself), Instant::now());
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let deadline = tokio::time::sleep(args.lifetime);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => break,
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let session = session::serve(stream, reference.clone());
                    tokio::spawn(async move {
                        // A session that fails has nobody to tell but its own socket.
                        let _ended = session.await;
                    });
                }
                Err(e) => {
                    ctx.status(format!("reference: accept failed: {e}"));
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    let stats = &reference.stats;
    let (frames, writes) = (
        stats.frames.load(Ordering::Relaxed),
        stats.writes.load(Ordering::Relaxed),
    );
    let summary = Summary {
        kind: "reference",
        address,
        firehose: args.firehose,
        uptime_s: units::millis(started.elapsed()) / 1e3,
        sessions: stats.sessions.load(Ordering::Relaxed),
        published: stats.published.load(Ordering::Relaxed),
        frames_written: frames,
        writes,
        frames_per_write: if writes == 0 {
            0.0
        } else {
            (frames as f64 / writes as f64 * 10.0).round() / 10.0
        },
        slow_closed: stats.slow_closed.load(Ordering::Relaxed),
        cores: meter.cores(),
        rss_bytes: Process::Myself.resident_bytes(),
    };
    print(&mut std::io::stdout().lock(), &summary, ctx.json)?;
    Ok(Code::Ok)
}

/// The firehose's block: [`FIREHOSE_FRAMES`] tutorial message frames back to back.
fn firehose_block() -> Bytes {
    let text = "x".repeat(FIREHOSE_TEXT_BYTES);
    let mut block = BytesMut::new();
    for seq in 1..=FIREHOSE_FRAMES {
        block.extend_from_slice(&room::sample_message("firehose", seq, &text));
    }
    block.freeze()
}

fn print<W: Write>(out: &mut W, summary: &Summary, json: bool) -> Result<()> {
    if json {
        json_line(out, summary)?;
        return Ok(());
    }
    writeln!(
        out,
        "reference{}: {} sessions, {} published, {} frames in {} writes ({:.1} per write), {} closed as slow, over {:.1}s",
        if summary.firehose { " (firehose)" } else { "" },
        summary.sessions,
        summary.published,
        summary.frames_written,
        summary.writes,
        summary.frames_per_write,
        summary.slow_closed,
        summary.uptime_s,
    )?;
    if let Some(cores) = summary.cores {
        writeln!(out, "  it used {cores:.2} cores")?;
    }
    Ok(())
}
