//! One `listen` session: join every room (with `since` after a reconnect), then one `select!`
//! over server frames, the ping schedule with its silence deadline, and `--timeout`. It ends by
//! saying whether `listen` is done or the session was lost and should be redialed.

use std::collections::HashMap;
use std::io::StdoutLock;

use anyhow::{Result, bail};
use roomcast_protocol::{
    Beat, Client, ClientFrame, Incoming, Liveness, Position, Positions, ReconnectAdvice, RoomName,
    ServerFrame,
};
use tokio::time::Instant;

use super::print::{print_message, print_presence};
use super::{ListenConfig, sleep_until_some};
use crate::cmd::{Ctx, is_broken_pipe};
use crate::exit::Code;
use crate::units;

/// How a session ended.
pub(super) enum End {
    /// `listen` is over, with this exit code (count reached, `--timeout`, stdout closed).
    Finished(Code),
    /// The link broke or the server went silent; redial. The reason is for the status line.
    Lost(String),
}

/// What `listen` keeps across sessions: where it is in each room, and what it printed.
pub(super) struct Listener<'a> {
    pub(super) ctx: &'a Ctx,
    pub(super) config: &'a ListenConfig,
    pub(super) positions: Positions,
    pub(super) stdout: StdoutLock<'static>,
    pub(super) received: u64,
    /// The end of `--timeout`, if any.
    pub(super) deadline: Option<Instant>,
}

enum Step {
    Incoming(Result<Incoming<ServerFrame>, roomcast_protocol::ClientError>),
    Beat(Beat),
    Deadline,
}

impl Listener<'_> {
    /// True once `--count` messages were printed.
    pub(super) fn has_its_count(&self) -> bool {
        self.config
            .count
            .is_some_and(|count| self.received >= count)
    }

    /// The exit code when `--timeout` ends the run: 3 when a `--count` was expected.
    pub(super) fn timed_out(&self) -> Code {
        match self.config.count {
            Some(count) => {
                eprintln!(
                    "expected {count} message{} within {}, got {}",
                    if count == 1 { "" } else { "s" },
                    units::show(self.config.timeout.unwrap_or_default()),
                    self.received
                );
                Code::Failed
            }
            None => Code::Ok,
        }
    }

    /// Runs one session on `client` until it is lost or `listen` is done.
    pub(super) async fn session(&mut self, mut client: Client) -> Result<End> {
        // The `since` each join asked for, to interpret its `joined`.
        let mut asked: HashMap<RoomName, Option<Position>> = HashMap::new();
        for (room, since) in self.positions.joins() {
            if let Err(error) = client.join(&room, since.clone(), None).await {
                return Ok(End::Lost(format!("could not join {room}: {error}")));
            }
            asked.insert(room, since);
        }
        let timeout = self.config.server_timeout;
        let mut liveness = Liveness::new(timeout, timeout / 2);
        loop {
            if self.has_its_count() {
                return Ok(End::Finished(Code::Ok));
            }
            let step = tokio::select! {
                incoming = client.recv() => Step::Incoming(incoming),
                beat = liveness.next() => Step::Beat(beat),
                () = sleep_until_some(self.deadline) => Step::Deadline,
            };
            let incoming = match step {
                Step::Deadline => return Ok(End::Finished(self.timed_out())),
                Step::Beat(Beat::Ping) => {
                    if let Err(error) = client.send(&ClientFrame::Ping { reference: None }).await {
                        return Ok(End::Lost(format!("could not send a ping: {error}")));
                    }
                    continue;
                }
                // Dropped without a close frame: nobody is there to read one.
                Step::Beat(Beat::Silent) => return Ok(End::Lost(liveness.silence_reason())),
                Step::Incoming(Err(error)) => return Ok(End::Lost(error.to_string())),
                Step::Incoming(Ok(incoming)) => incoming,
            };
            liveness.heard();
            let printed = match incoming {
                Incoming::Frame(ServerFrame::Joined {
                    room,
                    epoch,
                    seq,
                    members,
                    recovered,
                    replay,
                    ..
                }) => {
                    let since = asked.remove(&room).flatten();
                    self.positions
                        .joined(&room, &epoch, seq, replay, since.as_ref());
                    self.ctx.status(format!(
                        "listening to {room} (seq {seq}, {} member{}{})",
                        members.len(),
                        if members.len() == 1 { "" } else { "s" },
                        match recovered {
                            Some(false) =>
                                format!("; {replay} kept message(s) replayed, older ones are gone"),
                            _ if replay > 0 => format!("; replaying {replay}"),
                            _ => String::new(),
                        }
                    ));
                    Ok(())
                }
                Incoming::Frame(ServerFrame::Message(message)) => {
                    self.positions.saw(&message.room, message.seq);
                    self.received += 1;
                    print_message(
                        &mut self.stdout,
                        &message,
                        self.ctx.json,
                        self.config.sanitize,
                    )
                }
                Incoming::Frame(frame @ (ServerFrame::Join { .. } | ServerFrame::Leave { .. }))
                    if self.config.presence =>
                {
                    print_presence(&mut self.stdout, &frame, self.ctx.json)
                }
                Incoming::Frame(ServerFrame::Error {
                    code,
                    message,
                    room,
                    ..
                }) => {
                    let room = room.map_or_else(String::new, |r| format!(" ({r})"));
                    bail!("the server refused{room}: {code}: {message}");
                }
                Incoming::Closed(info) => {
                    let advice = info.code.map_or(ReconnectAdvice::Backoff, |c| c.advice());
                    if advice == ReconnectAdvice::DoNot {
                        bail!("the server ended the session ({info})");
                    }
                    return Ok(End::Lost(info.to_string()));
                }
                Incoming::Frame(_) | Incoming::Undecodable { .. } => Ok(()),
            };
            match printed {
                Err(e) if is_broken_pipe(&e) => return Ok(End::Finished(Code::Ok)),
                other => other?,
            }
        }
    }
}
