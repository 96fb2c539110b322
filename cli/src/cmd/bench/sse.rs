//! `bench sse`: N Server-Sent Events followers and M WebSocket (tutorial) members in one room,
//! in one run, the same messages published to both: how long each transport takes to deliver
//! every message to every reader, side by side.
//!
//! Followers are raw TCP sockets that send `GET /sse/<room>/` and count `event: message` in
//! what they read (no parsing beyond that); members are raw WebSocket sockets counting text
//! frames. Messages go out through the HTTP publish API at `--rate` per second, so neither
//! transport is measured at a rate the publisher sets for it.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use roomcast_protocol::RoomName;
use roomcast_protocol::raw::RawSocket;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::process::Meters;
use super::{CONNECT_TIMEOUT, check_connections, connect_all};
use crate::cmd::{Ctx, json_line};
use crate::exit::{Code, Usage};
use crate::load::latency::{LatencySummary, histogram};
use crate::load::stamp;

/// The longest a run waits for the last delivery after the last publish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Flags of `bench sse`.
#[derive(Debug, Args)]
pub struct SseArgs {
    /// SSE followers to open.
    #[arg(long, env = "ROOMCAST_BENCH_SSE_FOLLOWERS", default_value_t = 1000)]
    pub followers: usize,
    /// WebSocket members in the same room.
    #[arg(long, env = "ROOMCAST_BENCH_SSE_MEMBERS", default_value_t = 1000)]
    pub members: usize,
    /// Messages to publish.
    #[arg(long, env = "ROOMCAST_BENCH_SSE_MESSAGES", default_value_t = 100)]
    pub messages: u64,
    /// Messages published per second.
    #[arg(long, env = "ROOMCAST_BENCH_SSE_RATE", default_value_t = 20)]
    pub rate: u32,
    /// Connections opened at once.
    #[arg(
        long,
        short = 'c',
        env = "ROOMCAST_BENCH_CONCURRENCY",
        default_value_t = 64
    )]
    pub concurrency: usize,
    /// The server's PID, to report its CPU use beside the generator's.
    #[arg(long, env = "ROOMCAST_BENCH_SERVER_PID")]
    pub server_pid: Option<u32>,
}

/// `bench sse`, validated.
#[derive(Debug)]
pub struct SseConfig(SseArgs);

impl TryFrom<SseArgs> for SseConfig {
    type Error = anyhow::Error;

    fn try_from(args: SseArgs) -> Result<Self> {
        if args.messages == 0 || args.rate == 0 || args.concurrency == 0 {
            return Err(Usage::err(
                "--messages, --rate and --concurrency must be at least 1",
            ));
        }
        if args.followers + args.members == 0 {
            return Err(Usage::err("open at least one --followers or --members"));
        }
        check_connections(args.followers + args.members)?;
        Ok(Self(args))
    }
}

#[derive(Debug, Serialize)]
struct Transport {
    readers: usize,
    /// Readers that got every message.
    complete: usize,
    /// When each reader had its last message, after the first publish.
    done_after: LatencySummary,
    /// Messages delivered per second over the run.
    deliveries_per_s: f64,
}

#[derive(Debug, Serialize)]
struct SseResult {
    kind: &'static str,
    messages: u64,
    rate: u32,
    sse: Transport,
    websocket: Transport,
    generator_cores: Option<f64>,
    server_cores: Option<f64>,
}

