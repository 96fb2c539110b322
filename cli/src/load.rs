//! What the load commands (`dead-clients`, `soak`, `bench`) share.
//!
//! - [`wire`]: raw sockets (`roomcast_protocol::raw`: the upgrade by hand and a buffered,
//!   cancel-safe frame reader) as the CLI addresses them and reports their failures.
//! - [`handshake`]: the bench's cheap upgrade: one write, the head checked by hand (status 101,
//!   `Sec-WebSocket-Accept`), a source address of its own in 127.0.0.0/8 per session.
//! - [`ghost`]: a client that goes dead in a chosen way (no pong, no read, vanish, pause).
//! - [`eviction`]: what each kind of dead client is owed by the heartbeat, and the verdict.
//! - [`observer`]: a typed member that records who joined and who left, when and why.
//! - [`member`]: a live typed member that sends stamped messages and checks what it receives.
//! - [`stamp`]: the text of a load message (run, sender, counter, send time).
//! - [`sequence`]: gap, duplicate and order checks over seqs and sender counters.
//! - [`latency`]: HDR histograms, sharded so thousands of tasks can record without contention.

pub mod eviction;
pub mod ghost;
pub mod handshake;
pub mod latency;
pub mod member;
pub mod observer;
pub mod sequence;
pub mod stamp;
pub mod wire;

use std::time::Duration;

use anyhow::{Context, Result};
use roomcast_protocol::UserName;
use tokio::time::Instant;

/// A user name for a generated client; the run id in `text` keeps names unique.
pub fn user_name(text: &str) -> Result<UserName> {
    UserName::new(text).with_context(|| format!("generated user name {text:?}"))
}

/// Checks `done` every few milliseconds until it holds or `deadline` passes; returns whether
/// it held. For shared counters that many tasks move and no single event announces.
pub async fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    /// Short enough not to add visible delay, long enough to cost nothing.
    const POLL: Duration = Duration::from_millis(10);
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}
