//! A bench receiver: a raw tutorial socket that counts every message, answers pings, and
//! records latency per read batch. One read syscall usually carries several frames, so the
//! per-message cost is parsing a frame header and a few bytes of the stamp.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use roomcast_protocol::raw::{client_frame, opcode};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::load::latency::LatencyShards;
use crate::load::stamp::now_micros;
use roomcast_protocol::raw::RawSocket;

/// What all receivers of a bench share.
#[derive(Debug, Default)]
pub struct BenchShared {
    /// The run id in stamps.
    pub run: String,
    /// Whether latencies count yet (false during warm-up).
    pub measuring: AtomicBool,
    /// Latencies of stamped messages, µs.
    pub latency: LatencyShards,
    /// Messages received, all receivers together.
    pub delivered: AtomicU64,
    /// Receivers the server closed.
    pub closed: AtomicU64,
}

/// Receives until told to stop or the server closes the socket. `received` counts this
/// receiver's messages (publishers read it to keep their window).
pub async fn receive(
    mut socket: RawSocket,
    received: Arc<AtomicU64>,
    shared: Arc<BenchShared>,
    task_no: usize,
    mut stop: watch::Receiver<bool>,
) {
    let run = shared.run.as_bytes().to_vec();
    let mut batch: Vec<u64> = Vec::with_capacity(64);
    loop {
        let read = tokio::select! {
            biased;
            _ = stop.wait_for(|stop| *stop) => break,
            read = socket.reader.fill(&mut socket.stream) => read,
        };
        if !matches!(read, Ok(n) if n > 0) {
            shared.closed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let measuring = shared.measuring.load(Ordering::Relaxed);
        let now = now_micros();
        let mut messages = 0;
        loop {
            let frame = match socket.reader.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(_) => {
                    shared.closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            match frame.opcode {
                opcode::TEXT => {
                    messages += 1;
                    if measuring && let Some(sent) = sent_micros(frame.payload, &run) {
                        batch.push(now.saturating_sub(sent));
                    }
                }
                opcode::PING => {
                    let pong = client_frame(opcode::PONG, frame.payload);
                    if socket.stream.write_all(&pong).await.is_err() {
                        shared.closed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                opcode::CLOSE => {
                    shared.closed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                _ => {}
            }
        }
        if messages > 0 {
            received.fetch_add(messages, Ordering::Relaxed);
            shared.delivered.fetch_add(messages, Ordering::Relaxed);
        }
        if !batch.is_empty() {
            shared.latency.record_micros(task_no, &batch);
            batch.clear();
        }
    }
    socket.close().await;
}

/// The send time in a tutorial message frame's stamp (`"message":"rc|<run>|<sender>|
/// <counter>|<µs>|..."`), without decoding the JSON: `message` is the frame's last field.
pub fn sent_micros(payload: &[u8], run: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"message\":\"rc|";
    let at = payload.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let mut fields = payload[at..].split(|b| *b == b'|');
    if fields.next()? != run {
        return None;
    }
    let _sender = fields.next()?;
    let _counter = fields.next()?;
    let micros = fields.next()?;
    std::str::from_utf8(micros).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::stamp::Stamp;

    #[test]
    fn the_send_time_is_read_straight_from_the_frame() {
        let stamp = Stamp {
            sender: 3,
            counter: 9,
            sent_micros: 4_242,
        };
        let frame = format!(
            r#"{{"room":"r","user":"u","seq":1,"ts":1,"message":"{}"}}"#,
            stamp.encode("abc123", 40)
        );
        assert_eq!(sent_micros(frame.as_bytes(), b"abc123"), Some(4_242));
        assert_eq!(sent_micros(frame.as_bytes(), b"zzz999"), None);
        assert_eq!(sent_micros(br#"{"message":"hello"}"#, b"abc123"), None);
    }
}
