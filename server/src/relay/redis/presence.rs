//! A shard's presence: this node's heartbeat, the sweep of nodes that stopped beating, the key
//! TTLs of rooms with members here, and this node's sessions per user and room.
//!
//! A node that dies without a word stops heartbeating; within `--redis-node-timeout` plus one
//! heartbeat period the next sweep on a live node removes its members and publishes their
//! `leave` (reason `timeout`) to every node.

use std::collections::HashMap;
use std::sync::Arc;

use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Value};
use roomcast_protocol::{LeaveReason, RoomName, UserName};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::ring::shard_of;
use super::{COMMAND_TIMEOUT, Context, Shard};

/// Rooms visited by one sweep call; Redis runs a script alone, so each call stays short.
const MAX_ROOMS_PER_SWEEP_CALL: usize = 200;

/// Sweep calls per heartbeat: a dead node with very many rooms is swept over a few beats.
const MAX_SWEEP_CALLS_PER_BEAT: usize = 20;

/// Rooms whose TTLs one touch call refreshes.
const MAX_ROOMS_PER_TOUCH: usize = 500;

/// Presence changes sent in one round trip.
const MAX_PRESENCE_PER_ROUND_TRIP: usize = 256;

/// Runs until the relay stops, then tells Redis this node's members left and that it is gone.
///
/// `generation` must be subscribed before the shard's link task starts: a receiver made here
/// would count a connection that came up first as already seen, and this node would never
/// collect its presence changes (its later joins would never reach other nodes).
pub(super) async fn run(
    shard: Arc<Shard>,
    context: Arc<Context>,
    mut generation: watch::Receiver<u64>,
) {
    let notices = context.notices.shard(shard.index);
    let period = context.settings.node_timeout / 3;
    let mut beats = tokio::time::interval(period);
    beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut resend_all = true;
    loop {
        tokio::select! {
            biased;
            () = context.stop.cancelled() => break,
            changed = generation.changed() => {
                if changed.is_err() {
                    break;
                }
                resend_all = true;
                notices.want_presence(true);
                beats.reset_immediately();
            }
            _ = beats.tick() => {
                let Some(connection) = shard.connection() else {
                    notices.want_presence(false);
                    resend_all = true;
                    continue;
                };
                match beat(&shard, &context, connection.clone()).await {
                    Ok(unknown) => {
                        if unknown && !resend_all {
                            warn!(shard = shard.index, "this node had been counted dead; sending its presence again");
                            resend_all = true;
                        }
                    }
                    Err(e) => {
                        context.metrics.record_error("heartbeat");
                        debug!(shard = shard.index, error = %e, "heartbeat failed");
                        shard.broken.notify_one();
                        continue;
                    }
                }
                if resend_all {
                    // Collect changes from before the whole presence is read, so none made
                    // after it is lost, whatever told this task that the link came up.
                    notices.want_presence(true);
                    match send_all(&shard, &context, connection).await {
                        Ok(()) => resend_all = false,
                        Err(e) => {
                            context.metrics.record_error("presence");
                            debug!(shard = shard.index, error = %e, "sending presence failed");
                            shard.broken.notify_one();
                        }
                    }
                }
            }
            () = notices.presence_changed.notified() => {
                let changes = notices.take_presence();
                let Some(connection) = shard.connection() else {
                    resend_all = true;
                    continue;
                };
                if resend_all {
                    // The whole presence goes with the next beat.
                    continue;
                }
                if let Err(e) = send_changes(&context, connection, changes).await {
                    context.metrics.record_error("presence");
                    debug!(shard = shard.index, error = %e, "sending presence failed");
                    resend_all = true;
                    shard.broken.notify_one();
                }
            }
        }
    }
    // Stopping: sessions have closed; say so now rather than leave it to a sweep.
    if let Some(connection) = shard.connection() {
        let changes = notices.take_presence();
        let left = async {
            send_changes(&context, connection.clone(), changes).await?;
            let mut connection = connection;
            redis::cmd("ZREM")
                .arg(context.keys.nodes())
                .arg(&context.node)
                .query_async::<Value>(&mut connection)
                .await
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, left).await {
            Ok(Ok(_)) => info!(shard = shard.index, "told Redis this node left"),
            _ => warn!(
                shard = shard.index,
                "could not tell Redis this node left; other nodes will sweep it"
            ),
        }
    }
}

