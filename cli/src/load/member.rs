//! A live typed member: sends stamped messages at a steady rate (each with a `ref`, so the
//! server's `ack` says when it was published and at which seq) and checks everything it
//! receives: seqs without gaps or repeats, each sender in order, and the latency of stamps.
//!
//! The command steers it through [`Phase`]s: `Run` (send and receive), `Drain` (stop sending,
//! keep receiving until the command has seen every member catch up), `Close` (wait briefly for
//! outstanding acks, close cleanly, report).

mod life;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use roomcast_protocol::{
    Client, ClientError, CloseInfo, ConnectOptions, Incoming, RoomName, ServerFrame, ServerUrl,
    UserName,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use self::life::Life;
use super::latency::LatencyShards;
use super::sequence::{SenderOrder, SeqTracker};

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
    /// The token it presents (private rooms).
    pub token: Option<String>,
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
            token: plan.token.clone(),
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
