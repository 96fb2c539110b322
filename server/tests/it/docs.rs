//! The reference tables in `docs/` checked against the code, so they cannot drift: the flag
//! table (against clap's definition), the close codes and error codes (against the protocol
//! crate), and the metric list (against what `/metrics` renders).

use std::collections::BTreeMap;

use clap::CommandFactory;
use roomcast_protocol::close::ReconnectAdvice;
use roomcast_protocol::raw::opcode;
use roomcast_protocol::{CloseCode, ErrorCode, Position};
use roomcast_server::Config;
use roomcast_server::config::DEFAULT_PORT;

use crate::support::{TestServer, eventually, raw_close, room, within};

const OPERATIONS: &str = include_str!("../../../docs/OPERATIONS.md");
const PROTOCOL: &str = include_str!("../../../docs/PROTOCOL.md");

/// The text of the `## {title}` section of `doc`.
fn section<'a>(doc: &'a str, title: &str) -> &'a str {
    let heading = format!("\n## {title}\n");
    let start = doc
        .find(&heading)
        .unwrap_or_else(|| panic!("no section {title:?}"));
    let body = &doc[start + heading.len()..];
    &body[..body.find("\n## ").unwrap_or(body.len())]
}

/// The cells of every table row in `text` whose first cell passes `first`.
fn rows(text: &str, first: impl Fn(&str) -> bool) -> Vec<Vec<String>> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix('|')?.strip_suffix('|'))
        .map(|inner| {
            inner
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|cells| first(&cells[0]))
        .collect()
}

/// The first `code` span of a cell (`` `--port` `` → `--port`), or the cell itself.
fn code_span(cell: &str) -> &str {
    cell.split('`').nth(1).unwrap_or(cell)
}

#[test]
fn the_flag_table_lists_every_flag_with_its_environment_twin_and_default() {
    let configuration = section(OPERATIONS, "Configuration");
    let documented: BTreeMap<String, (String, String)> =
        rows(configuration, |first| first.starts_with("`--"))
            .into_iter()
            .map(|cells| {
                let flag = code_span(&cells[0]).to_owned();
                let env = code_span(&cells[1]).to_owned();
                (flag, (env, code_span(&cells[2]).to_owned()))
            })
            .collect();

    let command = Config::command();
    let mut declared = BTreeMap::new();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") {
            continue;
        }
        let env = arg
            .get_env()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_else(|| panic!("--{long} has no environment twin"));
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let default = match (long, defaults.is_empty()) {
            // The port's default is resolved after parsing (PORT, then this).
            ("port", true) => DEFAULT_PORT.to_string(),
            (_, true) => "none".to_owned(),
            (_, false) => defaults.join(","),
        };
        declared.insert(format!("--{long}"), (env, default));
    }
    assert_eq!(
        documented, declared,
        "docs/OPERATIONS.md's flag table (left) differs from the flags clap declares (right)"
    );
}

/// Every [`ErrorCode`] the server can send. The exhaustive match fails to compile when a code
/// is added, until it is listed here too.
fn every_error_code() -> Vec<ErrorCode> {
    fn after(code: Option<ErrorCode>) -> Option<ErrorCode> {
        use ErrorCode::*;
        match code? {
            InvalidJson => Some(InvalidFrame),
            InvalidFrame => Some(UnknownType),
            UnknownType => Some(BinaryUnsupported),
            BinaryUnsupported => Some(InvalidRoom),
            InvalidRoom => Some(InvalidUser),
            InvalidUser => Some(NotJoined),
            NotJoined => Some(TooManyRooms),
            TooManyRooms => Some(RateLimited),
            RateLimited => Some(Forbidden),
            Forbidden => Some(Unauthorized),
            Unauthorized => Some(PayloadTooLarge),
            PayloadTooLarge => Some(Unavailable),
            Unavailable => Some(NotFound),
            // `Unknown` is what a client decodes from a newer server, never sent.
            NotFound | Unknown => None,
        }
    }
    std::iter::successors(Some(ErrorCode::InvalidJson), |code| after(Some(*code))).collect()
}

#[test]
fn the_error_table_lists_every_error_code_and_nothing_else() {
    let errors = section(PROTOCOL, "Errors");
    let documented: Vec<String> = rows(errors, |first| first.starts_with('`'))
        .iter()
        .map(|cells| code_span(&cells[0]).to_owned())
        .collect();
    let mut sent: Vec<String> = every_error_code()
        .into_iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    let mut sorted = documented.clone();
    sorted.sort();
    sent.sort();
    assert_eq!(
        sorted, sent,
        "docs/PROTOCOL.md's error table: {documented:?}"
    );
}

