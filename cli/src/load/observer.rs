//! A typed member that only watches: who joined, who left, when and why. Eviction is measured
//! from outside the dead client, the way a room's other members experience it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use roomcast_protocol::{
    Client, ClientError, ClientFrame, CloseInfo, ConnectOptions, Incoming, LeaveReason, RoomName,
    Sender, ServerFrame, ServerUrl, UserName,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long closing the observer may take.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// A member's departure as the observer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Departure {
    /// When the `leave` event arrived.
    pub at: Instant,
    /// The reason it carried.
    pub reason: LeaveReason,
}

#[derive(Debug, Default)]
struct Presence {
    joined: HashMap<UserName, Instant>,
    left: HashMap<UserName, Departure>,
    closed: Option<CloseInfo>,
}

/// A watching member of one room.
#[derive(Debug)]
pub struct Observer {
    sender: Sender<ClientFrame>,
    presence: Arc<Mutex<Presence>>,
    task: JoinHandle<()>,
}

impl Observer {
    /// Joins `room` as `user` (presenting `token` when given) and starts recording presence
    /// events.
    pub async fn connect(
        server: &ServerUrl,
        room: &RoomName,
        user: UserName,
        token: Option<String>,
    ) -> Result<Self, ClientError> {
        let options = ConnectOptions {
            user: Some(user),
            room: Some(room.clone()),
            token,
        };
        let (sender, mut receiver) = Client::connect(server, options).await?.split();
        let presence = Arc::new(Mutex::new(Presence::default()));
        let record = presence.clone();
        let task = tokio::spawn(async move {
            loop {
                let incoming = receiver.recv().await;
                let now = Instant::now();
                let mut presence = lock(&record);
                match incoming {
                    Ok(Incoming::Frame(ServerFrame::Join { user, .. })) => {
                        presence.joined.insert(user, now);
                    }
                    Ok(Incoming::Frame(ServerFrame::Leave { user, reason, .. })) => {
                        presence.left.insert(user, Departure { at: now, reason });
                    }
                    Ok(Incoming::Frame(_) | Incoming::Undecodable { .. }) => {}
                    Ok(Incoming::Closed(info)) => {
                        presence.closed = Some(info);
                        return;
                    }
                    Err(e) => {
                        presence.closed = Some(CloseInfo {
                            code: None,
                            reason: e.to_string(),
                        });
                        return;
                    }
                }
            }
        });
        Ok(Self {
            sender,
            presence,
            task,
        })
    }

    /// When `user` joined (its `join` event), if it did while the observer watched.
    pub fn joined(&self, user: &UserName) -> Option<Instant> {
        lock(&self.presence).joined.get(user).copied()
    }

    /// When and why `user` left, if it did.
    pub fn left(&self, user: &UserName) -> Option<Departure> {
        lock(&self.presence).left.get(user).copied()
    }

    /// How the observer's own session ended, if it did (it should not, before `close`).
    pub fn closed(&self) -> Option<CloseInfo> {
        lock(&self.presence).closed.clone()
    }

    /// Leaves cleanly.
    pub async fn close(mut self) {
        if self.sender.close("done").await.is_ok() {
            let _ended = tokio::time::timeout(CLOSE_GRACE, &mut self.task).await;
        }
        self.task.abort();
    }
}

fn lock(presence: &Mutex<Presence>) -> MutexGuard<'_, Presence> {
    // Inserting into maps cannot leave them half-updated; a poisoned lock still holds truth.
    presence.lock().unwrap_or_else(PoisonError::into_inner)
}
