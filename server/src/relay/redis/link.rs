//! A shard's connections and its subscriber: connect with bounded backoff, subscribe to the
//! rooms this node has members in, load each room's state, and deliver what the channels
//! carry. One task owns every room's subscription state, so loads and live messages are
//! applied in one order.
//!
//! Joining a room that is not live here: SUBSCRIBE (confirmed), then read the room's state in
//! one script. Messages that arrive meanwhile are held and applied after the state, skipping
//! those it already holds: replay first, then live, no duplicate, no gap.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use redis::{AsyncConnectionConfig, RedisResult};
use roomcast_protocol::{RoomName, UserName};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::wire::{self, Garbage, Relayed};
use super::{
    COMMAND_TIMEOUT, CONNECT_TIMEOUT, Context, FIRST_RECONNECT_BACKOFF, MAX_RECONNECT_BACKOFF,
    RelayError, Shard, Want, jittered,
};
use crate::history::Publication;
use crate::room::{Delivered, Room, Snapshot};

/// Messages held for one room while its state loads. Past it the held ones are dropped and the
/// room is loaded again once the first load lands (history covers what was dropped).
const MAX_HELD_WHILE_LOADING: usize = 4096;

/// Rooms named in one SUBSCRIBE or UNSUBSCRIBE command.
const MAX_CHANNELS_PER_COMMAND: usize = 512;

/// The state of one room on this node.
#[derive(Debug)]
struct Subscription {
    /// Bumped at every load; a load that finishes for an older one is stale.
    generation: u64,
    loading: bool,
    /// Load again when the current load lands (held messages overflowed, or a gap).
    reload: bool,
    held: Vec<Relayed>,
    /// The room object the last load went into; a new one (the old emptied) needs a load.
    loaded: Weak<Room>,
    /// Presence version applied last.
    pver: u64,
    waiters: Vec<oneshot::Sender<Result<(), RelayError>>>,
}

type Loaded = (RoomName, u64, RedisResult<RawSnapshot>);
type LoadFuture = Pin<Box<dyn Future<Output = Loaded> + Send>>;
/// `(epoch, seq, pver, history entries, users → sessions)` as the read script returns them.
type RawSnapshot = (String, u64, u64, Vec<Vec<u8>>, HashMap<String, u64>);

/// Why one connection's life ended.
enum End {
    Stop,
    Lost(String),
}

/// Runs until the relay stops.
pub(super) async fn run(shard: Arc<Shard>, context: Arc<Context>, mut wants: mpsc::Receiver<Want>) {
    let mut subscriber = Subscriber {
        shard: shard.clone(),
        context: context.clone(),
        rooms: HashMap::new(),
        loads: FuturesUnordered::new(),
        garbage_seen: HashSet::new(),
    };
    let mut backoff = FIRST_RECONNECT_BACKOFF;
    let mut ever_up = false;
    loop {
        let connected = tokio::select! {
            () = context.stop.cancelled() => return,
            connected = connect(&shard, &context) => connected,
        };
        match connected {
            Ok((connection, sink, stream)) => {
                backoff = FIRST_RECONNECT_BACKOFF;
                if ever_up {
                    context.metrics.record_reconnect(shard.index);
                }
                ever_up = true;
                shard.set_connection(Some(connection.clone()));
                context.metrics.set_up(shard.index, true);
                shard.generation.send_modify(|g| *g += 1);
                info!(shard = shard.index, "connected to Redis");
                // On stop the connection stays: `presence` still tells Redis who left.
                let End::Lost(why) = subscriber.serve(connection, sink, stream, &mut wants).await
                else {
                    return;
                };
                shard.set_connection(None);
                context.metrics.set_up(shard.index, false);
                subscriber.lost();
                warn!(shard = shard.index, %why, "lost Redis; reconnecting");
            }
            Err(e) => {
                context.metrics.record_error("connect");
                debug!(shard = shard.index, error = %e, pause = ?backoff, "could not connect to Redis");
                // Joins asked meanwhile are refused at once, not left waiting.
                while let Ok(want) = wants.try_recv() {
                    let _gone = want.reply.send(Err(RelayError::Down(shard.index)));
                }
                tokio::select! {
                    () = context.stop.cancelled() => return,
                    () = tokio::time::sleep(jittered(backoff)) => {}
                }
                backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
            }
        }
    }
}

