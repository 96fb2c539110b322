//! What a session does with each client frame. Answers go through the session's own outbox, so
//! they are ordered with the room messages around them.

use std::time::Instant;

use roomcast_protocol::{
    ClientFrame, CloseCode, ErrorCode, LeaveReason, Position, Ref, RoomName, ServerFrame,
};

use super::decode::{self, Refusal};
use super::rate::Admit;
use super::{Exit, Session};
use crate::frames::{self, Protocol};
use crate::relay::Source;
use crate::room::Member;

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
            Protocol::Typed => match decode::typed(text) {
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

    fn refuse(&self, refusal: Refusal) {
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
        match frame {
            ClientFrame::Join {
                room,
                since,
                reference,
            } => return self.join(room, since.as_ref(), reference),
            ClientFrame::Leave { room, reference } => self.leave(room, reference),
            ClientFrame::Publish {
                room,
                message,
                reference,
            } => {
                self.publish(room, &message, reference);
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

    /// Joins `room`. Joining a room this session is already in answers `joined` again with the
    /// room's current state and replays nothing. Only a tutorial session's join can end the
    /// session (its one room refused at `--max-rooms`); typed sessions get an error frame.
    pub(super) fn join(
        &mut self,
        room: RoomName,
        since: Option<&Position>,
        reference: Option<Ref>,
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
        let limit = self.state.config.max_rooms_per_session;
        if self.memberships.len() >= limit {
            self.refuse(
                Refusal::new(
                    ErrorCode::TooManyRooms,
                    format!("this session is in {limit} rooms already; leave one first"),
                )
                .about(Some(room), reference),
            );
            return Ok(());
        }
        let member = Member {
            user: self.user.clone(),
            protocol: self.protocol,
            outbox: self.outbox.clone(),
        };
        match self
            .state
            .rooms
            .join(&room, member, since, reference.as_ref())
        {
            Ok(membership) => {
                self.memberships.insert(room, membership);
                Ok(())
            }
            Err(full) if self.protocol == Protocol::Tutorial => {
                Err(Exit::Refused(CloseCode::TryAgainLater, full.to_string()))
            }
            Err(full) => {
                let refusal = Refusal::new(ErrorCode::Unavailable, full.to_string());
                self.refuse(refusal.about(Some(room), reference));
                Ok(())
            }
        }
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

    fn publish(&mut self, room: RoomName, message: &str, reference: Option<Ref>) {
        let Some(membership) = self.memberships.get(&room) else {
            self.refuse(not_joined(room, reference));
            return;
        };
        let relay = &self.state.relay;
        let delivery = relay.publish(membership.room(), &self.user, message, Source::Socket);
        if let Some(reference) = reference {
            self.queue(frames::typed(&ServerFrame::Ack {
                room,
                seq: delivery.seq,
                reference,
            }));
        }
    }

    /// A tutorial session publishes to the one room in its URL.
    fn publish_to_url_room(&mut self, message: &str) {
        if let Some(membership) = self.memberships.values().next() {
            let relay = &self.state.relay;
            relay.publish(membership.room(), &self.user, message, Source::Socket);
        }
    }
}

fn not_joined(room: RoomName, reference: Option<Ref>) -> Refusal {
    Refusal::new(ErrorCode::NotJoined, format!("join {room} before using it"))
        .about(Some(room), reference)
}
