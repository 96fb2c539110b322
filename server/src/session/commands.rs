//! What a session does with each client frame. Answers are queued behind what the session's
//! rooms hold for it (`writer.rs`), so they are ordered with the room messages around them.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use roomcast_protocol::{
    ClientFrame, CloseCode, ErrorCode, LeaveReason, Position, Ref, RoomName, ServerFrame,
};

use super::decode::{self, Refusal};
use super::rate::Admit;
use super::waiting::{MAX_WAITING_JOINS_PER_SESSION, Prepared, Ready};
use super::{Exit, Session};
use crate::access;
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
                let (ask_proxy, expires) =
                    match self.join_access(&room, token.as_deref(), reference.as_ref()) {
                        JoinAccess::Open(expires) => (false, expires),
                        JoinAccess::AskProxy => (true, None),
                        JoinAccess::Refused => return Ok(()),
                    };
                return self.join(room, since, reference, ask_proxy, expires);
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

    /// Checks a typed join of a private room: `token`, else the handshake's, else (with no
    /// token at all) the app's join proxy when there is one. A refusal is answered with an
    /// error frame `forbidden` naming the rule, and nothing of the room. A join of a room the
    /// session is in already passes; with a `token` that token is checked, and extends the
    /// hold on the room when valid (a refusal then leaves the membership as it was).
    fn join_access(
        &mut self,
        room: &RoomName,
        token: Option<&str>,
        reference: Option<&Ref>,
    ) -> JoinAccess {
        if self.memberships.contains_key(room) && token.is_none() {
            return JoinAccess::Open(None);
        }
        let access = &self.state.access;
        match access.check_join(room, token, self.grant.as_deref(), Some(&self.user)) {
            Ok(grant) => JoinAccess::Open(grant.map(|grant| grant.admits_until())),
            Err(access::Refusal::Missing) if access.has_join_proxy() => JoinAccess::AskProxy,
            Err(refusal) => {
                self.access_refused(&refusal, room.clone(), reference.cloned());
                JoinAccess::Refused
            }
        }
    }

    /// Answers a typed join refused by the access rules: an error frame naming the rule (the
    /// session stays open), counted in `roomcast_access_refused_total`.
    fn access_refused(
        &mut self,
        refusal: &access::Refusal,
        room: RoomName,
        reference: Option<Ref>,
    ) {
        self.state.metrics.record_access_refused(refusal.rule());
        tracing::info!(session = self.id, rule = refusal.rule(), room = %room, "typed join refused");
        self.refuse(
            Refusal::new(refusal.error_code(), refusal.reason()).about(Some(room), reference),
        );
    }

    /// Joins `room`. Joining a room this session is already in answers `joined` again with the
    /// room's current state and replays nothing. With a relay the room is first loaded on this
    /// node off the loop ([`WaitingJoins`]), and with `ask_proxy` the app's join proxy is asked
    /// first, off the loop too (bounded by `--join-proxy-timeout`, its answers cached); the
    /// join completes when that is done. Only a tutorial session's join can end the session
    /// (its one room refused); typed sessions get an error frame.
    pub(super) fn join(
        &mut self,
        room: RoomName,
        since: Option<Position>,
        reference: Option<Ref>,
        ask_proxy: bool,
        expires: Option<u64>,
    ) -> Result<(), Exit> {
        if self.memberships.contains_key(&room) {
            if let Some(until) = expires {
                self.expiries.extend(&room, until);
            }
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
        if !ask_proxy && !self.state.relay.is_relayed() {
            self.join_now(room.clone(), since.as_ref(), reference, None)?;
            self.held_until(&room, expires);
            return Ok(());
        }
        let state = self.state.clone();
        let loading = room.clone();
        let work: Pin<Box<dyn Future<Output = Prepared> + Send>> = if ask_proxy {
            let user = self.user.clone();
            let headers = self.proxy_headers.as_deref().cloned().unwrap_or_default();
            Box::pin(async move {
                let verdict = match state
                    .access
                    .ask_proxy(&loading, Some(&user), &headers)
                    .await
                {
                    // The session's name is settled at connect: the app may confirm it, not
                    // change it (nobody speaks as someone else in a private room).
                    Some(Ok(Some(named))) if named != user => Err(access::Refusal::Impersonation),
                    Some(Ok(_)) => Ok(()),
                    Some(Err(refusal)) => Err(refusal),
                    None => Err(access::Refusal::Missing),
                };
                match verdict {
                    Ok(()) => {
                        Prepared::Access(Ok(state.relay.prepare_join(&state.rooms, &loading).await))
                    }
                    Err(refusal) => Prepared::Access(Err(refusal)),
                }
            })
        } else {
            Box::pin(async move {
                Prepared::Relay(state.relay.prepare_join(&state.rooms, &loading).await)
            })
        };
        if self
            .waiting_joins
            .wait(room.clone(), since, reference.clone(), expires, work)
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

    /// Completes a join whose room the relay has loaded (or failed to), or that the app's
    /// join proxy has answered.
    pub(super) fn finish_waiting_join(&mut self, ready: Ready) -> Result<(), Exit> {
        match ready.prepared {
            Prepared::Relay(Ok(lease)) | Prepared::Access(Ok(Ok(lease))) => {
                let room = ready.room.clone();
                self.join_now(ready.room, ready.since.as_ref(), ready.reference, lease)?;
                self.held_until(&room, ready.expires);
                Ok(())
            }
            Prepared::Relay(Err(e)) | Prepared::Access(Ok(Err(e))) => {
                self.join_refused(&e, ready.room, ready.reference)
            }
            Prepared::Access(Err(refusal)) => {
                self.access_refused(&refusal, ready.room, ready.reference);
                Ok(())
            }
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
        let member = Member::session(self.user.clone(), self.protocol);
        // The rooms this session is in come first: their frames from before the join precede
        // its answer.
        self.writer.pull_all(&self.memberships);
        let mut direct = Vec::new();
        let joined = self
            .state
            .rooms
            .join(&room, member, since, reference.as_ref(), &mut direct);
        drop(lease);
        match joined {
            Ok(membership) => {
                // Ahead of anything the new room's ring holds: its cursor starts after them.
                self.writer.queue_all(direct);
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

    /// Records that the token which opened `room` admits until `expires` (seconds since the
    /// Unix epoch), if the session did join it.
    pub(super) fn held_until(&mut self, room: &RoomName, expires: Option<u64>) {
        if let Some(until) = expires
            && self.memberships.contains_key(room)
        {
            self.expiries.hold(room, until);
        }
    }

    /// The token that opened `room` has expired: the member is removed from it (the others
    /// see it leave as `closed`) and told with an error frame `forbidden: expired`; a tutorial
    /// session, whose one room it was, is closed with 4503.
    pub(super) fn token_expired(&mut self, room: RoomName) -> Result<(), Exit> {
        // What the room sent while the member was in it still reaches it.
        self.writer.pull_all(&self.memberships);
        let Some(mut membership) = self.memberships.remove(&room) else {
            return Ok(());
        };
        membership.set_reason(LeaveReason::Closed);
        drop(membership);
        self.state.metrics.record_access_expired();
        let refusal = access::Refusal::Expired;
        tracing::info!(session = self.id, room = %room, "token expired; member removed");
        if self.protocol == Protocol::Tutorial {
            return Err(Exit::Refused(refusal.close_code(), refusal.reason()));
        }
        // Not `refuse`: no client frame was refused (`frames_refused` counts those).
        self.queue(frames::error(
            self.protocol,
            refusal.error_code(),
            refusal.reason(),
            Some(room),
            None,
        ));
        Ok(())
    }

    fn leave(&mut self, room: RoomName, reference: Option<Ref>) {
        self.expiries.forget(&room);
        // What the room sent before the leave still reaches the leaver, ahead of `left`.
        self.writer.pull_all(&self.memberships);
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
                    // Behind this session's copy of the message, which its ring holds.
                    self.queue(ack);
                }
            }
            Err(e) => self.refuse(
                Refusal::new(ErrorCode::Unavailable, e.to_string())
                    .about(Some(sent.room), sent.reference),
            ),
        }
    }
}

/// What the access rules say about a typed join, before any room work.
enum JoinAccess {
    /// A public room, or a private one the session's token opens (until the second given:
    /// [`crate::access::Grant::admits_until`]).
    Open(Option<u64>),
    /// A private room and no token: the app's join proxy decides, off the loop.
    AskProxy,
    /// Refused, and answered already.
    Refused,
}

fn not_joined(room: RoomName, reference: Option<Ref>) -> Refusal {
    Refusal::new(ErrorCode::NotJoined, format!("join {room} before using it"))
        .about(Some(room), reference)
}
