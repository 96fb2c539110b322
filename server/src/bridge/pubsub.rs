//! `RedisPubSubChannelLayer`: `group_send` PUBLISHes the msgpack message on
//! `<prefix>__group__<group>`, to whoever is subscribed at that instant.
//!
//! Every node holding a mapped room subscribes to its group while the room has local members.
//! Each of them thus receives every message, so exactly one publishes it to the room: the
//! node holding the room's lease (`<redis-prefix>:bridge:<room>:owner`, set for
//! `--channels-registration-ttl`, renewed every third of it). A node believes it owns the
//! room only for two thirds of the lease after each renewal started, so two nodes never both
//! publish; when the owner dies its rooms' messages are dropped until another node takes the
//! lease over (at most the TTL and a third), as the pub/sub layer drops messages sent while
//! nobody listens.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use roomcast_protocol::RoomName;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Context, RECONNECT_PAUSE, connect, within};

/// Takes the lease when it is free or already ours, for ARGV[2] ms.
const CLAIM: &str = r"
local owner = redis.call('GET', KEYS[1])
if owner == false or owner == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Lets go of the lease if it is ours, so another node can take it at its next renewal.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
";

struct Listener {
    context: Arc<Context>,
    claim: redis::Script,
    release: redis::Script,
    /// Rooms held here whose group this node subscribes to.
    subscribed: HashSet<RoomName>,
    /// Rooms whose lease this node holds, and until when it may believe so.
    owned: HashMap<RoomName, Instant>,
}

/// Runs until the bridge stops, connecting again after every loss.
pub(super) async fn run(context: Arc<Context>) {
    let mut listener = Listener {
        context: context.clone(),
        claim: redis::Script::new(CLAIM),
        release: redis::Script::new(RELEASE),
        subscribed: HashSet::new(),
        owned: HashMap::new(),
    };
    loop {
        let connected = tokio::select! {
            () = context.stop.cancelled() => break,
            connected = async {
                let mut connection = connect(&context.client).await?;
                // Pipelined scripts are not loaded on demand (NOSCRIPT): load them first.
                within(listener.claim.prepare_invoke().load_async(&mut connection)).await?;
                within(listener.release.prepare_invoke().load_async(&mut connection)).await?;
                let (sink, stream) = within(context.client.get_async_pubsub()).await?.split();
                redis::RedisResult::Ok((connection, sink, stream))
            } => connected,
        };
        match connected {
            Ok((connection, sink, stream)) => {
                context.metrics.set_up(true);
                info!("bridge connected to the Channels layer's Redis (pub/sub layer)");
                let why = listener.serve(connection, sink, stream).await;
                context.metrics.set_up(false);
                listener.owned.clear();
                context.metrics.set_owned_groups(0);
                match why {
                    None => break,
                    Some(why) => warn!(%why, "bridge lost Redis; connecting again"),
                }
            }
            Err(e) => {
                context.metrics.record_error("connect");
                warn!(error = %e, "bridge could not connect to Redis; trying again");
            }
        }
        tokio::select! {
            () = context.stop.cancelled() => break,
            () = tokio::time::sleep(RECONNECT_PAUSE) => {}
        }
    }
    listener.release_all().await;
}

impl Listener {
    /// Serves one connection's life; `None` when the bridge stops, else why it ended.
    async fn serve(
        &mut self,
        mut connection: MultiplexedConnection,
        mut sink: PubSubSink,
        mut stream: PubSubStream,
    ) -> Option<String> {
        let context = self.context.clone();
        // Rooms held before a reconnect are subscribed again, with the ones that changed since.
        let mut changed: HashSet<RoomName> = self.subscribed.drain().collect();
        changed.extend(context.notices.take());
        let renew_every = context.ttl / 3;
        let mut renew = tokio::time::interval_at(Instant::now() + renew_every, renew_every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if !changed.is_empty() {
                let rooms = std::mem::take(&mut changed);
                if let Err(e) = self.apply(rooms, &mut connection, &mut sink).await {
                    return Some(e);
                }
            }
            tokio::select! {
                biased;
                () = context.stop.cancelled() => return None,
                message = stream.next() => {
                    let Some(message) = message else {
                        return Some("the pub/sub connection closed".into());
                    };
                    self.on_message(message.get_channel_name(), message.get_payload_bytes()).await;
                }
                () = context.notices.changed() => changed.extend(context.notices.take()),
                _ = renew.tick() => {
                    let rooms: Vec<RoomName> = self.subscribed.iter().cloned().collect();
                    if let Err(e) = self.claim(&rooms, &mut connection).await {
                        return Some(e);
                    }
                }
            }
        }
    }

