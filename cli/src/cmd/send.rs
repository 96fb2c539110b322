//! `roomcast send ROOM [MESSAGE]`: publish over WebSocket as a member of the room. Each
//! message carries a `ref`, so the server's `ack` (or `error`) answers it; the command ends
//! when every message is answered, and prints one line per ack.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use roomcast_protocol::{
    Client, ClientFrame, ConnectOptions, Incoming, Ref, RoomName, ServerFrame, UserName,
};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::{Ctx, json_line};
use crate::exit::{Code, Usage};
use crate::units;

/// How long the closing handshake may take before the command just exits.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Flags of `send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The room to publish to.
    pub room: RoomName,
    /// The message; `-` or nothing reads one message per line from stdin.
    pub message: Option<String>,
    /// The name to speak as (the server makes one up when absent).
    #[arg(long, short, env = "ROOMCAST_SEND_USER")]
    pub user: Option<UserName>,
    /// How many times to send MESSAGE (not with stdin).
    #[arg(long, short = 'n', env = "ROOMCAST_SEND_COUNT")]
    pub count: Option<u64>,
    /// Messages per second (`10`, `10/s`, `600/m`); as fast as possible when absent.
    #[arg(long, env = "ROOMCAST_SEND_RATE", value_parser = units::parse_rate)]
    pub rate: Option<f64>,
    /// Pad each message with ` xxx...` to at least this many bytes (`1KiB`), for load.
    #[arg(long, env = "ROOMCAST_SEND_SIZE", value_parser = units::parse_bytes)]
    pub size: Option<usize>,
    /// How long to wait for the server's answers after the last message.
    #[arg(long, env = "ROOMCAST_SEND_TIMEOUT", default_value = "10s", value_parser = units::parse_duration)]
    pub timeout: Duration,
}

/// Where the messages come from.
#[derive(Debug)]
enum Source {
    /// One text, `count` times.
    Text { text: String, count: u64 },
    /// One message per stdin line.
    Stdin,
}

/// `send`, validated.
#[derive(Debug)]
pub struct SendConfig {
    room: RoomName,
    user: Option<UserName>,
    source: Source,
    period: Option<Duration>,
    size: usize,
    timeout: Duration,
}

impl TryFrom<SendArgs> for SendConfig {
    type Error = anyhow::Error;

    fn try_from(args: SendArgs) -> Result<Self> {
        let source = match (args.message, args.count) {
            (None, Some(_)) => {
                return Err(Usage::err(
                    "--count repeats a MESSAGE argument; with stdin, each line is sent once",
                ));
            }
            (Some(text), Some(_)) if text == "-" => {
                return Err(Usage::err(
                    "--count repeats a MESSAGE argument; with stdin, each line is sent once",
                ));
            }
            (Some(_), Some(0)) => return Err(Usage::err("--count must be at least 1")),
            (None, None) => Source::Stdin,
            (Some(text), None) if text == "-" => Source::Stdin,
            (Some(text), count) => Source::Text {
                text,
                count: count.unwrap_or(1),
            },
        };
        Ok(Self {
            room: args.room,
            user: args.user,
            source,
            period: args.rate.map(|rate| Duration::from_secs_f64(1.0 / rate)),
            size: args.size.unwrap_or(0),
            timeout: args.timeout,
        })
    }
}

/// One acknowledged message, as printed.
#[derive(Debug, Serialize)]
struct Acked<'a> {
    room: &'a RoomName,
    seq: u64,
    #[serde(rename = "ref")]
    reference: u64,
}

/// Feeds messages from the source at the configured pace.
struct Feed {
    source: Source,
    stdin: Option<Lines<BufReader<Stdin>>>,
    ticks: Option<Interval>,
    produced: u64,
    size: usize,
}

impl Feed {
    /// The next message, or `None` when the source is exhausted. Cancel-safe.
    async fn next(&mut self) -> Result<Option<String>> {
        if let Some(ticks) = self.ticks.as_mut() {
            ticks.tick().await;
        }
        let text = match &self.source {
            Source::Text { text, count } => (self.produced < *count).then(|| text.clone()),
            Source::Stdin => match self.stdin.as_mut() {
                Some(lines) => lines.next_line().await.context("reading stdin")?,
                None => None,
            },
        };
        self.produced += u64::from(text.is_some());
        Ok(text.map(|text| pad(text, self.size)))
    }
}

fn pad(mut text: String, size: usize) -> String {
    if text.len() < size {
        text.push(' ');
        text.extend(std::iter::repeat_n('x', size.saturating_sub(text.len())));
    }
    text
}

