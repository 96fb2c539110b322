//! The connected side of a fanout bench: every member's session, the publishers among them,
//! and trials run on those same sessions one after another.
//!
//! Loss is counted per trial from each member's own baseline, taken when nothing is in flight
//! (after the join barrier, and after each trial's drain), so sessions of a previous trial
//! never blur the next one's figures.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Result, bail};
use roomcast_protocol::RoomName;
use tokio::sync::watch;
use tokio::time::Instant;

use super::super::member::{Member, MemberSocket, Role, Shared, receive};
use super::super::process::Meters;
use super::super::publisher::{Driver, Pace, Publisher, RoomTally};
use super::super::{NodeCount, Spread, connect_all};
use super::Shape;
use super::trial::Trial;
use crate::cmd::Ctx;
use crate::load::latency::LatencySummary;
use crate::load::wire::room_socket_as;
use crate::load::{stamp, user_name};
use crate::units;

/// How long the end of a trial waits for in-flight messages.
const DRAIN_WITHIN: Duration = Duration::from_secs(10);

/// How long the join barrier waits for each round's messages to reach every member.
const BARRIER_ROUND: Duration = Duration::from_secs(1);

/// Rounds of the join barrier before giving up: members that never receive are a broken server.
const BARRIER_ROUNDS: usize = 20;

/// Every session of a fanout bench.
pub struct Crowd {
    /// The rooms' names, by index.
    pub room_names: Vec<RoomName>,
    shared: Arc<Shared>,
    members: Vec<Arc<Member>>,
    driver: Driver,
    stop_members: watch::Sender<bool>,
    members_per_room: usize,
    server_pid: Option<u32>,
    /// Sessions per node (`--url`).
    nodes: Vec<NodeCount>,
    /// The node of each member, by member index.
    node_of: Vec<usize>,
}

impl Crowd {
    /// Connects `shape`'s members (the first `publishers` of each room publish), starts their
    /// receivers, and waits until every member receives its room's messages.
    pub async fn connect(ctx: &Ctx, shape: &Shape) -> Result<Self> {
        let run = stamp::new_run_id();
        let mut urls = Vec::with_capacity(shape.rooms * shape.members);
        let room_names: Vec<RoomName> = (0..shape.rooms)
            .map(|r| RoomName::new(&format!("bench-{run}-{r}")))
            .collect::<Result<_, _>>()?;
        // Every `--url` takes its turn: a cluster bench has members and publishers on each node.
        let mut spread = Spread::new(ctx);
        let mut node_of = Vec::with_capacity(shape.rooms * shape.members);
        for (r, room) in room_names.iter().enumerate() {
            for m in 0..shape.members {
                let publisher = m < shape.publishers;
                let (node, server) = spread.next(publisher);
                node_of.push(node);
                urls.push(if publisher {
                    room_socket_as(
                        server,
                        room,
                        &user_name(&format!("pub-{run}-{r}-{m}"))?,
                        None,
                    )
                } else {
                    server.room_socket(room)
                });
            }
        }
        let (sockets, _) = connect_all(urls, shape.concurrency).await?;
        let shared = Arc::new(Shared {
            run: run.clone(),
            ..Shared::default()
        });
        let (stop_members, stopped) = watch::channel(false);
        let mut members = Vec::with_capacity(sockets.len());
        let mut rooms: Vec<RoomTally> = Vec::with_capacity(shape.rooms);
        let mut publishers = Vec::new();
        for (i, socket) in sockets.into_iter().enumerate() {
            let (room, m) = (i / shape.members, i % shape.members);
            if m == 0 {
                rooms.push(RoomTally {
                    members: Vec::with_capacity(shape.members),
                    publishers: Vec::with_capacity(shape.publishers),
                    published: 0,
                });
            }
            let mut socket = MemberSocket::from(socket);
            let member = Arc::new(Member::default());
            let write = if m < shape.publishers {
                socket.write.take()
            } else {
                None
            };
            let role = if let Some(write) = write {
                rooms[room].publishers.push(publishers.len());
                publishers.push(Publisher::new(write, member.clone(), room));
                Role::Publisher
            } else {
                Role::Live
            };
            rooms[room].members.push(member.clone());
            members.push(member.clone());
            let task = receive(socket, member, shared.clone(), i, role, stopped.clone());
            tokio::spawn(task);
        }
        let mut driver = Driver::new(rooms, publishers, run, shape.size);
        driver.sample_every = shape.sample_every;
        driver.tick = shape.tick;
        let mut crowd = Self {
            room_names,
            shared,
            members,
            driver,
            stop_members,
            members_per_room: shape.members,
            server_pid: shape.server_pid,
            nodes: spread.counts(),
            node_of,
        };
        crowd.barrier().await?;
        Ok(crowd)
    }

