//! One WebSocket session: a single task and a single loop over the client's frames, the
//! outbound queue, the heartbeat and shutdown. Whatever ends the loop, the session leaves its
//! rooms (by dropping its memberships) and sends at most one close frame.
//!
//! Each turn of the loop reads once (if the client sent something), writes once (if anything
//! is queued and the socket takes bytes), and checks its deadlines, then waits for the next
//! of those to become possible. Reading never drains the socket before writing gets its turn,
//! so a client that sends a burst still receives its answers, and a busy room never keeps the
//! loop from reading pongs.

mod batch;
mod closing;
mod commands;
mod decode;
mod exit;
mod expiry;
mod heartbeat;
mod inbound;
mod memberships;
mod rate;
mod waiting;
mod writer;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

use axum::http::HeaderMap;
use bytes::Bytes;
use roomcast_protocol::{RoomName, ServerFrame, UserName};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::task::task_tracker::TaskTrackerToken;

use self::commands::InFlight;
pub(crate) use self::exit::Exit;
use self::expiry::Expiries;
use self::heartbeat::Heartbeat;
use self::memberships::Memberships;
use self::rate::RateLimit;
use self::waiting::WaitingJoins;
use self::writer::Writer;
use crate::access::{Grant, IpPermit};
use crate::frames::{self, Frame, Protocol};
use crate::room::Room;
use crate::state::AppState;
use crate::websocket::reader::FrameReader;
use crate::websocket::tcp;

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
    /// Set when the URL was invalid or access was refused: the session only closes with this
    /// code and reason, and is sent nothing else.
    pub(crate) refusal: Option<Exit>,
    /// The handshake's verified token, for typed joins of private rooms that carry none.
    pub(crate) grant: Option<Box<Grant>>,
    /// The handshake's headers the join proxy forwards, for typed joins that ask it (only
    /// with `--join-proxy`).
    pub(crate) proxy_headers: Option<Box<HeaderMap>>,
}

/// Resources a session holds for its whole life and releases by being dropped.
#[derive(Debug)]
pub(crate) struct SessionGuards {
    /// One of `--max-connections`.
    pub(crate) _permit: OwnedSemaphorePermit,
    /// One of `--max-connections-per-ip` for the client's IP (when that limit is on).
    pub(crate) _ip: Option<IpPermit>,
    /// Lets shutdown wait for this session.
    pub(crate) _tracked: TaskTrackerToken,
}

struct Session {
    id: SessionId,
    user: UserName,
    protocol: Protocol,
    /// What the socket is sent, in order (see `writer.rs`).
    writer: Writer,
    memberships: Memberships,
    /// Publishes waiting for the relay's answer, oldest first (answers come in this order).
    in_flight: VecDeque<InFlight>,
    /// Joins waiting for their room to be ready on this node (with a relay).
    waiting_joins: WaitingJoins,
    /// Rooms holding publishes of the current read whose members were not woken yet
    /// (`batch.rs`).
    deferred: Vec<Arc<Room>>,
    /// The handshake's token, verified (boxed: most sessions have none, and stay small).
    grant: Option<Box<Grant>>,
    /// What the join proxy forwards of the handshake ([`SessionStart::proxy_headers`]).
    proxy_headers: Option<Box<HeaderMap>>,
    /// Until the client's first frame or first room: when the session is closed for having
    /// neither (`--handshake-timeout` after the upgrade), so an idle socket cannot hold a slot.
    first_frame_deadline: Option<Instant>,
    /// The private rooms held by a token, until its `exp`.
    expiries: Expiries,
    rate: RateLimit,
    state: Arc<AppState>,
}

/// The socket and what is in flight on it in either direction.
struct Connection {
    stream: TcpStream,
    reader: FrameReader,
}

