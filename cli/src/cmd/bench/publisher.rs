//! The publishers of a fanout bench, all driven by one task.
//!
//! One timer for all of them, and non-blocking writes: each tick, every publisher appends the
//! messages it is due (by its window, its rate, or a burst) to its outgoing bytes and writes
//! what its socket takes, in one syscall. A thousand publishers with a timer and an awaited
//! write each would cost the generator more than the server it measures.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use roomcast_protocol::raw::{client_frame, opcode};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::member::{Member, write_whole};
use super::sample;

/// Most bytes a publisher holds that its socket has not taken: past this it generates nothing
/// until the server reads, so an overloaded server shows as a missed rate, not as memory.
const MAX_OUTGOING_BYTES: usize = 4 * 1024 * 1024;

/// How long a stopping publisher may take to hand its last bytes to the socket.
const FLUSH_WITHIN: Duration = Duration::from_secs(10);

/// How publishers decide what to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// At most this many messages per room in flight (published, not yet received by the
    /// room's slowest member): what the server sustains, with latency bounded by the window.
    Window(u64),
    /// This many messages per second per room, whatever the server does (open loop).
    Rate(f64),
}

/// One room as the publishers see it.
#[derive(Debug)]
pub struct RoomTally {
    /// Every member of the room, publishers included.
    pub members: Vec<Arc<Member>>,
    /// Indexes of its publishers in [`Driver::publishers`].
    pub publishers: Vec<usize>,
    /// Messages published in the room since the bench connected.
    pub published: u64,
}

/// One publishing session.
#[derive(Debug)]
pub struct Publisher {
    /// Its socket's writing side (its member task reads the other).
    pub stream: OwnedWriteHalf,
    /// Its own member, which hands it the pings to answer.
    pub member: Arc<Member>,
    /// Index of its room.
    pub room: usize,
    /// Messages it generated since the bench connected (its stamp counter).
    pub counter: u64,
    outgoing: Vec<u8>,
}

impl Publisher {
    /// A publisher for `room` on `stream`.
    pub fn new(stream: OwnedWriteHalf, member: Arc<Member>, room: usize) -> Self {
        Self {
            stream,
            member,
            room,
            counter: 0,
            outgoing: Vec::new(),
        }
    }
}

/// Every publisher of a bench, and what they send.
#[derive(Debug)]
pub struct Driver {
    /// The rooms, by index.
    pub rooms: Vec<RoomTally>,
    /// The publishers.
    pub publishers: Vec<Publisher>,
    /// The run id in stamps.
    pub run: String,
    /// Message size in bytes.
    pub size: usize,
    /// One message in this many carries its send time.
    pub sample_every: u64,
    /// Time between two rounds of writes.
    pub tick: Duration,
    /// Ticks on which a publisher had to skip generating because its socket was full.
    pub backlogged: u64,
    plain: Vec<u8>,
}

impl Driver {
    /// A driver for `publishers` in `rooms`.
    pub fn new(
        rooms: Vec<RoomTally>,
        publishers: Vec<Publisher>,
        run: String,
        size: usize,
    ) -> Self {
        let plain = client_frame(
            opcode::TEXT,
            &sample::tutorial_send(&sample::text(&run, size, false)),
        );
        Self {
            rooms,
            publishers,
            run,
            size,
            sample_every: 1,
            tick: Duration::from_millis(1),
            backlogged: 0,
            plain,
        }
    }

