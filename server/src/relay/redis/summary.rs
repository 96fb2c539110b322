//! `GET /api/rooms/{room}` with a relay: the room as every node sees it, read from Redis.

use std::collections::HashMap;

use redis::aio::MultiplexedConnection;
use roomcast_protocol::{RoomName, RoomSummary, UserName};

use super::{COMMAND_TIMEOUT, Context, RelayError, Shard};

/// Reads `room`'s seq, epoch and users on every node; `None` when Redis has none of them.
pub(super) async fn read(
    context: &Context,
    shard: &Shard,
    mut connection: MultiplexedConnection,
    room: &RoomName,
) -> Result<Option<RoomSummary>, RelayError> {
    let keys = &context.keys;
    let mut pipe = redis::pipe();
    pipe.cmd("HMGET")
        .arg(keys.meta(room))
        .arg("epoch")
        .arg("seq")
        .cmd("HGETALL")
        .arg(keys.users(room));
    let read =
        pipe.query_async::<((Option<String>, Option<u64>), HashMap<String, u64>)>(&mut connection);
    let Ok(Ok(((epoch, seq), users))) = tokio::time::timeout(COMMAND_TIMEOUT, read).await else {
        context.metrics.record_error("summary");
        return Err(RelayError::Failed(shard.index));
    };
    if epoch.is_none() && users.is_empty() {
        return Ok(None);
    }
    let mut members: Vec<UserName> = users
        .iter()
        .filter(|(_, sessions)| **sessions > 0)
        .filter_map(|(user, _)| UserName::new(user).ok())
        .collect();
    members.sort();
    Ok(Some(RoomSummary {
        room: room.clone(),
        sessions: users
            .values()
            .map(|n| usize::try_from(*n).unwrap_or(0))
            .sum(),
        members,
        // Followers are not in Redis's presence; the API fills in the answering node's own.
        followers: 0,
        seq: seq.unwrap_or(0),
        epoch: epoch.unwrap_or_default(),
    }))
}