    /// Every member's received count now.
    fn received(&self) -> Vec<u64> {
        self.members
            .iter()
            .map(|m| m.received.load(Ordering::Relaxed))
            .collect()
    }

    fn ended(&self) -> u64 {
        self.members
            .iter()
            .filter(|m| m.ended.load(Ordering::Relaxed))
            .count() as u64
    }

    fn refused(&self) -> u64 {
        self.members
            .iter()
            .map(|m| m.refused.load(Ordering::Relaxed))
            .sum()
    }

    /// Sessions per node, with what each node's members received so far.
    pub fn nodes(&self) -> Vec<NodeCount> {
        let mut nodes = self.nodes.clone();
        for node in &mut nodes {
            node.received = Some(0);
        }
        for (member, node) in self.members.iter().zip(&self.node_of) {
            if let Some(received) = nodes.get_mut(*node).and_then(|n| n.received.as_mut()) {
                *received += member.received.load(Ordering::Relaxed);
            }
        }
        nodes
    }

    /// Total members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Messages published in each room so far.
    fn published(&self) -> Vec<u64> {
        self.driver.rooms.iter().map(|r| r.published).collect()
    }

    /// Whether every member still in session has received what its room owes it since
    /// `baseline` (member counts) and `published_before` (room counts).
    fn caught_up(&self, baseline: &[u64], published_before: &[u64]) -> bool {
        self.missing(baseline, published_before, false) == 0
    }