    /// Publishes at `pace` until `stop`, then hands every byte generated to the sockets.
    /// Returns how many messages this run generated.
    pub async fn run(&mut self, pace: Pace, mut stop: watch::Receiver<bool>) -> u64 {
        let started = Instant::now();
        let before: Vec<u64> = self.publishers.iter().map(|p| p.counter).collect();
        let mut ticks = tokio::time::interval(self.tick);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => break,
                _ = ticks.tick() => {}
            }
            let elapsed = started.elapsed().as_secs_f64();
            for room in 0..self.rooms.len() {
                self.publish_due(room, pace, elapsed, &before);
            }
            for publisher in &mut self.publishers {
                write_some(publisher);
            }
        }
        self.flush().await;
        let after: u64 = self.publishers.iter().map(|p| p.counter).sum();
        after - before.iter().sum::<u64>()
    }

    /// Answers the pings publishers were handed and writes what they still hold, without
    /// publishing: between trials, so that the heartbeat does not evict them.
    pub fn keep_alive(&mut self) {
        for p in 0..self.publishers.len() {
            self.generate(p, 0);
            write_some(&mut self.publishers[p]);
        }
    }

    /// Sends `count` messages from every publisher at once, every one stamped.
    pub async fn burst(&mut self, count: u64) -> u64 {
        let every = std::mem::replace(&mut self.sample_every, 1);
        for p in 0..self.publishers.len() {
            self.generate(p, count);
        }
        self.sample_every = every;
        self.flush().await;
        count * self.publishers.len() as u64
    }

    /// Generates what each publisher of `room` is due at `elapsed` seconds into the run.
    fn publish_due(&mut self, room: usize, pace: Pace, elapsed: f64, before: &[u64]) {
        let tally = &self.rooms[room];
        let publishers = tally.publishers.len().max(1) as u64;
        let room_budget = match pace {
            Pace::Window(window) => {
                let slowest = tally
                    .members
                    .iter()
                    .map(|m| m.received.load(Ordering::Relaxed))
                    .min()
                    .unwrap_or(0);
                window.saturating_sub(tally.published.saturating_sub(slowest))
            }
            Pace::Rate(_) => 0,
        };
        for i in 0..tally.publishers.len() {
            let p = self.rooms[room].publishers[i];
            let due = match pace {
                Pace::Window(_) => {
                    room_budget / publishers + u64::from((i as u64) < room_budget % publishers)
                }
                Pace::Rate(per_room) => {
                    // Each publisher starts at its own phase of its period: in step, a
                    // thousand publishers would send in bursts and measure the burst.
                    let phase = p as f64 / self.publishers.len() as f64;
                    let due_total = (elapsed * per_room / publishers as f64 + phase) as u64;
                    due_total.saturating_sub(self.publishers[p].counter - before[p])
                }
            };
            self.generate(p, due);
        }
    }

    /// Appends `count` messages (and any pongs owed) to publisher `p`'s outgoing bytes.
    fn generate(&mut self, p: usize, count: u64) {
        let publisher = &mut self.publishers[p];
        for ping in publisher.member.take_pings() {
            publisher.outgoing.extend(client_frame(opcode::PONG, &ping));
        }
        if count == 0 {
            return;
        }
        if publisher.outgoing.len() >= MAX_OUTGOING_BYTES {
            self.backlogged += 1;
            return;
        }
        for _ in 0..count {
            publisher.counter += 1;
            if publisher.counter.is_multiple_of(self.sample_every) {
                let text = sample::text(&self.run, self.size, true);
                publisher
                    .outgoing
                    .extend(client_frame(opcode::TEXT, &sample::tutorial_send(&text)));
            } else {
                publisher.outgoing.extend_from_slice(&self.plain);
            }
        }
        self.rooms[publisher.room].published += count;
    }

    /// Writes what every publisher still holds, waiting for the sockets (bounded).
    async fn flush(&mut self) {
        let deadline = Instant::now() + FLUSH_WITHIN;
        for publisher in &mut self.publishers {
            let bytes = std::mem::take(&mut publisher.outgoing);
            let writing = write_whole(&publisher.stream, &bytes);
            // A publisher whose bytes do not go out makes the run count them as lost.
            let _flushed = tokio::time::timeout_at(deadline, writing).await;
        }
    }
}

/// Hands the socket what it takes now, without waiting.
fn write_some(publisher: &mut Publisher) {
    let mut written = 0;
    while written < publisher.outgoing.len() {
        match publisher.stream.try_write(&publisher.outgoing[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => {
                // The session is gone; its member task reports that. Drop what it held.
                written = publisher.outgoing.len();
            }
        }
    }
    publisher.outgoing.drain(..written);
}
