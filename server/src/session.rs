//! One WebSocket session: a single task and a single `select!` loop over the client's frames,
//! the outbound queue, the heartbeat and shutdown. Whatever ends the loop, the session leaves
//! its rooms (by dropping its memberships) and sends at most one close frame.

mod commands;
mod decode;
mod exit;
mod heartbeat;
mod rate;

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use roomcast_protocol::close::fit_close_reason;
use roomcast_protocol::{RoomName, ServerFrame, UserName};
use tokio::sync::OwnedSemaphorePermit;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tracing::{debug, info};

use self::commands::InFlight;
pub(crate) use self::exit::Exit;
use self::heartbeat::Heartbeat;
use self::rate::RateLimit;
use crate::frames::{self, Protocol};
use crate::outbox::{Outbox, Ready};
use crate::registry::Membership;
use crate::serve::ResetOnClose;
use crate::state::AppState;

/// How long the final close frame may take to write before the socket is just dropped.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long to keep reading after our close frame, so the client's reply completes the closing
/// handshake and the client sees a clean close rather than a reset.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Identifies a session in logs.
pub(crate) type SessionId = u64;

/// Everything decided at the upgrade, before the socket exists.
#[derive(Debug)]
pub(crate) struct SessionStart {
    pub(crate) id: SessionId,
    pub(crate) user: UserName,
    pub(crate) protocol: Protocol,
    /// The room in the URL, joined at connect.
    pub(crate) room: Option<RoomName>,
    /// Set when the URL was invalid: the session only closes with this code and reason.
    pub(crate) refusal: Option<Exit>,
}

/// Resources a session holds for its whole life and releases by being dropped.
#[derive(Debug)]
pub(crate) struct SessionGuards {
    /// One of `--max-connections`.
    pub(crate) _permit: OwnedSemaphorePermit,
    /// Lets shutdown wait for this session.
    pub(crate) _tracked: TaskTrackerToken,
    /// The connection's reset switch (absent when the socket did not come from our accept loop).
    pub(crate) reset: Option<ResetOnClose>,
}

struct Session {
    id: SessionId,
    user: UserName,
    protocol: Protocol,
    outbox: Outbox,
    memberships: HashMap<RoomName, Membership>,
    /// Publishes waiting for the relay's answer, oldest first (answers come in this order).
    in_flight: VecDeque<InFlight>,
    rate: RateLimit,
    state: Arc<AppState>,
}

/// Runs a session to its end.
pub(crate) async fn run(
    mut socket: WebSocket,
    start: SessionStart,
    state: Arc<AppState>,
    guards: SessionGuards,
) {
    state.metrics.session_opened();
    let config = &state.config;
    let mut session = Session {
        id: start.id,
        user: start.user,
        protocol: start.protocol,
        outbox: Outbox::new(config.max_queue_bytes),
        memberships: HashMap::new(),
        in_flight: VecDeque::new(),
        rate: RateLimit::new(config.rate_per_second, config.rate_burst),
        state: state.clone(),
    };
    let exit = match start.refusal {
        Some(refusal) => refusal,
        None => {
            let outcome = match session.begin(start.room).await {
                Ok(()) => session.drive(&mut socket).await,
                Err(exit) => Err(exit),
            };
            match outcome {
                Err(exit) => exit,
                Ok(never) => match never {},
            }
        }
    };
    session.end(&mut socket, &exit).await;
    if exit.resets_socket()
        && let Some(reset) = &guards.reset
    {
        reset.arm();
    }
    drop(socket);
    drop(guards);
}

impl Session {
    /// Queues `welcome` (typed) and joins the room in the URL. A tutorial session that cannot
    /// join its room has nothing to do and ends (1013).
    async fn begin(&mut self, room: Option<RoomName>) -> Result<(), Exit> {
        if self.protocol == Protocol::Typed {
            let welcome = ServerFrame::Welcome {
                user: self.user.clone(),
                server: self.state.server_info(),
            };
            self.queue(frames::typed(&welcome));
        }
        if let Some(room) = room {
            self.join(room, None, None).await?;
        }
        Ok(())
    }

    /// Queues a frame for this session alone (answers, errors).
    fn queue(&self, frame: Utf8Bytes) {
        // An overflow here is noticed by the loop's next `ready()`, like any other.
        let _pushed = self.outbox.push(frame);
    }

