//! The one publish hook. Every message, whatever its source (a typed `publish` frame, a
//! tutorial frame, an HTTP send-test or publish, a broadcast), goes through [`Relay::publish`],
//! which numbers it and hands it to the fan-out of its room: on this node only
//! ([`Relay::Local`]), or through Redis to every node that has members there ([`Relay::Redis`],
//! with `--redis-url`), where Redis numbers it and each subscribed node fans it out.

pub(crate) mod redis;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use roomcast_protocol::{RoomName, RoomSummary, UserName};
use tokio::sync::oneshot;

pub(crate) use self::redis::Notices;
use self::redis::{Receipt, RedisRelay, RelayError};
use crate::history::MessageData;
use crate::registry::{Lease, Registry, RoomsFull};
use crate::room::{Delivery, Dispatch, Room};

/// Where a message came from, for `roomcast_messages_published_total{source}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A session's frame (typed `publish` or tutorial `{"message": ...}`). Locally these are
    /// published [`Dispatch::Batched`]: the session flushes its rooms before it waits again
    /// (`session/batch.rs`).
    Socket,
    /// Send-test, the publish API or a broadcast.
    Http,
    /// A Django Channels `group_send` the bridge received (`--channels-layer`); never
    /// forwarded back to Django.
    Bridge,
}

impl Source {
    /// When a local publish from this source reaches the members.
    fn dispatch(self) -> Dispatch {
        match self {
            Source::Socket => Dispatch::Batched,
            Source::Http | Source::Bridge => Dispatch::Now,
        }
    }

    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Source::Socket => "ws",
            Source::Http => "http",
            Source::Bridge => "bridge",
        }
    }
}

/// How published messages reach a room's members. An enum while the set is closed.
#[derive(Debug, Default)]
pub(crate) enum Relay {
    /// Every member is a session of this process: rooms number and fan out their own messages.
    #[default]
    Local,
    /// Redis numbers every message and every subscribed node fans it out.
    Redis(Arc<RedisRelay>),
}

/// Why a publish or a join was not done. Every variant means: nothing was delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PublishError {
    /// `--max-rooms` rooms exist on this node.
    #[error("{0}")]
    RoomsFull(RoomsFull),
    /// The relay could not do it.
    #[error(transparent)]
    Relay(#[from] RelayError),
}

impl From<RoomsFull> for PublishError {
    fn from(full: RoomsFull) -> Self {
        PublishError::RoomsFull(full)
    }
}

/// A publish on its way: finished already (local), or waiting for Redis's answer.
#[derive(Debug)]
pub(crate) enum Publishing {
    Done(Result<Delivery, PublishError>),
    Waiting {
        answer: oneshot::Receiver<Result<Receipt, RelayError>>,
        room: Arc<Room>,
        source: Source,
    },
}

impl Publishing {
    /// The outcome. Cancel-safe: a `select!` may drop this future and call it again.
    pub(crate) async fn wait(&mut self) -> Result<Delivery, PublishError> {
        std::future::poll_fn(|cx| self.poll_wait(cx)).await
    }

    /// [`Publishing::wait`] as a poll, for callers that keep no future of their own (the
    /// session loop: a stored future would grow every session's task).
    pub(crate) fn poll_wait(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Delivery, PublishError>> {
        match self {
            Publishing::Done(result) => Poll::Ready(result.clone()),
            Publishing::Waiting {
                answer,
                room,
                source,
            } => {
                let answer = ready!(Pin::new(answer).poll(cx));
                let receipt = match answer.map_err(|_| RelayError::Stopped).and_then(|a| a) {
                    Ok(receipt) => receipt,
                    Err(e) => return Poll::Ready(Err(e.into())),
                };
                room.record_relayed_publish(*source);
                Poll::Ready(Ok(Delivery {
                    seq: receipt.seq,
                    epoch: receipt.epoch,
                    // This node's sessions in the room now: Redis relays the message back and
                    // this node queues it for them.
                    delivered: room.local_sessions(),
                }))
            }
        }
    }
}

impl Relay {
    /// Whether messages are numbered by Redis.
    pub(crate) fn is_relayed(&self) -> bool {
        matches!(self, Relay::Redis(_))
    }

    /// **The** publish hook: publishes `text` (and its `data`) as `user` to `room`, which the caller holds in
    /// use (a membership or a lease), so it cannot expire meanwhile. Locally it is numbered,
    /// kept and queued for every member at once (a session's at the end of its read, see
    /// [`Source::Socket`]), never waiting. With Redis it is only queued,
    /// behind this node's earlier publishes to the same shard, so one sender's messages keep
    /// their order; `idempotency_key` then deduplicates across nodes (locally the HTTP layer's
    /// cache does).
    pub(crate) fn publish(
        &self,
        room: &Arc<Room>,
        user: &UserName,
        text: &str,
        data: Option<&MessageData>,
        source: Source,
        idempotency_key: Option<&str>,
    ) -> Publishing {
        match self {
            Relay::Local => Publishing::Done(Ok(room.publish(
                user,
                text,
                data,
                source,
                source.dispatch(),
            ))),
            Relay::Redis(relay) => Publishing::Waiting {
                answer: relay.publish(
                    &room.name,
                    user,
                    text,
                    data,
                    idempotency_key,
                    source != Source::Bridge,
                ),
                room: room.clone(),
                source,
            },
        }
    }

    /// Gets `room` ready for a join: with Redis, subscribed and loaded on this node. The lease
    /// keeps the loaded room until the join that follows holds it.
    pub(crate) async fn prepare_join(
        &self,
        rooms: &Registry,
        room: &RoomName,
    ) -> Result<Option<Lease>, PublishError> {
        match self {
            Relay::Local => Ok(None),
            Relay::Redis(relay) => {
                let lease = rooms.lease(room)?;
                relay.prepare_join(room).await?;
                Ok(Some(lease))
            }
        }
    }

    /// `Err` with the reason while the relay cannot deliver (`/readyz`).
    pub(crate) fn readiness(&self) -> Result<(), String> {
        match self {
            Relay::Local => Ok(()),
            Relay::Redis(relay) => relay.readiness(),
        }
    }

    /// `room` as every node sees it; `None` without a relay (the local room says it all).
    pub(crate) async fn summary(
        &self,
        room: &RoomName,
    ) -> Option<Result<Option<RoomSummary>, RelayError>> {
        match self {
            Relay::Local => None,
            Relay::Redis(relay) => Some(relay.summary(room).await),
        }
    }

    /// Stops the relay (after sessions have closed, so their leaves reach Redis).
    pub(crate) async fn stop(&self) {
        if let Relay::Redis(relay) = self {
            relay.stop().await;
        }
    }
}
