//! The Django Channels bridge against the real thing: a redis-server on a free port, roomcast
//! nodes with `--channels-layer`, and real Django + channels + channels_redis (pinned, in the
//! venv `scripts/python-venv` builds) calling `group_send`, `new_channel`, `group_add` and
//! `receive` as a Django app does (`server/tests/django/channels_app.py`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use roomcast_protocol::{Client, ServerFrame, TutorialClient, TutorialFrame};
use roomcast_server::Config;
use roomcast_server::config::{ChannelsConfig, ChannelsLayer};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::Instant;

use crate::redis_support::{NodeProcess, RedisServer, relayed, wait_ready};
use crate::support::{TestServer, eventually, next_text, next_tutorial, room, wait_for, within};

const GROUP: &str = "chat_lobby";
const ROOM: &str = "lobby";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds the server crate")
        .to_path_buf()
}

/// Real Django with one channels_redis layer on `url`.
struct Django {
    python: PathBuf,
    layer: &'static str,
    url: String,
}

impl Django {
    /// Builds (or reuses) the venv; a venv that cannot be built fails the test saying why.
    async fn new(layer: ChannelsLayer, redis: &RedisServer) -> Self {
        let script = workspace().join("scripts/python-venv");
        let built = within(
            "scripts/python-venv (Django, channels, channels_redis from PyPI)",
            Command::new(&script).stdin(Stdio::null()).output(),
        )
        .await
        .expect("run scripts/python-venv");
        assert!(
            built.status.success(),
            "scripts/python-venv could not build the Python environment the bridge tests \
             need:\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let python = String::from_utf8_lossy(&built.stdout).trim().to_owned();
        Self {
            python: PathBuf::from(python),
            layer: match layer {
                ChannelsLayer::Pubsub => "pubsub",
                _ => "core",
            },
            url: redis.url(),
        }
    }

    fn command(&self, command: &str, args: &[&str]) -> Command {
        let mut process = Command::new(&self.python);
        process
            .arg(workspace().join("server/tests/django/channels_app.py"))
            .args([self.layer, &self.url, "asgi", command, GROUP])
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        process
    }

    async fn run(&self, command: &str, args: &[&str]) -> String {
        let output = within("a Django script", self.command(command, args).output())
            .await
            .expect("run python");
        assert!(
            output.status.success(),
            "channels_app.py {command} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `group_send` of each text, in order.
    async fn send(&self, texts: &[&str]) {
        self.run("send", texts).await;
    }

    /// A consumer channel that joined the group, ready to receive.
    async fn consumer(&self) -> Consumer {
        let mut child = self
            .command("consume", &[])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the consumer");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = within("the consumer to join the group", lines.next_line())
            .await
            .expect("read the consumer")
            .expect("the consumer says ready");
        let channel = ready
            .strip_prefix("ready ")
            .expect("ready <channel>")
            .to_owned();
        Consumer {
            _child: child,
            lines,
            channel,
        }
    }
}

struct Consumer {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    channel: String,
}

impl Consumer {
    /// The next message the channel received.
    async fn next(&mut self) -> serde_json::Value {
        let line = within("a message on the Channels consumer", self.lines.next_line())
            .await
            .expect("read the consumer")
            .expect("the consumer is running");
        serde_json::from_str(&line).expect("a JSON line")
    }
}

fn bridged(redis: &RedisServer, layer: ChannelsLayer, forward: bool) -> Config {
    Config {
        channels: ChannelsConfig {
            channels_layer: layer,
            channels_forward: forward,
            channels_registration_ttl: Duration::from_secs(3),
            ..ChannelsConfig::default()
        },
        ..relayed(&[redis.url()])
    }
}

async fn bridged_node(redis: &RedisServer, layer: ChannelsLayer, forward: bool) -> TestServer {
    let server = TestServer::start(bridged(redis, layer, forward)).await;
    wait_ready(&server, true).await;
    server
}

/// The value of the metric line starting with `name ` (a label set included in `name`).
async fn metric(server: &TestServer, name: &str) -> Option<f64> {
    let text = server
        .http()
        .get(server.http_url("metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    crate::support::sample_value(&text, name)
}

/// Waits until every node listens to the group and, with the pub/sub layer, one of them
/// publishes what arrives (holds the room's lease).
async fn wait_bridged(nodes: &[&TestServer], layer: ChannelsLayer) {
    eventually("every node to listen to the group", || async {
        let mut owned = 0.0;
        for node in nodes {
            (metric(node, "roomcast_bridge_groups").await? == 1.0).then_some(())?;
            owned += metric(node, "roomcast_bridge_owned_groups").await?;
        }
        (layer == ChannelsLayer::Core || owned == 1.0).then_some(())
    })
    .await;
}

async fn http_publish(server: &TestServer, text: &str) {
    let response = within(
        "publish",
        server
            .http()
            .post(server.http_url(&format!("api/rooms/{ROOM}/messages")))
            .json(&serde_json::json!({"message": text, "user": "hq"}))
            .send(),
    )
    .await
    .expect("publish request");
    assert!(response.status().is_success(), "{}", response.status());
}

async fn group_send_reaches_every_member_on_two_nodes_once(layer: ChannelsLayer) {
    let redis = RedisServer::start().await;
    let django = Django::new(layer, &redis).await;
    let a = bridged_node(&redis, layer, false).await;
    let b = bridged_node(&redis, layer, false).await;
    let mut members = vec![
        a.member(ROOM).await,
        a.member(ROOM).await,
        b.member(ROOM).await,
    ];
    wait_bridged(&[&a, &b], layer).await;

    django.send(&["one", "two", "end"]).await;
    // Then a message through roomcast itself: a second copy of anything Django sent would
    // arrive before it.
    http_publish(&a, "after").await;
    for member in &mut members {
        let mut texts = Vec::new();
        for _ in 0..4 {
            texts.push(member.next_text().await);
        }
        assert_eq!(texts, ["one", "two", "end", "after"]);
    }
    for node in [&a, &b] {
        let published = metric(node, "roomcast_messages_published_total{source=\"bridge\"}").await;
        assert!(published.is_some(), "the bridge source is counted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_group_send_reaches_every_member_on_two_nodes_exactly_once() {
    group_send_reaches_every_member_on_two_nodes_once(ChannelsLayer::Pubsub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_group_send_reaches_every_member_on_two_nodes_exactly_once() {
    group_send_reaches_every_member_on_two_nodes_once(ChannelsLayer::Core).await;
}

async fn room_messages_reach_a_consumer_once_and_do_not_come_back(layer: ChannelsLayer) {
    let redis = RedisServer::start().await;
    let django = Django::new(layer, &redis).await;
    let a = bridged_node(&redis, layer, true).await;
    let b = bridged_node(&redis, layer, true).await;
    let mut consumer = django.consumer().await;
    let mut on_a = a.member(ROOM).await;
    let mut on_b = b.member(ROOM).await;
    wait_bridged(&[&a, &b], layer).await;

    on_a.say("from-ws").await;
    http_publish(&b, "from-http").await;
    let mut forwarded = Vec::new();
    for _ in 0..2 {
        let message = consumer.next().await;
        assert_eq!(message["type"], "chat.message", "{message}");
        assert!(message["user"].is_string(), "{message}");
        assert!(message.get("__asgi_channel__").is_none(), "{message}");
        forwarded.push(message["message"].as_str().unwrap_or_default().to_owned());
    }
    forwarded.sort();
    assert_eq!(forwarded, ["from-http", "from-ws"]);

    // Django speaks after it heard both: an echo of either, or a second forward, would reach
    // the consumer or the room before this.
    django.send(&["end"]).await;
    assert_eq!(consumer.next().await["message"], "end");
    for member in [&mut on_a, &mut on_b] {
        let mut texts = Vec::new();
        for _ in 0..3 {
            texts.push(member.next_text().await);
        }
        let end = texts.pop();
        texts.sort();
        assert_eq!(texts, ["from-http", "from-ws"]);
        assert_eq!(
            end.as_deref(),
            Some("end"),
            "no message came back from Django"
        );
    }
    let forwarded_a = metric(&a, "roomcast_bridge_forwarded_total").await;
    let forwarded_b = metric(&b, "roomcast_bridge_forwarded_total").await;
    assert_eq!(
        (forwarded_a, forwarded_b),
        (Some(1.0), Some(1.0)),
        "each message is forwarded by the node it was published on, once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_room_messages_reach_a_channels_consumer_once_and_never_come_back() {
    room_messages_reach_a_consumer_once_and_do_not_come_back(ChannelsLayer::Pubsub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_room_messages_reach_a_channels_consumer_once_and_never_come_back() {
    room_messages_reach_a_consumer_once_and_do_not_come_back(ChannelsLayer::Core).await;
}

/// The payment-room use case: a Django view's `group_send` with fields beside the text.
const PAYMENT: &str =
    r#"{"type":"chat.message","message":"paid","status":"approved","amount":12.5,"items":[1,2]}"#;

fn payment_data() -> serde_json::Value {
    serde_json::json!({"status": "approved", "amount": 12.5, "items": [1, 2]})
}

/// The next chat message of a typed client: its text and data (as JSON, `null` when absent).
async fn typed_message(client: &mut Client) -> (String, serde_json::Value) {
    wait_for(client, "a message frame", |frame| match frame {
        ServerFrame::Message(m) => Some((
            m.message.clone(),
            m.data
                .clone()
                .map_or(serde_json::Value::Null, serde_json::Value::Object),
        )),
        _ => None,
    })
    .await
}

async fn group_send_fields_become_data_on_two_nodes(layer: ChannelsLayer) {
    let redis = RedisServer::start().await;
    let django = Django::new(layer, &redis).await;
    let a = bridged_node(&redis, layer, false).await;
    let b = bridged_node(&redis, layer, false).await;
    let mut typed = vec![a.peer("ana", ROOM).await, b.peer("bob", ROOM).await];
    let mut tutorial = b.tutorial(ROOM).await;
    wait_bridged(&[&a, &b], layer).await;

    django.run("send-json", &[PAYMENT]).await;
    for member in &mut typed {
        assert_eq!(
            typed_message(member).await,
            ("paid".to_owned(), payment_data())
        );
    }
    match next_tutorial(&mut tutorial).await {
        TutorialFrame::Message(m) => {
            assert_eq!(m.message, "paid");
            assert_eq!(m.data, None, "tutorial members get the text only");
        }
        other => panic!("expected a chat message, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_group_send_fields_reach_typed_members_on_two_nodes_as_data() {
    group_send_fields_become_data_on_two_nodes(ChannelsLayer::Pubsub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_group_send_fields_reach_typed_members_on_two_nodes_as_data() {
    group_send_fields_become_data_on_two_nodes(ChannelsLayer::Core).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_json_cannot_hold_are_dropped_and_counted_and_the_message_still_arrives() {
    let layer = ChannelsLayer::Pubsub;
    let redis = RedisServer::start().await;
    let django = Django::new(layer, &redis).await;
    let node = bridged_node(&redis, layer, false).await;
    let mut member = node.peer("ana", ROOM).await;
    wait_bridged(&[&node], layer).await;

    django.run("send-unfit", &[]).await;
    assert_eq!(
        typed_message(&mut member).await,
        ("unfit".to_owned(), serde_json::json!({"status": "kept"}))
    );
    for kind in ["binary", "not_finite"] {
        let name = format!("roomcast_bridge_dropped_fields_total{{kind=\"{kind}\"}}");
        assert_eq!(metric(&node, &name).await, Some(1.0), "{name}");
    }
    assert_eq!(
        metric(&node, "roomcast_bridge_rejected_total{kind=\"not_map\"}").await,
        Some(0.0),
        "the message itself was not refused"
    );
}

async fn forwarded_messages_keep_their_data(layer: ChannelsLayer) {
    let redis = RedisServer::start().await;
    let django = Django::new(layer, &redis).await;
    let node = bridged_node(&redis, layer, true).await;
    let mut consumer = django.consumer().await;
    let _member = node.member(ROOM).await;
    wait_bridged(&[&node], layer).await;

    let response = within(
        "publish",
        node.http()
            .post(node.http_url(&format!("api/rooms/{ROOM}/messages")))
            .json(&serde_json::json!({
                "message": "paid",
                "user": "shop",
                // A data field named like one of the dict's own never replaces it.
                "data": {"status": "approved", "amount": 12.5, "items": [1, 2], "type": "x"},
            }))
            .send(),
    )
    .await
    .expect("publish request");
    assert!(response.status().is_success(), "{}", response.status());
    let message = consumer.next().await;
    assert_eq!(message["type"], "chat.message", "{message}");
    assert_eq!(message["message"], "paid", "{message}");
    assert_eq!(message["user"], "shop", "{message}");
    for (field, value) in payment_data().as_object().into_iter().flatten() {
        assert_eq!(&message[field], value, "{field} in {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_forwarded_messages_keep_their_data_on_the_django_side() {
    forwarded_messages_keep_their_data(ChannelsLayer::Pubsub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_forwarded_messages_keep_their_data_on_the_django_side() {
    forwarded_messages_keep_their_data(ChannelsLayer::Core).await;
}

async fn registrations(redis: &RedisServer) -> Vec<String> {
    let mut connection = redis.connection().await;
    redis::cmd("ZRANGE")
        .arg(format!("asgi:group:{GROUP}"))
        .arg(0)
        .arg(-1)
        .query_async(&mut connection)
        .await
        .expect("ZRANGE")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_sigkill_leaves_no_registration_after_the_ttl() {
    let redis = RedisServer::start().await;
    let django = Django::new(ChannelsLayer::Core, &redis).await;
    // A Django consumer in the group keeps the group key alive for the app's group_expiry.
    let consumer = django.consumer().await;
    let ttl = Duration::from_secs(2);
    let mut node = NodeProcess::start_with(
        &redis.url(),
        "1s",
        &[
            "--channels-layer",
            "core",
            "--channels-registration-ttl",
            "2s",
        ],
    )
    .await;
    let _member: TutorialClient = within(
        "a member",
        TutorialClient::connect(&node.url, &room(ROOM), None),
    )
    .await
    .expect("member connects");
    eventually("the room's channel to be registered", || async {
        registrations(&redis)
            .await
            .contains(&"roomcast.lobby".to_owned())
            .then_some(())
    })
    .await;

    node.kill().await;
    let killed = Instant::now();
    // Django's own group_send trims the group, as every group_send does. What is bounded is
    // the latest trim the registration survived, timed from the start of that send (the
    // Python process starting up, slow on a loaded machine, only makes the trim later than
    // that time, so it cannot make a correct registration look too long-lived).
    let last_survived = std::cell::Cell::new(None);
    eventually("the dead node's registration to lapse", || async {
        let started = killed.elapsed();
        django.send(&["probe"]).await;
        let left = registrations(&redis).await;
        if left.contains(&"roomcast.lobby".to_owned()) {
            last_survived.set(Some(started));
            return None;
        }
        Some(left)
    })
    .await;
    if let Some(survived) = last_survived.get() {
        assert!(
            survived <= ttl + Duration::from_secs(1),
            "the registration survived a trim {survived:?} after its node died (TTL {ttl:?})"
        );
    }
    assert_eq!(
        registrations(&redis).await,
        std::slice::from_ref(&consumer.channel)
    );
}

async fn garbage_is_counted_and_the_bridge_keeps_working(layer: ChannelsLayer) {
    let redis = RedisServer::start().await;
    let django = Django::new(layer, &redis).await;
    let node = bridged_node(&redis, layer, false).await;
    let mut member = node.tutorial(ROOM).await;
    wait_bridged(&[&node], layer).await;

    let said = django.run("garbage", &[]).await;
    assert_eq!(said.trim(), "garbage 3");
    for kind in ["not_msgpack", "not_map", "encrypted"] {
        let name = format!("roomcast_bridge_rejected_total{{kind=\"{kind}\"}}");
        eventually(&format!("{kind} to be counted"), || async {
            (metric(&node, &name).await? == 1.0).then_some(())
        })
        .await;
    }
    django.send(&["still here"]).await;
    assert_eq!(next_text(&mut member).await, "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_garbage_on_a_group_is_counted_and_the_bridge_keeps_working() {
    garbage_is_counted_and_the_bridge_keeps_working(ChannelsLayer::Pubsub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_garbage_on_a_group_is_counted_and_the_bridge_keeps_working() {
    garbage_is_counted_and_the_bridge_keeps_working(ChannelsLayer::Core).await;
}

#[test]
fn the_bridge_is_refused_without_redis_or_with_a_bad_group() {
    let refused = |config: Config| config.validate().err().map(|e| (e.flag, e.rule));
    let alone = Config {
        channels: ChannelsConfig {
            channels_layer: ChannelsLayer::Pubsub,
            ..ChannelsConfig::default()
        },
        ..Config::default()
    };
    let (flag, rule) = refused(alone.clone()).expect("refused");
    assert_eq!(flag, "--channels-layer");
    assert!(rule.contains("--redis-url"), "{rule}");
    let with_redis = Config {
        redis_url: vec!["redis://127.0.0.1:6390".into()],
        ..alone
    };
    for group in ["chat", "{room}_{room}", "chat {room}"] {
        let config = Config {
            channels: ChannelsConfig {
                channels_group: group.into(),
                ..with_redis.channels.clone()
            },
            ..with_redis.clone()
        };
        assert_eq!(
            refused(config).map(|(f, _)| f),
            Some("--channels-group"),
            "{group}"
        );
    }
    let long_ttl = Config {
        channels: ChannelsConfig {
            channels_registration_ttl: Duration::from_secs(86_400),
            ..with_redis.channels.clone()
        },
        ..with_redis
    };
    assert_eq!(
        refused(long_ttl).map(|(f, _)| f),
        Some("--channels-registration-ttl")
    );
}
