//! The session's side of writing: its own frames (answers, errors, control frames) and the
//! frames it reads from its rooms' rings, in the order the client must see them, and one
//! vectored write per turn of the loop.
//!
//! Frames go to the socket as they were encoded (one buffer per message, shared by every
//! member): a turn hands the kernel up to [`MAX_FRAMES_PER_WRITE`] of them with one
//! `writev`, never copying them, and never waits: a socket that takes nothing just leaves the
//! frames queued, and the loop waits for it to become writable.
//!
//! Ordering: a frame of the session's own is queued only after everything its rooms' rings
//! held at that moment was pulled in ahead of it (`Session::queue`), so an `ack` follows the
//! session's copy of its message and a `left` follows the messages sent before the leave.
//! What is still in a ring after that comes later, as it would have from a room's push.
//!
//! The bound: what waits here (queued and not yet written) is charged as `outbox::charge_of`
//! says; a frame of the session's own that would pass `--max-queue-bytes` is refused and the
//! session ends as slow. A turn pulls from the rings only while fewer than
//! [`MAX_FRAMES_PER_WRITE`] frames wait, so a reader that does not keep up leaves its backlog
//! in the ring, where the ring's own bound evicts it.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::memberships::Memberships;
use crate::frames::Frame;
use crate::outbox::charge_of;
use crate::registry::Membership;
use crate::room::MAX_RUN_BYTES;

/// Most frames handed to one `writev`. Linux accepts 1024 (`IOV_MAX`); 256 small chat frames
/// are ~20 KB, enough that the syscall's cost is shared by many frames, and the slices fit in
/// 4 KiB of stack.
pub(super) const MAX_FRAMES_PER_WRITE: usize = 256;

/// Bytes waiting for the socket at which a turn stops pulling from the rings: one full run
/// (a run is one frame of many messages, so the frame count alone would not stop a turn). A
/// session that cannot write leaves the rest in its rings, where `--max-queue-bytes` bounds it.
const MAX_BYTES_PER_TURN: usize = MAX_RUN_BYTES;

/// Frames on their way to one socket.
#[derive(Debug)]
pub(super) struct Writer {
    /// Oldest first.
    frames: VecDeque<Frame>,
    /// Bytes of the front frame already written.
    sent: usize,
    /// What `frames` is charged (see the module's doc).
    charged: usize,
    max_bytes: usize,
    /// A frame of the session's own was refused: the session must end as slow.
    overflowed: bool,
    /// Since when the socket has taken nothing while frames wait (the write-stall clock).
    blocked_since: Option<Instant>,
}

impl Writer {
    /// An empty writer holding at most `max_bytes` (`--max-queue-bytes`).
    pub(super) fn new(max_bytes: usize) -> Self {
        Self {
            frames: VecDeque::new(),
            sent: 0,
            charged: 0,
            max_bytes,
            overflowed: false,
            blocked_since: None,
        }
    }

    /// Whether frames are waiting for the socket.
    pub(super) fn has_pending(&self) -> bool {
        !self.frames.is_empty()
    }

    /// Whether a frame was refused for passing the bound.
    pub(super) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// When the socket stopped taking bytes, if it has while frames wait.
    pub(super) fn blocked_since(&self) -> Option<Instant> {
        self.blocked_since
    }

    /// Queues a frame of the session's own behind everything waiting, unless that passes the
    /// bound: then the session is marked to end as slow, and what waits is dropped.
    pub(super) fn queue(&mut self, frame: Frame) {
        if self.overflowed {
            return;
        }
        let cost = charge_of(&frame);
        if self.charged + cost > self.max_bytes {
            self.overflowed = true;
            self.drop_all_but_current();
            return;
        }
        self.charged += cost;
        self.frames.push_back(frame);
    }

    /// Queues frames that must come first, never refused (a join's answer and replay: the
    /// room bounds those).
    pub(super) fn queue_all(&mut self, frames: impl IntoIterator<Item = Frame>) {
        for frame in frames {
            self.charged += charge_of(&frame);
            self.frames.push_back(frame);
        }
    }

    /// Pulls everything every room's ring holds for this session: before a frame of its own,
    /// which must come after them. A room that says this member lagged is left to the loop's
    /// wait, which ends the session.
    pub(super) fn pull_all(&mut self, memberships: &Memberships) {
        for membership in memberships.iter() {
            self.pull_from(membership, usize::MAX);
        }
    }

