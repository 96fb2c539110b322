//! What a session does with each client frame. Answers go through the session's own outbox, so
//! they are ordered with the room messages around them.

use std::collections::VecDeque;
use std::time::Instant;

use roomcast_protocol::{
    ClientFrame, CloseCode, ErrorCode, LeaveReason, Position, Ref, RoomName, ServerFrame,
};

use super::batch::Deferred;
use super::decode::{self, Refusal};
use super::rate::Admit;
use super::waiting::{MAX_WAITING_JOINS_PER_SESSION, Prepared, Ready};
use super::{Exit, Session};
use crate::frames::{self, Protocol};
use crate::history::MessageData;
use crate::registry::Lease;
use crate::relay::{PublishError, Publishing, Source};
use crate::room::{Delivery, Member};

/// Publishes one session may have waiting for the relay. The rate limit keeps this far off in
/// practice; past it (Redis stalled) further publishes are refused as `rate_limited`, so a
/// session's backlog is bounded whatever the client sends.
const MAX_PUBLISHES_IN_FLIGHT: usize = 64;

/// A publish waiting for the relay's answer.
#[derive(Debug)]
pub(crate) struct InFlight {
    room: RoomName,
    reference: Option<Ref>,
    publishing: Publishing,
}

/// The oldest waiting publish's outcome; pending forever while none waits. Cancel-safe.
/// A poll, not an `async fn`: the session loop makes this future on every turn, and it must
/// stay a pair of references (an `async fn` holding the relay's wait grew every session).
pub(super) async fn next_answer(
    in_flight: &mut VecDeque<InFlight>,
) -> (InFlight, Result<Delivery, PublishError>) {
    std::future::poll_fn(|cx| {
        let Some(first) = in_flight.front_mut() else {
            return std::task::Poll::Pending;
        };
        let outcome = std::task::ready!(first.publishing.poll_wait(cx));
        match in_flight.pop_front() {
            Some(first) => std::task::Poll::Ready((first, outcome)),
            None => std::task::Poll::Pending,
        }
    })
    .await
}

impl Session {
    /// Handles one text frame. Bad frames are answered with an error frame; only a flood ends
    /// the session.
    pub(super) fn handle_text(&mut self, text: &str) -> Result<(), Exit> {
        if !self.admit()? {
            return Ok(());
        }
        match self.protocol {
            Protocol::Tutorial => match decode::tutorial(text) {
                Ok(send) => self.publish_to_url_room(&send.message),
                Err(refusal) => self.refuse(refusal),
            },
            // Sessions are never SSE followers (those only listen); typed is the safe reading.
            Protocol::Typed | Protocol::Sse => match decode::typed(text) {
                Ok(frame) => return self.apply(frame),
                Err(refusal) => self.refuse(refusal),
            },
        }
        Ok(())
    }

    /// Answers a binary frame: roomcast speaks JSON text only.
    pub(super) fn refuse_binary(&mut self) -> Result<(), Exit> {
        if self.admit()? {
            self.refuse(Refusal::new(
                ErrorCode::BinaryUnsupported,
                "binary frames are not supported; send JSON as a text frame",
            ));
        }
        Ok(())
    }

    /// Applies the rate limit: `Ok(false)` means the frame was refused and answered.
    fn admit(&mut self) -> Result<bool, Exit> {
        match self.rate.admit(Instant::now()) {
            Admit::Yes => Ok(true),
            Admit::Refuse => {
                let per_second = self.state.config.rate_per_second;
                self.refuse(Refusal::new(
                    ErrorCode::RateLimited,
                    format!("over {per_second} frames per second; this frame was dropped"),
                ));
                Ok(false)
            }
            Admit::Flood => Err(Exit::Flood),
        }
    }

    fn refuse(&mut self, refusal: Refusal) {
        self.state
            .metrics
            .record_refused_frame(refusal.code.as_str());
        self.queue(frames::error(
            self.protocol,
            refusal.code,
            refusal.message,
            refusal.room,
            refusal.reference,
        ));
    }

