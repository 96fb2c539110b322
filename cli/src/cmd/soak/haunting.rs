//! The soak's dead clients: created at a steady pace over the run, every mode in turn, each
//! judged like `dead-clients` judges them.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use roomcast_protocol::{RoomName, ServerUrl};
use serde::Serialize;
use tokio::time::Instant;

use crate::load::eviction::{Expect, Heartbeat, Observed, Verdict, judge};
use crate::load::ghost::{self, Ghost, GhostPlan, Mode};
use crate::load::latency::{LatencySummary, histogram};
use crate::load::observer::Observer;
use crate::load::wire::{self, room_socket_as};
use crate::load::{user_name, wait_until};
use crate::tokens::Credentials;

/// How long connecting one dead client may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many failures the summary spells out (the counts cover the rest).
const PROBLEMS_SHOWN: usize = 10;

/// Dead clients being created and watched.
#[derive(Debug)]
pub struct Haunting {
    server: ServerUrl,
    /// Where each dead client's token comes from.
    credentials: Credentials,
    beat: Heartbeat,
    rooms: Vec<RoomName>,
    run: String,
    planned: usize,
    start: Instant,
    spacing: Duration,
    /// Each ghost with the index of its room (and so of its observer).
    ghosts: Vec<(Ghost, usize)>,
}

/// Per-mode counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ModeTally {
    /// Created.
    pub created: usize,
    /// Evicted in time.
    pub evicted: usize,
    /// Rightly not evicted (short pauses).
    pub survived: usize,
    /// Failed their expectation.
    pub failed: usize,
}

/// How the dead clients fared.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GhostTally {
    /// Created.
    pub created: usize,
    /// Owed an eviction.
    pub evictions_due: usize,
    /// Evicted in time.
    pub evicted: usize,
    /// Paused clients rightly kept.
    pub survived: usize,
    /// Paused clients evicted although their pause was shorter than the timeout.
    pub wrongly_evicted: usize,
    /// Failed their expectation, any way.
    pub failed: usize,
    /// Per mode.
    pub by_mode: BTreeMap<&'static str, ModeTally>,
    /// Time from going dead to eviction.
    pub eviction: LatencySummary,
    /// The first failures, in words.
    pub problems: Vec<String>,
}

impl Haunting {
    /// Plans `count` dead clients over `rooms`, the last one going dead early enough to be
    /// evicted before `duration` ends (all at once when the run is shorter than that).
    pub fn new(
        server: &ServerUrl,
        credentials: Credentials,
        beat: Heartbeat,
        rooms: Vec<RoomName>,
        run: &str,
        count: usize,
        duration: Duration,
    ) -> Self {
        let window = duration.saturating_sub(beat.upper() + beat.interval);
        let spacing = window / u32::try_from(count.max(1)).unwrap_or(u32::MAX);
        Self {
            server: server.clone(),
            credentials,
            beat,
            rooms,
            run: run.to_owned(),
            planned: count,
            start: Instant::now(),
            spacing,
            ghosts: Vec::with_capacity(count),
        }
    }

    /// When the next dead client is due; `None` once all exist.
    pub fn next_due(&self) -> Option<Instant> {
        let created = u32::try_from(self.ghosts.len()).ok()?;
        (self.ghosts.len() < self.planned).then(|| self.start + self.spacing * created)
    }

    /// Creates the next dead client (modes and rooms in turn).
    pub async fn spawn_next(&mut self) -> Result<()> {
        let k = self.ghosts.len();
        let mode = Mode::ALL[k % Mode::ALL.len()];
        let room_index = k % self.rooms.len();
        let room = &self.rooms[room_index];
        let user = user_name(&format!("{}-{}-{k}", mode.name(), self.run))?;
        let plan = GhostPlan {
            mode,
            live_for: self.beat.live_phase(),
            pause: self.beat.pause,
        };
        let token = self.credentials.for_client(&user, room)?;
        let url = room_socket_as(&self.server, room, &user, token.as_deref());
        let ghost = Ghost::connect(&url, user, plan, CONNECT_TIMEOUT)
            .await
            .map_err(|e| wire::into_cli(e, "opening a dead client"))?;
        self.ghosts.push((ghost, room_index));
        Ok(())
    }

    /// Dead clients the observers have seen leave so far.
    pub fn departed(&self, observers: &[Observer]) -> usize {
        self.ghosts
            .iter()
            .filter(|(ghost, room)| observers[*room].left(&ghost.user).is_some())
            .count()
    }

    /// Waits for every due eviction (bounded by the heartbeat's window), stops the dead
    /// clients, and judges each.
    pub async fn finish(self, observers: &[Observer]) -> GhostTally {
        let mut ghosts = self.ghosts;
        let (dead_at, last_death) = ghost::deaths(ghosts.iter_mut().map(|(ghost, _)| ghost)).await;
        let beat = self.beat;
        // A client that must survive is only proven to at the end of its window.
        let survivors = ghosts
            .iter()
            .any(|(g, _)| !matches!(beat.expectation(g.mode), Expect::Evict { .. }));
        let give_up = last_death + beat.give_up_after();
        wait_until(give_up, || {
            !survivors
                && ghosts.iter().zip(&dead_at).all(|((ghost, room), dead)| {
                    dead.is_none() || observers[*room].left(&ghost.user).is_some()
                })
        })
        .await;
        let mut tally = GhostTally::default();
        let mut eviction = histogram();
        for ((ghost, room), dead) in ghosts.into_iter().zip(dead_at) {
            let departure = observers[room].left(&ghost.user);
            let (user, mode) = (ghost.user.clone(), ghost.mode);
            let log = ghost.finish(departure.is_some()).await;
            let observed = Observed {
                went_dead: dead.is_some(),
                left: departure.and_then(|d| Some((d.at.checked_duration_since(dead?)?, d.reason))),
                socket_closed: log.ended_at().is_some(),
            };
            let expect = beat.expectation(mode);
            let (verdict, problem) = judge(expect, observed);
            let per_mode = tally.by_mode.entry(mode.name()).or_default();
            per_mode.created += 1;
            tally.created += 1;
            if matches!(expect, Expect::Evict { .. }) {
                tally.evictions_due += 1;
            }
            match verdict {
                Verdict::Evicted => {
                    tally.evicted += 1;
                    per_mode.evicted += 1;
                }
                Verdict::Survived | Verdict::Accepted => {
                    tally.survived += 1;
                    per_mode.survived += 1;
                }
                other => {
                    tally.failed += 1;
                    per_mode.failed += 1;
                    tally.wrongly_evicted += usize::from(other == Verdict::WronglyEvicted);
                }
            }
            if let Some((after, _)) = observed.left {
                eviction.saturating_record(u64::try_from(after.as_micros()).unwrap_or(u64::MAX));
            }
            if let Some(problem) = problem
                && tally.problems.len() < PROBLEMS_SHOWN
            {
                tally
                    .problems
                    .push(format!("{user} ({}): {problem}", mode.name()));
            }
        }
        tally.eviction = LatencySummary::of(&eviction);
        tally
    }
}