    /// Pulls from the rings while fewer than [`MAX_FRAMES_PER_WRITE`] frames and less than
    /// [`MAX_BYTES_PER_TURN`] wait (a turn): the rest stays in the rings, where a reader that
    /// does not keep up is bounded.
    pub(super) fn top_up(&mut self, memberships: &Memberships) {
        for membership in memberships.iter() {
            let room_for = MAX_FRAMES_PER_WRITE.saturating_sub(self.frames.len());
            if room_for == 0 || self.charged >= MAX_BYTES_PER_TURN {
                return;
            }
            self.pull_from(membership, room_for);
        }
    }

    fn pull_from(&mut self, membership: &Membership, max: usize) {
        if let Ok(pulled) = membership
            .room()
            .pull(membership.key(), &mut self.frames, max)
        {
            self.charged += pulled.charged;
        }
    }

    /// Sends a control frame (ping, pong, close) ahead of every queued message: at once if
    /// nothing is waiting (so an idle session's ping needs no queue memory), else as soon as
    /// the frame being written, if one is half written, is finished. A queued control frame is
    /// charged like any frame, but never refused.
    pub(super) fn put_ahead(&mut self, frame: Frame, stream: &TcpStream) {
        let mut sent = 0;
        if self.frames.is_empty() {
            match stream.try_write(frame.as_bytes()) {
                Ok(written) if written == frame.len() => return,
                Ok(written) => sent = written,
                // Queued, the next turn writes it or sees the error.
                Err(_) => {}
            }
        }
        self.charged += charge_of(&frame);
        if sent > 0 {
            self.sent = sent;
            self.frames.push_back(frame);
            return;
        }
        let at = usize::from(self.sent > 0).min(self.frames.len());
        self.frames.insert(at, frame);
    }

    /// Frees the queue's memory if nothing waits in it: called at every heartbeat ping, so a
    /// session that went quiet holds no queue memory after one ping interval, while a busy one
    /// keeps reusing its queue instead of growing it again for every batch.
    pub(super) fn trim(&mut self) {
        if self.frames.is_empty() {
            self.frames = VecDeque::new();
        }
    }

    /// Keeps only a half-written frame (it must be finished before anything else can follow):
    /// the session is closing (or overflowed) and the rest will never be sent.
    pub(super) fn drop_all_but_current(&mut self) {
        let keep = usize::from(self.sent > 0).min(self.frames.len());
        for frame in self.frames.drain(keep..) {
            self.charged = self.charged.saturating_sub(charge_of(&frame));
        }
    }