/// Runs a session to its end on `stream`; `leftover` is what the client sent past its upgrade
/// request.
pub(crate) async fn run(
    stream: TcpStream,
    leftover: Bytes,
    start: SessionStart,
    state: Arc<AppState>,
    guards: SessionGuards,
) {
    state.metrics.session_opened();
    let config = &state.config;
    tcp::bound(
        &stream,
        config.send_buffer_bytes,
        config.ping_interval + config.ping_timeout,
    );
    let mut reader = FrameReader::new(config.max_message_bytes);
    if !leftover.is_empty() {
        reader.read_buffer().extend_from_slice(&leftover);
    }
    // Even empty, these bytes hold hyper's whole read buffer: let it go now, not at the end.
    drop(leftover);
    let mut connection = Connection { stream, reader };
    let mut session = Session {
        id: start.id,
        user: start.user,
        protocol: start.protocol,
        writer: Writer::new(config.max_queue_bytes),
        memberships: Memberships::default(),
        in_flight: VecDeque::new(),
        waiting_joins: WaitingJoins::default(),
        deferred: Vec::new(),
        grant: start.grant,
        proxy_headers: start.proxy_headers,
        first_frame_deadline: Some(now() + config.access.handshake_timeout),
        expiries: Expiries::default(),
        rate: RateLimit::new(config.rate_per_second, config.rate_burst),
        state: state.clone(),
    };
    let exit = match start.refusal {
        Some(refusal) => refusal,
        None => {
            let outcome = match session.begin(start.room).await {
                Ok(()) => session.drive(&mut connection).await,
                Err(exit) => Err(exit),
            };
            match outcome {
                Err(exit) => exit,
                Ok(never) => match never {},
            }
        }
    };
    // Boxed: the closing handshake's future is the largest of a session's life, and unboxed it
    // would size every session's task for its whole life, idle ones included.
    Box::pin(session.end(connection, &exit)).await;
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
            // Awaited here, before the loop: a tutorial client may send its first message at
            // once, and it must find its room joined (with a relay, loaded on this node).
            let lease = self
                .state
                .relay
                .prepare_join(&self.state.rooms, &room)
                .await;
            // A private URL room was opened by the handshake's token (or by the join proxy,
            // when there was none): the token's room is held until its `exp`.
            let expires = self
                .grant
                .as_ref()
                .filter(|_| self.state.access.is_private(&room))
                .map(|grant| grant.admits_until());
            match lease {
                Ok(lease) => self.join_now(room.clone(), None, None, lease)?,
                Err(e) => self.join_refused(&e, room.clone(), None)?,
            }
            self.held_until(&room, expires);
        }
        Ok(())
    }

    /// Queues a frame for this session alone (answers, errors) after everything its rooms
    /// hold for it now, so it arrives in the order the client caused it. An overflow here is
    /// noticed by the loop's next turn.
    fn queue(&mut self, frame: Frame) {
        self.writer.pull_all(&self.memberships);
        self.writer.queue(frame);
    }

    /// The loop. It only ever ends with the reason it ended.
    async fn drive(&mut self, connection: &mut Connection) -> Result<Infallible, Exit> {
        let state = self.state.clone();
        let config = &state.config;
        let mut heartbeat = Heartbeat::new(config.ping_interval, config.ping_timeout, now());
        // One timer for every deadline (ping, eviction, write stall), re-armed only when the
        // earliest one moves: a timer per deadline would cost memory in every idle session.
        let mut armed_for = heartbeat.next_event();
        let timer = tokio::time::sleep_until(armed_for);
        // Lives across iterations: re-creating it per turn would register and unregister a
        // waiter on a list every session shares. It fires in this session's drain wave. It is
        // polled once, here, which registers the wake; the turns read the wave's flag instead
        // (set before the wake), since polling the future takes two locks the wave shares:
        // 10% of the instructions per delivery at one message in flight (callgrind).
        let shutdown = self.state.drain.signal(self.id);
        let drained = state.drain.fired_flag(self.id);
        tokio::pin!(shutdown, timer);
        if poll_fn(|cx| Poll::Ready(shutdown.as_mut().poll(cx).is_ready())).await {
            return Err(Exit::Shutdown);
        }
        if connection.reader.has_pending() {
            // The client's first frames came with its upgrade request.
            self.handle_batch(connection, &mut heartbeat)?;
        }
        loop {
            self.read_turn(connection, &mut heartbeat)?;
            let writer = &mut self.writer;
            if writer.overflowed() {
                return Err(Exit::QueueOverflow(config.max_queue_bytes));
            }
            writer.top_up(&self.memberships);
            let stream = &connection.stream;
            if let Err(e) = writer.write_turn(stream) {
                tracing::debug!(session = self.id, error = %e, "write failed");
                return Err(Exit::Vanished);
            }
            let next = self.check_deadlines(&mut heartbeat, stream)?;
            if next != armed_for {
                armed_for = next;
                timer.as_mut().reset(next);
            }
            let pending = self.writer.has_pending();
            // Readiness and the rings do not spend tokio's cooperative budget, and a busy
            // session finds one of them ready every time: spend a unit per turn, so that such a
            // session still lets the others on its thread run.
            tokio::task::consume_budget().await;
            tokio::select! {
                biased;
                () = poll_fn(|_| {
                    if drained.load(Ordering::Acquire) {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                }) => return Err(Exit::Shutdown),
                () = &mut timer => {}
                // Frames in a room's ring (while the socket has taken everything), or this
                // session fell too far behind one.
                fed = self.memberships.ready(!pending) => {
                    if fed.is_err() {
                        return Err(Exit::QueueOverflow(config.max_queue_bytes));
                    }
                }
                // A publish the relay answered: its ack or error, in the order they were sent.
                answered = commands::next_answer(&mut self.in_flight), if !self.in_flight.is_empty() => {
                    self.answered(answered);
                }
                // Polled only while a join waits: an idle arm must cost the hot loop nothing.
                ready = self.waiting_joins.next(), if self.waiting_joins.is_waiting() => {
                    self.finish_waiting_join(ready)?;
                }
                // Readiness only wakes the loop; the turns above do the reading and writing.
                // Polled, not `readable()`/`writable()`: those futures hold a waiter node of
                // ~150 bytes each in every session's task; the poll uses the socket's own slot.
                _ = poll_fn(|cx| stream.poll_write_ready(cx)), if pending => {}
                _ = poll_fn(|cx| stream.poll_read_ready(cx)) => {}
            }
        }
    }

    /// Acts on the deadlines that have passed and returns the next one.
    fn check_deadlines(
        &mut self,
        heartbeat: &mut Heartbeat,
        stream: &TcpStream,
    ) -> Result<Instant, Exit> {
        let config = &self.state.config;
        let writer = &mut self.writer;
        let now = now();
        let stall_deadline = writer
            .blocked_since()
            .map(|since| since + config.write_timeout);
        if stall_deadline.is_some_and(|deadline| now >= deadline) {
            return Err(Exit::WriteStalled(config.write_timeout));
        }
        if heartbeat.deadline().is_some_and(|deadline| now >= deadline) {
            return Err(Exit::Timeout(config.ping_timeout));
        }
        if heartbeat.ping_due(now) {
            writer.trim();
            writer.put_ahead(Frame::ping(), stream);
        }
        while let Some(room) = self.expiries.take_due(now) {
            self.token_expired(room)?;
        }
        let next = heartbeat.next_event();
        let next = stall_deadline.map_or(next, |stall| stall.min(next));
        let next = self.expiries.next().map_or(next, |end| end.min(next));
        Ok(self
            .first_frame_deadline(now)?
            .map_or(next, |join| join.min(next)))
    }

    /// The first-frame deadline while the client has sent no frame and the session is in no
    /// room (`None` after either: a client that pings but joins nothing yet, like a chat
    /// client waiting for its user, is not idle). Past it the session ends with 4003, unless a
    /// join is still waiting: that join's outcome wakes the loop, and the deadline is checked
    /// again then.
    fn first_frame_deadline(&mut self, now: Instant) -> Result<Option<Instant>, Exit> {
        let Some(deadline) = self.first_frame_deadline else {
            return Ok(None);
        };
        if !self.memberships.is_empty() {
            self.first_frame_deadline = None;
            return Ok(None);
        }
        if now < deadline {
            return Ok(Some(deadline));
        }
        if self.waiting_joins.is_waiting() {
            // Not armed: a deadline in the past would wake the loop at once, every turn.
            return Ok(None);
        }
        Err(Exit::Silent(self.state.config.access.handshake_timeout))
    }
}

