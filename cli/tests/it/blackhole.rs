//! `dead-clients --mode blackhole`: dead clients in a network namespace whose link is cut, so
//! the server hears nothing more from them (no FIN, no RST). Passes against a working heartbeat,
//! fails (3) against a slow one, and never leaves its namespace or link behind.

use std::net::SocketAddr;
use std::time::Duration;

use roomcast_server::Config;
use roomcast_testing::reusable_listener;

use crate::support::{assert, fast_heartbeat, json_lines, roomcast};

/// A server on every address (as the docs tell users to start one for blackhole runs), and
/// the loopback URL to it.
fn server_on_all_addresses(config: Config) -> (roomcast_testing::TestServer, String) {
    let listener = reusable_listener(SocketAddr::from(([0, 0, 0, 0], 0)));
    let server = roomcast_testing::TestServer::start_on(listener, config);
    let url = format!("http://127.0.0.1:{}", server.addr.port());
    (server, url)
}

/// The namespace and host link the run announced on stderr.
fn announced(stderr: &[u8]) -> (String, String) {
    let stderr = String::from_utf8_lossy(stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("blackhole clients in namespace"))
        .unwrap_or_else(|| panic!("no namespace announced:\n{stderr}"));
    let word_after = |marker: &str| {
        line.split(marker)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {marker:?} in {line:?}"))
            .to_owned()
    };
    (word_after("namespace "), word_after("linked by "))
}

/// Fails if the namespace or the host end of its link still exists.
async fn gone(namespace: &str, link: &str) {
    let namespaces = tokio::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .await
        .expect("ip netns list");
    let namespaces = String::from_utf8_lossy(&namespaces.stdout);
    assert!(
        !namespaces
            .lines()
            .any(|l| l.split_whitespace().next() == Some(namespace)),
        "{namespace} left behind:\n{namespaces}"
    );
    let links = tokio::process::Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .await
        .expect("ip link show");
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(
        !links.contains(&format!(" {link}@")) && !links.contains(&format!(" {link}:")),
        "{link} left behind:\n{links}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_lost_behind_a_cut_link_are_evicted_in_time_and_the_namespace_is_removed() {
    let (_server, url) = server_on_all_addresses(fast_heartbeat());
    let mut command = roomcast();
    command.env("ROOMCAST_URL", &url).args([
        "dead-clients",
        "--mode",
        "blackhole",
        "--count",
        "3",
        "--live",
        "1",
        "--json",
    ]);
    let output = assert(command).await.success();
    let output = output.get_output();
    let lines = json_lines(&output.stdout);
    for ghost in &lines[..3] {
        assert_eq!(ghost["mode"], "blackhole", "{ghost}");
        assert_eq!(ghost["verdict"], "evicted", "{ghost}");
        assert_eq!(ghost["leave_reason"], "timeout", "{ghost}");
        assert!(
            ghost["close_code"].is_null(),
            "no close frame crossed the cut: {ghost}"
        );
        let after = ghost["evicted_after_ms"].as_f64().expect("a time");
        assert!((300.0..=1500.0).contains(&after), "{ghost}");
    }
    let summary = lines.last().expect("a summary");
    assert_eq!(summary["passed"], true, "{summary}");
    assert_eq!(summary["live"]["lost"], 0, "{summary}");
    let (namespace, link) = announced(&output.stderr);
    gone(&namespace, &link).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_evict_blackhole_counts_every_vanished_client_and_none_reads_past_the_cut() {
    let (_server, url) = server_on_all_addresses(Config {
        rate_per_second: 0,
        ..fast_heartbeat()
    });
    let mut command = roomcast();
    command.env("ROOMCAST_URL", &url).args([
        "bench",
        "evict",
        "--mode",
        "blackhole",
        "--live",
        "20",
        "--silent",
        "10",
        "--rooms",
        "2",
        "--rate",
        "20",
        "--duration",
        "300ms",
        "--json",
    ]);
    let output = assert(command).await.success();
    let output = output.get_output();
    let result = &json_lines(&output.stdout)[0];
    assert_eq!(result["mode"], "blackhole", "{result}");
    let e = &result["evictions"];
    assert_eq!(
        (e["in_time"].as_u64(), e["not_evicted"].as_u64()),
        (Some(10), Some(0)),
        "every vanished client was evicted in the bound, read from /metrics: {result}"
    );
    // The live members kept receiving while the silent ones read nothing: the link was cut.
    assert!(result["with"]["delivered"].as_u64() > Some(0), "{result}");
    assert_eq!(result["silent_received_after_cut"], 0, "{result}");
    assert_eq!(result["with"]["lost"], 0, "{result}");
    let (namespace, link) = announced(&output.stderr);
    gone(&namespace, &link).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_second_heartbeat_fails_a_three_second_expectation_with_3() {
    let config = Config {
        ping_interval: Duration::from_secs(30),
        ping_timeout: Duration::from_secs(30),
        ..Config::default()
    };
    let (_server, url) = server_on_all_addresses(config);
    let mut command = roomcast();
    command.env("ROOMCAST_URL", &url).args([
        "dead-clients",
        "--mode",
        "blackhole",
        "--count",
        "2",
        "--live",
        "1",
        "--expect-within",
        "3s",
        "--json",
    ]);
    let output = assert(command).await.code(3);
    let output = output.get_output();
    let lines = json_lines(&output.stdout);
    for ghost in &lines[..2] {
        assert_eq!(ghost["verdict"], "not_evicted", "{ghost}");
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not evicted within 3.00s"), "{stderr}");
    let (namespace, link) = announced(&output.stderr);
    gone(&namespace, &link).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_root_blackhole_exits_1_and_says_what_it_needs() {
    let (_server, url) = server_on_all_addresses(fast_heartbeat());
    // The same binary as an unprivileged user (nobody), with no capabilities.
    let mut command = assert_cmd::Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_roomcast"))
        .env("ROOMCAST_URL", &url)
        .args(["dead-clients", "--mode", "blackhole"])
        .timeout(roomcast_testing::WAIT);
    let output = assert(command).await.code(1);
    let stderr = String::from_utf8_lossy(&output.get_output().stderr).into_owned();
    assert!(stderr.contains("needs root"), "{stderr}");
    assert!(stderr.contains("network namespace"), "{stderr}");
}