    /// Subscribes to the groups of rooms now held here, unsubscribes from the others.
    async fn apply(
        &mut self,
        rooms: HashSet<RoomName>,
        connection: &mut MultiplexedConnection,
        sink: &mut PubSubSink,
    ) -> Result<(), String> {
        let context = self.context.clone();
        let mut added = Vec::new();
        for room in rooms {
            let Some(group) = context.groups.group_of(&room) else {
                continue;
            };
            let channel = context.names.pubsub_group_channel(&group);
            let held = context.holds(&room);
            if held && !self.subscribed.contains(&room) {
                within(sink.subscribe(&channel)).await.map_err(|e| {
                    context.metrics.record_error("subscribe");
                    format!("SUBSCRIBE {channel} failed: {e}")
                })?;
                self.subscribed.insert(room.clone());
                added.push(room);
            } else if !held && self.subscribed.remove(&room) {
                within(sink.unsubscribe(&channel)).await.map_err(|e| {
                    context.metrics.record_error("subscribe");
                    format!("UNSUBSCRIBE {channel} failed: {e}")
                })?;
                if self.owned.remove(&room).is_some() {
                    let key = self.lease_key(&room);
                    let mut release = self.release.key(key);
                    release.arg(&context.node);
                    let released: redis::RedisResult<i64> =
                        within(release.invoke_async(connection)).await;
                    released.map_err(|e| format!("releasing {room}'s lease failed: {e}"))?;
                }
            }
        }
        context.metrics.set_groups(self.subscribed.len());
        self.claim(&added, connection).await
    }

    /// Takes or renews the lease of each of `rooms`.
    async fn claim(
        &mut self,
        rooms: &[RoomName],
        connection: &mut MultiplexedConnection,
    ) -> Result<(), String> {
        let context = self.context.clone();
        let ttl = context.ttl;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        for chunk in rooms.chunks(256) {
            let started = Instant::now();
            let mut pipe = redis::pipe();
            for room in chunk {
                let mut claim = self.claim.key(self.lease_key(room));
                claim.arg(&context.node).arg(ttl_ms);
                pipe.invoke_script(&claim);
            }
            let answers: Vec<i64> = within(pipe.query_async(connection)).await.map_err(|e| {
                context.metrics.record_error("register");
                format!("renewing leases failed: {e}")
            })?;
            let believe_until = started + ttl.mul_f64(2.0 / 3.0);
            for (room, answer) in chunk.iter().zip(answers) {
                if answer == 1 {
                    self.owned.insert(room.clone(), believe_until);
                } else {
                    self.owned.remove(room);
                }
            }
        }
        context.metrics.set_owned_groups(self.owned.len());
        Ok(())
    }

    async fn on_message(&mut self, channel: &str, payload: &[u8]) {
        let context = &self.context;
        let Some(room) = context
            .names
            .group_of_pubsub_channel(channel)
            .and_then(|group| context.groups.room_of(group))
        else {
            return;
        };
        let owner = self
            .owned
            .get(&room)
            .is_some_and(|until| Instant::now() < *until);
        // Every node reads (and counts what it cannot read); only the owner publishes.
        context.clone().receive(room, payload, 0, owner).await;
    }

    fn lease_key(&self, room: &RoomName) -> String {
        format!("{}:bridge:{room}:owner", self.context.origin)
    }

    /// On stop: lets go of every lease, so other nodes take the rooms over at their next
    /// renewal instead of after the TTL (bounded; a dead node's leases lapse by themselves).
    async fn release_all(&mut self) {
        if self.owned.is_empty() {
            return;
        }
        let Ok(mut connection) = connect(&self.context.client).await else {
            return;
        };
        let loaded = within(self.release.prepare_invoke().load_async(&mut connection)).await;
        if loaded.is_err() {
            return;
        }
        let mut pipe = redis::pipe();
        for room in self.owned.keys() {
            let mut release = self.release.key(self.lease_key(room));
            release.arg(&self.context.node);
            pipe.invoke_script(&release).ignore();
        }
        let released: redis::RedisResult<()> = within(pipe.query_async(&mut connection)).await;
        if let Err(e) = released {
            warn!(error = %e, "could not release the bridge's leases; they lapse by themselves");
        }
        self.owned.clear();
    }
}
