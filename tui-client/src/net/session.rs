//! One connected session: a single `select!` over server frames, app commands and the ping
//! schedule with its silence deadline. It ends by saying why, so the reconnect loop can decide
//! what comes next.

use std::collections::HashMap;
use std::time::Duration;

use roomcast_protocol::{
    Beat, Client, ClientFrame, Incoming, Liveness, Position, Positions, Receiver, ReconnectAdvice,
    Ref, RoomName, Sender, ServerFrame, UserName,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Joined, NetCommand, NetConfig, NetEvent, describe_close};

/// How long quitting waits for the server to answer the close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Why a session ended.
pub(super) enum End {
    /// The user quit (or the app is gone).
    Quit,
    /// The user changed nick: reconnect at once under the new name.
    Nick(UserName),
    /// The link broke or the server closed it; reason for the status line, and the advice.
    Lost(String, ReconnectAdvice),
}

pub(super) struct Session<'a> {
    config: &'a NetConfig,
    positions: &'a mut Positions,
    events: &'a mpsc::Sender<NetEvent>,
    commands: &'a mut mpsc::Receiver<NetCommand>,
    /// The `since` each pending join asked for, to report with its `joined`.
    asked: HashMap<RoomName, Option<Position>>,
    /// The ping in flight: its ref and when it left.
    ping: Option<(u64, Instant)>,
    next_ref: u64,
}

impl<'a> Session<'a> {
    pub(super) fn new(
        config: &'a NetConfig,
        positions: &'a mut Positions,
        events: &'a mpsc::Sender<NetEvent>,
        commands: &'a mut mpsc::Receiver<NetCommand>,
    ) -> Self {
        Self {
            config,
            positions,
            events,
            commands,
            asked: HashMap::new(),
            ping: None,
            next_ref: 0,
        }
    }