    /// The loop. It only ever ends with the reason it ended.
    async fn drive(&mut self, socket: &mut WebSocket) -> Result<Infallible, Exit> {
        let state = self.state.clone();
        let config = &state.config;
        let mut heartbeat = Heartbeat::new(config.ping_interval, config.ping_timeout);
        // Both futures live across iterations: re-creating them per frame would register and
        // unregister a waiter (the shutdown one on a list every session shares) per message.
        let shutdown = self.state.drain.signal(self.id);
        let eviction = tokio::time::sleep(config.ping_timeout);
        tokio::pin!(shutdown, eviction);
        let mut batch = Vec::new();
        loop {
            let awaiting_pong = heartbeat.deadline().is_some();
            tokio::select! {
                // Order matters. Inbound comes before the eviction check, so a pong that is
                // already here is counted before its ping is declared unanswered; the outbox
                // comes last, so a busy room cannot starve reading pongs and frames (the other
                // arms are ready only now and then; the outbox can be ready all the time).
                biased;
                () = &mut shutdown => return Err(Exit::Shutdown),
                inbound = socket.recv() => {
                    heartbeat.heard();
                    match inbound {
                        Some(Ok(Message::Text(text))) => self.handle_text(text.as_str()).await?,
                        Some(Ok(Message::Binary(_))) => self.refuse_binary()?,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Close(_))) => return Err(Exit::ClientClosed),
                        Some(Err(e)) => {
                            return Err(classify_read_error(e, config.max_message_bytes));
                        }
                        None => return Err(Exit::Vanished),
                    }
                }
                () = &mut eviction, if awaiting_pong => {
                    return Err(Exit::Timeout(config.ping_timeout));
                }
                // A publish the relay answered: its ack or error, in the order they were sent.
                answered = commands::next_answer(&mut self.in_flight) => self.answered(answered),
                () = heartbeat.ping_due() => {
                    self.write(socket, Message::Ping(Default::default())).await?;
                    if let Some(deadline) = heartbeat.pinged() {
                        eviction.as_mut().reset(deadline);
                    }
                }
                ready = self.outbox.ready() => match ready {
                    Ready::Overflowed => return Err(Exit::QueueOverflow(config.max_queue_bytes)),
                    Ready::Frames => self.write_batch(socket, &mut batch).await?,
                },
            }
        }
    }

    /// Writes queued frames with one flush, racing the write against an overflow so a stalled
    /// socket is evicted as soon as its queue passes the bound.
    async fn write_batch(
        &self,
        socket: &mut WebSocket,
        batch: &mut Vec<Utf8Bytes>,
    ) -> Result<(), Exit> {
        let bytes = self.outbox.take_batch(batch);
        let write = async {
            for frame in batch.drain(..) {
                socket.feed(Message::Text(frame)).await?;
            }
            socket.flush().await
        };
        let config = &self.state.config;
        let result = tokio::select! {
            result = tokio::time::timeout(config.write_timeout, write) => result,
            () = self.outbox.overflowed() => {
                return Err(Exit::QueueOverflow(config.max_queue_bytes));
            }
        };
        batch.clear();
        self.outbox.release(bytes);
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                debug!(session = self.id, error = %e, "write failed");
                Err(Exit::Vanished)
            }
            Err(_elapsed) => Err(Exit::WriteStalled(config.write_timeout)),
        }
    }

    /// Writes one control frame directly, ahead of the queue (pings must not wait behind it).
    async fn write(&self, socket: &mut WebSocket, message: Message) -> Result<(), Exit> {
        let timeout = self.state.config.write_timeout;
        match tokio::time::timeout(timeout, socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                debug!(session = self.id, error = %e, "write failed");
                Err(Exit::Vanished)
            }
            Err(_elapsed) => Err(Exit::WriteStalled(timeout)),
        }
    }

    /// Leaves every room (telling the others why), then closes the socket.
    async fn end(mut self, socket: &mut WebSocket, exit: &Exit) {
        let reason = exit.leave_reason();
        for (_, mut membership) in self.memberships.drain() {
            membership.set_reason(reason);
        }
        self.outbox.close();
        // The session is over for everyone else; only its closing handshake remains.
        self.state.metrics.session_closed();
        if let Some(label) = exit.eviction_label() {
            self.state.metrics.record_eviction(label);
        }
        match exit.close_frame() {
            Some((code, text)) => {
                if exit.eviction_label().is_some_and(|l| l != "shutdown") {
                    info!(session = self.id, user = %self.user, code = code.as_u16(), reason = %text, "evicted");
                }
                let frame = CloseFrame {
                    code: code.as_u16(),
                    reason: Utf8Bytes::from(fit_close_reason(&text)),
                };
                let sent = tokio::time::timeout(
                    CLOSE_WRITE_TIMEOUT,
                    socket.send(Message::Close(Some(frame))),
                )
                .await;
                if !matches!(sent, Ok(Ok(()))) {
                    debug!(session = self.id, "close frame not delivered");
                    return;
                }
                if exit.peer_reads() {
                    linger(socket).await;
                }
            }
            None if *exit == Exit::ClientClosed => {
                // tungstenite queued the echo of the client's close; reading flushes it.
                linger(socket).await;
            }
            None => {}
        }
        debug!(session = self.id, ?exit, "session ended");
    }
}

/// Reads (and drops) until the peer completes the close or [`CLOSE_LINGER`] passes.
async fn linger(socket: &mut WebSocket) {
    let drained = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(_)) = socket.recv().await {}
    });
    if drained.await.is_err() {
        debug!("peer did not complete the closing handshake in time");
    }
}

fn classify_read_error(error: axum::Error, max_message_bytes: usize) -> Exit {
    let inner = error.into_inner();
    match inner.downcast_ref::<WsError>() {
        Some(WsError::Capacity(CapacityError::MessageTooLong { .. })) => {
            Exit::TooBig(max_message_bytes)
        }
        // tungstenite reports a reset or end of stream without a close frame as a protocol
        // error; for us it is a client that vanished, not one that misbehaved.
        Some(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => Exit::Vanished,
        Some(WsError::Protocol(_) | WsError::Utf8(_)) => Exit::ProtocolError,
        _ => Exit::Vanished,
    }
}
