//! How a message reaches the members of its room: on this node only ([`Relay::Local`]), or
//! through Redis to every node that has members there ([`Relay::Redis`], with `--redis-url`).

pub(crate) mod redis;

use std::sync::Arc;

use roomcast_protocol::{RoomName, RoomSummary, UserName};
use tokio::sync::oneshot;

pub(crate) use self::redis::Notices;
use self::redis::{Receipt, RedisRelay, RelayError};
use crate::registry::{Registry, RoomsFull};
use crate::room::Delivery;

/// Where publishes go. An enum while the set is closed.
#[derive(Debug)]
pub(crate) enum Relay {
    /// This node alone: rooms number and fan out their own messages.
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

/// A publish on its way: finished already (local), or waiting for Redis's answer.
#[derive(Debug)]
pub(crate) enum Publishing {
    Done(Result<Delivery, PublishError>),
    Waiting {
        answer: oneshot::Receiver<Result<Receipt, RelayError>>,
        rooms: Registry,
        room: RoomName,
    },
}

impl From<RoomsFull> for PublishError {
    fn from(full: RoomsFull) -> Self {
        PublishError::RoomsFull(full)
    }
}

impl Publishing {
    /// The outcome. Cancel-safe: a `select!` may drop this and call it again.
    pub(crate) async fn wait(&mut self) -> Result<Delivery, PublishError> {
        match self {
            Publishing::Done(result) => result.clone(),
            Publishing::Waiting {
                answer,
                rooms,
                room,
            } => {
                let receipt = answer
                    .await
                    .map_err(|_| RelayError::Stopped)
                    .and_then(|answer| answer)?;
                Ok(Delivery {
                    seq: receipt.seq,
                    epoch: receipt.epoch,
                    // This node's sessions in the room now: Redis relays the message back and
                    // this node queues it for them.
                    delivered: rooms.get(room).map_or(0, |r| r.local_sessions()),
                })
            }
        }
    }
}

impl Relay {
    /// Whether messages are numbered by Redis.
    pub(crate) fn is_relayed(&self) -> bool {
        matches!(self, Relay::Redis(_))
    }

    /// Publishes `text` as `user` to `room`. With Redis this only queues it, behind this
    /// node's earlier publishes to the same shard, so one sender's messages keep their order.
    pub(crate) fn publish(
        &self,
        rooms: &Registry,
        room: &RoomName,
        user: &UserName,
        text: &str,
        idempotency_key: Option<&str>,
    ) -> Publishing {
        match self {
            Relay::Local => {
                Publishing::Done(rooms.publish(room, user, text).map_err(PublishError::from))
            }
            Relay::Redis(relay) => Publishing::Waiting {
                answer: relay.publish(room, user, text, idempotency_key),
                rooms: rooms.clone(),
                room: room.clone(),
            },
        }
    }

    /// Gets `room` ready for a join: with Redis, subscribed and loaded on this node.
    pub(crate) async fn prepare_join(
        &self,
        rooms: &Registry,
        room: &RoomName,
    ) -> Result<(), PublishError> {
        match self {
            Relay::Local => Ok(()),
            Relay::Redis(relay) => {
                rooms.get_or_create_room(room)?;
                Ok(relay.prepare_join(room).await?)
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
