//! `roomcast listen ROOM...`: one typed session joins every room and prints messages as they
//! arrive, until `--count` messages, `--timeout`, or the server ends the session.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::builder::FalseyValueParser;
use clap::{Args, ValueEnum};
use roomcast_protocol::terminal_text::sanitize;
use roomcast_protocol::{
    Client, ConnectOptions, Incoming, Position, RoomMessage, RoomName, ServerFrame, UserName,
};
use tokio::time::Instant;

use super::{Ctx, is_broken_pipe, json_line};
use crate::exit::{Code, Usage};
use crate::units;

/// Flags of `listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// The rooms to listen to (one session joins them all).
    #[arg(required = true)]
    pub rooms: Vec<RoomName>,
    /// The name to listen as (the server makes one up when absent).
    #[arg(long, short, env = "ROOMCAST_LISTEN_USER")]
    pub user: Option<UserName>,
    /// Exit after this many messages (exit 3 if --timeout passes first).
    #[arg(long, short = 'n', env = "ROOMCAST_LISTEN_COUNT")]
    pub count: Option<u64>,
    /// Exit after this long (`30s`, `5m`).
    #[arg(long, env = "ROOMCAST_LISTEN_TIMEOUT", value_parser = units::parse_duration)]
    pub timeout: Option<Duration>,
    /// First replay the kept messages after this seq (0: everything the room still keeps).
    #[arg(long, env = "ROOMCAST_LISTEN_SINCE")]
    pub since: Option<u64>,
    /// Also print join and leave events (with the leave reason).
    #[arg(long, env = "ROOMCAST_LISTEN_PRESENCE", value_parser = FalseyValueParser::new(), default_value_t = false)]
    pub presence: bool,
    /// When to neutralise control characters in message text (escape sequences a peer sent
    /// could otherwise rewrite your terminal): `auto` when stdout is a terminal. `--json` is
    /// always escaped.
    #[arg(long, env = "ROOMCAST_LISTEN_SANITIZE", value_enum, default_value_t = Sanitize::Auto)]
    pub sanitize: Sanitize,
}

/// When `listen` neutralises control characters in the text it prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sanitize {
    /// When stdout is a terminal (a pipe gets the text as sent).
    Auto,
    /// Always, also into pipes and files.
    Always,
    /// Never: peers' escape sequences reach the terminal.
    Never,
}

impl Sanitize {
    /// Whether text is neutralised when stdout is (or is not) a terminal.
    fn applies(self, stdout_is_terminal: bool) -> bool {
        match self {
            Sanitize::Auto => stdout_is_terminal,
            Sanitize::Always => true,
            Sanitize::Never => false,
        }
    }
}

/// `listen`, validated.
#[derive(Debug)]
pub struct ListenConfig {
    rooms: Vec<RoomName>,
    user: Option<UserName>,
    count: Option<u64>,
    timeout: Option<Duration>,
    since: Option<u64>,
    presence: bool,
    /// Neutralise control characters in printed text (resolved from `--sanitize`).
    sanitize: bool,
}

impl TryFrom<ListenArgs> for ListenConfig {
    type Error = anyhow::Error;

    fn try_from(args: ListenArgs) -> Result<Self> {
        if args.count == Some(0) {
            return Err(Usage::err("--count must be at least 1"));
        }
        let mut seen = HashSet::new();
        let rooms = args
            .rooms
            .into_iter()
            .filter(|r| seen.insert(r.clone()))
            .collect();
        Ok(Self {
            rooms,
            user: args.user,
            count: args.count,
            timeout: args.timeout,
            since: args.since,
            presence: args.presence,
            sanitize: args.sanitize.applies(std::io::stdout().is_terminal()),
        })
    }
}

