//! A client that completes the handshake, lives for a moment, then goes dead in a chosen way.
//!
//! - `nopong`: keeps reading and discarding but never writes again, so pings go unanswered
//!   (what websocat's `--inhibit-pongs` and Tsung do by accident).
//! - `noread`: never reads again, so nothing is answered and its buffers fill.
//! - `vanish`: drops the TCP socket without a close frame.
//! - `pause`: stops reading and answering for `--pause`, then resumes like a live client (a
//!   laptop lid, a GC pause, SIGSTOP/SIGCONT).
//! - `blackhole`: its socket lives in a network namespace whose link the command cuts right
//!   after its last sign of life: nothing more arrives either way, no FIN, no RST (a phone
//!   leaving Wi-Fi, a NAT forgetting the flow). Root only; see `dead-clients`.
//!
//! "Going dead" is the ghost's last sign of life: an unsolicited pong (RFC 6455 §5.5.3 allows
//! one), which the server counts like any frame. From that instant the server owes an eviction
//! between `ping-timeout` and `ping-interval + ping-timeout`.

use std::time::Duration;

use clap::ValueEnum;
use roomcast_protocol::UserName;
use roomcast_protocol::raw::{client_frame, opcode};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

use roomcast_protocol::raw::{RawError, RawSocket};

/// How long a stopped ghost may take to hand back its log (its own reads are bounded by this).
const FINISH_GRACE: Duration = Duration::from_secs(3);

/// How a ghost goes dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Reads and discards, never answers pings.
    Nopong,
    /// Never reads; buffers fill.
    Noread,
    /// Drops the socket without a close frame.
    Vanish,
    /// Stops for --pause, then resumes.
    Pause,
    /// Lost behind a cut network link (a network namespace; needs root).
    Blackhole,
}

impl Mode {
    /// Every mode that needs nothing but a socket (so not `blackhole`), in report order.
    pub const ALL: [Mode; 4] = [Mode::Nopong, Mode::Noread, Mode::Vanish, Mode::Pause];

    /// The mode's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Nopong => "nopong",
            Mode::Noread => "noread",
            Mode::Vanish => "vanish",
            Mode::Pause => "pause",
            Mode::Blackhole => "blackhole",
        }
    }
}

/// What the command tells a ghost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// Keep going.
    Run,
    /// Stop and close cleanly (it was not evicted).
    Stop,
    /// It was evicted: read what is left to find the server's close frame, then stop.
    Drain,
}

/// What one ghost does.
#[derive(Debug, Clone, Copy)]
pub struct GhostPlan {
    /// How it goes dead.
    pub mode: Mode,
    /// How long it behaves (answers pings) before going dead.
    pub live_for: Duration,
    /// For `pause`: how long it stays silent before resuming.
    pub pause: Duration,
}

/// What a ghost's socket saw.
#[derive(Debug, Clone, Default)]
pub struct GhostLog {
    /// Its last sign of life.
    pub dead_at: Option<Instant>,
    /// For `pause`: when it started answering again.
    pub resumed_at: Option<Instant>,
    /// The close frame it received: code, reason, and when.
    pub close: Option<(u16, String, Instant)>,
    /// When its socket ended without a close frame.
    pub eof_at: Option<Instant>,
    /// A socket error, if one ended it.
    pub error: Option<String>,
}

impl GhostLog {
    /// When the socket learned it was closed (a close frame or the end of the stream).
    pub fn ended_at(&self) -> Option<Instant> {
        self.close.as_ref().map(|c| c.2).or(self.eof_at)
    }
}

/// A running ghost.
#[derive(Debug)]
pub struct Ghost {
    /// Its user name (unique, so the observer can tell ghosts apart).
    pub user: UserName,
    /// How it goes dead.
    pub mode: Mode,
    dead: Option<oneshot::Receiver<Instant>>,
    stop: watch::Sender<Signal>,
    task: JoinHandle<GhostLog>,
}

impl Ghost {
    /// Connects to `socket_url` (a room socket carrying `?user=`) and starts living `plan`.
    pub async fn connect(
        socket_url: &Url,
        user: UserName,
        plan: GhostPlan,
        timeout: Duration,
    ) -> Result<Self, RawError> {
        let socket = RawSocket::connect(socket_url, None, timeout).await?;
        Ok(Self::start(socket, user, plan))
    }

    /// [`Ghost::connect`] over a TCP stream the caller connected (for `blackhole`: a socket made
    /// inside the namespace), upgraded to `socket_url` within `timeout`.
    pub async fn upgrade(
        stream: tokio::net::TcpStream,
        socket_url: &Url,
        user: UserName,
        plan: GhostPlan,
        timeout: Duration,
    ) -> Result<Self, RawError> {
        let upgrading = RawSocket::upgrade(stream, socket_url, None);
        let socket = match tokio::time::timeout(timeout, upgrading).await {
            Ok(socket) => socket?,
            Err(_) => {
                return Err(RawError::Io {
                    url: socket_url.to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no upgrade in {timeout:?}"),
                    ),
                });
            }
        };
        Ok(Self::start(socket, user, plan))
    }

    fn start(socket: RawSocket, user: UserName, plan: GhostPlan) -> Self {
        let (dead_tx, dead_rx) = oneshot::channel();
        let (stop, stopped) = watch::channel(Signal::Run);
        let task = tokio::spawn(haunt(socket, plan, dead_tx, stopped));
        Self {
            user,
            mode: plan.mode,
            dead: Some(dead_rx),
            stop,
            task,
        }
    }

    /// Waits until the ghost has gone dead; `None` if it ended first (evicted while alive).
    pub async fn dead_at(&mut self) -> Option<Instant> {
        match self.dead.take() {
            Some(dead) => dead.await.ok(),
            None => None,
        }
    }

    /// Tells the ghost to stop and returns what its socket saw. An `evicted` ghost first reads
    /// what is left for the server's close frame; one that was not closes cleanly (1000) so it
    /// does not become a dead client of the next run.
    pub async fn finish(self, evicted: bool) -> GhostLog {
        let signal = if evicted { Signal::Drain } else { Signal::Stop };
        let _sent = self.stop.send(signal);
        match tokio::time::timeout(FINISH_GRACE, self.task).await {
            Ok(Ok(log)) => log,
            Ok(Err(join)) => GhostLog {
                error: Some(format!("the ghost task failed: {join}")),
                ..GhostLog::default()
            },
            Err(_) => GhostLog {
                error: Some(format!("the ghost did not stop within {FINISH_GRACE:?}")),
                ..GhostLog::default()
            },
        }
    }
}

