//! What a follower needs while hyper is not polling its stream (the peer stopped reading):
//! its heartbeat, finding that it fell behind or stalled (then leaving its rooms), and letting
//! its connection go.
//!
//! One small task per follower, ending with the stream (`Watch::done`). It never takes the
//! outbox's waker slot (that is the stream's): it waits on the outbox's overflow signal and
//! looks at the outbox on each heartbeat.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use roomcast_protocol::LeaveReason;
use tokio::time::{Instant, MissedTickBehavior};

use super::event;
use super::stream::Watch;
use crate::outbox::{Outbox, Push};
use crate::serve::ConnectionAbort;
use crate::state::AppState;

/// Starts the watchdog of a follower whose stream shares `watch` and reads `outbox`.
pub(crate) fn spawn(
    state: Arc<AppState>,
    outbox: Outbox,
    watch: Arc<Watch>,
    abort: Option<ConnectionAbort>,
) {
    tokio::spawn(run(state, outbox, watch, abort));
}

async fn run(
    state: Arc<AppState>,
    outbox: Outbox,
    watch: Arc<Watch>,
    abort: Option<ConnectionAbort>,
) {
    let config = &state.config;
    let every = config.sse_heartbeat;
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_yielded = watch.yielded.load(Ordering::Relaxed);
    let mut stalled_since: Option<Instant> = None;
    loop {
        tokio::select! {
            () = watch.done.cancelled() => return,
            // Right away, not at the next beat: a follower past --max-queue-bytes is counted
            // and logged as evicted when it happens, even if its peer never reads again.
            () = outbox.overflow_signal() => break,
            _ = ticks.tick() => {}
        }
        let yielded = watch.yielded.load(Ordering::Relaxed);
        if yielded != last_yielded {
            // Events went out since the last beat: the stream is alive and needs no ping.
            last_yielded = yielded;
            stalled_since = None;
            continue;
        }
        if outbox.queued_bytes() > 0 {
            let now = Instant::now();
            let since = *stalled_since.get_or_insert(now);
            if now.duration_since(since) >= config.write_timeout {
                outbox.overflow();
                break;
            }
            continue;
        }
        if outbox.push(event::ping()) == Push::Overflowed {
            break;
        }
    }
    watch.evict(&state);
    // Its rooms are left now: a peer that does not read would otherwise stay a member (in the
    // count, keeping an expiring room alive) until its connection is let go below.
    watch.leave_all(Some(LeaveReason::Slow));
    // If hyper polls the stream again it says `evicted` and ends. A peer that never reads
    // again is let go after --write-timeout, so it holds neither rooms nor a permit.
    tokio::select! {
        () = watch.done.cancelled() => {}
        () = tokio::time::sleep(config.write_timeout) => {
            match abort {
                Some(abort) => abort.0.cancel(),
                None => tracing::warn!("an evicted SSE follower's connection cannot be aborted outside roomcast's own `serve`"),
            }
        }
    }
}
