//! `bench` over two nodes of one cluster (two in-process servers relayed through one real
//! redis-server on a free port): members and publishers take the `--url`s in turn, each node
//! really serves and publishes (its own `/metrics` say so), every message crosses to the other
//! node's members, and the result counts sessions per node.

use std::process::Stdio;
use std::time::Duration;

use roomcast_server::Config;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::support::{TestServer, assert, json_lines, roomcast, within};

/// A redis-server child on a free loopback port, without persistence, killed on drop.
struct Redis {
    port: u16,
    _child: Child,
}

impl Redis {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let port = listener.local_addr().expect("address").port();
        drop(listener);
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be installed (scripts/check installs it)");
        Self {
            port,
            _child: child,
        }
    }
}

/// A node relayed through `redis`, once its `/readyz` says it reached Redis.
async fn node(redis: &Redis) -> TestServer {
    let server = TestServer::start(Config {
        redis_url: vec![format!("redis://127.0.0.1:{}", redis.port)],
        redis_node_timeout: Duration::from_secs(1),
        rate_per_second: 0,
        ..Config::default()
    })
    .await;
    let readyz = server.http_url("readyz");
    roomcast_testing::eventually("the node to reach Redis", || {
        let request = server.http().get(&readyz).send();
        async move { request.await.ok()?.status().is_success().then_some(()) }
    })
    .await;
    server
}

/// The value of the first `/metrics` sample of `node` whose line starts with `series`.
async fn metric(node: &TestServer, series: &str) -> f64 {
    let response = within(
        "GET /metrics",
        node.http().get(node.http_url("metrics")).send(),
    )
    .await
    .expect("/metrics answers");
    let text = response.text().await.expect("the metrics text");
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// `roomcast --url A,B bench ARGS --json`: its one JSON line.
async fn bench_on(nodes: &[&TestServer], args: &[&str]) -> Value {
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    let mut command = roomcast();
    command
        .args(["--url", &urls.join(","), "--quiet", "bench"])
        .args(args)
        .arg("--json");
    json_lines(&assert(command).await.success().get_output().stdout).remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_node_fanout_publishes_on_both_and_every_member_gets_every_message() {
    let redis = Redis::start().await;
    let (one, two) = (node(&redis).await, node(&redis).await);
    let args = [
        "fanout",
        "--rooms",
        "1",
        "--members",
        "6",
        "--publishers",
        "2",
        "--burst",
        "5",
    ];
    let result = bench_on(&[&one, &two], &args).await;
    // 2 publishers x 5 messages, each to all 6 members, across the relay.
    assert_eq!(result["published"], 10, "{result}");
    assert_eq!(result["delivered"], 60, "{result}");
    assert_eq!(result["lost"], 0, "{result}");
    let nodes = result["nodes"].as_array().expect("per-node counts");
    assert_eq!(nodes.len(), 2, "{result}");
    for (entry, server) in nodes.iter().zip([&one, &two]) {
        assert_eq!(entry["url"], server.url(), "{result}");
        assert_eq!(entry["sessions"], 3, "{result}");
        assert_eq!(entry["publishers"], 1, "{result}");
        // The barrier's messages come before the burst's: at least the burst's 10 each.
        assert!(entry["received"].as_u64() >= Some(30), "{result}");
    }
    // Each node's own account: it accepted publishes from its socket and delivered them.
    for (name, server) in [("one", &one), ("two", &two)] {
        let published = metric(server, "roomcast_messages_published_total{source=\"ws\"}").await;
        assert!(published >= 5.0, "node {name} published {published}");
        let delivered = metric(server, "roomcast_messages_delivered_total").await;
        assert!(delivered >= 30.0, "node {name} delivered {delivered}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_spreads_its_sessions_and_idle_refuses_two_nodes() {
    let redis = Redis::start().await;
    let (one, two) = (node(&redis).await, node(&redis).await);
    let result = bench_on(
        &[&one, &two],
        &["connect", "--connections", "10", "--rooms", "1"],
    )
    .await;
    assert_eq!(result["connections"], 10, "{result}");
    let sessions: Vec<&Value> = result["nodes"]
        .as_array()
        .expect("per-node counts")
        .iter()
        .map(|n| &n["sessions"])
        .collect();
    assert_eq!(sessions, [5, 5], "{result}");

    // Memory per session is one server's: two URLs are a usage error, not a wrong figure.
    let mut idle = roomcast();
    idle.args(["--url", &format!("{},{}", one.url(), two.url())])
        .args(["bench", "idle", "--connections", "4"]);
    let refused = assert(idle).await.code(2);
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("one --url"), "{stderr}");
}
