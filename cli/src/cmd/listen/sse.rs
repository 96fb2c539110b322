//! `roomcast listen --sse ROOM...`: follows the rooms over Server-Sent Events (`/sse/...`)
//! instead of a WebSocket, for networks where WebSockets break. One stream follows every room;
//! each event's id is the stream's cursor, sent back as `Last-Event-ID` on reconnect, so the
//! server replays exactly what was missed (or says `gap`).
//!
//! The stream is read with reqwest and the protocol crate's `EventParser` rather than a crate
//! such as `eventsource-stream`: that one needs reqwest's `stream` feature and hides comments
//! (the server's heartbeats, which `listen` uses to know the stream is alive), while the parser
//! is short and shared with the test suites.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use roomcast_protocol::sse::{EventParser, Item};
use roomcast_protocol::{Backoff, RoomName, ServerFrame};
use tokio::time::Instant;

use super::print::{print_message, print_presence};
use super::{ListenConfig, position, sleep_until_some};
use crate::cmd::{Ctx, is_broken_pipe};
use crate::exit::{Code, Unreachable};

/// The shortest silence `listen --sse` waits out before it reconnects: the server's heartbeat
/// comes every `--sse-heartbeat` (15s by default), so a shorter `--server-timeout` would
/// reconnect a healthy stream between two beats.
const MIN_SSE_SILENCE: Duration = Duration::from_secs(35);

/// How a stream ended, when `listen` goes on.
enum End {
    Finished(Code),
    /// Lost or ended by the server: reconnect, after at least the delay it asked for.
    Lost(String),
}

struct Follow<'a> {
    ctx: &'a Ctx,
    config: &'a ListenConfig,
    http: reqwest::Client,
    /// The last id seen: where a reconnect resumes.
    last_id: Option<String>,
    /// The token sent as `Authorization: Bearer` (private rooms).
    token: Option<String>,
    /// The server's latest `retry:` advice.
    retry: Option<Duration>,
    received: u64,
    deadline: Option<Instant>,
    stdout: std::io::StdoutLock<'static>,
}

