//! A fanout publisher: one raw tutorial session per room that keeps at most `window` messages
//! in flight (published, not yet received by the room's slowest member), or follows `rate`.
//!
//! It is a member of its room, so every message comes back to it. A separate task reads those
//! on the socket's own read half (frame headers only, no JSON), so the publisher never falls
//! behind its own echo and gets evicted as slow; pings are handed to the writer to answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use roomcast_protocol::TutorialSend;
use roomcast_protocol::raw::{client_frame, opcode};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::load::stamp::{Stamp, now_micros};
use roomcast_protocol::raw::{FrameReader, RawSocket};

/// How often a publisher looks at its members' counters: tokio's timer resolution.
const PUBLISH_TICK: Duration = Duration::from_millis(1);

/// How long a stopping publisher waits for the server to answer its close.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// Pings waiting for their pong; the server sends one per interval, so a few is plenty (a
/// full queue drops the extra ping, and the next one is answered).
const PENDING_PINGS: usize = 4;

/// One room's publisher.
pub struct Publisher {
    /// The room's session (joined through its URL, named `pub-...`).
    pub socket: RawSocket,
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

/// What a publisher did.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublishReceipt {
    /// Messages written to its socket.
    pub messages: u64,
    /// The close code, when the server ended its session (it should not).
    pub closed_with: Option<u16>,
}

impl Publisher {
    /// Publishes until stopped or closed.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> PublishReceipt {
        let RawSocket { stream, reader } = self.socket;
        let (read_half, mut write_half) = stream.into_split();
        let (pings, mut pending) = mpsc::channel(PENDING_PINGS);
        let mut echo = tokio::spawn(read_echo(read_half, reader, pings));
        let started = Instant::now();
        let mut ticks = tokio::time::interval(PUBLISH_TICK);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut published = 0u64;
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => break,
                _ = ticks.tick() => {}
            }
            if echo.is_finished() {
                break;
            }
            while let Ok(ping) = pending.try_recv() {
                batch.extend(client_frame(opcode::PONG, &ping));
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
            for n in 1..=allowed {
                let stamp = Stamp {
                    sender: self.sender,
                    counter: published + n,
                    sent_micros: now_micros(),
                };
                let frame = TutorialSend {
                    message: stamp.encode(&self.run, self.size),
                };
                // A struct of one string always serializes.
                let json = serde_json::to_vec(&frame).unwrap_or_default();
                batch.extend(client_frame(opcode::TEXT, &json));
            }
            // One write per tick for the whole batch: the server reads it in one go too.
            if write_half.write_all(&batch).await.is_err() {
                break;
            }
            published += allowed;
            batch.clear();
        }
        let closed_with = if echo.is_finished() {
            echo.await.ok().flatten()
        } else {
            let mut close = 1000u16.to_be_bytes().to_vec();
            close.extend_from_slice(b"done");
            let _closing = write_half
                .write_all(&client_frame(opcode::CLOSE, &close))
                .await;
            // Keep reading until the server answers the close: a socket dropped with echo bytes
            // unread is reset, and a reset makes the server discard the last batch it had not
            // read yet, which the run would then count as lost.
            if tokio::time::timeout(CLOSE_WITHIN, &mut echo).await.is_err() {
                echo.abort();
            }
            None
        };
        PublishReceipt {
            messages: published,
            closed_with,
        }
    }
}

/// Reads the publisher's echo until the socket ends; passes pings on; returns the close code
/// when the server closed the session.
async fn read_echo(
    mut read_half: OwnedReadHalf,
    mut reader: FrameReader,
    pings: mpsc::Sender<Vec<u8>>,
) -> Option<u16> {
    loop {
        match reader.fill(&mut read_half).await {
            Ok(0) | Err(_) => return Some(1006),
            Ok(_) => {}
        }
        while let Ok(Some(frame)) = reader.next_frame() {
            match frame.opcode {
                opcode::PING => {
                    let _queued = pings.try_send(frame.payload.to_vec());
                }
                opcode::CLOSE => return frame.close_code(),
                _ => {}
            }
        }
    }
}