    fn apply(&mut self, frame: ClientFrame) -> Result<(), Exit> {
        if !matches!(frame, ClientFrame::Publish { .. }) {
            // Joins, leaves and pings come after the publishes that were sent before them.
            self.flush_deferred();
        }
        match frame {
            ClientFrame::Join {
                room,
                since,
                token,
                reference,
            } => {
                if self.access_refused(&room, token.as_deref(), reference.as_ref()) {
                    return Ok(());
                }
                return self.join(room, since, reference);
            }
            ClientFrame::Leave { room, reference } => self.leave(room, reference),
            ClientFrame::Publish {
                room,
                message,
                data,
                reference,
            } => {
                // The frame bound (`--max-message-bytes`) already covers text and data: the
                // compact encoding kept is never longer than the JSON the frame carried.
                let data = data.as_ref().map(MessageData::from_map);
                self.publish(room, &message, data.as_ref(), reference);
            }
            ClientFrame::Ping { reference } => {
                self.queue(frames::typed(&ServerFrame::Pong {
                    ts: frames::now_ms(),
                    reference,
                }));
            }
        }
        Ok(())
    }

    /// Checks a typed join of a private room: `token`, else the handshake's. A refusal is
    /// answered with an error frame `forbidden` naming the rule, and nothing of the room.
    fn access_refused(
        &mut self,
        room: &RoomName,
        token: Option<&str>,
        reference: Option<&Ref>,
    ) -> bool {
        if self.memberships.contains_key(room) {
            return false;
        }
        let checked =
            self.state
                .access
                .check_join(room, token, self.grant.as_deref(), Some(&self.user));
        match checked {
            Ok(_) => false,
            Err(refusal) => {
                self.state.metrics.record_access_refused(refusal.rule());
                self.refuse(
                    Refusal::new(refusal.error_code(), refusal.reason())
                        .about(Some(room.clone()), reference.cloned()),
                );
                true
            }
        }
    }

    /// Joins `room`. Joining a room this session is already in answers `joined` again with the
    /// room's current state and replays nothing. With a relay the room is first loaded on this
    /// node off the loop ([`WaitingJoins`]) and the join completes when that is done. Only a
    /// tutorial session's join can end the session (its one room refused); typed sessions get
    /// an error frame.
    pub(super) fn join(
        &mut self,
        room: RoomName,
        since: Option<Position>,
        reference: Option<Ref>,
    ) -> Result<(), Exit> {
        if self.memberships.contains_key(&room) {
            return self.join_now(room, since.as_ref(), reference, None);
        }
        if self.waiting_joins.has(&room) {
            let refusal = Refusal::new(
                ErrorCode::Unavailable,
                format!("a join of {room} is still being prepared; its joined answer follows"),
            );
            self.refuse(refusal.about(Some(room), reference));
            return Ok(());
        }
        let limit = self.state.config.max_rooms_per_session;
        if self.memberships.len() + self.waiting_joins.len() >= limit {
            self.refuse(
                Refusal::new(
                    ErrorCode::TooManyRooms,
                    format!("this session is in {limit} rooms already; leave one first"),
                )
                .about(Some(room), reference),
            );
            return Ok(());
        }
        if !self.state.relay.is_relayed() {
            return self.join_now(room, since.as_ref(), reference, None);
        }
        let state = self.state.clone();
        let loading = room.clone();
        let work =
            async move { Prepared::Relay(state.relay.prepare_join(&state.rooms, &loading).await) };
        if self
            .waiting_joins
            .wait(room.clone(), since, reference.clone(), work)
            .is_err()
        {
            self.refuse(
                Refusal::new(
                    ErrorCode::Unavailable,
                    format!(
                        "{MAX_WAITING_JOINS_PER_SESSION} joins are still being prepared; try again"
                    ),
                )
                .about(Some(room), reference),
            );
        }
        Ok(())
    }

    /// Completes a join whose room the relay has loaded (or failed to).
    pub(super) fn finish_waiting_join(&mut self, ready: Ready) -> Result<(), Exit> {
        match ready.prepared {
            Prepared::Relay(Ok(lease)) => {
                self.join_now(ready.room, ready.since.as_ref(), ready.reference, lease)
            }
            Prepared::Relay(Err(e)) => self.join_refused(&e, ready.room, ready.reference),
        }
    }

    /// The registry's half of a join, for a room that is ready on this node. `lease` (from the
    /// relay's preparation) keeps the loaded room until the membership holds it.
    pub(super) fn join_now(
        &mut self,
        room: RoomName,
        since: Option<&Position>,
        reference: Option<Ref>,
        lease: Option<Lease>,
    ) -> Result<(), Exit> {
        if let Some(existing) = self.memberships.get(&room) {
            let stats = existing.room().stats();
            self.queue(frames::typed(&ServerFrame::Joined {
                room,
                epoch: stats.epoch.to_string(),
                seq: stats.seq,
                members: stats.users,
                recovered: None,
                replay: 0,
                reference,
            }));
            return Ok(());
        }
        let member = Member {
            user: self.user.clone(),
            protocol: self.protocol,
            outbox: self.outbox.clone(),
        };
        let joined = self
            .state
            .rooms
            .join(&room, member, since, reference.as_ref());
        drop(lease);
        match joined {
            Ok(membership) => {
                self.memberships.insert(room, membership);
                Ok(())
            }
            Err(full) => self.join_refused(&PublishError::from(full), room, reference),
        }
    }