/// The loop's clock (tokio's, so tests with paused time see the same one).
fn now() -> Instant {
    Instant::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Idle memory is mostly each session's task, which is as large as the largest state of
    /// `run`'s future: keep that small (issue 9's target: 3.5 KB of RSS per idle session).
    /// Measured in this (debug) build: 1,512 bytes; it was 2,176 before the closing future was
    /// boxed and the loop's readiness, relay and join waits became polls.
    const MAX_SESSION_FUTURE_BYTES: usize = 1_600;

    #[tokio::test]
    async fn a_session_task_stays_small() {
        let state = AppState::new(crate::Config::default().validate().expect("valid defaults"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (stream, _) = listener.accept().await.expect("accept");
        let start = SessionStart {
            id: 1,
            user: UserName::new("ana").expect("valid user"),
            protocol: Protocol::Tutorial,
            room: None,
            refusal: None,
            grant: None,
            proxy_headers: None,
        };
        let guards = SessionGuards {
            _permit: state
                .connection_permits
                .clone()
                .try_acquire_owned()
                .expect("a permit"),
            _ip: None,
            _tracked: state.sessions.token(),
        };
        let session = run(stream, Bytes::new(), start, state.clone(), guards);
        let size = std::mem::size_of_val(&session);
        assert!(
            size <= MAX_SESSION_FUTURE_BYTES,
            "a session's future is {size} bytes, over {MAX_SESSION_FUTURE_BYTES}"
        );
    }
}