/// Heartbeat, sweep of dead nodes, TTLs of this node's rooms. Returns whether Redis did not
/// know this node (first beat, Redis lost its data, or another node swept this one).
async fn beat(
    shard: &Shard,
    context: &Context,
    mut connection: MultiplexedConnection,
) -> RedisResult<bool> {
    let keys = &context.keys;
    let settings = &context.settings;
    let timeout_ms = u64::try_from(settings.node_timeout.as_millis()).unwrap_or(u64::MAX);
    let unknown: i64 = timed(
        context
            .scripts
            .heartbeat
            .key(keys.nodes())
            .key(keys.node_rooms(&context.node))
            .arg(&context.node)
            .arg(timeout_ms)
            .arg(settings.key_ttl_ms)
            .invoke_async(&mut connection),
    )
    .await?;
    for _ in 0..MAX_SWEEP_CALLS_PER_BEAT {
        let (visited, dead): (u64, u64) = timed(
            context
                .scripts
                .sweep
                .key(keys.nodes())
                .arg(keys.prefix())
                .arg(MAX_ROOMS_PER_SWEEP_CALL)
                .invoke_async(&mut connection),
        )
        .await?;
        if visited > 0 {
            info!(
                shard = shard.index,
                rooms = visited,
                "removed a dead node's members from presence"
            );
            context.metrics.record_swept(visited);
        }
        if dead == 0 {
            break;
        }
    }
    let rooms = local_rooms(shard, context);
    for chunk in rooms.chunks(MAX_ROOMS_PER_TOUCH) {
        let mut call = context.scripts.touch.arg(keys.prefix());
        call.arg(&context.node).arg(settings.key_ttl_ms);
        for room in chunk {
            call.arg(room.as_str());
        }
        let _: Value = timed(call.invoke_async(&mut connection)).await?;
    }
    Ok(unknown == 1)
}

/// This node's rooms with members on `shard`.
fn local_rooms(shard: &Shard, context: &Context) -> Vec<RoomName> {
    let shards = context.notices.shards();
    context
        .rooms
        .all()
        .into_iter()
        .filter(|room| shard_of(room.name.as_str(), shards) == shard.index && room.has_members())
        .map(|room| room.name.clone())
        .collect()
}

/// Sends this node's whole presence on `shard`: every local room's users, and an empty list
/// for rooms Redis still lists for this node but that have no members here any more.
async fn send_all(
    shard: &Shard,
    context: &Context,
    mut connection: MultiplexedConnection,
) -> RedisResult<()> {
    let keys = &context.keys;
    let listed: Vec<String> = timed(
        redis::cmd("SMEMBERS")
            .arg(keys.node_rooms(&context.node))
            .query_async(&mut connection),
    )
    .await?;
    let local = local_rooms(shard, context);
    let mut calls: Vec<(RoomName, Vec<(UserName, usize)>)> = local
        .iter()
        .map(|name| {
            let users = context
                .rooms
                .get(name)
                .map(|r| r.local_users())
                .unwrap_or_default();
            (name.clone(), users)
        })
        .collect();
    for name in listed {
        if let Ok(room) = RoomName::new(&name)
            && !local.contains(&room)
        {
            calls.push((room, Vec::new()));
        }
    }
    for chunk in calls.chunks(MAX_PRESENCE_PER_ROUND_TRIP) {
        let mut pipe = redis::pipe();
        for (room, users) in chunk {
            let pairs: Vec<(&UserName, usize)> = users.iter().map(|(u, n)| (u, *n)).collect();
            push_presence(context, &mut pipe, room, &pairs, true, LeaveReason::Closed);
        }
        let _: Vec<Value> = timed(pipe.query_async(&mut connection)).await?;
    }
    Ok(())
}

/// Sends the current local session count of each changed (room, user).
async fn send_changes(
    context: &Context,
    mut connection: MultiplexedConnection,
    changes: HashMap<(RoomName, UserName), LeaveReason>,
) -> RedisResult<()> {
    let changes: Vec<_> = changes.into_iter().collect();
    for chunk in changes.chunks(MAX_PRESENCE_PER_ROUND_TRIP) {
        let mut pipe = redis::pipe();
        for ((room, user), reason) in chunk {
            let sessions = context
                .rooms
                .get(room)
                .map_or(0, |r| r.local_sessions_of(user));
            push_presence(
                context,
                &mut pipe,
                room,
                &[(user, sessions)],
                false,
                *reason,
            );
        }
        let _: Vec<Value> = timed(pipe.query_async(&mut connection)).await?;
    }
    Ok(())
}

fn push_presence(
    context: &Context,
    pipe: &mut redis::Pipeline,
    room: &RoomName,
    users: &[(&UserName, usize)],
    replace: bool,
    reason: LeaveReason,
) {
    let keys = &context.keys;
    let mut call = context
        .scripts
        .presence
        .key(keys.node_users(room, &context.node));
    call.key(keys.users(room))
        .key(keys.meta(room))
        .key(keys.node_rooms(&context.node))
        .arg(keys.channel(room))
        .arg(room.as_str())
        .arg(context.settings.key_ttl_ms)
        .arg(if replace { "1" } else { "0" })
        .arg(reason.as_str());
    for (user, sessions) in users {
        call.arg(user.as_str()).arg(*sessions);
    }
    pipe.invoke_script(&call);
}

async fn timed<T>(future: impl std::future::Future<Output = RedisResult<T>>) -> RedisResult<T> {
    match tokio::time::timeout(COMMAND_TIMEOUT, future).await {
        Ok(result) => result,
        Err(_) => {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "Redis did not answer").into())
        }
    }
}
