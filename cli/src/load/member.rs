//! A live typed member: sends stamped messages at a steady rate (each with a `ref`, so the
//! server's `ack` says when it was published and at which seq) and checks everything it
//! receives: seqs without gaps or repeats, each sender in order, and the latency of stamps.
//!
//! The command steers it through [`Phase`]s: `Run` (send and receive), `Drain` (stop sending,
//! keep receiving until the command has seen every member catch up), `Close` (wait briefly for
//! outstanding acks, close cleanly, report).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use roomcast_protocol::{
    Client, ClientError, ClientFrame, CloseInfo, ConnectOptions, Incoming, Receiver, Ref, RoomName,
    Sender, ServerFrame, ServerUrl, UserName,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::latency::LatencyShards;
use super::sequence::{SenderOrder, SeqEvent, SeqTracker};
use super::stamp::{Stamp, now_micros};

/// How long a closing member waits for the acks of what it already sent.
const ACK_GRACE: Duration = Duration::from_secs(2);

/// How long a member waits for `joined`, and for its close to complete.
const FRAME_GRACE: Duration = Duration::from_secs(5);

/// What a member should be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Send and receive.
    Run,
    /// Stop sending; keep receiving.
    Drain,
    /// Finish: wait for acks, close, report.
    Close,
}

/// Counters every member of a run adds to, for progress and totals.
#[derive(Debug, Default)]
pub struct Totals {
    /// Messages sent.
    pub sent: AtomicU64,
    /// Messages the server acknowledged.
    pub acked: AtomicU64,
    /// Messages received (every member counts its own).
    pub delivered: AtomicU64,
    /// Seqs skipped (found as gaps while running).
    pub lost: AtomicU64,
    /// Seqs received twice or backwards.
    pub repeated: AtomicU64,
    /// Stamped messages out of their sender's order.
    pub reordered: AtomicU64,
    /// Frames the server refused with an error frame.
    pub refused: AtomicU64,
    /// Members the server closed while they were supposed to live.
    pub dropped: AtomicU64,
}

/// What the whole run shares with each member.
#[derive(Debug)]
pub struct Shared {
    /// The run id that stamps carry.
    pub run: Arc<str>,
    /// Run-wide counters.
    pub totals: Totals,
    /// Latencies of stamped messages.
    pub latency: LatencyShards,
}

/// What one member is asked to do.
#[derive(Debug, Clone)]
pub struct MemberPlan {
    /// Its room.
    pub room: RoomName,
    /// Its user name.
    pub user: UserName,
    /// Its sender number in stamps (unique within the run).
    pub sender: u32,
    /// Messages per second it sends; `None` listens only.
    pub rate: Option<f64>,
    /// Smallest message size, in bytes (padding).
    pub size: usize,
}

/// A member's state that the command reads while it runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Last seq received.
    pub last_seq: AtomicU64,
    /// Sent but not yet acknowledged.
    pub unacked: AtomicU64,
    /// Highest seq among its acks.
    pub max_acked_seq: AtomicU64,
}

/// What a member did, once finished.
#[derive(Debug, Clone, Default)]
pub struct MemberReport {
    /// Its user name.
    pub user: Option<UserName>,
    /// Messages sent.
    pub sent: u64,
    /// Messages acknowledged.
    pub acked: u64,
    /// Messages received.
    pub received: u64,
    /// Seq checks over what it received (gaps found while running, repeats, last seq).
    pub seqs: SeqTracker,
    /// Stamped messages out of their sender's order.
    pub reordered: u64,
    /// The first refusal the server sent, if any.
    pub refusal: Option<String>,
    /// How the server ended its session, when that happened before `Close`.
    pub dropped: Option<CloseInfo>,
    /// A client error that ended it.
    pub error: Option<String>,
}

/// A running live member.
#[derive(Debug)]
pub struct Member {
    /// Its plan.
    pub plan: MemberPlan,
    progress: Arc<Progress>,
    phase: watch::Sender<Phase>,
    task: JoinHandle<MemberReport>,
}

