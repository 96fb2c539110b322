//! `RedisChannelLayer` (channels_redis's default): `group_send` reads the channel names in the
//! group's sorted set `<prefix>:group:<group>` (after trimming those scored before
//! `now - group_expiry`) and ZADDs the message, behind 12 random bytes, into each channel's
//! sorted set `<prefix><channel>`, unless it already holds `capacity` messages.
//!
//! Each room held here is registered as the channel `roomcast.<room>`, shared by every node
//! of this deployment holding the room, so the layer writes each message once and the one
//! node whose BZPOPMIN takes it publishes it. Registrations are scored `now - group_expiry +
//! ttl`: the app's own trimming drops one `--channels-registration-ttl` after its last refresh
//! (every third of the TTL), and the group key's TTL is raised to at least the TTL, so a node
//! that dies leaves nothing behind for longer than that. A room that empties is simply no
//! longer refreshed or consumed (another node may still hold it).

use std::collections::{BTreeSet, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use roomcast_protocol::RoomName;
use tokio::time::Instant;
use tracing::{info, warn};

use super::group::LayerNames;
use super::msgpack::CORE_RANDOM_PREFIX_BYTES;
use super::{COMMAND_TIMEOUT, Context, RECONNECT_PAUSE, connect, unix_seconds, within};

/// Registers a channel in a group: trims as `group_send` does, adds it with ARGV[2] as score,
/// and makes the group key live at least ARGV[4] seconds.
const REGISTER: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return 0
";

/// How long one BZPOPMIN blocks. A room that starts being held while one is blocked ends it
/// (CLIENT UNBLOCK), so this paces an idle loop; it bounds the wait of a new room's first
/// message only in the rare race where the unblock reaches Redis before the BZPOPMIN.
const BLOCK_SECONDS: f64 = 2.0;

/// Messages taken at once from a channel after a BZPOPMIN found one, so a burst costs one
/// round trip per this many messages.
const DRAIN_BATCH: usize = 64;

type Popped = redis::RedisResult<Vec<(String, Vec<u8>)>>;

struct Consumer {
    context: Arc<Context>,
    register: redis::Script,
    /// Rooms held here, registered and consumed.
    held: BTreeSet<RoomName>,
}

/// Runs until the bridge stops, connecting again after every loss.
pub(super) async fn run(context: Arc<Context>) {
    let mut consumer = Consumer {
        context: context.clone(),
        register: redis::Script::new(REGISTER),
        held: BTreeSet::new(),
    };
    loop {
        let connected = tokio::select! {
            () = context.stop.cancelled() => return,
            connected = connect_both(&context, &consumer.register) => connected,
        };
        match connected {
            Ok((connection, blocking, blocking_id)) => {
                context.metrics.set_up(true);
                info!("bridge connected to the Channels layer's Redis (core layer)");
                let why = consumer.serve(connection, blocking, blocking_id).await;
                context.metrics.set_up(false);
                match why {
                    None => return,
                    Some(why) => warn!(%why, "bridge lost Redis; connecting again"),
                }
            }
            Err(e) => {
                context.metrics.record_error("connect");
                warn!(error = %e, "bridge could not connect to Redis; trying again");
            }
        }
        tokio::select! {
            () = context.stop.cancelled() => return,
            () = tokio::time::sleep(RECONNECT_PAUSE) => {}
        }
    }
}

/// A command connection, and one for BZPOPMIN alone (a blocked connection answers nothing
/// else) with its client id, so a change of rooms can unblock it.
async fn connect_both(
    context: &Context,
    register: &redis::Script,
) -> redis::RedisResult<(MultiplexedConnection, MultiplexedConnection, i64)> {
    let mut connection = connect(&context.client).await?;
    // Pipelined scripts are not loaded on demand (NOSCRIPT): load it first.
    within(register.prepare_invoke().load_async(&mut connection)).await?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(
            Duration::from_secs_f64(BLOCK_SECONDS) + COMMAND_TIMEOUT,
        ));
    let mut blocking = context
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let id: i64 = within(redis::cmd("CLIENT").arg("ID").query_async(&mut blocking)).await?;
    Ok((connection, blocking, id))
}