async fn connect(
    shard: &Shard,
    context: &Context,
) -> RedisResult<(MultiplexedConnection, PubSubSink, PubSubStream)> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT));
    let mut connection = shard
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    within(context.scripts.load(&mut connection)).await?;
    let pubsub = within(shard.client.get_async_pubsub()).await?;
    let (sink, stream) = pubsub.split();
    Ok((connection, sink, stream))
}

/// `future`, failing as a timeout after [`COMMAND_TIMEOUT`].
async fn within<T>(future: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
    match tokio::time::timeout(COMMAND_TIMEOUT, future).await {
        Ok(result) => result,
        Err(_) => {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "Redis did not answer").into())
        }
    }
}

struct Subscriber {
    shard: Arc<Shard>,
    context: Arc<Context>,
    rooms: HashMap<RoomName, Subscription>,
    loads: FuturesUnordered<LoadFuture>,
    garbage_seen: HashSet<Garbage>,
}

impl Subscriber {
    /// Serves one connection's life.
    async fn serve(
        &mut self,
        connection: MultiplexedConnection,
        mut sink: PubSubSink,
        mut stream: PubSubStream,
        wants: &mut mpsc::Receiver<Want>,
    ) -> End {
        let context = self.context.clone();
        let notices = context.notices.shard(self.shard.index);
        // Everything this node had is subscribed and loaded again: messages published while
        // the connection was down come from history, or the gap is counted.
        let mut to_subscribe: Vec<RoomName> = self.rooms.keys().cloned().collect();
        let mut to_unsubscribe: Vec<RoomName> = Vec::new();
        for room in notices.take_rooms() {
            self.check(&room, &mut to_subscribe, &mut to_unsubscribe);
        }
        loop {
            if let Err(why) = self
                .apply_subscriptions(
                    &connection,
                    &mut sink,
                    &mut to_subscribe,
                    &mut to_unsubscribe,
                )
                .await
            {
                return End::Lost(why);
            }
            tokio::select! {
                biased;
                () = self.context.stop.cancelled() => return End::Stop,
                () = self.shard.broken.notified() => return End::Lost("a command failed".into()),
                message = stream.next() => match message {
                    Some(message) => self.on_message(message.get_channel_name(), message.get_payload_bytes(), &connection),
                    None => return End::Lost("the pub/sub connection closed".into()),
                },
                Some(loaded) = self.loads.next(), if !self.loads.is_empty() => {
                    if let Err(why) = self.on_loaded(loaded, &connection) {
                        return End::Lost(why);
                    }
                }
                Some(want) = wants.recv() => self.on_want(want, &mut to_subscribe),
                () = notices.rooms_changed.notified() => {
                    for room in notices.take_rooms() {
                        self.check(&room, &mut to_subscribe, &mut to_unsubscribe);
                    }
                }
            }
        }
    }

    /// The connection is gone: loads in flight are void, waiting joins are refused.
    fn lost(&mut self) {
        self.loads = FuturesUnordered::new();
        for subscription in self.rooms.values_mut() {
            subscription.loading = false;
            subscription.held.clear();
            for waiter in subscription.waiters.drain(..) {
                let _gone = waiter.send(Err(RelayError::Down(self.shard.index)));
            }
        }
        self.context
            .metrics
            .set_subscribed(self.shard.index, self.rooms.len());
    }

    /// Sends pending SUBSCRIBE and UNSUBSCRIBE commands (a few rooms per command), then starts
    /// loading the subscribed rooms.
    async fn apply_subscriptions(
        &mut self,
        connection: &MultiplexedConnection,
        sink: &mut PubSubSink,
        to_subscribe: &mut Vec<RoomName>,
        to_unsubscribe: &mut Vec<RoomName>,
    ) -> Result<(), String> {
        let keys = &self.context.keys;
        for rooms in to_unsubscribe.chunks(MAX_CHANNELS_PER_COMMAND) {
            let channels: Vec<String> = rooms.iter().map(|r| keys.channel(r)).collect();
            within(sink.unsubscribe(&channels)).await.map_err(|e| {
                self.context.metrics.record_error("subscribe");
                format!("UNSUBSCRIBE failed: {e}")
            })?;
        }
        to_unsubscribe.clear();
        for rooms in to_subscribe.chunks(MAX_CHANNELS_PER_COMMAND) {
            let channels: Vec<String> = rooms.iter().map(|r| keys.channel(r)).collect();
            within(sink.subscribe(&channels)).await.map_err(|e| {
                self.context.metrics.record_error("subscribe");
                format!("SUBSCRIBE failed: {e}")
            })?;
        }
        for room in to_subscribe.drain(..) {
            self.start_load(&room, connection);
        }
        self.context
            .metrics
            .set_subscribed(self.shard.index, self.rooms.len());
        Ok(())
    }

