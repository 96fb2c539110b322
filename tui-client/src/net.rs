//! The network task: the only owner of the protocol client. It connects, joins, keeps the link
//! measured with application pings, drops a server that stays silent past `server_timeout`
//! (a vanished server sends no FIN), and reconnects by itself (jittered backoff, honouring the
//! close code's advice), rejoining every room with `since` so nothing is silently lost. It talks
//! to the app only through two bounded channels.

mod session;

use std::time::Duration;

use roomcast_protocol::liveness::{DEFAULT_SERVER_TIMEOUT, silence_reason};
use roomcast_protocol::{
    Backoff, Client, ClientError, CloseInfo, ConnectOptions, Position, Positions, ReconnectAdvice,
    RoomName, ServerFrame, ServerInfo, ServerUrl, UserName,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use session::{End, Session};

/// Commands queued from the app to the network task. Small: a person types slowly, and a full
/// queue is reported to the user rather than waited on.
pub const COMMAND_QUEUE: usize = 64;
/// Events queued from the network task to the app. When the app falls behind, the task stops
/// reading the socket; the server then evicts it as slow and the reconnect recovers the gap.
pub const EVENT_QUEUE: usize = 1024;

/// What the app asks of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetCommand {
    /// Join a room (and rejoin it after every reconnect).
    Join(RoomName),
    /// Leave a room.
    Leave(RoomName),
    /// Publish a chat message.
    Publish {
        /// The room.
        room: RoomName,
        /// The text.
        text: String,
    },
    /// Reconnect as another user and rejoin every room.
    Nick(UserName),
    /// Close the session cleanly and end the task.
    Quit,
}

/// The server's answer to a join, with the position this client asked to recover from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The room.
    pub room: RoomName,
    /// The room history's identity.
    pub epoch: String,
    /// The room's last seq when joining.
    pub seq: u64,
    /// Users present, sorted.
    pub members: Vec<UserName>,
    /// `Some(false)` when messages after `since` are lost.
    pub recovered: Option<bool>,
    /// How many replayed `message` frames follow.
    pub replay: usize,
    /// The position sent with the join (`None` on a first join).
    pub since: Option<Position>,
}

/// What the network task reports.
#[derive(Debug, Clone, PartialEq)]
pub enum NetEvent {
    /// Dialing the server (attempt 0 is the first).
    Connecting {
        /// Failed tries since the last good session.
        attempt: u32,
    },
    /// The server said `welcome`.
    Connected {
        /// Who this session speaks as.
        user: UserName,
        /// The server's heartbeat settings and limits.
        server: ServerInfo,
    },
    /// A join (or rejoin) was answered.
    Joined(Joined),
    /// Any other server frame the app shows (messages, presence, errors).
    Frame(ServerFrame),
    /// A measured application ping round trip.
    Rtt(Duration),
    /// The session ended.
    Disconnected {
        /// Why, for a person ("1001 going_away: server shutting down").
        reason: String,
        /// When the next try starts; `None` when the close code says not to retry.
        retry_in: Option<Duration>,
    },
    /// A message could not be handed to the server (offline); the text is returned.
    NotSent {
        /// The room.
        room: RoomName,
        /// The text.
        text: String,
    },
}

/// How the network task behaves.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The server.
    pub url: ServerUrl,
    /// Who to speak as (`None`: the server picks a name).
    pub user: Option<UserName>,
    /// Rooms to join at start, in order.
    pub rooms: Vec<RoomName>,
    /// Reconnect schedule.
    pub backoff: Backoff,
    /// How often to send an application ping (for the RTT shown; at least twice per
    /// `server_timeout`, whatever this says).
    pub ping_every: Duration,
    /// How long the server may stay silent (no pong, no frame; or no answer to a connect)
    /// before the session is dropped and redialed: `--server-timeout`.
    pub server_timeout: Duration,
    /// A session that lasted this long resets the backoff.
    pub stable_after: Duration,
    /// `--token`: presented at every connect; the server keeps it for the session's joins
    /// (private rooms).
    pub token: Option<String>,
}

impl NetConfig {
    /// Defaults for a person at a terminal.
    pub fn new(url: ServerUrl, user: Option<UserName>, rooms: Vec<RoomName>) -> Self {
        Self {
            url,
            user,
            rooms,
            backoff: Backoff::default(),
            ping_every: Duration::from_secs(5),
            server_timeout: DEFAULT_SERVER_TIMEOUT,
            stable_after: Duration::from_secs(10),
            token: None,
        }
    }
}

