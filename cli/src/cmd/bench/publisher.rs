//! A fanout publisher: one tutorial session per room that keeps at most `window` messages in
//! flight (published, not yet received by the room's slowest member), or follows `rate`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use roomcast_protocol::{Incoming, TutorialClient, TutorialSend};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::load::stamp::{Stamp, now_micros};

/// How often a publisher looks at its members' counters: tokio's timer resolution.
const PUBLISH_TICK: Duration = Duration::from_millis(1);

/// One room's publisher.
pub struct Publisher {
    /// The room's tutorial session.
    pub client: TutorialClient,
    /// Each member's received count.
    pub members: Vec<Arc<AtomicU64>>,
    /// Its sender number in stamps.
    pub sender: u32,
    /// Most messages in flight.
    pub window: u64,
    /// Cap on publishes per second.
    pub rate: Option<f64>,
    /// Message size in bytes.
    pub size: usize,
    /// The run id in stamps.
    pub run: String,
}

impl Publisher {
    /// Publishes until stopped; returns how many it published.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> u64 {
        let (mut sender, mut receiver) = self.client.split();
        // Its own messages come back too; reading them keeps pings answered.
        let drain = tokio::spawn(async move {
            while let Ok(incoming) = receiver.recv().await {
                if matches!(incoming, Incoming::Closed(_)) {
                    return;
                }
            }
        });
        let started = Instant::now();
        let mut ticks = tokio::time::interval(PUBLISH_TICK);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut published = 0u64;
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => break,
                _ = ticks.tick() => {}
            }
            let slowest = self
                .members
                .iter()
                .map(|m| m.load(Ordering::Relaxed))
                .min()
                .unwrap_or(0);
            let mut allowed = self
                .window
                .saturating_sub(published.saturating_sub(slowest));
            if let Some(rate) = self.rate {
                let due = (started.elapsed().as_secs_f64() * rate) as u64;
                allowed = allowed.min(due.saturating_sub(published));
            }
            for _ in 0..allowed {
                let stamp = Stamp {
                    sender: self.sender,
                    counter: published + 1,
                    sent_micros: now_micros(),
                };
                let frame = TutorialSend {
                    message: stamp.encode(&self.run, self.size),
                };
                if sender.send(&frame).await.is_err() {
                    drain.abort();
                    return published;
                }
                published += 1;
            }
        }
        let _closing = sender.close("done").await;
        drain.abort();
        published
    }
}