/// Connects, sends, and waits for every answer.
pub async fn run(ctx: &Ctx, config: SendConfig) -> Result<Code> {
    let options = ConnectOptions {
        user: config.user.clone(),
        room: Some(config.room.clone()),
        token: ctx
            .credentials
            .for_session(config.user.as_ref(), std::slice::from_ref(&config.room))?,
    };
    let client = Client::connect(&ctx.server, options)
        .await
        .with_context(|| format!("joining {} over WebSocket", config.room))?;
    ctx.status(format!("joined {} as {}", config.room, client.user()));
    let (mut sender, mut receiver) = client.split();
    let mut feed = Feed {
        stdin: matches!(config.source, Source::Stdin)
            .then(|| BufReader::new(tokio::io::stdin()).lines()),
        source: config.source,
        ticks: config.period.map(|period| {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticks
        }),
        produced: 0,
        size: config.size,
    };
    let mut stdout = std::io::stdout().lock();
    let (mut sent, mut acked, mut refused) = (0u64, 0u64, Vec::new());
    let mut answers_due: Option<Instant> = None;
    while answers_due.is_none() || acked + (refused.len() as u64) < sent {
        tokio::select! {
            biased;
            incoming = receiver.recv() => match incoming? {
                Incoming::Frame(ServerFrame::Ack { seq, reference: Ref::Number(n), .. }) => {
                    acked += 1;
                    let line = Acked { room: &config.room, seq, reference: n };
                    print_acked(&mut stdout, &line, ctx.json)?;
                }
                Incoming::Frame(ServerFrame::Error { code, message, reference, .. }) => {
                    let which = reference.map_or_else(String::new, |r| format!(" #{r}"));
                    ctx.status(format!("refused{which}: {code}: {message}"));
                    refused.push(format!("{code}: {message}"));
                }
                Incoming::Closed(info) => bail!("the server closed the session ({info})"),
                Incoming::Frame(_) | Incoming::Undecodable { .. } => {}
            },
            () = sleep_until_some(answers_due) => {
                bail!(
                    "{} of {sent} messages were not answered within {} (--timeout)",
                    sent - acked - refused.len() as u64,
                    units::show(config.timeout)
                );
            }
            next = feed.next(), if answers_due.is_none() => match next? {
                Some(text) => {
                    sent += 1;
                    let frame = ClientFrame::Publish {
                        room: config.room.clone(),
                        message: text,
                        data: None,
                        reference: Some(Ref::Number(sent)),
                    };
                    sender.send(&frame).await.context("sending a message")?;
                }
                None => answers_due = Some(Instant::now() + config.timeout),
            },
        }
    }
    // Complete the closing handshake, so the server has let go of the session when we exit.
    if sender.close("done").await.is_ok() {
        let closed = tokio::time::timeout(CLOSE_GRACE, async {
            while !matches!(receiver.recv().await, Ok(Incoming::Closed(_)) | Err(_)) {}
        });
        let _in_time = closed.await;
    }
    if let Some(first) = refused.first() {
        bail!(
            "the server refused {} of {sent} messages (first: {first}); lower --rate if it says rate_limited",
            refused.len()
        );
    }
    Ok(Code::Ok)
}

fn print_acked<W: Write>(out: &mut W, acked: &Acked<'_>, json: bool) -> Result<()> {
    if json {
        json_line(out, acked)?;
    } else {
        writeln!(out, "sent {} #{}", acked.room, acked.seq)?;
    }
    Ok(())
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

    fn args(message: Option<&str>, count: Option<u64>) -> SendArgs {
        SendArgs {
            room: RoomName::new("lobby").expect("valid room"),
            message: message.map(str::to_owned),
            user: None,
            count,
            rate: None,
            size: None,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn count_goes_with_a_message_argument_only() {
        assert!(SendConfig::try_from(args(Some("hi"), Some(3))).is_ok());
        assert!(SendConfig::try_from(args(None, Some(3))).is_err());
        assert!(SendConfig::try_from(args(Some("-"), Some(3))).is_err());
        assert!(SendConfig::try_from(args(Some("hi"), Some(0))).is_err());
        let stdin = SendConfig::try_from(args(Some("-"), None)).expect("valid");
        assert!(matches!(stdin.source, Source::Stdin));
    }

    #[test]
    fn padding_reaches_the_size_and_keeps_the_text() {
        assert_eq!(pad("hi".into(), 8), "hi xxxxx");
        assert_eq!(pad("hello".into(), 3), "hello");
    }
}