    /// One turn: hands the socket what it will take right now with one vectored write. An
    /// error means the connection is gone.
    pub(super) fn write_turn(&mut self, stream: &TcpStream) -> io::Result<()> {
        if self.frames.is_empty() {
            return Ok(());
        }
        let written = match write_some(stream, &self.frames, self.sent) {
            Ok(written) => written,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.blocked_since.get_or_insert_with(Instant::now);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.blocked_since = None;
        let released = self.advance(written);
        self.charged = self.charged.saturating_sub(released);
        Ok(())
    }

    /// Drops the frames `written` bytes completed; returns the bytes they were charged.
    fn advance(&mut self, mut written: usize) -> usize {
        let mut released = 0;
        while let Some(front) = self.frames.front() {
            let rest = front.len() - self.sent;
            if written < rest {
                self.sent += written;
                break;
            }
            written -= rest;
            self.sent = 0;
            released += charge_of(front);
            self.frames.pop_front();
        }
        released
    }
}

fn write_some(stream: &TcpStream, frames: &VecDeque<Frame>, sent: usize) -> io::Result<usize> {
    // Filling the slices costs in proportion to the array, not to the frames: most turns
    // write a few frames, so they use a small array (measured: a 256-slot array on every
    // turn was ~10% of the server's instructions in a 100-member room).
    match frames.len() {
        0..=16 => write_slices::<16>(stream, frames, sent),
        17..=64 => write_slices::<64>(stream, frames, sent),
        _ => write_slices::<MAX_FRAMES_PER_WRITE>(stream, frames, sent),
    }
}

/// One `writev` of up to `N` frames, the first from byte `sent`.
fn write_slices<const N: usize>(
    stream: &TcpStream,
    frames: &VecDeque<Frame>,
    sent: usize,
) -> io::Result<usize> {
    let mut slices = [IoSlice::new(&[]); N];
    let mut count = 0;
    for (slot, frame) in slices.iter_mut().zip(frames) {
        *slot = IoSlice::new(frame.as_bytes());
        count += 1;
    }
    if let Some(front) = frames.front() {
        slices[0] = IoSlice::new(&front.as_bytes()[sent..]);
    }
    stream.try_write_vectored(&slices[..count])
}

#[cfg(test)]
mod tests {
    use roomcast_protocol::raw::{FrameReader, opcode};
    use socket2::SockRef;
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn turns_that_cannot_write_stop_pulling_and_leave_the_backlog_in_the_ring() {
        use roomcast_protocol::{RoomName, UserName};

        use crate::relay::Source;
        use crate::room::{Dispatch, Member};
        use crate::state::AppState;

        let state = AppState::new(crate::Config::default().validate().expect("valid defaults"));
        let (room, user) = (
            RoomName::new("backlog").expect("valid room"),
            UserName::new("ana").expect("valid user"),
        );
        let member = Member::session(user.clone(), crate::frames::Protocol::Tutorial);
        let membership = state
            .rooms
            .join(&room, member, None, None, &mut Vec::new())
            .expect("join");
        let text = "m".repeat(1000);
        for _ in 0..600 {
            membership
                .room()
                .publish(&user, &text, None, Source::Http, Dispatch::Now);
        }
        let mut memberships = Memberships::default();
        memberships.insert(room, membership);

        // Nothing is written in between, as when the socket takes nothing.
        let mut writer = Writer::new(usize::MAX);
        writer.top_up(&memberships);
        let first_turn = writer.charged;
        assert!(
            first_turn >= MAX_BYTES_PER_TURN,
            "a turn took {first_turn} bytes"
        );
        writer.top_up(&memberships);
        assert_eq!(
            writer.charged, first_turn,
            "the next turn pulled nothing more"
        );
        let mut rest = VecDeque::new();
        let membership = memberships.iter().next().expect("a membership");
        let left = membership
            .room()
            .pull(membership.key(), &mut rest, usize::MAX)
            .expect("in place");
        assert!(
            left.frames > 300,
            "{} messages stayed in the ring",
            left.frames
        );
    }

    #[tokio::test]
    async fn a_ping_goes_out_right_after_the_half_written_frame_ahead_of_the_queue() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        let (mut client, server) = (client.expect("connect"), accepted.expect("accept").0);
        // A small send buffer, so that 640 KB of frames cannot all fit in the kernel.
        SockRef::from(&server)
            .set_send_buffer_size(4096)
            .expect("SO_SNDBUF");

        let mut writer = Writer::new(usize::MAX);
        let messages = 40;
        for i in 0..messages {
            writer.queue(Frame::text(&format!("{i:02}{}", "m".repeat(16 * 1024))));
        }
        // The client reads nothing yet: write until the socket takes no more.
        for _ in 0..100 {
            writer.write_turn(&server).expect("write");
            if writer.blocked_since().is_some() {
                break;
            }
        }
        assert!(writer.blocked_since().is_some(), "the socket filled up");
        assert!(writer.sent > 0, "a frame is half written");
        writer.put_ahead(Frame::ping(), &server);

        // Now the client reads everything; the server keeps writing when it can.
        let mut reader = FrameReader::new(8192);
        let mut seen = Vec::new();
        while seen.len() < messages + 1 {
            writer.write_turn(&server).expect("write");
            tokio::select! {
                filled = reader.fill(&mut client) => {
                    assert!(filled.expect("read") > 0, "the stream ended early");
                }
                _ = server.writable(), if writer.has_pending() => {}
            }
            while let Some(frame) = reader.next_frame().expect("valid frames") {
                seen.push(match frame.opcode {
                    opcode::PING => "ping".to_owned(),
                    _ => String::from_utf8_lossy(&frame.payload[..2]).into_owned(),
                });
            }
        }
        let at = seen
            .iter()
            .position(|s| s == "ping")
            .expect("the ping arrived");
        let before: Vec<String> = (0..at).map(|i| format!("{i:02}")).collect();
        assert_eq!(seen[..at], before, "messages before the ping are in order");
        assert!(
            at < messages / 2,
            "the ping came after message {at} of {messages}, not behind the queue"
        );
        let after: Vec<String> = (at..messages).map(|i| format!("{i:02}")).collect();
        assert_eq!(seen[at + 1..], after, "and the rest follow in order");
    }
}