    /// A join wants `want.room` live here.
    fn on_want(&mut self, want: Want, to_subscribe: &mut Vec<RoomName>) {
        let current = self.context.rooms.get(&want.room);
        match self.rooms.get_mut(&want.room) {
            Some(subscription)
                if !subscription.loading
                    && current
                        .as_ref()
                        .is_some_and(|room| same(&subscription.loaded, room)) =>
            {
                let _gone = want.reply.send(Ok(()));
            }
            Some(subscription) => {
                subscription.waiters.push(want.reply);
                if !subscription.loading {
                    // The room object was replaced (it emptied and was removed): load it.
                    to_subscribe.push(want.room);
                }
            }
            None => {
                let mut subscription = Subscription::new();
                subscription.waiters.push(want.reply);
                self.rooms.insert(want.room.clone(), subscription);
                to_subscribe.push(want.room);
            }
        }
    }

    /// Subscribes `room` when it has local members and is not subscribed; unsubscribes when it
    /// has none and no join is waiting for it.
    fn check(
        &mut self,
        room: &RoomName,
        to_subscribe: &mut Vec<RoomName>,
        to_unsubscribe: &mut Vec<RoomName>,
    ) {
        let has_members = self
            .context
            .rooms
            .get(room)
            .is_some_and(|r| r.has_members());
        match self.rooms.get(room) {
            Some(subscription) if !has_members && subscription.waiters.is_empty() => {
                self.rooms.remove(room);
                to_unsubscribe.push(room.clone());
                to_subscribe.retain(|r| r != room);
            }
            None if has_members => {
                self.rooms.insert(room.clone(), Subscription::new());
                to_subscribe.push(room.clone());
            }
            _ => {}
        }
    }

    fn start_load(&mut self, room: &RoomName, connection: &MultiplexedConnection) {
        let Some(subscription) = self.rooms.get_mut(room) else {
            return;
        };
        if subscription.loading {
            subscription.reload = true;
            return;
        }
        subscription.generation += 1;
        subscription.loading = true;
        subscription.reload = false;
        let generation = subscription.generation;
        let context = self.context.clone();
        let mut connection = connection.clone();
        let room = room.clone();
        self.loads.push(Box::pin(async move {
            let keys = &context.keys;
            let mut read = context.scripts.read.key(keys.meta(&room));
            read.key(keys.history(&room))
                .key(keys.users(&room))
                .arg(format!("{:016x}", fastrand::u64(..)))
                .arg(context.settings.key_ttl_ms);
            let result = within(read.invoke_async(&mut connection)).await;
            (room, generation, result)
        }));
    }

    fn on_loaded(
        &mut self,
        (room, generation, result): Loaded,
        connection: &MultiplexedConnection,
    ) -> Result<(), String> {
        if self
            .rooms
            .get(&room)
            .is_none_or(|s| s.generation != generation)
        {
            return Ok(());
        }
        let decoded = result.map(|raw| self.snapshot(&room, raw));
        let Some(subscription) = self.rooms.get_mut(&room) else {
            return Ok(());
        };
        subscription.loading = false;
        let (snapshot, pver) = match decoded {
            Ok(raw) => raw,
            Err(e) => {
                self.context.metrics.record_error("load");
                for waiter in subscription.waiters.drain(..) {
                    let _gone = waiter.send(Err(RelayError::Failed(self.shard.index)));
                }
                return Err(format!("loading {room} failed: {e}"));
            }
        };
        let Some(target) = self.context.rooms.get(&room) else {
            // Emptied and removed while loading; a waiting join creates it again.
            if !subscription.waiters.is_empty() {
                self.start_load(&room, connection);
            }
            return Ok(());
        };
        let was_loaded = subscription
            .loaded
            .upgrade()
            .is_some_and(|r| Arc::ptr_eq(&r, &target));
        let complete = target.load(snapshot);
        if was_loaded {
            self.context.metrics.record_gap(complete);
            if !complete {
                warn!(%room, "messages were lost for this node's members of the room (history did not cover the gap)");
            }
        }
        subscription.loaded = Arc::downgrade(&target);
        subscription.pver = pver;
        let held = std::mem::take(&mut subscription.held);
        let reload = subscription.reload;
        for waiter in subscription.waiters.drain(..) {
            let _gone = waiter.send(Ok(()));
        }
        for item in held {
            self.apply(&room, item, connection);
        }
        if reload {
            self.start_load(&room, connection);
        }
        Ok(())
    }

