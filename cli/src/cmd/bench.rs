//! `roomcast bench fanout|connect|idle|evict|ceiling|reference|sse`: the figures
//! `docs/BENCHMARKS.md` keeps, and the minimal broadcaster they are measured against.
//!
//! The load generator is built not to set the ceiling: members count frames from their headers
//! in large reads ([`count`], [`member`]), one task drives every publisher ([`publisher`]),
//! latency comes from a sample of stamped messages ([`sample`]), and every figure carries the
//! generator's own CPU beside it ([`process`]). `bench ceiling` against `bench reference
//! --firehose` shows what the generator absorbs when the source costs next to nothing.

mod ceiling;
mod connect;
mod count;
mod evict;
mod fanout;
mod idle;
mod member;
mod process;
mod publisher;
mod reference;
mod sample;
mod search;
mod sse;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use roomcast_protocol::raw::{RawError, RawSocket};
use roomcast_protocol::{RoomName, ServerUrl};
use serde::Serialize;
use tokio::time::Instant;
use url::Url;

use super::Ctx;
use crate::exit::{Code, Usage};
use crate::load::handshake::{self, Target};
use crate::load::latency::histogram;
use crate::load::stamp;
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
    /// Delivery throughput and latency: R rooms of M members, P of them publishing.
    Fanout(fanout::FanoutArgs),
    /// Connection rate: open N sessions, C at a time.
    Connect(connect::ConnectArgs),
    /// Server memory per idle session (RSS from /metrics, or /proc with --server-pid).
    Idle(idle::IdleArgs),
    /// Silent clients among live ones: all evicted in time, live latency unmoved.
    Evict(evict::EvictArgs),
    /// The load generator's own ceiling, against `bench reference --firehose`.
    Ceiling(ceiling::CeilingArgs),
    /// Serve the minimal reference broadcaster that roomcast is measured against.
    Reference(reference::ReferenceArgs),
    /// SSE followers beside WebSocket members in one room: delivery of the same messages.
    Sse(sse::SseArgs),
}

/// Runs one benchmark.
pub async fn run(ctx: &Ctx, args: BenchArgs) -> Result<Code> {
    match args.which {
        BenchCommand::Fanout(args) => fanout::run(ctx, args.try_into()?).await,
        BenchCommand::Connect(args) => connect::run(ctx, args.try_into()?).await,
        BenchCommand::Idle(args) => idle::run(ctx, args.try_into()?).await,
        BenchCommand::Evict(args) => evict::run(ctx, args.try_into()?).await,
        BenchCommand::Ceiling(args) => ceiling::run(ctx, args.try_into()?).await,
        BenchCommand::Reference(args) => reference::run(ctx, args.try_into()?).await,
        BenchCommand::Sse(args) => sse::run(ctx, args.try_into()?).await,
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
        check_connections(self.connections)
    }

    /// Opens the sessions over fresh rooms named `{prefix}-{run}-{n}`, every `--url` in turn
    /// (see [`Spread`], [`connect_all`]); also returns how many went to each node.
    pub async fn open(
        &self,
        ctx: &Ctx,
        prefix: &str,
    ) -> Result<(Vec<RawSocket>, Histogram<u64>, Vec<NodeCount>)> {
        let run = stamp::new_run_id();
        let rooms: Vec<RoomName> = (0..self.rooms)
            .map(|r| RoomName::new(&format!("{prefix}-{run}-{r}")))
            .collect::<Result<_, _>>()?;
        let mut spread = Spread::new(ctx);
        let urls = (0..self.connections)
            .map(|i| spread.next(false).1.room_socket(&rooms[i % rooms.len()]))
            .collect();
        let (sockets, handshakes) = connect_all(urls, self.concurrency).await?;
        Ok((sockets, handshakes, spread.counts()))
    }
}

/// Which node each session of a bench goes to, and how many went where. Publishers take the
/// nodes in turn among themselves and the other sessions among themselves, so a bench with a
/// publisher per node publishes on every node (and a message crosses between them).
#[derive(Debug)]
pub struct Spread {
    servers: Vec<ServerUrl>,
    next_publisher: usize,
    next_member: usize,
    counts: Vec<NodeCount>,
}

/// The sessions a bench opened on one node (`--url`), in the result.
#[derive(Debug, Clone, Serialize)]
pub struct NodeCount {
    /// The node's `--url`.
    pub url: String,
    /// Sessions opened there, publishers included.
    pub sessions: usize,
    /// Publishers among them.
    pub publishers: usize,
    /// Messages its sessions received over the whole run (benches that count them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
}

impl Spread {
    /// A spread over every `--url` (at least the default one).
    pub fn new(ctx: &Ctx) -> Self {
        let servers = match ctx.servers.is_empty() {
            true => vec![ctx.server.clone()],
            false => ctx.servers.clone(),
        };
        let counts = servers
            .iter()
            .map(|url| NodeCount {
                url: url.to_string(),
                sessions: 0,
                publishers: 0,
                received: None,
            })
            .collect();
        Self {
            servers,
            next_publisher: 0,
            next_member: 0,
            counts,
        }
    }

