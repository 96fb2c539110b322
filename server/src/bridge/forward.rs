//! `--channels-forward`: every message published in a mapped room (not one from Django) is
//! `group_send` into its group as `{"type": "chat.message", "message": ..., "user": ...}`,
//! with the message's `data` fields beside those (never replacing them).
//!
//! The relay's writer hands a message here once Redis has numbered it, on the node where it
//! was published, so it is forwarded once cluster-wide. One task sends them in order with the
//! chosen layer's semantics: the pub/sub layer's PUBLISH, or the core layer's `group_send`
//! (trim the group, read its channels, then one script that trims each channel's messages and
//! ZADDs the message, behind random bytes, into those under capacity). The room's own
//! registered channel is skipped: the message is already in the room.

use std::collections::BTreeMap;
use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use roomcast_protocol::{RoomName, UserName};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::group::{GroupMap, LayerNames};
use super::metrics::BridgeMetrics;
use super::msgpack::{encode, with_random_prefix};
use super::{Context, connect, unix_seconds, within};
use crate::config::ChannelsLayer;
use crate::history::MessageData;

/// Messages waiting to be forwarded. Past it new ones are not forwarded (counted as
/// `forward_full`) rather than queued without bound behind a slow Redis.
const MAX_QUEUED_FORWARDS: usize = 4096;

/// channels_redis's default `capacity`: a channel holding this many messages gets no more.
const CHANNEL_CAPACITY: u64 = 100;

/// channels_redis's default `expiry` in seconds: messages older than this are trimmed, and a
/// channel's sorted set expires this long after its last message.
const MESSAGE_EXPIRY_SECONDS: u64 = 60;

/// channels_redis's `group_send` script, with the per-channel trimming it pipelines before it
/// folded in. KEYS: channel keys. ARGV: one message per key, one capacity per key, now,
/// expiry. Returns how many channels were over capacity.
const GROUP_SEND: &str = r"
local over_capacity = 0
local current_time = ARGV[#ARGV - 1]
local expiry = ARGV[#ARGV]
for i=1,#KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, math.floor(tonumber(current_time)) - tonumber(expiry))
  if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
    redis.call('ZADD', KEYS[i], current_time, ARGV[i])
    redis.call('EXPIRE', KEYS[i], expiry)
  else
    over_capacity = over_capacity + 1
  end
end
return over_capacity
";

/// One message to forward.
#[derive(Debug)]
struct Forward {
    room: RoomName,
    group: String,
    user: UserName,
    text: Box<str>,
    data: Option<MessageData>,
}

/// The handle the relay's writer holds: queues a message without waiting.
#[derive(Debug, Clone)]
pub(crate) struct Forwarder {
    queue: mpsc::Sender<Forward>,
    groups: GroupMap,
    metrics: Arc<BridgeMetrics>,
}

impl Forwarder {
    /// Queues `text` (and its `data`) from `user` in `room` for its group, if the room is
    /// mapped.
    pub(crate) fn forward(
        &self,
        room: &RoomName,
        user: &UserName,
        text: &str,
        data: Option<&MessageData>,
    ) {
        let Some(group) = self.groups.group_of(room) else {
            return;
        };
        let forward = Forward {
            room: room.clone(),
            group,
            user: user.clone(),
            text: text.into(),
            data: data.cloned(),
        };
        if self.queue.try_send(forward).is_err() {
            self.metrics.record_error("forward_full");
            debug!(%room, "forward queue full; a message was not sent to Django");
        }
    }
}

/// Starts the forwarding task; the returned handle feeds it.
pub(super) fn start(context: &Arc<Context>, layer: ChannelsLayer) -> Forwarder {
    let (queue, receiver) = mpsc::channel(MAX_QUEUED_FORWARDS);
    let forwarder = Forwarder {
        queue,
        groups: context.groups.clone(),
        metrics: context.metrics.clone(),
    };
    context.tasks.spawn(run(context.clone(), layer, receiver));
    forwarder
}

async fn run(context: Arc<Context>, layer: ChannelsLayer, mut queue: mpsc::Receiver<Forward>) {
    let script = redis::Script::new(GROUP_SEND);
    let mut connection: Option<MultiplexedConnection> = None;
    let mut warned = false;
    loop {
        let forward = tokio::select! {
            () = context.stop.cancelled() => return,
            forward = queue.recv() => match forward {
                Some(forward) => forward,
                None => return,
            },
        };
        if connection.is_none() {
            connection = connect(&context.client).await.ok();
        }
        let Some(live) = connection.as_mut() else {
            context.metrics.record_error("forward");
            continue;
        };
        let sent = match layer {
            ChannelsLayer::Pubsub => publish(&context, live, &forward).await,
            _ => group_send(&context, &script, live, &forward).await,
        };
        match sent {
            Ok(()) => context.metrics.record_forwarded(),
            Err(e) => {
                context.metrics.record_error("forward");
                connection = None;
                if !warned {
                    warned = true;
                    warn!(room = %forward.room, error = %e, "a message was not forwarded to Django (later failures are counted in roomcast_bridge_errors_total{{kind=\"forward\"}})");
                }
            }
        }
    }
}

async fn publish(
    context: &Context,
    connection: &mut MultiplexedConnection,
    forward: &Forward,
) -> redis::RedisResult<()> {
    let channel = context.names.pubsub_group_channel(&forward.group);
    let data = forward.data.as_ref().map(MessageData::to_map);
    let body = encode(
        forward.user.as_str(),
        &forward.text,
        data.as_ref(),
        &context.origin,
        None,
    );
    let _receivers: i64 = within(
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(body)
            .query_async(connection),
    )
    .await?;
    Ok(())
}

async fn group_send(
    context: &Context,
    script: &redis::Script,
    connection: &mut MultiplexedConnection,
    forward: &Forward,
) -> redis::RedisResult<()> {
    let key = context.names.group_key(&forward.group);
    let now = unix_seconds();
    let trim_before = (now.floor() - context.group_expiry.as_secs_f64().floor()).max(0.0);
    let (channels,): (Vec<String>,) = within(
        redis::pipe()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg(0)
            .arg(trim_before)
            .ignore()
            .cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(connection),
    )
    .await?;
    let own = LayerNames::room_channel(&forward.room);
    // Channel key → the channel names it serves, as channels_redis's
    // `_map_channel_keys_to_connection` groups process-local channels.
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for channel in channels.into_iter().filter(|c| *c != own) {
        by_key
            .entry(context.names.channel_key(&channel))
            .or_default()
            .push(channel);
    }
    if by_key.is_empty() {
        return Ok(());
    }
    let mut invocation = script.prepare_invoke();
    for key in by_key.keys() {
        invocation.key(key);
    }
    let data = forward.data.as_ref().map(MessageData::to_map);
    for channels in by_key.values() {
        let body = encode(
            forward.user.as_str(),
            &forward.text,
            data.as_ref(),
            &context.origin,
            Some(channels),
        );
        invocation.arg(with_random_prefix(&body));
    }
    for _ in 0..by_key.len() {
        invocation.arg(CHANNEL_CAPACITY);
    }
    invocation.arg(now).arg(MESSAGE_EXPIRY_SECONDS);
    let over: i64 = within(invocation.invoke_async(connection)).await?;
    if over > 0 {
        debug!(room = %forward.room, over, "channels over capacity; they missed a forwarded message");
    }
    Ok(())
}