/// Listens until the count, the timeout, or the end of the session.
pub async fn run(ctx: &Ctx, config: ListenConfig) -> Result<Code> {
    let started = Instant::now();
    let options = ConnectOptions {
        user: config.user.clone(),
        room: None,
    };
    let mut client = Client::connect(&ctx.server, options)
        .await
        .context("opening a typed session")?;
    for room in &config.rooms {
        let since = match config.since {
            Some(seq) => position(ctx, room, seq).await?,
            None => None,
        };
        client.join(room, since, None).await.context("joining")?;
    }
    let deadline = config.timeout.map(|t| started + t);
    let mut stdout = std::io::stdout().lock();
    let mut received = 0u64;
    loop {
        if config.count.is_some_and(|count| received >= count) {
            return Ok(Code::Ok);
        }
        let incoming = tokio::select! {
            incoming = client.recv() => incoming?,
            () = sleep_until_some(deadline) => {
                return Ok(match config.count {
                    Some(count) => {
                        eprintln!(
                            "expected {count} message{} within {}, got {received}",
                            if count == 1 { "" } else { "s" },
                            units::show(config.timeout.unwrap_or_default())
                        );
                        Code::Failed
                    }
                    None => Code::Ok,
                });
            }
        };
        let printed = match incoming {
            Incoming::Frame(ServerFrame::Joined {
                room,
                seq,
                members,
                recovered,
                replay,
                ..
            }) => {
                ctx.status(format!(
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
                received += 1;
                print_message(&mut stdout, &message, ctx.json, config.sanitize)
            }
            Incoming::Frame(frame @ (ServerFrame::Join { .. } | ServerFrame::Leave { .. }))
                if config.presence =>
            {
                print_presence(&mut stdout, &frame, ctx.json)
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
            Incoming::Closed(info) => bail!("the server ended the session ({info})"),
            Incoming::Frame(_) | Incoming::Undecodable { .. } => Ok(()),
        };
        match printed {
            Err(e) if is_broken_pipe(&e) => return Ok(Code::Ok),
            other => other?,
        }
    }
}

/// The position to recover from: the room's epoch (from the HTTP API) and `seq`. A room that
/// does not exist yet has nothing to replay.
async fn position(ctx: &Ctx, room: &RoomName, seq: u64) -> Result<Option<Position>> {
    let summary = ctx.api.room(room).await?;
    Ok(summary.map(|summary| Position {
        epoch: summary.epoch,
        seq,
    }))
}

/// One message: the typed frame as JSON (escaped by JSON itself), or a line for people, its
/// text neutralised when `sanitize` (room and user names cannot hold control characters).
fn print_message<W: Write>(
    out: &mut W,
    message: &RoomMessage,
    json: bool,
    sanitize_text: bool,
) -> std::io::Result<()> {
    if json {
        return json_line(out, &ServerFrame::Message(message.clone()));
    }
    let text = if sanitize_text {
        std::borrow::Cow::Owned(sanitize(&message.message))
    } else {
        std::borrow::Cow::Borrowed(message.message.as_str())
    };
    writeln!(
        out,
        "{} {} #{} {}: {text}",
        clock(message.ts),
        message.room,
        message.seq,
        message.user,
    )?;
    out.flush()
}

fn print_presence<W: Write>(out: &mut W, frame: &ServerFrame, json: bool) -> std::io::Result<()> {
    if json {
        return json_line(out, frame);
    }
    match frame {
        ServerFrame::Join { room, user } => writeln!(out, "{room} --> {user} joined")?,
        ServerFrame::Leave { room, user, reason } => {
            writeln!(out, "{room} <-- {user} left ({reason})")?;
        }
        _ => {}
    }
    out.flush()
}

/// `HH:MM:SS` (UTC) of a server timestamp in milliseconds since the Unix epoch.
fn clock(ts_ms: u64) -> String {
    let secs = (ts_ms / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> RoomMessage {
        RoomMessage {
            room: RoomName::new("lobby").expect("valid room"),
            user: UserName::new("ana").expect("valid user"),
            seq: 3,
            ts: 1_700_000_000_000,
            message: "hi".into(),
        }
    }

    #[test]
    fn messages_print_as_a_line_or_as_the_typed_frame() {
        let mut human = Vec::new();
        print_message(&mut human, &message(), false, true).expect("write");
        assert_eq!(
            String::from_utf8_lossy(&human),
            "22:13:20 lobby #3 ana: hi\n"
        );
        let mut json = Vec::new();
        print_message(&mut json, &message(), true, true).expect("write");
        let value: serde_json::Value = serde_json::from_slice(&json).expect("one JSON object");
        assert_eq!(value["type"], "message");
        assert_eq!(value["seq"], 3);
    }

    #[test]
    fn sanitizing_applies_on_a_terminal_unless_told_otherwise() {
        assert!(Sanitize::Auto.applies(true));
        assert!(!Sanitize::Auto.applies(false));
        assert!(Sanitize::Always.applies(false));
        assert!(!Sanitize::Never.applies(true));
    }

    #[test]
    fn leave_events_show_their_reason() {
        let leave = ServerFrame::Leave {
            room: RoomName::new("lobby").expect("valid room"),
            user: UserName::new("bo").expect("valid user"),
            reason: roomcast_protocol::LeaveReason::Timeout,
        };
        let mut human = Vec::new();
        print_presence(&mut human, &leave, false).expect("write");
        assert_eq!(
            String::from_utf8_lossy(&human),
            "lobby <-- bo left (timeout)\n"
        );
    }
}
