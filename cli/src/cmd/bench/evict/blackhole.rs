//! `bench evict --mode blackhole`: silent clients whose network vanishes once they have joined.
//!
//! They connect from a network namespace (the `roomcast-netns` crate) to the host end of its
//! link, on the server URL's port; once all are in, the link is cut, so nothing of theirs
//! reaches the server again: no pong, no ACK, no FIN, no reset. That is a client whose network
//! dropped. The default mode (`nopong`) is a client that stopped answering but still reads, so
//! the server pays for every message it sends it, reading included (on loopback the sender's
//! core runs the receiver's TCP input too).
//!
//! They never see their close frame, so their evictions are read from the server's `/metrics`
//! (`roomcast_evictions_total`), polled every [`POLL_EVERY`], and the k-th eviction counted is
//! judged against the k-th client connected, with the poll's interval added to the doubt on
//! when it happened. If every client was evicted inside its own window, so is every pair of
//! this matching (sorting both lists keeps both bounds), so a server that keeps the bound always
//! passes; what the matching cannot see is an early eviction paired off against a late one,
//! which the default mode, reading each client's own close, does.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;
use futures_util::future::try_join_all;
use roomcast_protocol::raw::{RawSocket, upgrade};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use url::Url;

use super::super::member::{Member, MemberSocket, Role, Shared, receive};
use super::Evictions;
use crate::api::{Api, MetricsSample};
pub(super) use crate::cmd::dead_clients::blackhole::Blackhole;
use crate::load::handshake::HEAD_BUFFER_BYTES;
use crate::load::latency::{LatencySummary, histogram};

/// How often the server's eviction counters are read while the silent clients wait.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// How long one client's connection and upgrade may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One handshake batch: when it started and ended, and how many clients it opened.
struct Batch {
    first: Instant,
    last: Instant,
    clients: usize,
}

/// What the vanished clients came to.
pub(super) struct Vanished {
    pub(super) evictions: Evictions,
    /// Chat messages they read after the cut had taken hold (from the first poll on): 0 when
    /// the link was cut, as it must be.
    pub(super) received_after_cut: u64,
}

/// The server's eviction counters at one poll, counted from before the clients connected.
#[derive(Clone, Copy)]
struct Count {
    at: Instant,
    timeout: u64,
    other: u64,
}

/// Opens a silent client per URL from inside `hole`'s namespace (dialling the host end of the
/// link on the URL's port), cuts the link, says so on `connected`, and reads the server's
/// evictions until every client is counted or `within` has passed.
pub(super) async fn haunt(
    hole: &Blackhole,
    api: &Api,
    urls: Vec<Url>,
    batch: usize,
    within: Duration,
    bounds: (Duration, Duration),
    connected: oneshot::Sender<()>,
) -> Result<Vanished> {
    let before = counters(&api.metrics().await?);
    let shared = Arc::new(Shared::default());
    let (stop, stopped) = watch::channel(false);
    let mut batches = Vec::new();
    let mut members = Vec::with_capacity(urls.len());
    for chunk in urls.chunks(batch.max(1)) {
        let first = Instant::now();
        let sockets = try_join_all(chunk.iter().map(|url| dial(hole, url))).await?;
        let last = Instant::now();
        batches.push(Batch {
            first,
            last,
            clients: sockets.len(),
        });
        for (task_no, socket) in sockets.into_iter().enumerate() {
            let member = Arc::new(Member::default());
            members.push(member.clone());
            tokio::spawn(receive(
                MemberSocket::from(socket),
                member,
                shared.clone(),
                task_no,
                Role::Silent,
                stopped.clone(),
            ));
        }
    }
    hole.cut().await?;
    let _told = connected.send(());
    let deadline = Instant::now() + within;
    let mut counts = vec![Count {
        at: Instant::now(),
        timeout: 0,
        other: 0,
    }];
    let received = || -> u64 {
        members
            .iter()
            .map(|m| m.received.load(Ordering::Relaxed))
            .sum()
    };
    // Frames already on their way when the link was cut may still be read: count from the
    // first poll on, a poll interval later.
    let mut received_at_cut = None;
    let mut ticks = tokio::time::interval(POLL_EVERY);
    ticks.tick().await;
    while Instant::now() < deadline {
        ticks.tick().await;
        received_at_cut.get_or_insert_with(received);
        let now = counters(&api.metrics().await?);
        let count = Count {
            at: Instant::now(),
            timeout: now.0.saturating_sub(before.0),
            other: now.1.saturating_sub(before.1),
        };
        counts.push(count);
        if usize::try_from(count.timeout + count.other).unwrap_or(usize::MAX) >= urls.len() {
            break;
        }
    }
    let received_after_cut = received().saturating_sub(received_at_cut.unwrap_or(0));
    let _stopped = stop.send(true);
    Ok(Vanished {
        evictions: judge(&batches, &counts, urls.len(), bounds),
        received_after_cut,
    })
}

/// One silent client: its TCP connection made inside the namespace, then its upgrade.
async fn dial(hole: &Blackhole, url: &Url) -> Result<RawSocket> {
    let (stream, url) = hole.dial(url, CONNECT_TIMEOUT).await?;
    let request = upgrade::request(&url, None);
    let shown = roomcast_protocol::redact::redacted(&url).to_string();
    let socket = tokio::time::timeout(
        CONNECT_TIMEOUT,
        upgrade::finish(stream, &request, &shown, HEAD_BUFFER_BYTES),
    )
    .await
    .map_err(|_| anyhow::anyhow!("{shown}: no upgrade answer within {CONNECT_TIMEOUT:?}"))??;
    Ok(socket)
}

/// `(timeout evictions, other evictions)` in a `/metrics` sample (0 when absent).
fn counters(sample: &MetricsSample) -> (u64, u64) {
    // Counters are integers the server formats as such; a fraction would be a bug there.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let whole = |value: Option<f64>| value.unwrap_or(0.0).max(0.0) as u64;
    (
        whole(sample.timeout_evictions),
        whole(sample.other_evictions),
    )
}

/// Sorts the clients by how they ended against the window `[min, max]` after connecting: the
/// evictions counted between two polls go, in order, to the next clients connected.
fn judge(
    batches: &[Batch],
    counts: &[Count],
    clients: usize,
    bounds: (Duration, Duration),
) -> Evictions {
    let mut evictions = Evictions::default();
    let mut after = histogram();
    let mut owners = batches
        .iter()
        .flat_map(|b| std::iter::repeat_n(b, b.clients));
    let mut judged = 0;
    for pair in counts.windows(2) {
        let (earlier, later) = (pair[0], pair[1]);
        let timeouts = later.timeout.saturating_sub(earlier.timeout);
        let others = later.other.saturating_sub(earlier.other);
        for k in 0..timeouts + others {
            let Some(batch) = owners.next() else {
                break;
            };
            judged += 1;
            if k >= timeouts {
                evictions.wrong_code += 1;
                continue;
            }
            // Benefit of the doubt both ways: the eviction came between the two polls, and the
            // batch's span bounds the client's last word.
            evictions.count(
                &mut after,
                earlier.at.saturating_duration_since(batch.last),
                later.at.saturating_duration_since(batch.first),
                bounds,
            );
        }
    }
    evictions.not_evicted = clients.saturating_sub(judged);
    evictions.after = LatencySummary::of(&after);
    evictions
}