impl Member {
    /// Connects, waits for `joined`, and starts running.
    pub async fn connect(
        server: &ServerUrl,
        plan: MemberPlan,
        shared: Arc<Shared>,
        task_no: usize,
    ) -> Result<Self, ClientError> {
        let options = ConnectOptions {
            user: Some(plan.user.clone()),
            room: Some(plan.room.clone()),
        };
        let mut client = Client::connect(server, options).await?;
        let joined_seq = tokio::time::timeout(FRAME_GRACE, async {
            loop {
                match client.recv().await? {
                    Incoming::Frame(ServerFrame::Joined { seq, .. }) => return Ok(seq),
                    Incoming::Closed(info) => return Err(ClientError::Closed(info)),
                    _ => {}
                }
            }
        })
        .await
        .map_err(|_| ClientError::NoWelcome("no joined frame within 5s".to_owned()))??;
        let progress = Arc::new(Progress::default());
        progress.last_seq.store(joined_seq, Ordering::Relaxed);
        let (phase, phases) = watch::channel(Phase::Run);
        let (sender, receiver) = client.split();
        let life = Life {
            plan: plan.clone(),
            shared,
            progress: progress.clone(),
            task_no,
            sender,
            receiver,
            seqs: SeqTracker::new(joined_seq),
            order: SenderOrder::default(),
            report: MemberReport {
                user: Some(plan.user.clone()),
                ..MemberReport::default()
            },
        };
        let task = tokio::spawn(life.run(phases));
        Ok(Self {
            plan,
            progress,
            phase,
            task,
        })
    }

    /// Moves the member to `phase`.
    pub fn set_phase(&self, phase: Phase) {
        let _sent = self.phase.send(phase);
    }

    /// Closes the member and returns its report.
    pub async fn finish(self) -> MemberReport {
        self.set_phase(Phase::Close);
        let grace = ACK_GRACE + FRAME_GRACE;
        match tokio::time::timeout(grace, self.task).await {
            Ok(Ok(report)) => report,
            Ok(Err(join)) => MemberReport {
                error: Some(format!("member task failed: {join}")),
                ..MemberReport::default()
            },
            Err(_) => MemberReport {
                user: Some(self.plan.user),
                error: Some(format!("did not finish within {grace:?}")),
                ..MemberReport::default()
            },
        }
    }
}

/// The member task's state.
struct Life {
    plan: MemberPlan,
    shared: Arc<Shared>,
    progress: Arc<Progress>,
    task_no: usize,
    sender: Sender<ClientFrame>,
    receiver: Receiver<ServerFrame>,
    seqs: SeqTracker,
    order: SenderOrder,
    report: MemberReport,
}

impl Life {
    async fn run(mut self, mut phases: watch::Receiver<Phase>) -> MemberReport {
        let mut ticks = self.plan.rate.map(|rate| {
            let period = Duration::from_secs_f64(1.0 / rate);
            // A random phase spreads members over the period instead of sending in lockstep.
            let first = Instant::now() + period.mul_f64(fastrand::f64());
            let mut ticks = tokio::time::interval_at(first, period);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticks
        });
        let mut phase = Phase::Run;
        while phase != Phase::Close {
            tokio::select! {
                biased;
                changed = phases.changed() => {
                    phase = if changed.is_ok() { *phases.borrow_and_update() } else { Phase::Close };
                }
                incoming = self.receiver.recv() => {
                    if !self.handle(incoming, phase) {
                        return self.end();
                    }
                }
                () = tick(ticks.as_mut()), if phase == Phase::Run => {
                    if let Err(e) = self.send().await {
                        self.report.error = Some(format!("send failed: {e}"));
                        return self.end();
                    }
                }
            }
        }
        self.close().await;
        self.end()
    }