    fn snapshot(&mut self, room: &RoomName, raw: RawSnapshot) -> (Snapshot, u64) {
        let (epoch, seq, pver, entries, users) = raw;
        let history = entries
            .iter()
            .filter_map(|entry| match wire::decode(entry) {
                Ok(Relayed::Message {
                    seq,
                    ts,
                    user,
                    text,
                    data,
                    ..
                }) => Some(Arc::new(Publication::with_data(
                    room.clone(),
                    user,
                    seq,
                    ts,
                    &text,
                    data,
                ))),
                Ok(_) => None,
                Err(kind) => {
                    self.garbage(room, kind);
                    None
                }
            })
            .collect();
        let users = users
            .into_iter()
            .filter(|(_, sessions)| *sessions > 0)
            .filter_map(|(user, _)| UserName::new(&user).ok())
            .collect();
        (
            Snapshot {
                epoch: epoch.into(),
                seq,
                history,
                users,
            },
            pver,
        )
    }

    fn on_message(&mut self, channel: &str, payload: &[u8], connection: &MultiplexedConnection) {
        let Some(room) = self.context.keys.room_of_channel(channel) else {
            return;
        };
        match wire::decode(payload) {
            Ok(item) => self.apply(&room, item, connection),
            Err(kind) => self.garbage(&room, kind),
        }
    }

    /// Applies one item of `room`'s stream, or holds it while the room loads.
    fn apply(&mut self, room: &RoomName, item: Relayed, connection: &MultiplexedConnection) {
        let Some(subscription) = self.rooms.get_mut(room) else {
            return;
        };
        if subscription.loading {
            if subscription.held.len() < MAX_HELD_WHILE_LOADING {
                subscription.held.push(item);
            } else {
                subscription.held.clear();
                subscription.reload = true;
            }
            return;
        }
        let Some(target) = self
            .context
            .rooms
            .get(room)
            .filter(|r| same(&subscription.loaded, r))
        else {
            // Not loaded into the room that exists now: load, and hold this meanwhile.
            self.start_load(room, connection);
            if let Some(subscription) = self.rooms.get_mut(room) {
                subscription.held.push(item);
            }
            return;
        };
        match item {
            Relayed::Message {
                epoch,
                seq,
                ts,
                user,
                text,
                data,
            } => {
                let message = Arc::new(Publication::with_data(
                    room.clone(),
                    user,
                    seq,
                    ts,
                    &text,
                    data,
                ));
                if target.deliver(&epoch, message) == Delivered::Gap {
                    debug!(%room, seq, "gap in the room's stream; loading it again");
                    self.start_load(room, connection);
                }
            }
            Relayed::Join { pver, user } => {
                if pver > subscription.pver {
                    let skipped = pver != subscription.pver + 1;
                    subscription.pver = pver;
                    target.announce_join(&user);
                    if skipped {
                        self.start_load(room, connection);
                    }
                }
            }
            Relayed::Leave { pver, user, reason } => {
                if pver > subscription.pver {
                    let skipped = pver != subscription.pver + 1;
                    subscription.pver = pver;
                    target.announce_leave(&user, reason);
                    if skipped {
                        self.start_load(room, connection);
                    }
                }
            }
        }
    }

    fn garbage(&mut self, room: &RoomName, kind: Garbage) {
        self.context.metrics.record_garbage(kind.label());
        if self.garbage_seen.insert(kind) {
            warn!(%room, kind = kind.label(), "ignoring a payload that is not roomcast's on a room channel (logged once per kind)");
        }
    }
}

impl Subscription {
    fn new() -> Self {
        Self {
            generation: 0,
            loading: false,
            reload: false,
            held: Vec::new(),
            loaded: Weak::new(),
            pver: 0,
            waiters: Vec::new(),
        }
    }
}

fn same(loaded: &Weak<Room>, room: &Arc<Room>) -> bool {
    std::ptr::eq(loaded.as_ptr(), Arc::as_ptr(room))
}