    pub(super) async fn run(mut self, client: Client) -> End {
        let connected = NetEvent::Connected {
            user: client.user().clone(),
            server: client.server_info().clone(),
        };
        if self.events.send(connected).await.is_err() {
            return End::Quit;
        }
        let (mut tx, mut rx) = client.split();
        for (room, since) in self.positions.joins() {
            if let Err(end) = self.join(&mut tx, room, since).await {
                return end;
            }
        }
        // The first ping goes out at once, so the status shows an RTT right after connecting.
        let mut liveness = Liveness::new(self.config.server_timeout, self.config.ping_every);
        loop {
            let step = tokio::select! {
                incoming = rx.recv() => {
                    liveness.heard();
                    self.on_incoming(incoming).await
                }
                command = self.commands.recv() => self.on_command(command, &mut tx, &mut rx).await,
                beat = liveness.next() => match beat {
                    Beat::Ping => self.ping(&mut tx).await,
                    // Dropped without a close frame: nobody is there to read one.
                    Beat::Silent => Err(End::Lost(liveness.silence_reason(), ReconnectAdvice::Backoff)),
                },
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    async fn emit(&self, event: NetEvent) -> Result<(), End> {
        self.events.send(event).await.map_err(|_| End::Quit)
    }

    async fn join(
        &mut self,
        tx: &mut Sender<ClientFrame>,
        room: RoomName,
        since: Option<Position>,
    ) -> Result<(), End> {
        let frame = ClientFrame::Join {
            room: room.clone(),
            since: since.clone(),
            token: None,
            reference: None,
        };
        self.asked.insert(room, since);
        send(tx, &frame).await
    }

    async fn on_incoming(
        &mut self,
        incoming: Result<Incoming<ServerFrame>, roomcast_protocol::ClientError>,
    ) -> Result<(), End> {
        match incoming {
            Ok(Incoming::Frame(frame)) => self.on_frame(frame).await,
            Ok(Incoming::Undecodable { text, error }) => {
                tracing::warn!(%error, frame = %text, "ignored a frame this client cannot read");
                Ok(())
            }
            Ok(Incoming::Closed(info)) => {
                let (reason, advice) = describe_close(&info);
                Err(End::Lost(reason, advice))
            }
            Err(error) => Err(End::Lost(error.to_string(), ReconnectAdvice::Backoff)),
        }
    }

    async fn on_frame(&mut self, frame: ServerFrame) -> Result<(), End> {
        match frame {
            ServerFrame::Joined {
                room,
                epoch,
                seq,
                members,
                recovered,
                replay,
                reference: _,
            } => {
                let since = self.asked.remove(&room).flatten();
                self.positions
                    .joined(&room, &epoch, seq, replay, since.as_ref());
                let joined = Joined {
                    room,
                    epoch,
                    seq,
                    members,
                    recovered,
                    replay,
                    since,
                };
                self.emit(NetEvent::Joined(joined)).await
            }
            ServerFrame::Pong {
                reference: Some(Ref::Number(n)),
                ..
            } => {
                if let Some((sent_ref, sent_at)) = self.ping
                    && sent_ref == n
                {
                    self.ping = None;
                    return self.emit(NetEvent::Rtt(sent_at.elapsed())).await;
                }
                Ok(())
            }
            ServerFrame::Pong { .. } | ServerFrame::Welcome { .. } | ServerFrame::Ack { .. } => {
                Ok(())
            }
            ServerFrame::Message(message) => {
                self.positions.saw(&message.room, message.seq);
                self.emit(NetEvent::Frame(ServerFrame::Message(message)))
                    .await
            }
            other => self.emit(NetEvent::Frame(other)).await,
        }
    }

    async fn on_command(
        &mut self,
        command: Option<NetCommand>,
        tx: &mut Sender<ClientFrame>,
        rx: &mut Receiver<ServerFrame>,
    ) -> Result<(), End> {
        match command {
            None | Some(NetCommand::Quit) => {
                close(tx, rx, "bye").await;
                Err(End::Quit)
            }
            Some(NetCommand::Nick(name)) => {
                close(tx, rx, "changing nick").await;
                Err(End::Nick(name))
            }
            Some(NetCommand::Join(room)) => {
                if self.positions.add(room.clone()) {
                    self.join(tx, room, None).await?;
                }
                Ok(())
            }
            Some(NetCommand::Leave(room)) => {
                self.positions.remove(&room);
                send(
                    tx,
                    &ClientFrame::Leave {
                        room,
                        reference: None,
                    },
                )
                .await
            }
            Some(NetCommand::Publish { room, text }) => {
                let frame = ClientFrame::Publish {
                    room: room.clone(),
                    message: text.clone(),
                    data: None,
                    reference: None,
                };
                if let Err(end) = send(tx, &frame).await {
                    // The text would be lost with the socket: hand it back to the user.
                    self.emit(NetEvent::NotSent { room, text }).await?;
                    return Err(end);
                }
                Ok(())
            }
        }
    }

    async fn ping(&mut self, tx: &mut Sender<ClientFrame>) -> Result<(), End> {
        if self.ping.is_some() {
            // One ping in flight at a time: a second would only measure the same stall, and
            // the silence deadline already covers a server that stopped answering.
            return Ok(());
        }
        self.next_ref += 1;
        self.ping = Some((self.next_ref, Instant::now()));
        let frame = ClientFrame::Ping {
            reference: Some(Ref::Number(self.next_ref)),
        };
        send(tx, &frame).await
    }
}

async fn send(tx: &mut Sender<ClientFrame>, frame: &ClientFrame) -> Result<(), End> {
    tx.send(frame)
        .await
        .map_err(|error| End::Lost(format!("could not send: {error}"), ReconnectAdvice::Backoff))
}

/// Starts a clean close and waits (bounded) for the server's close frame, so the server sees
/// a clean leave instead of a dropped socket.
async fn close(tx: &mut Sender<ClientFrame>, rx: &mut Receiver<ServerFrame>, reason: &str) {
    if tx.close(reason).await.is_err() {
        return;
    }
    let drained = tokio::time::timeout(CLOSE_WAIT, async {
        while let Ok(incoming) = rx.recv().await {
            if matches!(incoming, Incoming::Closed(_)) {
                break;
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::debug!("the server did not answer the close frame in time");
    }
}