    /// The node of the next session, and its index; `publisher` sessions take turns apart.
    pub fn next(&mut self, publisher: bool) -> (usize, &ServerUrl) {
        let turn = match publisher {
            true => &mut self.next_publisher,
            false => &mut self.next_member,
        };
        let node = *turn % self.servers.len();
        *turn += 1;
        self.counts[node].sessions += 1;
        self.counts[node].publishers += usize::from(publisher);
        (node, &self.servers[node])
    }

    /// How many sessions went to each node, in `--url` order.
    pub fn counts(&self) -> Vec<NodeCount> {
        self.counts.clone()
    }

    /// `line` for people: `127.0.0.1:8000 50 (1 publishing), ...`, empty for one node.
    pub fn line(counts: &[NodeCount]) -> String {
        if counts.len() < 2 {
            return String::new();
        }
        let nodes: Vec<String> = counts
            .iter()
            .map(|c| {
                let received = c
                    .received
                    .map_or(String::new(), |r| format!(", {r} received"));
                format!(
                    "{} {} ({} publishing{received})",
                    c.url, c.sessions, c.publishers
                )
            })
            .collect();
        format!("nodes: {}", nodes.join("; "))
    }
}

/// Refuses several `--url`s for a bench that measures one server (`why` says what it reads).
pub fn one_server(ctx: &Ctx, bench: &str, why: &str) -> Result<()> {
    if ctx.servers.len() > 1 {
        return Err(Usage::err(format!(
            "bench {bench} {why}: give one --url (run it once per node); fanout, connect and \
             evict spread over several"
        )));
    }
    Ok(())
}

/// Refuses more connections than one process can hold.
pub fn check_connections(connections: usize) -> Result<()> {
    if connections > MAX_CONNECTIONS {
        return Err(Usage::err(format!(
            "{connections} connections is more than one process opens ({MAX_CONNECTIONS}, \
             under ulimit -n); run several processes"
        )));
    }
    Ok(())
}

/// Opens a raw socket to each URL, `concurrency` handshakes in flight at once (whichever
/// finishes first makes room for the next, so one slow handshake holds up no other), giving
/// each loopback session its own source address in 127.0.0.0/8 (see [`handshake`]). Returns
/// the sockets in the order of `urls` and the handshake times (µs); the first failure, a
/// refused or malformed upgrade included, ends it with that error.
pub async fn connect_all(
    urls: Vec<Url>,
    concurrency: usize,
) -> Result<(Vec<RawSocket>, Histogram<u64>)> {
    // On a runtime worker, beside the I/O driver: polled from the command's `block_on` thread,
    // every socket event was a wake-up of that thread by the worker, two context switches per
    // event on the generator's one core (a fifth of its CPU in the profile).
    tokio::spawn(open_all(urls, concurrency))
        .await
        .unwrap_or_else(|join| {
            Err(anyhow::anyhow!(
                "the bench's connecting task failed: {join}"
            ))
        })
}

async fn open_all(urls: Vec<Url>, concurrency: usize) -> Result<(Vec<RawSocket>, Histogram<u64>)> {
    let (targets, of_session) = prepare(&urls).await?;
    // A fresh start per run: another run's sessions from the same addresses would only matter
    // to the same server port, but there is no reason to meet them at all.
    let base = fastrand::u32(..);
    let mut handshakes = histogram();
    let mut sockets: Vec<Option<RawSocket>> = Vec::with_capacity(urls.len());
    sockets.resize_with(urls.len(), || None);
    let targets = &targets;
    let mut opening = futures_util::stream::iter(of_session.into_iter().enumerate())
        .map(|(i, target)| async move {
            let target: &Target = &targets[target];
            let source = target
                .on_loopback()
                .then(|| handshake::source_address(base, i));
            let started = Instant::now();
            let socket = target.open(source, CONNECT_TIMEOUT).await;
            (i, socket, started.elapsed())
        })
        .buffer_unordered(concurrency.max(1));
    let mut opened = 0;
    while let Some((i, socket, took)) = opening.next().await {
        let socket = socket.map_err(too_many_files).map_err(|e| match e {
            Ok(raw) => wire::into_cli(raw, "opening a bench connection")
                .context(format!("after {opened} sessions opened")),
            Err(hint) => hint,
        })?;
        handshakes.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
        sockets[i] = Some(socket);
        opened += 1;
    }
    drop(opening);
    // Every slot is filled: a failure returned above.
    Ok((sockets.into_iter().flatten().collect(), handshakes))
}

/// Each distinct URL prepared once, and which one each session uses.
async fn prepare(urls: &[Url]) -> Result<(Vec<Target>, Vec<usize>)> {
    let mut targets = Vec::new();
    let mut known: HashMap<&Url, usize> = HashMap::new();
    let mut of_session = Vec::with_capacity(urls.len());
    for url in urls {
        let index = match known.get(url) {
            Some(&index) => index,
            None => {
                let target = Target::new(url)
                    .await
                    .map_err(|e| wire::into_cli(e, "preparing a bench connection"))?;
                targets.push(target);
                known.insert(url, targets.len() - 1);
                targets.len() - 1
            }
        };
        of_session.push(index);
    }
    Ok((targets, of_session))
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