    pub(super) fn join_refused(
        &mut self,
        why: &PublishError,
        room: RoomName,
        reference: Option<Ref>,
    ) -> Result<(), Exit> {
        if self.protocol == Protocol::Tutorial {
            return Err(Exit::Refused(CloseCode::TryAgainLater, why.to_string()));
        }
        let refusal = Refusal::new(ErrorCode::Unavailable, why.to_string());
        self.refuse(refusal.about(Some(room), reference));
        Ok(())
    }

    fn leave(&mut self, room: RoomName, reference: Option<Ref>) {
        match self.memberships.remove(&room) {
            Some(mut membership) => {
                membership.set_reason(LeaveReason::Left);
                drop(membership);
                self.queue(frames::typed(&ServerFrame::Left { room, reference }));
            }
            None => self.refuse(not_joined(room, reference)),
        }
    }

    fn publish(
        &mut self,
        room: RoomName,
        message: &str,
        data: Option<&MessageData>,
        reference: Option<Ref>,
    ) {
        if !self.memberships.contains_key(&room) {
            self.refuse(not_joined(room, reference));
            return;
        }
        self.publish_in(room, message, data, reference);
    }

    /// A tutorial session publishes to the one room in its URL (text only: the tutorial's
    /// frames have no `data`).
    fn publish_to_url_room(&mut self, message: &str) {
        let room = self.memberships.keys().next().cloned();
        if let Some(room) = room {
            self.publish_in(room, message, None, None);
        }
    }

    /// Publishes through the one hook to a room this session is in. A local publish is
    /// answered at once; a relayed one is queued and the loop reads its answer later (see
    /// [`next_answer`]), so pings and other rooms keep flowing meanwhile, and this session's
    /// messages keep their order (the relay sends them in the order queued).
    fn publish_in(
        &mut self,
        room: RoomName,
        message: &str,
        data: Option<&MessageData>,
        reference: Option<Ref>,
    ) {
        let Some(membership) = self.memberships.get(&room) else {
            return;
        };
        if self.in_flight.len() >= MAX_PUBLISHES_IN_FLIGHT {
            self.refuse(
                Refusal::new(
                    ErrorCode::RateLimited,
                    format!(
                        "{MAX_PUBLISHES_IN_FLIGHT} publishes are still waiting for Redis; this one was dropped"
                    ),
                )
                .about(Some(room), reference),
            );
            return;
        }
        let relay = &self.state.relay;
        let publishing = relay.publish(
            membership.room(),
            &self.user,
            message,
            data,
            Source::Socket,
            None,
        );
        if let Publishing::Done(Ok(_)) = publishing {
            // A local publish from a socket is batched (see `batch.rs`).
            let room = membership.room().clone();
            self.defer_room(&room);
        }
        let sent = InFlight {
            room,
            reference,
            publishing,
        };
        match sent.publishing {
            Publishing::Done(ref outcome) => {
                let outcome = outcome.clone();
                self.answered((sent, outcome));
            }
            Publishing::Waiting { .. } => self.in_flight.push_back(sent),
        }
    }

    /// Answers a publish the relay has decided: `ack` (typed, with a `ref`), or an error frame
    /// `unavailable` saying it was not delivered.
    pub(super) fn answered(&mut self, (sent, outcome): (InFlight, Result<Delivery, PublishError>)) {
        match outcome {
            Ok(delivery) => {
                if let (Protocol::Typed, Some(reference)) = (self.protocol, sent.reference) {
                    let ack = frames::typed(&ServerFrame::Ack {
                        room: sent.room,
                        seq: delivery.seq,
                        reference,
                    });
                    if self.has_deferred() {
                        // After this session's copy of the message, which is batched.
                        self.deferred.push(Deferred::Answer(ack));
                    } else {
                        self.queue(ack);
                    }
                }
            }
            Err(e) => self.refuse(
                Refusal::new(ErrorCode::Unavailable, e.to_string())
                    .about(Some(sent.room), sent.reference),
            ),
        }
    }
}

fn not_joined(room: RoomName, reference: Option<Ref>) -> Refusal {
    Refusal::new(ErrorCode::NotJoined, format!("join {room} before using it"))
        .about(Some(room), reference)
}
