//! `roomcast bench fanout|connect|idle|evict|ceiling|reference|sse`: the figures
//! `docs/BENCHMARKS.md` keeps, and the minimal broadcaster they are measured against.
//!
//! The load generator is built not to set the ceiling: sessions open with a cheap, checked
//! handshake, one task per core ([`opening`]), members count frames from their headers
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
mod opening;
mod process;
mod publisher;
mod reference;
mod sample;
mod search;
mod sse;

use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use roomcast_protocol::raw::RawSocket;
use roomcast_protocol::{RoomName, ServerUrl};
use serde::Serialize;

pub use self::opening::connect_all;
use super::Ctx;
use crate::exit::{Code, Usage};
use crate::load::stamp;

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
