//! The soak's live members: connected in parallel, churned one at a time, drained at the end.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::future::join_all;
use roomcast_protocol::{RoomName, ServerUrl};
use tokio::task::JoinHandle;

use crate::load::member::{self, Drained, Member, MemberPlan, MemberReport, Shared};
use crate::load::user_name;
use crate::tokens::Credentials;

/// Handshakes in flight at once while connecting: enough to connect thousands in seconds,
/// few enough not to look like a SYN flood to the server's accept queue.
const CONNECT_CONCURRENCY: usize = 64;

/// How long the final drain may wait at each step.
const DRAIN_WITHIN: Duration = Duration::from_secs(10);

/// The live members of a soak.
#[derive(Debug)]
pub struct Fleet {
    /// The nodes members connect to, in turn (member n to node n mod len).
    servers: Vec<ServerUrl>,
    /// Where each member's token comes from.
    credentials: Credentials,
    shared: Arc<Shared>,
    rooms: Vec<RoomName>,
    rate_each: Option<f64>,
    size: usize,
    members: Vec<Member>,
    next_sender: u32,
    /// Members churned out, finishing in the background.
    retiring: Vec<JoinHandle<MemberReport>>,
}

impl Fleet {
    /// Connects `clients` members spread over `rooms` and over the nodes `servers`, each
    /// sending `rate_each` per second.
    pub async fn connect(
        servers: &[ServerUrl],
        credentials: Credentials,
        shared: Arc<Shared>,
        rooms: Vec<RoomName>,
        clients: usize,
        rate_each: Option<f64>,
        size: usize,
    ) -> Result<Self> {
        anyhow::ensure!(!servers.is_empty(), "give at least one --url");
        let mut fleet = Self {
            servers: servers.to_vec(),
            credentials,
            shared,
            rooms,
            rate_each,
            size,
            members: Vec::with_capacity(clients),
            next_sender: 0,
            retiring: Vec::new(),
        };
        let mut left = clients;
        while left > 0 {
            let batch = left.min(CONNECT_CONCURRENCY);
            let plans: Vec<MemberPlan> = (0..batch).map(|_| fleet.plan()).collect::<Result<_>>()?;
            let start = fleet.members.len();
            let connecting = plans.into_iter().enumerate().map(|(i, plan)| {
                Member::connect(fleet.node(start + i), plan, fleet.shared.clone(), start + i)
            });
            for member in join_all(connecting).await {
                fleet
                    .members
                    .push(member.context("connecting a live member")?);
            }
            left -= batch;
        }
        Ok(fleet)
    }

    /// The node member number `n` connects to.
    fn node(&self, n: usize) -> &ServerUrl {
        &self.servers[n % self.servers.len()]
    }

    /// The plan of the next member: the next sender number, rooms in turn.
    fn plan(&mut self) -> Result<MemberPlan> {
        let sender = self.next_sender;
        self.next_sender += 1;
        let room = self.rooms[sender as usize % self.rooms.len()].clone();
        let user = user_name(&format!("soak-{}-{sender}", self.shared.run))?;
        Ok(MemberPlan {
            token: self.credentials.for_client(&user, &room)?,
            room,
            user,
            sender,
            rate: self.rate_each,
            size: self.size,
        })
    }

    /// Live members now.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Replaces one random member by a new one in the same room: the old one stops sending,
    /// gets its acks, and leaves cleanly in the background.
    pub async fn churn_one(&mut self) -> Result<()> {
        if self.members.is_empty() {
            return Ok(());
        }
        let index = fastrand::usize(..self.members.len());
        let mut plan = self.plan()?;
        plan.room = self.members[index].plan.room.clone();
        // Its token must open the room it moves to.
        plan.token = self.credentials.for_client(&plan.user, &plan.room)?;
        let task_no = plan.sender as usize;
        let fresh = Member::connect(self.node(task_no), plan, self.shared.clone(), task_no)
            .await
            .context("connecting a churned-in member")?;
        let old = std::mem::replace(&mut self.members[index], fresh);
        self.retiring.push(tokio::spawn(old.finish()));
        Ok(())
    }

    /// Ends every member: the live ones drained (see [`member::drain`]), the churned ones
    /// awaited. Returns the live ones' results and the churned ones' reports.
    pub async fn drain(self) -> (Vec<Drained>, Vec<MemberReport>) {
        let drained = member::drain(self.members, DRAIN_WITHIN).await;
        let retired = join_all(self.retiring)
            .await
            .into_iter()
            .map(|joined| {
                joined.unwrap_or_else(|e| MemberReport {
                    error: Some(format!("a churned member's task failed: {e}")),
                    ..MemberReport::default()
                })
            })
            .collect();
        (drained, retired)
    }
}