/// Runs until [`NetCommand::Quit`] or until the app drops its command sender.
pub async fn run(
    config: NetConfig,
    mut commands: mpsc::Receiver<NetCommand>,
    events: mpsc::Sender<NetEvent>,
) {
    let mut user = config.user.clone();
    let mut positions = Positions::new(&config.rooms);
    let mut attempt: u32 = 0;
    'dial: loop {
        if events.send(NetEvent::Connecting { attempt }).await.is_err() {
            return;
        }
        let options = ConnectOptions {
            user: user.clone(),
            room: None,
            token: config.token.clone(),
        };
        // A server that vanished mid-handshake answers nothing either: the same bound applies.
        let connecting =
            tokio::time::timeout(config.server_timeout, Client::connect(&config.url, options));
        tokio::pin!(connecting);
        // Commands keep flowing while dialing: /quit must not wait for a 30 s connect timeout.
        let outcome = loop {
            tokio::select! {
                result = &mut connecting => break result,
                command = commands.recv() => {
                    match offline(command, &mut positions, &mut user, &events).await {
                        Offline::Quit => return,
                        Offline::Redial => continue 'dial,
                        Offline::Stay => {}
                    }
                }
            }
        };
        let (reason, advice) = match outcome {
            Err(_elapsed) => (
                silence_reason(config.server_timeout),
                ReconnectAdvice::Backoff,
            ),
            Ok(Ok(client)) => {
                let started = Instant::now();
                let session = Session::new(&config, &mut positions, &events, &mut commands);
                match session.run(client).await {
                    End::Quit => return,
                    End::Nick(name) => {
                        user = Some(name);
                        attempt = 0;
                        continue;
                    }
                    End::Lost(reason, advice) => {
                        if started.elapsed() >= config.stable_after {
                            attempt = 0;
                        }
                        (reason, advice)
                    }
                }
            }
            Ok(Err(error)) => describe_error(&error),
        };
        let retry_in = match advice {
            ReconnectAdvice::Backoff => Some(config.backoff.delay(attempt, fastrand::f64())),
            ReconnectAdvice::DoNot => None,
        };
        tracing::info!(%reason, ?retry_in, attempt, "disconnected");
        let event = NetEvent::Disconnected { reason, retry_in };
        if events.send(event).await.is_err() {
            return;
        }
        attempt = attempt.saturating_add(1);
        let wake = retry_in.map(|delay| Instant::now() + delay);
        loop {
            let command = match wake {
                Some(wake) => tokio::select! {
                    () = tokio::time::sleep_until(wake) => break,
                    command = commands.recv() => command,
                },
                // Told not to retry: only the user (a new nick, or quitting) moves on.
                None => commands.recv().await,
            };
            match offline(command, &mut positions, &mut user, &events).await {
                Offline::Quit => return,
                Offline::Redial => {
                    attempt = 0;
                    break;
                }
                Offline::Stay => {}
            }
        }
    }
}

/// What a command means while no session is open.
enum Offline {
    Quit,
    Redial,
    Stay,
}

async fn offline(
    command: Option<NetCommand>,
    positions: &mut Positions,
    user: &mut Option<UserName>,
    events: &mpsc::Sender<NetEvent>,
) -> Offline {
    match command {
        None | Some(NetCommand::Quit) => Offline::Quit,
        Some(NetCommand::Nick(name)) => {
            *user = Some(name);
            Offline::Redial
        }
        // Remembered, and joined when the next session starts.
        Some(NetCommand::Join(room)) => {
            positions.add(room);
            Offline::Stay
        }
        Some(NetCommand::Leave(room)) => {
            positions.remove(&room);
            Offline::Stay
        }
        Some(NetCommand::Publish { room, text }) => {
            let _ignored_if_app_gone = events.send(NetEvent::NotSent { room, text }).await;
            Offline::Stay
        }
    }
}

/// A person's account of a failed connect, and whether to retry.
fn describe_error(error: &ClientError) -> (String, ReconnectAdvice) {
    match error {
        ClientError::Closed(info) => describe_close(info),
        ClientError::Connect { source, .. } => (
            format!("cannot connect: {source}"),
            ReconnectAdvice::Backoff,
        ),
        ClientError::Rejected { status, body, .. } => {
            let body = body.trim();
            // 4xx means the same request will be refused again (bad room/user in the URL);
            // 5xx (full, draining) is worth retrying.
            let advice = if (400..500).contains(status) {
                ReconnectAdvice::DoNot
            } else {
                ReconnectAdvice::Backoff
            };
            (format!("refused: HTTP {status} {body}"), advice)
        }
        other => (other.to_string(), ReconnectAdvice::Backoff),
    }
}

/// "1001 going_away: server shutting down", and the code's advice.
pub fn describe_close(info: &CloseInfo) -> (String, ReconnectAdvice) {
    match info.code {
        Some(code) if info.reason.is_empty() => {
            (format!("{} {}", code.as_u16(), code.name()), code.advice())
        }
        Some(code) => (
            format!("{} {}: {}", code.as_u16(), code.name(), info.reason),
            code.advice(),
        ),
        None => (
            "connection lost (no close frame)".to_owned(),
            ReconnectAdvice::Backoff,
        ),
    }
}