    async fn send(&mut self) -> Result<(), ClientError> {
        let counter = self.report.sent + 1;
        let stamp = Stamp {
            sender: self.plan.sender,
            counter,
            sent_micros: now_micros(),
        };
        let frame = ClientFrame::Publish {
            room: self.plan.room.clone(),
            message: stamp.encode(&self.shared.run, self.plan.size),
            reference: Some(Ref::Number(counter)),
        };
        self.sender.send(&frame).await?;
        self.report.sent = counter;
        self.progress.unacked.fetch_add(1, Ordering::Relaxed);
        self.shared.totals.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Handles one frame; false when the session is over.
    fn handle(
        &mut self,
        incoming: Result<Incoming<ServerFrame>, ClientError>,
        phase: Phase,
    ) -> bool {
        let totals = &self.shared.totals;
        match incoming {
            Ok(Incoming::Frame(ServerFrame::Message(message)))
                if message.room == self.plan.room =>
            {
                self.report.received += 1;
                totals.delivered.fetch_add(1, Ordering::Relaxed);
                match self.seqs.observe(message.seq) {
                    SeqEvent::InOrder => {}
                    SeqEvent::Gap(missing) => {
                        totals.lost.fetch_add(missing, Ordering::Relaxed);
                    }
                    SeqEvent::Repeat => {
                        totals.repeated.fetch_add(1, Ordering::Relaxed);
                    }
                }
                self.progress
                    .last_seq
                    .store(self.seqs.last(), Ordering::Relaxed);
                if let Some(stamp) = Stamp::decode(&message.message, &self.shared.run) {
                    self.shared.latency.record(self.task_no, stamp.age());
                    if !self.order.observe(stamp.sender, stamp.counter) {
                        totals.reordered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(Incoming::Frame(ServerFrame::Ack { seq, .. })) => {
                self.report.acked += 1;
                totals.acked.fetch_add(1, Ordering::Relaxed);
                let _was =
                    self.progress
                        .unacked
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
                self.progress
                    .max_acked_seq
                    .fetch_max(seq, Ordering::Relaxed);
            }
            Ok(Incoming::Frame(ServerFrame::Error { code, message, .. })) => {
                totals.refused.fetch_add(1, Ordering::Relaxed);
                self.report
                    .refusal
                    .get_or_insert(format!("{code}: {message}"));
            }
            Ok(Incoming::Frame(_) | Incoming::Undecodable { .. }) => {}
            Ok(Incoming::Closed(info)) => {
                if phase != Phase::Close {
                    totals.dropped.fetch_add(1, Ordering::Relaxed);
                    self.report.dropped = Some(info);
                }
                return false;
            }
            Err(e) => {
                self.report.error = Some(e.to_string());
                return false;
            }
        }
        true
    }

    /// Waits (briefly) for outstanding acks, then closes and reads until the close completes.
    async fn close(&mut self) {
        let acks_due = Instant::now() + ACK_GRACE;
        while self.progress.unacked.load(Ordering::Relaxed) > 0 {
            match tokio::time::timeout_at(acks_due, self.receiver.recv()).await {
                Ok(incoming) => {
                    if !self.handle(incoming, Phase::Drain) {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        if self.sender.close("done").await.is_err() {
            return;
        }
        let _closed = tokio::time::timeout(FRAME_GRACE, async {
            loop {
                let incoming = self.receiver.recv().await;
                if !self.handle(incoming, Phase::Close) {
                    return;
                }
            }
        })
        .await;
    }

    fn end(mut self) -> MemberReport {
        self.report.seqs = self.seqs;
        self.report.reordered = self.order.reordered;
        self.report
    }
}

async fn tick(ticks: Option<&mut tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A finished member's report, with the last seq its room reached while it listened.
#[derive(Debug, Clone)]
pub struct Drained {
    /// The member's report.
    pub report: MemberReport,
    /// The last seq any member of its room had acknowledged: what it should have received.
    pub final_seq: u64,
}

impl Drained {
    /// Messages it should have received and did not (gaps, and the tail it never got).
    pub fn lost(&self) -> u64 {
        self.report.seqs.lost_by(self.final_seq)
    }
}

/// Ends a run's members: they stop sending, every sent message gets its ack (so the last seq
/// of each room is known), every member gets the chance to receive up to that seq, then all
/// close. Each wait is bounded by `within`.
pub async fn drain(members: Vec<Member>, within: Duration) -> Vec<Drained> {
    for member in &members {
        member.set_phase(Phase::Drain);
    }
    let acked = Instant::now() + within;
    let gone = |m: &Member| m.task.is_finished();
    super::wait_until(acked, || {
        members
            .iter()
            .all(|m| gone(m) || m.progress.unacked.load(Ordering::Relaxed) == 0)
    })
    .await;
    let mut final_seqs = std::collections::HashMap::<RoomName, u64>::new();
    for member in &members {
        let seq = member.progress.max_acked_seq.load(Ordering::Relaxed);
        let entry = final_seqs.entry(member.plan.room.clone()).or_default();
        *entry = (*entry).max(seq);
    }
    let final_of = |m: &Member| final_seqs.get(&m.plan.room).copied().unwrap_or(0);
    let caught_up = Instant::now() + within;
    super::wait_until(caught_up, || {
        members
            .iter()
            .all(|m| gone(m) || m.progress.last_seq.load(Ordering::Relaxed) >= final_of(m))
    })
    .await;
    let finals: Vec<u64> = members.iter().map(final_of).collect();
    let reports = futures_util::future::join_all(members.into_iter().map(Member::finish)).await;
    reports
        .into_iter()
        .zip(finals)
        .map(|(report, final_seq)| Drained { report, final_seq })
        .collect()
}
