//! `roomcast listen ROOM...`: one typed session joins every room and prints messages as they
//! arrive, until `--count` messages, `--timeout`, or a close that says not to come back. A
//! session that is lost (a restart, a reset, or a server silent past `--server-timeout`) is
//! redialed with backoff and every room rejoined with `since`: nothing is skipped or printed
//! twice while the server still keeps it.

mod print;
mod session;
mod sse;

use std::collections::HashSet;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use clap::builder::FalseyValueParser;
use roomcast_protocol::liveness::{parse_server_timeout, silence_reason};
use roomcast_protocol::{
    Backoff, Client, ClientError, ConnectOptions, Position, Positions, RoomName, UserName,
};
use tokio::time::Instant;

pub use print::Sanitize;
use session::{End, Listener};

use super::Ctx;
use crate::exit::{Code, Usage};
use crate::units;

/// A session that lasted this long was a good one: the next loss starts the backoff afresh.
/// Shorter ones (a server that accepts and closes at once) keep growing the delay.
const STABLE_AFTER: Duration = Duration::from_secs(10);

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
    /// Reconnect (and recover what was missed) when the server sends nothing, not even an
    /// answer to a ping, for this long: how long a server that vanished without closing can
    /// go unnoticed. At least 100ms.
    #[arg(
        long,
        env = "ROOMCAST_SERVER_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_server_timeout
    )]
    pub server_timeout: Duration,
    /// Follow over Server-Sent Events (`/sse/...`) instead of a WebSocket: for networks that
    /// break WebSockets. Listens only; resumes through the stream's ids. --server-timeout is
    /// raised to 35s here, above the server's heartbeat (--sse-heartbeat, 15s by default).
    #[arg(long, env = "ROOMCAST_LISTEN_SSE", value_parser = FalseyValueParser::new(), default_value_t = false)]
    pub sse: bool,
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
    server_timeout: Duration,
    sse: bool,
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
            server_timeout: args.server_timeout,
            sse: args.sse,
        })
    }
}

/// Listens until the count, the timeout, or a close that says not to come back.
pub async fn run(ctx: &Ctx, config: ListenConfig) -> Result<Code> {
    if config.sse {
        return sse::run(ctx, &config).await;
    }
    let started = Instant::now();
    let deadline = config.timeout.map(|t| started + t);
    // The first connect fails the command (exit 4 when nothing listens); later ones retry.
    let mut client = Client::connect(&ctx.server, options(ctx, &config)?)
        .await
        .context("opening a typed session")?;
    let mut positions = Positions::new(&config.rooms);
    if let Some(seq) = config.since {
        for room in &config.rooms {
            if let Some(since) = position(ctx, room, seq).await? {
                positions.start_from(room, since);
            }
        }
    }
    let mut listener = Listener {
        ctx,
        config: &config,
        positions,
        stdout: std::io::stdout().lock(),
        received: 0,
        deadline,
    };
    let backoff = Backoff::default();
    let mut attempt: u32 = 0;
    loop {
        let session_started = Instant::now();
        let mut reason = match listener.session(client).await? {
            End::Finished(code) => return Ok(code),
            End::Lost(reason) => reason,
        };
        if session_started.elapsed() >= STABLE_AFTER {
            attempt = 0;
        }
        client = loop {
            let delay = backoff.delay(attempt, fastrand::f64());
            attempt = attempt.saturating_add(1);
            ctx.status(format!("reconnecting: {reason}"));
            let redial = async {
                tokio::time::sleep(delay).await;
                redial(ctx, &config).await
            };
            tokio::select! {
                () = sleep_until_some(deadline) => return Ok(listener.timed_out()),
                dialed = redial => match dialed? {
                    Redial::Connected(client) => break client,
                    Redial::Retry(next) => reason = next,
                },
            }
        };
    }
}

/// What a reconnect attempt came to.
enum Redial {
    /// A new session, past its `welcome`.
    Connected(Client),
    /// No session; worth another try. Why, for the status line.
    Retry(String),
}

/// One reconnect attempt, bounded by `--server-timeout` (a vanished server does not answer a
/// handshake either). An error ends `listen`: the server refused the request itself (HTTP 4xx),
/// which retrying cannot change.
async fn redial(ctx: &Ctx, config: &ListenConfig) -> Result<Redial> {
    let connecting = Client::connect(&ctx.server, options(ctx, config)?);
    match tokio::time::timeout(config.server_timeout, connecting).await {
        Err(_elapsed) => Ok(Redial::Retry(silence_reason(config.server_timeout))),
        Ok(Ok(client)) => Ok(Redial::Connected(client)),
        Ok(Err(error @ ClientError::Rejected { status, .. })) if (400..500).contains(&status) => {
            Err(anyhow::Error::new(error).context("reconnecting"))
        }
        Ok(Err(error)) => Ok(Redial::Retry(error.to_string())),
    }
}

fn options(ctx: &Ctx, config: &ListenConfig) -> Result<ConnectOptions> {
    Ok(ConnectOptions {
        user: config.user.clone(),
        room: None,
        token: ctx
            .credentials
            .for_session(config.user.as_ref(), &config.rooms)?,
    })
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

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    fn server_timeout(args: &[&str]) -> Result<std::time::Duration, clap::Error> {
        let cli = Cli::try_parse_from([&["roomcast", "listen", "lobby"], args].concat())?;
        match cli.command {
            Command::Listen(listen) => Ok(listen.server_timeout),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_server_timeout_defaults_to_10s_and_refuses_a_bound_that_cannot_work() {
        assert_eq!(
            server_timeout(&[]).ok(),
            Some(std::time::Duration::from_secs(10))
        );
        let refused = server_timeout(&["--server-timeout", "0s"]).expect_err("zero cannot work");
        assert_eq!(refused.exit_code(), 2);
        let said = refused.to_string();
        assert!(
            said.contains("--server-timeout") && said.contains("at least 100ms"),
            "{said}"
        );
    }
}