    /// Waits (at most `within`) until [`Crowd::caught_up`], answering publishers' pings
    /// meanwhile. Returns whether it caught up.
    async fn wait_caught_up(
        &mut self,
        baseline: &[u64],
        published_before: &[u64],
        within: Duration,
    ) -> bool {
        /// Short enough not to add visible delay, long enough to cost nothing.
        const POLL: Duration = Duration::from_millis(5);
        let deadline = Instant::now() + within;
        loop {
            self.driver.keep_alive();
            if self.caught_up(baseline, published_before) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Deliveries owed since the baselines and not received; members whose session ended
    /// count only when `count_ended`.
    fn missing(&self, baseline: &[u64], published_before: &[u64], count_ended: bool) -> u64 {
        let published = self.published();
        let per_room = self.members_per_room;
        self.members
            .iter()
            .enumerate()
            .filter(|(_, m)| count_ended || !m.ended.load(Ordering::Relaxed))
            .map(|(i, m)| {
                let room = i / per_room;
                let owed = published[room] - published_before[room];
                let got = m.received.load(Ordering::Relaxed) - baseline[i];
                owed.saturating_sub(got)
            })
            .sum()
    }

    /// Publishes one message from every publisher until a round reaches every member: each
    /// member has then joined, and nothing is in flight.
    async fn barrier(&mut self) -> Result<()> {
        for _ in 0..BARRIER_ROUNDS {
            let (baseline, published_before) = (self.received(), self.published());
            self.driver.burst(1).await;
            if self
                .wait_caught_up(&baseline, &published_before, BARRIER_ROUND)
                .await
            {
                return Ok(());
            }
            if self.ended() > 0 {
                bail!(
                    "the server closed {} member session(s) while they joined",
                    self.ended()
                );
            }
        }
        bail!("some members never received their room's messages after {BARRIER_ROUNDS} rounds")
    }

    /// Sets the time between two rounds of publisher writes for the trials that follow.
    pub fn set_tick(&mut self, tick: Duration) {
        self.driver.tick = tick;
    }

    /// Publishes at `pace` for `warmup` + `duration`, measuring the last `duration`; then
    /// waits (bounded) for every message in flight and counts what never arrived.
    pub async fn trial(&mut self, pace: Pace, warmup: Duration, duration: Duration) -> Trial {
        self.trial_after(pace, tokio::time::sleep(warmup), duration)
            .await
    }

    /// A trial that starts measuring when `warmed_up` completes (publishing from the start).
    pub async fn trial_after(
        &mut self,
        pace: Pace,
        warmed_up: impl std::future::Future<Output = ()>,
        duration: Duration,
    ) -> Trial {
        let (baseline, published_before) = (self.received(), self.published());
        let (ended_before, refused_before) = (self.ended(), self.refused());
        let backlogged_before = self.driver.backlogged;
        self.shared.latency.clear();
        let (stop, stopped) = watch::channel(false);
        let (members, shared, server_pid) = (&self.members, &self.shared, self.server_pid);
        let delivered_now = || -> u64 {
            members
                .iter()
                .map(|m| m.received.load(Ordering::Relaxed))
                .sum()
        };
        let timing = async {
            warmed_up.await;
            shared.measuring.store(true, Ordering::Relaxed);
            let (meters, start, delivered_start) =
                (Meters::start(server_pid), Instant::now(), delivered_now());
            tokio::time::sleep(duration).await;
            let delivered = delivered_now() - delivered_start;
            let (cores, measured) = (meters.read(), start.elapsed());
            shared.measuring.store(false, Ordering::Relaxed);
            let _stopped = stop.send(true);
            (delivered, cores, measured)
        };
        let (published, (delivered, (generator_cores, server_cores), measured)) =
            tokio::join!(self.driver.run(pace, stopped), timing);
        self.wait_caught_up(&baseline, &published_before, DRAIN_WITHIN)
            .await;
        let members = self.members.len() as f64;
        let (window, rate_per_room) = match pace {
            Pace::Window(window) => (Some(window), None),
            Pace::Rate(rate) => (None, Some(rate)),
        };
        Trial {
            pace: if window.is_some() { "window" } else { "rate" },
            window,
            rate_per_room,
            offered_per_s: rate_per_room.map(|r| r * members),
            measured_s: units::millis(measured) / 1e3,
            published,
            delivered,
            delivered_per_s: (delivered as f64 / measured.as_secs_f64()).round(),
            lost: self.missing(&baseline, &published_before, true),
            refused: self.refused() - refused_before,
            closed_by_server: self.ended() - ended_before,
            backlogged_ticks: self.driver.backlogged - backlogged_before,
            tick_ms: Some(units::millis(self.driver.tick)),
            latency: LatencySummary::of(&self.shared.latency.merged()),
            generator_cores,
            server_cores,
            passed: None,
        }
    }

    /// Every publisher sends `count` messages at once (all stamped); waits (bounded) until they
    /// are all delivered.
    pub async fn burst(&mut self, count: u64) -> Trial {
        let (baseline, published_before) = (self.received(), self.published());
        let (ended_before, refused_before) = (self.ended(), self.refused());
        self.shared.latency.clear();
        self.shared.measuring.store(true, Ordering::Relaxed);
        let (meters, start) = (Meters::start(self.server_pid), Instant::now());
        let published = self.driver.burst(count).await;
        self.wait_caught_up(&baseline, &published_before, DRAIN_WITHIN)
            .await;
        let ((generator_cores, server_cores), measured) = (meters.read(), start.elapsed());
        self.shared.measuring.store(false, Ordering::Relaxed);
        let delivered: u64 = self
            .received()
            .iter()
            .zip(&baseline)
            .map(|(now, before)| now - before)
            .sum();
        Trial {
            pace: "burst",
            window: None,
            rate_per_room: None,
            offered_per_s: None,
            measured_s: units::millis(measured) / 1e3,
            published,
            delivered,
            delivered_per_s: (delivered as f64 / measured.as_secs_f64()).round(),
            lost: self.missing(&baseline, &published_before, true),
            refused: self.refused() - refused_before,
            closed_by_server: self.ended() - ended_before,
            backlogged_ticks: 0,
            tick_ms: None,
            latency: LatencySummary::of(&self.shared.latency.merged()),
            generator_cores,
            server_cores,
            passed: None,
        }
    }

    /// Whether every member is still in session (a trial that overloaded the server may have
    /// had some closed as slow; the search then connects a fresh crowd).
    pub fn intact(&self) -> bool {
        self.ended() == 0
    }

    /// Stops every member (each sends a close frame).
    pub fn close(self) {
        let _stopped = self.stop_members.send(true);
    }
}