/// How a conversation with the server ended.
enum Ended {
    /// The time to stay alive passed.
    Deadline,
    /// The command said stop.
    Stopped,
    /// The socket closed (close frame, end of stream or error), recorded in the log.
    Closed,
}

async fn haunt(
    mut socket: RawSocket,
    plan: GhostPlan,
    dead: oneshot::Sender<Instant>,
    mut stop: watch::Receiver<Signal>,
) -> GhostLog {
    let mut log = GhostLog::default();
    let alive_until = Instant::now() + plan.live_for;
    match converse(&mut socket, &mut log, Some(alive_until), true, &mut stop).await {
        Ended::Deadline => {}
        Ended::Stopped => {
            socket.close().await;
            return log;
        }
        Ended::Closed => return log,
    }
    if let Err(e) = socket.pong(b"").await {
        log.error = Some(format!("could not send the last sign of life: {e}"));
        return log;
    }
    let now = Instant::now();
    log.dead_at = Some(now);
    let _told = dead.send(now);
    let ended = match plan.mode {
        Mode::Vanish => {
            // Dropping the stream sends FIN and no close frame.
            drop(socket);
            return log;
        }
        // A blackhole ghost behaves as nopong until the cut, a moment later; after it, nothing
        // reaches it anyway.
        Mode::Nopong | Mode::Blackhole => {
            converse(&mut socket, &mut log, None, false, &mut stop).await
        }
        Mode::Noread => {
            let stopped = stop.wait_for(|s| *s != Signal::Run).await.is_ok();
            tracing::debug!(stopped, "noread ghost stops");
            Ended::Stopped
        }
        Mode::Pause => {
            let resume_at = Instant::now() + plan.pause;
            let resumed = tokio::select! {
                () = tokio::time::sleep_until(resume_at) => true,
                _ = stop.wait_for(|s| *s != Signal::Run) => false,
            };
            if resumed {
                log.resumed_at = Some(Instant::now());
                converse(&mut socket, &mut log, None, true, &mut stop).await
            } else {
                Ended::Stopped
            }
        }
    };
    if matches!(ended, Ended::Stopped) {
        // A noread ghost has not looked at its socket since it went dead: look now.
        if *stop.borrow() == Signal::Drain || plan.mode == Mode::Noread {
            let drain_until = Instant::now() + FINISH_GRACE / 2;
            // A stop signal that never fires: the sender stays alive for the drain.
            let (_keep, mut never) = watch::channel(Signal::Run);
            let drained = converse(&mut socket, &mut log, Some(drain_until), false, &mut never);
            if matches!(drained.await, Ended::Closed) {
                return log;
            }
        }
        socket.close().await;
    }
    log
}

/// Reads frames until `until`, a stop, or the end of the socket; answers pings when `answer`.
async fn converse(
    socket: &mut RawSocket,
    log: &mut GhostLog,
    until: Option<Instant>,
    answer: bool,
    stop: &mut watch::Receiver<Signal>,
) -> Ended {
    loop {
        let read = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s != Signal::Run) => return Ended::Stopped,
            () = sleep_until_some(until) => return Ended::Deadline,
            read = socket.reader.fill(&mut socket.stream) => read,
        };
        match read {
            Ok(0) => {
                log.eof_at = Some(Instant::now());
                return Ended::Closed;
            }
            Ok(_) => {}
            Err(e) => {
                log.eof_at = Some(Instant::now());
                log.error = Some(format!("socket error: {e}"));
                return Ended::Closed;
            }
        }
        loop {
            let frame = match socket.reader.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    log.error = Some(format!("bad frame from the server: {e}"));
                    return Ended::Closed;
                }
            };
            if let Some(code) = frame.close_code() {
                log.close = Some((code, frame.close_reason(), Instant::now()));
                return Ended::Closed;
            }
            if answer && frame.opcode == opcode::PING {
                let pong = client_frame(opcode::PONG, frame.payload);
                if let Err(e) = socket.stream.write_all(&pong).await {
                    log.eof_at = Some(Instant::now());
                    log.error = Some(format!("could not answer a ping: {e}"));
                    return Ended::Closed;
                }
            }
        }
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
/// When each ghost went dead (in order; `None` for one that ended first), and the latest of
/// those moments (now when none died): evictions are awaited from there.
pub async fn deaths<'a>(
    ghosts: impl IntoIterator<Item = &'a mut Ghost>,
) -> (Vec<Option<Instant>>, Instant) {
    let mut dead_at = Vec::new();
    for ghost in ghosts {
        dead_at.push(ghost.dead_at().await);
    }
    let last = dead_at
        .iter()
        .flatten()
        .max()
        .copied()
        .unwrap_or_else(Instant::now);
    (dead_at, last)
}