#[test]
fn the_close_code_table_matches_every_close_code_and_its_advice() {
    let table = section(PROTOCOL, "Close codes");
    let documented = rows(table, |first| first.parse::<u16>().is_ok());
    let numbers: Vec<u16> = documented
        .iter()
        .map(|cells| cells[0].parse().unwrap_or_default())
        .collect();
    let codes: Vec<u16> = CloseCode::ALL.iter().map(|c| c.as_u16()).collect();
    assert_eq!(
        numbers, codes,
        "docs/PROTOCOL.md's close codes, in table order"
    );
    for (cells, code) in documented.iter().zip(CloseCode::ALL) {
        // `HeartbeatTimeout` is documented as "heartbeat timeout".
        let words: String = format!("{code:?}")
            .chars()
            .flat_map(|c| {
                let space = c.is_uppercase().then_some(' ');
                space.into_iter().chain(c.to_lowercase())
            })
            .collect();
        assert_eq!(
            cells[1],
            words.trim_start(),
            "the name of {}",
            code.as_u16()
        );
        let says_no = cells[3].starts_with("no");
        assert_eq!(
            says_no,
            code.advice() == ReconnectAdvice::DoNot,
            "the reconnect advice of {}: {:?}",
            code.as_u16(),
            cells[3]
        );
    }
}

/// The metric families `/metrics` renders once every labelled family has a sample (a family
/// with no sample renders nothing, so the test makes one of each happen).
async fn rendered_families(server: &TestServer) -> BTreeMap<String, String> {
    let text = server.metrics().await;
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

#[tokio::test]
async fn the_metric_table_lists_every_metric_metrics_renders_with_its_type() {
    let server = TestServer::start(Config {
        max_message_bytes: 1024,
        ..Config::default()
    })
    .await;
    // http_publishes: an HTTP publish.
    let url = server.http_url("chat/lobby/send-test/");
    let request = server.http().get(url).query(&[("message", "hi")]);
    within("send-test", request.send())
        .await
        .expect("send-test");
    // frames_refused, then evictions: a frame that is not JSON, then one past the size limit.
    let mut raw = server.raw("lobby").await;
    within("send", raw.send(opcode::TEXT, b"not json"))
        .await
        .expect("send");
    within("send", raw.send(opcode::TEXT, &[b'x'; 2048]))
        .await
        .expect("send");
    assert_eq!(within("close", raw_close(&mut raw)).await.0, 1009);
    // history_replays: a join that asks to recover.
    let mut typed = server.typed("ana").await;
    let since = Position {
        epoch: "elsewhere".to_owned(),
        seq: 1,
    };
    within("join", typed.join(&room("lobby"), Some(since), None))
        .await
        .expect("join");
    let rendered = eventually("a sample of every metric family", || async {
        let families = rendered_families(&server).await;
        let all = [
            "evictions",
            "frames_refused",
            "http_publishes",
            "history_replays",
        ]
        .iter()
        .all(|f| families.contains_key(&format!("roomcast_{f}")));
        all.then_some(families)
    })
    .await;

    // The relay's families exist only with `--redis-url`: a node pointed at a port where no
    // Redis listens renders them too (it keeps trying to connect meanwhile).
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    // With the Channels bridge on, its families too.
    let relayed = TestServer::start(Config {
        redis_url: vec![format!("redis://{nowhere}")],
        channels: roomcast_server::config::ChannelsConfig {
            channels_layer: roomcast_server::config::ChannelsLayer::Pubsub,
            ..Default::default()
        },
        ..Config::default()
    })
    .await;
    let mut rendered = rendered;
    rendered.extend(rendered_families(&relayed).await);

    let metrics = section(OPERATIONS, "Metrics");
    let documented: BTreeMap<String, String> = rows(metrics, |f| f.starts_with("`roomcast_"))
        .into_iter()
        .map(|cells| {
            let name = code_span(&cells[0]);
            let kind = cells[1].clone();
            // Counters are exposed as `<name>_total`; the TYPE line names the family.
            let family = match kind.as_str() {
                "counter" => name.strip_suffix("_total").unwrap_or(name),
                _ => name,
            };
            (family.to_owned(), kind)
        })
        .collect();
    assert_eq!(
        documented, rendered,
        "docs/OPERATIONS.md's metric table (left) differs from /metrics (right)"
    );
}