/// Runs the side-by-side benchmark.
pub async fn run(ctx: &Ctx, SseConfig(args): SseConfig) -> Result<Code> {
    // Both transports on the same server, or the comparison compares nodes.
    super::one_server(ctx, "sse", "compares two transports of one server")?;
    let room = RoomName::new(&format!("bench-sse-{}", stamp::new_run_id()))?;
    let (sockets, _) = connect_all(
        vec![ctx.server.room_socket(&room); args.members],
        args.concurrency,
    )
    .await?;
    let followers = open_followers(ctx, &room, args.followers, args.concurrency).await?;
    let expected = args.followers + args.members;
    let waiting = Instant::now();
    loop {
        let sessions = ctx.api.room(&room).await?.map_or(0, |r| r.sessions);
        if sessions >= expected {
            break;
        }
        if waiting.elapsed() > CONNECT_TIMEOUT {
            bail!("only {sessions} of {expected} readers are in {room}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let finished_sse = Arc::new(Finished::default());
    let finished_ws = Arc::new(Finished::default());
    let mut readers = tokio::task::JoinSet::new();
    for stream in followers {
        readers.spawn(read_sse(
            stream,
            args.messages,
            started,
            finished_sse.clone(),
        ));
    }
    for socket in sockets {
        readers.spawn(read_websocket(
            socket,
            args.messages,
            started,
            finished_ws.clone(),
        ));
    }
    let meters = Meters::start(args.server_pid);
    let every = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let mut ticks = tokio::time::interval(every);
    for n in 1..=args.messages {
        ticks.tick().await;
        ctx.api
            .send_test(&room, &format!("bench {n}"))
            .await
            .context("publishing")?;
    }
    let draining = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while readers.join_next().await.is_some() {}
    });
    if draining.await.is_err() {
        readers.abort_all();
    }
    let (generator_cores, server_cores) = meters.read();
    let result = SseResult {
        kind: "sse",
        messages: args.messages,
        rate: args.rate,
        sse: finished_sse.summary(args.followers, args.messages),
        websocket: finished_ws.summary(args.members, args.messages),
        generator_cores,
        server_cores,
    };
    print(&mut std::io::stdout().lock(), &result, ctx.json)?;
    Ok(
        if result.sse.complete == args.followers && result.websocket.complete == args.members {
            Code::Ok
        } else {
            Code::Failed
        },
    )
}

/// When readers of one transport finished.
#[derive(Debug, Default)]
struct Finished {
    micros: std::sync::Mutex<Vec<u64>>,
    latest: AtomicU64,
}

impl Finished {
    fn done(&self, started: Instant) {
        let micros = u64::try_from(started.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        self.latest.fetch_max(micros, Ordering::Relaxed);
        self.micros
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(micros);
    }

    fn summary(&self, readers: usize, messages: u64) -> Transport {
        let micros = self
            .micros
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut done: Histogram<u64> = histogram();
        for m in micros.iter() {
            done.saturating_record(*m);
        }
        let latest = self.latest.load(Ordering::Relaxed) as f64 / 1e6;
        Transport {
            readers,
            complete: micros.len(),
            done_after: LatencySummary::of(&done),
            deliveries_per_s: if latest > 0.0 {
                (micros.len() as f64 * messages as f64 / latest).round()
            } else {
                0.0
            },
        }
    }
}

async fn open_followers(
    ctx: &Ctx,
    room: &RoomName,
    count: usize,
    concurrency: usize,
) -> Result<Vec<TcpStream>> {
    let url = ctx.server.http(&format!("sse/{room}/"));
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n",
        url.path()
    );
    let mut opening = futures_util::stream::iter(0..count)
        .map(|_| {
            let (host, request) = (host.clone(), request.clone());
            async move {
                let mut stream = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    TcpStream::connect((host.as_str(), port)),
                )
                .await
                .context("opening an SSE follower timed out")??;
                stream.write_all(request.as_bytes()).await?;
                Ok::<_, anyhow::Error>(stream)
            }
        })
        .buffered(concurrency);
    let mut streams = Vec::with_capacity(count);
    while let Some(stream) = opening.next().await {
        streams.push(stream?);
    }
    Ok(streams)
}

/// Counts `event: message` until `messages` were seen (an event is one chunk, so the pattern
/// is never cut by chunked encoding; a pattern cut by a read is kept in `carry`).
async fn read_sse(mut stream: TcpStream, messages: u64, started: Instant, finished: Arc<Finished>) {
    const PATTERN: &[u8] = b"event: message\n";
    let mut buffer = vec![0; 64 * 1024];
    let mut seen = 0u64;
    let mut carry = 0usize;
    while seen < messages {
        let Ok(n) = stream.read(&mut buffer[carry..]).await else {
            return;
        };
        if n == 0 {
            return;
        }
        let filled = carry + n;
        let bytes = &buffer[..filled];
        seen += bytes
            .windows(PATTERN.len())
            .filter(|w| *w == PATTERN)
            .count() as u64;
        carry = (PATTERN.len() - 1).min(filled);
        buffer.copy_within(filled - carry..filled, 0);
    }
    finished.done(started);
}

async fn read_websocket(
    mut socket: RawSocket,
    messages: u64,
    started: Instant,
    finished: Arc<Finished>,
) {
    let mut seen = 0u64;
    while seen < messages {
        match socket.read_frame().await {
            Ok(Some(frame)) if frame.payload.starts_with(b"{\"room\"") => seen += 1,
            Ok(Some(_)) => {}
            _ => return,
        }
    }
    finished.done(started);
}

fn print<W: Write>(out: &mut W, result: &SseResult, json: bool) -> Result<()> {
    if json {
        json_line(out, result)?;
        return Ok(());
    }
    writeln!(
        out,
        "sse: {} messages at {}/s to one room",
        result.messages, result.rate
    )?;
    for (name, t) in [("SSE", &result.sse), ("WebSocket", &result.websocket)] {
        writeln!(
            out,
            "  {name}: {} of {} readers got every message; {:.0} deliveries/s; last message after {}",
            t.complete,
            t.readers,
            t.deliveries_per_s,
            t.done_after.human()
        )?;
    }
    if let Some(cores) = result.generator_cores {
        writeln!(out, "  the load generator used {cores:.2} cores")?;
    }
    if let Some(cores) = result.server_cores {
        writeln!(out, "  the server used {cores:.2} cores")?;
    }
    Ok(())
}
