//! The member task: one `select!` loop over the phase, the socket and the send timer.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use roomcast_protocol::{ClientError, ClientFrame, Incoming, Receiver, Ref, Sender, ServerFrame};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::{ACK_GRACE, FRAME_GRACE, MemberPlan, MemberReport, Phase, Progress, Shared};
use crate::load::sequence::{SenderOrder, SeqEvent, SeqTracker};
use crate::load::stamp::{Stamp, now_micros};

/// The member task's state: everything the loop owns.
pub(super) struct Life {
    /// What it was asked to do.
    pub(super) plan: MemberPlan,
    /// The run's counters and histograms.
    pub(super) shared: Arc<Shared>,
    /// What the command reads while it runs.
    pub(super) progress: Arc<Progress>,
    /// Its number, for the latency shard.
    pub(super) task_no: usize,
    /// The socket's writing half.
    pub(super) sender: Sender<ClientFrame>,
    /// The socket's reading half.
    pub(super) receiver: Receiver<ServerFrame>,
    /// Seq checks of its room.
    pub(super) seqs: SeqTracker,
    /// Order checks per sender.
    pub(super) order: SenderOrder,
    /// What it will hand back.
    pub(super) report: MemberReport,
}

impl Life {
    /// Runs through the phases until `Close`, then closes and reports.
    pub(super) async fn run(mut self, mut phases: watch::Receiver<Phase>) -> MemberReport {
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
            data: None,
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
