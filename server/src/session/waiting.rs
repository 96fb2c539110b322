//! Joins that wait off the loop: with `--redis-url`, a room must be subscribed and loaded on
//! this node before a member joins it (one Redis round trip), and a private room joined with
//! no token waits for the app's join proxy (`--join-proxy`). The work runs in its own task and
//! its outcome comes back through a bounded channel that the loop reads like any other event,
//! so a slow Redis never stalls a session's pings, writes or other rooms.

use std::future::Future;

use roomcast_protocol::{Position, Ref, RoomName};
use tokio::sync::mpsc;
use tracing::debug;

use crate::access::Refusal;
use crate::registry::Lease;
use crate::relay::PublishError;

/// Most joins one session may have waiting at once; more are refused (`unavailable`). Each
/// waits at most the join proxy's timeout plus the relay's command timeout.
pub(crate) const MAX_WAITING_JOINS_PER_SESSION: usize = 8;

/// What a waiting join was waiting for, once it is there.
#[derive(Debug)]
pub(crate) enum Prepared {
    /// The relay loaded the room (the lease holds it until the join), or could not.
    Relay(Result<Option<Lease>, PublishError>),
    /// The app's join proxy admitted the session (and then the relay prepared the room, as
    /// for [`Prepared::Relay`]), or refused it with this rule.
    Access(Result<Result<Option<Lease>, PublishError>, Refusal>),
}

/// A join whose preparation finished, with what the session needs to complete it.
#[derive(Debug)]
pub(crate) struct Ready {
    pub(crate) room: RoomName,
    pub(crate) since: Option<Position>,
    pub(crate) reference: Option<Ref>,
    /// When the token that opened the room stops admitting (seconds since the Unix epoch).
    pub(crate) expires: Option<u64>,
    pub(crate) prepared: Prepared,
}

/// One session's waiting joins. The channel is made on the first wait: most sessions never
/// wait, and an idle session must stay small. A task that outlives its session finds the
/// channel closed and ends.
#[derive(Debug, Default)]
pub(crate) struct WaitingJoins {
    channel: Option<(mpsc::Sender<Ready>, mpsc::Receiver<Ready>)>,
    waiting: usize,
    rooms: Vec<RoomName>,
}

/// Too many joins are waiting already.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TooManyWaiting;

impl WaitingJoins {
    /// Runs `work` in its own task; its outcome comes back from [`WaitingJoins::next`].
    pub(crate) fn wait(
        &mut self,
        room: RoomName,
        since: Option<Position>,
        reference: Option<Ref>,
        expires: Option<u64>,
        work: impl Future<Output = Prepared> + Send + 'static,
    ) -> Result<(), TooManyWaiting> {
        if self.waiting >= MAX_WAITING_JOINS_PER_SESSION {
            return Err(TooManyWaiting);
        }
        let (sender, _) = self
            .channel
            .get_or_insert_with(|| mpsc::channel(MAX_WAITING_JOINS_PER_SESSION));
        let answers = sender.clone();
        self.waiting += 1;
        self.rooms.push(room.clone());
        tokio::spawn(async move {
            let prepared = work.await;
            let ready = Ready {
                room,
                since,
                reference,
                expires,
                prepared,
            };
            // One slot per waiting join, so this never waits; it fails only when the session
            // has ended, and then nobody needs the outcome (dropping it drops the lease).
            if answers.send(ready).await.is_err() {
                debug!("a session ended before its join was ready");
            }
        });
        Ok(())
    }

    /// Whether any join waits (the loop polls [`WaitingJoins::next`] only then).
    pub(crate) fn is_waiting(&self) -> bool {
        self.waiting > 0
    }

    /// Whether a join of `room` is waiting already.
    pub(crate) fn has(&self, room: &RoomName) -> bool {
        self.rooms.contains(room)
    }

    /// How many joins wait (they count against `--max-rooms-per-session`).
    pub(crate) fn len(&self) -> usize {
        self.waiting
    }

    /// The next join that is ready. Cancel-safe; pending forever while none waits. A poll, not
    /// a stored `recv()` future: the session loop makes this future on every turn.
    pub(crate) async fn next(&mut self) -> Ready {
        std::future::poll_fn(|cx| {
            let Some((_, receiver)) = &mut self.channel else {
                return std::task::Poll::Pending;
            };
            // The sender half lives in `self`, so the channel never closes while we read it.
            let Some(ready) = std::task::ready!(receiver.poll_recv(cx)) else {
                return std::task::Poll::Pending;
            };
            self.waiting = self.waiting.saturating_sub(1);
            if let Some(at) = self.rooms.iter().position(|r| *r == ready.room) {
                self.rooms.swap_remove(at);
            }
            std::task::Poll::Ready(ready)
        })
        .await
    }
}