/// Follows until the count, the timeout, or a refusal that retrying cannot change.
pub async fn run(ctx: &Ctx, config: &ListenConfig) -> Result<Code> {
    let deadline = config.timeout.map(|t| Instant::now() + t);
    let mut last_id = None;
    if let Some(seq) = config.since {
        let mut positions = Vec::new();
        for room in &config.rooms {
            if let Some(since) = position(ctx, room, seq).await? {
                positions.push(format!("{room}:{}:{}", since.epoch, since.seq));
            }
        }
        last_id = (!positions.is_empty()).then(|| positions.join(","));
    }
    let mut follow = Follow {
        ctx,
        config,
        http: reqwest::Client::new(),
        last_id,
        token: ctx
            .credentials
            .for_session(config.user.as_ref(), &config.rooms)?,
        retry: None,
        received: 0,
        deadline,
        stdout: std::io::stdout().lock(),
    };
    let backoff = Backoff::default();
    let mut attempt: u32 = 0;
    let mut first = true;
    loop {
        let opened = Instant::now();
        let reason = match follow.stream(first).await? {
            End::Finished(code) => return Ok(code),
            End::Lost(reason) => reason,
        };
        first = false;
        if opened.elapsed() >= Duration::from_secs(10) {
            attempt = 0;
        }
        let delay = backoff
            .delay(attempt, fastrand::f64())
            .max(follow.retry.unwrap_or_default());
        attempt = attempt.saturating_add(1);
        ctx.status(format!("reconnecting: {reason}"));
        tokio::select! {
            () = sleep_until_some(deadline) => return Ok(follow.timed_out()),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

fn path(rooms: &[RoomName]) -> String {
    match rooms {
        [room] => format!("sse/{room}/"),
        _ => {
            let names: Vec<&str> = rooms.iter().map(RoomName::as_str).collect();
            format!("sse?rooms={}", names.join(","))
        }
    }
}

impl Follow<'_> {
    fn timed_out(&self) -> Code {
        match self.config.count {
            Some(count) => {
                eprintln!(
                    "expected {count} message{} within the timeout, got {}",
                    if count == 1 { "" } else { "s" },
                    self.received
                );
                Code::Failed
            }
            None => Code::Ok,
        }
    }

    /// One stream, until it is lost or `listen` is done. The first open failing ends `listen`
    /// (exit 4 when nothing listens); later ones are retried.
    async fn stream(&mut self, first: bool) -> Result<End> {
        let url = self.ctx.server.http(&path(&self.config.rooms));
        let mut request = self.http.get(url.clone());
        // A bearer header rather than `?token=`: the token stays out of any URL printed.
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = &self.last_id {
            request = request.header("last-event-id", id);
        }
        let silence = self.config.server_timeout.max(MIN_SSE_SILENCE);
        let response = match tokio::time::timeout(silence, request.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) if first => {
                return Err(Unreachable {
                    what: url.to_string(),
                    detail: error.to_string(),
                }
                .into());
            }
            Ok(Err(error)) => return Ok(End::Lost(error.to_string())),
            Err(_) => return Ok(End::Lost(format!("no answer within {silence:?}"))),
        };
        let status = response.status();
        if status.is_client_error() {
            let body = response.text().await.unwrap_or_default();
            bail!("the server refused the stream ({status}): {body}");
        }
        if !status.is_success() {
            return Ok(End::Lost(format!("the server answered {status}")));
        }
        let mut response = response;
        let mut parser = EventParser::default();
        loop {
            if self
                .config
                .count
                .is_some_and(|count| self.received >= count)
            {
                return Ok(End::Finished(Code::Ok));
            }
            let chunk = tokio::select! {
                () = sleep_until_some(self.deadline) => return Ok(End::Finished(self.timed_out())),
                chunk = tokio::time::timeout(silence, response.chunk()) => chunk,
            };
            let chunk = match chunk {
                Err(_) => {
                    return Ok(End::Lost(format!(
                        "nothing from the server for {silence:?}"
                    )));
                }
                Ok(Err(error)) => return Ok(End::Lost(error.to_string())),
                Ok(Ok(None)) => return Ok(End::Lost("the server ended the stream".to_owned())),
                Ok(Ok(Some(chunk))) => chunk,
            };
            for item in parser.feed(&chunk).context("reading the event stream")? {
                if let Some(end) = self.item(item)? {
                    return Ok(end);
                }
            }
        }
    }

    /// Acts on one item; `Some` when the stream is done.
    fn item(&mut self, item: Item) -> Result<Option<End>> {
        let (name, id, data) = match item {
            Item::Retry(millis) => {
                self.retry = Some(Duration::from_millis(millis));
                return Ok(None);
            }
            Item::Comment(_) => return Ok(None),
            Item::Event { name, id, data } => (name, id, data),
        };
        if let Some(id) = id {
            self.last_id = Some(id);
        }
        let printed = match name.as_str() {
            "message" => match serde_json::from_str::<ServerFrame>(&data) {
                Ok(ServerFrame::Message(message)) => {
                    if self
                        .config
                        .count
                        .is_some_and(|count| self.received >= count)
                    {
                        return Ok(Some(End::Finished(Code::Ok)));
                    }
                    self.received += 1;
                    print_message(
                        &mut self.stdout,
                        &message,
                        self.ctx.json,
                        self.config.sanitize,
                    )
                }
                _ => Ok(()),
            },
            "join" | "leave" if self.config.presence => match serde_json::from_str(&data) {
                Ok(frame) => print_presence(&mut self.stdout, &frame, self.ctx.json),
                Err(_) => Ok(()),
            },
            "joined" => {
                if let Ok(ServerFrame::Joined { room, seq, .. }) = serde_json::from_str(&data) {
                    self.ctx
                        .status(format!("following {room} over SSE (seq {seq})"));
                }
                Ok(())
            }
            "gap" => {
                self.ctx.status(
                    "some messages are gone from the server's history and were not replayed",
                );
                Ok(())
            }
            "evicted" | "shutdown" => {
                let why = serde_json::from_str::<serde_json::Value>(&data)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(str::to_owned))
                    .unwrap_or(name);
                return Ok(Some(End::Lost(why)));
            }
            _ => Ok(()),
        };
        match printed {
            Err(e) if is_broken_pipe(&e) => Ok(Some(End::Finished(Code::Ok))),
            other => other.map(|()| None).map_err(Into::into),
        }
    }
}
