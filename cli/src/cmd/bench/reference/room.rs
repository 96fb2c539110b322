//! The reference's rooms: one log of encoded frames per room, and a cursor per member.
//!
//! A publish encodes the frame once, header included, and appends it to the room's log; one
//! wake tells every member. Each member's session copies the shared `Bytes` handles from its
//! cursor to the head (a refcount each, no copy of the bytes) and writes them in one vectored
//! write. A member whose cursor falls behind the log's byte bound is too slow and is closed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::watch;

/// Room in front of the JSON for the longest WebSocket header (10 bytes, unmasked).
const HEADER_ROOM: usize = 10;

/// Every room by name, with its member count.
#[derive(Debug, Default)]
pub struct Registry {
    rooms: Mutex<HashMap<String, (Arc<Room>, usize)>>,
}

impl Registry {
    fn rooms(&self) -> MutexGuard<'_, HashMap<String, (Arc<Room>, usize)>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins (creating when missing) the room `name`; the membership leaves on drop.
    pub fn join(self: &Arc<Self>, name: &str, max_lag_bytes: usize) -> Membership {
        let mut rooms = self.rooms();
        let (room, members) = rooms
            .entry(name.to_owned())
            .or_insert_with(|| (Arc::new(Room::new(name, max_lag_bytes)), 0));
        *members += 1;
        Membership {
            registry: self.clone(),
            room: room.clone(),
        }
    }
}

/// A session's place in a room; the last one to leave removes the room.
#[derive(Debug)]
pub struct Membership {
    registry: Arc<Registry>,
    /// The room.
    pub room: Arc<Room>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut rooms = self.registry.rooms();
        if let Some((_, members)) = rooms.get_mut(&self.room.name) {
            *members -= 1;
            if *members == 0 {
                rooms.remove(&self.room.name);
            }
        }
    }
}

/// One room.
#[derive(Debug)]
pub struct Room {
    name: String,
    log: Mutex<Log>,
    /// The seq after the newest frame: members wait for it to move.
    head: watch::Sender<u64>,
    max_lag_bytes: usize,
}

#[derive(Debug, Default)]
struct Log {
    frames: VecDeque<Bytes>,
    /// Seq of `frames[0]`.
    first: u64,
    bytes: usize,
}

/// A member's cursor fell off the log: it is too slow.
#[derive(Debug)]
pub struct Lagged;

#[derive(Serialize)]
struct MessageOut<'a> {
    room: &'a str,
    user: &'a str,
    seq: u64,
    ts: u64,
    message: &'a str,
}

impl Room {
    fn new(name: &str, max_lag_bytes: usize) -> Self {
        Self {
            name: name.to_owned(),
            log: Mutex::new(Log {
                first: 1,
                ..Log::default()
            }),
            head: watch::Sender::new(1),
            max_lag_bytes,
        }
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new member's wake-up and its cursor: it receives what is published from now on.
    pub fn subscribe(&self) -> (watch::Receiver<u64>, u64) {
        let receiver = self.head.subscribe();
        let cursor = *receiver.borrow();
        (receiver, cursor)
    }

    /// Publishes `texts` from `user`, one frame each, then wakes every member once.
    pub fn publish<'a>(&self, user: &str, texts: impl Iterator<Item = &'a str>) -> u64 {
        let ts = now_ms();
        let (head, count) = {
            let mut log = self.log();
            let mut count = 0;
            for message in texts {
                let seq = log.first + log.frames.len() as u64;
                let frame = encode(&MessageOut {
                    room: &self.name,
                    user,
                    seq,
                    ts,
                    message,
                });
                log.bytes += frame.len();
                log.frames.push_back(frame);
                count += 1;
            }
            while log.bytes > self.max_lag_bytes && log.frames.len() > 1 {
                if let Some(old) = log.frames.pop_front() {
                    log.bytes -= old.len();
                    log.first += 1;
                }
            }
            (log.first + log.frames.len() as u64, count)
        };
        if count > 0 {
            self.head.send_replace(head);
        }
        count
    }

    /// Appends up to `max` frames from `cursor` to `into`; returns how many.
    pub fn frames_from(
        &self,
        cursor: u64,
        into: &mut Vec<Bytes>,
        max: usize,
    ) -> Result<u64, Lagged> {
        let log = self.log();
        let skip = cursor.checked_sub(log.first).ok_or(Lagged)?;
        let start = usize::try_from(skip)
            .unwrap_or(usize::MAX)
            .min(log.frames.len());
        let before = into.len();
        into.extend(log.frames.range(start..).take(max).cloned());
        Ok((into.len() - before) as u64)
    }
}

/// One unmasked text frame: header and JSON in one buffer, encoded once for every member.
pub fn encode<T: Serialize>(value: &T) -> Bytes {
    let mut buf = vec![0u8; HEADER_ROOM];
    // String keys and plain values: serializing into memory cannot fail.
    let _written = serde_json::to_writer(&mut buf, value);
    let len = buf.len() - HEADER_ROOM;
    let start = if len < 126 {
        buf[HEADER_ROOM - 1] = len as u8;
        HEADER_ROOM - 2
    } else if let Ok(len16) = u16::try_from(len) {
        buf[HEADER_ROOM - 3] = 126;
        buf[HEADER_ROOM - 2..HEADER_ROOM].copy_from_slice(&len16.to_be_bytes());
        HEADER_ROOM - 4
    } else {
        buf[1] = 127;
        buf[2..HEADER_ROOM].copy_from_slice(&(len as u64).to_be_bytes());
        0
    };
    buf[start] = 0x81;
    Bytes::from(buf).slice(start..)
}

/// Milliseconds since the Unix epoch: the `ts` of messages, as roomcast sends it.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A tutorial message frame as roomcast would send it, for the firehose.
pub fn sample_message(room: &str, seq: u64, text: &str) -> Bytes {
    encode(&MessageOut {
        room,
        user: "firehose",
        seq,
        ts: now_ms(),
        message: text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_encoded_once_with_their_header_in_front() {
        for len in [10, 200, 70_000] {
            let text = "x".repeat(len);
            let frame = sample_message("r", 1, &text);
            let header = match frame[1] {
                126 => 4,
                127 => 10,
                short => {
                    assert_eq!(usize::from(short), frame.len() - 2);
                    2
                }
            };
            assert_eq!(frame[0], 0x81);
            let json: serde_json::Value =
                serde_json::from_slice(&frame[header..]).expect("the payload is JSON");
            assert_eq!(json["message"], text.as_str());
        }
    }

    #[test]
    fn members_read_from_their_cursor_and_fall_off_a_full_log() {
        let registry = Arc::new(Registry::default());
        let member = registry.join("r", 1_000);
        let (_wake, cursor) = member.room.subscribe();
        member.room.publish("u", ["a", "b", "c"].into_iter());
        let mut frames = Vec::new();
        assert_eq!(
            member.room.frames_from(cursor, &mut frames, 2).ok(),
            Some(2)
        );
        let long = "y".repeat(600);
        member
            .room
            .publish("u", [long.as_str(), long.as_str()].into_iter());
        assert!(
            member
                .room
                .frames_from(cursor + 2, &mut frames, 10)
                .is_err()
        );
        drop(member);
        assert!(
            registry.rooms().is_empty(),
            "the last member removed the room"
        );
    }
}
