//! `roomcast send-test ROOM MESSAGE`: the original POC's HTTP route, `GET
//! /chat/<room>/send-test/?message=...`, once or `--count` times at `--rate`.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use roomcast_protocol::RoomName;
use tokio::time::{Instant, MissedTickBehavior};

use super::{Ctx, json_line};
use crate::exit::{Code, Usage};
use crate::units;
use roomcast_protocol::PublishReceipt;

/// Flags of `send-test`.
#[derive(Debug, Args)]
pub struct SendTestArgs {
    /// The room to publish to.
    pub room: RoomName,
    /// The message. `{n}` is replaced by the message's number (1, 2, ...) when --count > 1.
    pub message: String,
    /// How many times to publish.
    #[arg(
        long,
        short = 'n',
        env = "ROOMCAST_SEND_TEST_COUNT",
        default_value_t = 1
    )]
    pub count: u64,
    /// Publishes per second (`10`, `10/s`, `600/m`); as fast as answers come when absent.
    #[arg(long, env = "ROOMCAST_SEND_TEST_RATE", value_parser = units::parse_rate)]
    pub rate: Option<f64>,
}

/// `send-test`, validated.
#[derive(Debug)]
pub struct SendTestConfig {
    room: RoomName,
    message: String,
    count: u64,
    period: Option<Duration>,
}

impl TryFrom<SendTestArgs> for SendTestConfig {
    type Error = anyhow::Error;

    fn try_from(args: SendTestArgs) -> Result<Self> {
        if args.count == 0 {
            return Err(Usage::err("--count must be at least 1"));
        }
        Ok(Self {
            room: args.room,
            message: args.message,
            count: args.count,
            period: args.rate.map(|rate| Duration::from_secs_f64(1.0 / rate)),
        })
    }
}

/// Publishes and prints one line per publish: where it landed and how many sessions got it.
pub async fn run(ctx: &Ctx, config: SendTestConfig) -> Result<Code> {
    let mut ticks = config.period.map(|period| {
        let mut ticks = tokio::time::interval_at(Instant::now(), period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticks
    });
    let mut stdout = std::io::stdout().lock();
    for n in 1..=config.count {
        if let Some(ticks) = ticks.as_mut() {
            ticks.tick().await;
        }
        let message = if config.count > 1 {
            config.message.replace("{n}", &n.to_string())
        } else {
            config.message.clone()
        };
        let published = ctx.api.send_test(&config.room, &message).await?;
        print_published(&mut stdout, &published, ctx.json)?;
    }
    Ok(Code::Ok)
}

fn print_published<W: Write>(out: &mut W, published: &PublishReceipt, json: bool) -> Result<()> {
    if json {
        json_line(out, published)?;
    } else {
        writeln!(
            out,
            "published {} #{} to {} session{}",
            published.room,
            published.seq,
            published.delivered,
            if published.delivered == 1 { "" } else { "s" }
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publish_prints_as_a_sentence_or_as_json() {
        let published = PublishReceipt {
            room: RoomName::new("lobby").expect("valid room"),
            seq: 7,
            epoch: "e1".into(),
            delivered: 1,
        };
        let mut human = Vec::new();
        print_published(&mut human, &published, false).expect("write");
        assert_eq!(
            String::from_utf8_lossy(&human),
            "published lobby #7 to 1 session\n"
        );
        let mut json = Vec::new();
        print_published(&mut json, &published, true).expect("write");
        assert_eq!(
            String::from_utf8_lossy(&json),
            "{\"room\":\"lobby\",\"seq\":7,\"epoch\":\"e1\",\"delivered\":1}\n"
        );
    }
}
