//! A shard's publish writer: publishes leave in the order sessions queued them, a batch per
//! round trip (one pipeline of script calls), so a sender's messages are numbered in the order
//! it sent them and several senders share each round trip.

use std::sync::Arc;
use std::time::Instant;

use redis::Value;
use tokio::sync::mpsc;
use tracing::warn;

use super::{COMMAND_TIMEOUT, Context, PublishRequest, Receipt, RelayError, Shard, now_ms};
use crate::history::MessageData;
use crate::idempotency::IDEMPOTENCY_WINDOW;

/// Most publishes in one pipeline: big enough to amortise a round trip under load, small
/// enough that one batch never holds Redis (each script is a few microseconds) for long.
const MAX_PUBLISHES_PER_ROUND_TRIP: usize = 256;

/// Runs until the relay stops (or every sender is gone).
pub(super) async fn run(
    shard: Arc<Shard>,
    context: Arc<Context>,
    mut requests: mpsc::Receiver<PublishRequest>,
) {
    let mut batch = Vec::with_capacity(MAX_PUBLISHES_PER_ROUND_TRIP);
    let idempotency_ttl_ms = u64::try_from(IDEMPOTENCY_WINDOW.as_millis()).unwrap_or(u64::MAX);
    loop {
        let received = tokio::select! {
            () = context.stop.cancelled() => return,
            received = requests.recv_many(&mut batch, MAX_PUBLISHES_PER_ROUND_TRIP) => received,
        };
        if received == 0 {
            return;
        }
        let Some(mut connection) = shard.connection() else {
            context.metrics.record_error("down");
            for request in batch.drain(..) {
                let _gone = request.reply.send(Err(RelayError::Down(shard.index)));
            }
            continue;
        };
        let keys = &context.keys;
        let settings = &context.settings;
        let ts = now_ms();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for request in &batch {
            let room = &request.room;
            let idempotency = request
                .idempotency_key
                .as_deref()
                .map(|key| keys.idempotency(room, key));
            let mut call = context.scripts.publish.key(keys.meta(room));
            call.key(keys.history(room))
                .key(idempotency.unwrap_or_else(|| keys.meta(room)))
                .arg(keys.channel(room))
                .arg(format!("{:016x}", fastrand::u64(..)))
                .arg(ts)
                .arg(request.user.as_str())
                .arg(&*request.text)
                .arg(settings.history_entries)
                .arg(settings.history_bytes)
                .arg(settings.key_ttl_ms)
                .arg(if request.idempotency_key.is_some() {
                    "1"
                } else {
                    "0"
                })
                .arg(idempotency_ttl_ms)
                // Empty without data: the script then writes the `m` entry of old.
                .arg(request.data.as_ref().map_or("", MessageData::as_json));
            pipe.invoke_script(&call);
        }
        let started = Instant::now();
        let answered = tokio::time::timeout(
            COMMAND_TIMEOUT,
            pipe.query_async::<Vec<Value>>(&mut connection),
        )
        .await;
        match answered {
            Ok(Ok(values)) if values.len() == batch.len() => {
                context.metrics.observe_publish(
                    shard.index,
                    started.elapsed().as_secs_f64(),
                    batch.len(),
                );
                let mut broken = false;
                for (request, value) in batch.drain(..).zip(values) {
                    let answer = match redis::from_redis_value::<(u64, String, u64, u64)>(value) {
                        Ok((seq, epoch, _nodes, repeated)) => {
                            // Here, once per message in the whole cluster (a repeated
                            // idempotency key published nothing), the bridge forwards it.
                            if let Some(forwarder) = context.forwarder.get()
                                && request.forward
                                && repeated == 0
                            {
                                forwarder.forward(
                                    &request.room,
                                    &request.user,
                                    &request.text,
                                    request.data.as_ref(),
                                );
                            }
                            Ok(Receipt {
                                seq,
                                epoch: epoch.into(),
                            })
                        }
                        Err(e) => {
                            warn!(shard = shard.index, error = %e, "a publish script failed");
                            context.metrics.record_error("publish");
                            broken = true;
                            Err(RelayError::Failed(shard.index))
                        }
                    };
                    let _gone = request.reply.send(answer);
                }
                if broken {
                    // NOSCRIPT after a SCRIPT FLUSH, or a Redis out of memory: reconnecting
                    // reloads the scripts; until then publishes fail loudly.
                    shard.broken.notify_one();
                }
            }
            failed => {
                let why = match failed {
                    Ok(Ok(_)) => "a reply per publish".to_owned(),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("no answer within {COMMAND_TIMEOUT:?}"),
                };
                warn!(shard = shard.index, publishes = batch.len(), %why, "publishing to Redis failed");
                context.metrics.record_error("publish");
                for request in batch.drain(..) {
                    let _gone = request.reply.send(Err(RelayError::Failed(shard.index)));
                }
                shard.broken.notify_one();
            }
        }
    }
}