impl Consumer {
    /// Serves one connection's life; `None` when the bridge stops, else why it ended.
    async fn serve(
        &mut self,
        mut connection: MultiplexedConnection,
        blocking: MultiplexedConnection,
        blocking_id: i64,
    ) -> Option<String> {
        let context = self.context.clone();
        let mut changed: HashSet<RoomName> = std::mem::take(&mut self.held).into_iter().collect();
        changed.extend(context.notices.take());
        let refresh_every = context.ttl / 3;
        let mut refresh = tokio::time::interval_at(Instant::now() + refresh_every, refresh_every);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut popping: Option<Pin<Box<dyn Future<Output = Popped> + Send>>> = None;
        loop {
            if !changed.is_empty() {
                let rooms = std::mem::take(&mut changed);
                let added = self.apply(rooms);
                if let Err(e) = self.refresh(&added, &mut connection).await {
                    return Some(e);
                }
                // Counted once registered, so a count of 1 means Django can reach the room.
                context.metrics.set_groups(self.held.len());
                if popping.is_some() {
                    // The blocked BZPOPMIN names the old rooms: end it now (it answers nil,
                    // taking nothing) and block again on the new set.
                    let unblocked: redis::RedisResult<i64> = within(
                        redis::cmd("CLIENT")
                            .arg("UNBLOCK")
                            .arg(blocking_id)
                            .query_async(&mut connection),
                    )
                    .await;
                    if let Err(e) = unblocked {
                        return Some(format!("CLIENT UNBLOCK failed: {e}"));
                    }
                }
            }
            if popping.is_none() && !self.held.is_empty() {
                popping = Some(Box::pin(pop(blocking.clone(), self.keys())));
            }
            tokio::select! {
                // Polled first, so the BZPOPMIN is sent before anything can unblock it.
                biased;
                popped = async {
                    match popping.as_mut() {
                        Some(pop) => pop.await,
                        None => std::future::pending().await,
                    }
                }, if popping.is_some() => {
                    popping = None;
                    match popped {
                        Ok(messages) => {
                            for (key, payload) in messages {
                                if let Some(room) = room_of_key(&context.names, &key) {
                                    context.receive(room, &payload, CORE_RANDOM_PREFIX_BYTES, true).await;
                                }
                            }
                        }
                        Err(e) => return Some(format!("BZPOPMIN failed: {e}")),
                    }
                }
                () = context.stop.cancelled() => return None,
                () = context.notices.changed() => changed.extend(context.notices.take()),
                _ = refresh.tick() => {
                    let rooms: Vec<RoomName> = self.held.iter().cloned().collect();
                    if let Err(e) = self.refresh(&rooms, &mut connection).await {
                        return Some(e);
                    }
                }
            }
        }
    }

    /// Updates the held set from rooms whose membership changed; returns the new ones.
    fn apply(&mut self, rooms: HashSet<RoomName>) -> Vec<RoomName> {
        let context = &self.context;
        let mut added = Vec::new();
        for room in rooms {
            if context.groups.group_of(&room).is_none() {
                continue;
            }
            if context.holds(&room) {
                if self.held.insert(room.clone()) {
                    added.push(room);
                }
            } else {
                self.held.remove(&room);
            }
        }
        added
    }

    /// Registers (again) the channel of each of `rooms` in its group, in one round trip per
    /// 256 rooms.
    async fn refresh(
        &self,
        rooms: &[RoomName],
        connection: &mut MultiplexedConnection,
    ) -> Result<(), String> {
        let context = &self.context;
        let ttl = context.ttl.as_secs_f64();
        let expiry = context.group_expiry.as_secs_f64();
        let key_ttl = context.ttl.as_secs() + 1;
        for chunk in rooms.chunks(256) {
            let now = unix_seconds();
            let score = now - expiry + ttl;
            let trim_before = (now.floor() - expiry.floor()).max(0.0);
            let mut pipe = redis::pipe();
            for room in chunk {
                let Some(group) = context.groups.group_of(room) else {
                    continue;
                };
                let mut register = self.register.key(context.names.group_key(&group));
                register
                    .arg(LayerNames::room_channel(room))
                    .arg(score)
                    .arg(trim_before)
                    .arg(key_ttl);
                pipe.invoke_script(&register).ignore();
            }
            let done: redis::RedisResult<()> = within(pipe.query_async(connection)).await;
            done.map_err(|e| {
                context.metrics.record_error("register");
                format!("registering channels failed: {e}")
            })?;
        }
        Ok(())
    }

    fn keys(&self) -> Vec<String> {
        self.held
            .iter()
            .map(|room| {
                self.context
                    .names
                    .channel_key(&LayerNames::room_channel(room))
            })
            .collect()
    }
}

/// Waits for a message on any of `keys`, then takes up to [`DRAIN_BATCH`] more from the same
/// key. Nil (a timeout or CLIENT UNBLOCK) is an empty list.
async fn pop(mut blocking: MultiplexedConnection, keys: Vec<String>) -> Popped {
    let first: Option<(String, Vec<u8>, f64)> = redis::cmd("BZPOPMIN")
        .arg(&keys)
        .arg(BLOCK_SECONDS)
        .query_async(&mut blocking)
        .await?;
    let Some((key, member, _score)) = first else {
        return Ok(Vec::new());
    };
    let more: Vec<(Vec<u8>, f64)> = within(
        redis::cmd("ZPOPMIN")
            .arg(&key)
            .arg(DRAIN_BATCH)
            .query_async(&mut blocking),
    )
    .await?;
    let mut messages = Vec::with_capacity(1 + more.len());
    messages.push((key.clone(), member));
    messages.extend(more.into_iter().map(|(member, _)| (key.clone(), member)));
    Ok(messages)
}

/// The room whose channel key `key` is.
fn room_of_key(names: &LayerNames, key: &str) -> Option<RoomName> {
    let prefix = names.channel_key(LayerNames::room_channel_start());
    key.strip_prefix(&prefix)
        .and_then(|room| RoomName::new(room).ok())
}
