//! Opening a bench's sessions: as many handshakes in flight as asked, on every core the
//! generator has, each one validated (see [`handshake`]).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use anyhow::Result;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use roomcast_protocol::raw::{RawError, RawSocket};
use tokio::task::JoinSet;
use tokio::time::Instant;
use url::Url;

use super::CONNECT_TIMEOUT;
use crate::load::handshake::{self, Target};
use crate::load::latency::histogram;
use crate::load::wire;

/// Opens a raw socket to each URL, `concurrency` handshakes in flight at once (whichever
/// finishes first makes room for the next, so one slow handshake holds up no other), giving
/// each loopback session its own source address in 127.0.0.0/8 (see [`handshake`]). Returns
/// the sockets in the order of `urls` and the handshake times (µs); the first failure, a
/// refused or malformed upgrade included, ends it with that error.
pub async fn connect_all(
    urls: Vec<Url>,
    concurrency: usize,
) -> Result<(Vec<RawSocket>, Histogram<u64>)> {
    let sessions = urls.len();
    let plan = Arc::new(Plan::new(&urls).await?);
    // One task per core the generator may use (one under `taskset -c 1`), each on a runtime
    // worker beside the I/O driver: polled from the command's `block_on` thread instead, every
    // socket event was a wake-up of that thread by the worker, two context switches per event
    // (a fifth of the generator's CPU in the profile).
    let shares = std::thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .clamp(1, concurrency.max(1));
    let mut tasks = JoinSet::new();
    for share in 0..shares {
        let in_flight = concurrency.max(1) / shares + usize::from(share < concurrency % shares);
        tasks.spawn(open_share(
            Arc::clone(&plan),
            share,
            shares,
            in_flight.max(1),
        ));
    }
    let mut sockets: Vec<Option<RawSocket>> = Vec::with_capacity(sessions);
    sockets.resize_with(sessions, || None);
    let mut handshakes = histogram();
    // The first failure returns, and dropping `tasks` aborts the other shares.
    while let Some(joined) = tasks.join_next().await {
        let Opened {
            sockets: opened,
            handshakes: times,
        } = joined.map_err(|e| anyhow::anyhow!("a connecting task failed: {e}"))??;
        handshakes.add(&times)?;
        for (i, socket) in opened {
            sockets[i] = Some(socket);
        }
    }
    // Every slot is filled: each share opened all of its sessions or returned an error.
    Ok((sockets.into_iter().flatten().collect(), handshakes))
}

/// What every share reads: each distinct URL prepared once, which one each session uses, and
/// where this run's source addresses start.
struct Plan {
    targets: Vec<Target>,
    of_session: Vec<usize>,
    source_base: u32,
}

impl Plan {
    async fn new(urls: &[Url]) -> Result<Self> {
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
        Ok(Self {
            targets,
            of_session,
            // A fresh start per run: addresses another run used matter only to the same server
            // port, but there is no reason to meet them at all.
            source_base: fastrand::u32(..),
        })
    }
}

/// One share's sessions (with their index in the run) and handshake times.
struct Opened {
    sockets: Vec<(usize, RawSocket)>,
    handshakes: Histogram<u64>,
}

/// Opens sessions `share`, `share + shares`, ... with `in_flight` handshakes at a time.
async fn open_share(
    plan: Arc<Plan>,
    share: usize,
    shares: usize,
    in_flight: usize,
) -> Result<Opened> {
    let plan = &*plan;
    let mut opened = Opened {
        sockets: Vec::with_capacity(plan.of_session.len() / shares + 1),
        handshakes: histogram(),
    };
    let mut opening = futures_util::stream::iter((share..plan.of_session.len()).step_by(shares))
        .map(|i| async move {
            let target = &plan.targets[plan.of_session[i]];
            let source = target
                .on_loopback()
                .then(|| handshake::source_address(plan.source_base, i));
            let started = Instant::now();
            let socket = target.open(source, CONNECT_TIMEOUT).await;
            (i, socket, started.elapsed())
        })
        .buffer_unordered(in_flight);
    while let Some((i, socket, took)) = opening.next().await {
        let socket = socket.map_err(too_many_files).map_err(|e| match e {
            Ok(raw) => wire::into_cli(raw, "opening a bench connection").context(format!(
                "after {} sessions opened in this share",
                opened.sockets.len()
            )),
            Err(hint) => hint,
        })?;
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        opened.handshakes.saturating_record(micros);
        opened.sockets.push((i, socket));
    }
    Ok(opened)
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
