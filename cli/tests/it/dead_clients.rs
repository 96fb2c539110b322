//! `dead-clients` passes against a server whose heartbeat works, and fails (exit 3, with the
//! reason) against one whose eviction is too slow or off: the check can fail.

use predicates::prelude::*;
use roomcast_server::Config;

use crate::support::{TestServer, assert, fast_heartbeat, json_lines, ms};

/// Runs dead-clients in `mode` against a fast-heartbeat server; returns the JSON lines.
async fn evicted_in_time(mode: &str) -> Vec<serde_json::Value> {
    let server = TestServer::start(fast_heartbeat()).await;
    let mut command = server.roomcast();
    command.args([
        "dead-clients",
        "--mode",
        mode,
        "--count",
        "2",
        "--live",
        "2",
        "--json",
    ]);
    let output = assert(command).await.success();
    let lines = json_lines(&output.get_output().stdout);
    let summary = lines.last().expect("a summary line");
    assert_eq!(summary["kind"], "summary");
    assert_eq!(summary["passed"], true, "{summary}");
    assert_eq!(summary["heartbeat_source"], "from /api/info");
    assert_eq!(summary["live"]["lost"], 0);
    assert!(
        summary["live"]["received"].as_u64() > Some(0),
        "live members kept talking"
    );
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_pong_are_evicted_for_timeout_with_4000() {
    let lines = evicted_in_time("nopong").await;
    for ghost in &lines[..2] {
        assert_eq!(ghost["verdict"], "evicted", "{ghost}");
        assert_eq!(ghost["leave_reason"], "timeout");
        assert_eq!(ghost["close_code"], 4000);
        let after = ghost["evicted_after_ms"].as_f64().expect("a time");
        assert!(after >= 300.0, "not before the ping timeout: {after}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_are_evicted() {
    let lines = evicted_in_time("noread").await;
    for ghost in &lines[..2] {
        assert_eq!(ghost["verdict"], "evicted", "{ghost}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_vanish_are_noticed_at_once() {
    let lines = evicted_in_time("vanish").await;
    for ghost in &lines[..2] {
        assert_eq!(ghost["verdict"], "evicted", "{ghost}");
        assert_eq!(ghost["leave_reason"], "closed");
        assert!(ghost["evicted_after_ms"].as_f64() < Some(300.0), "{ghost}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_shorter_than_the_timeout_is_not_evicted() {
    let lines = evicted_in_time("pause").await;
    for ghost in &lines[..2] {
        assert_eq!(ghost["verdict"], "survived", "{ghost}");
        assert!(ghost["leave_reason"].is_null());
    }
    assert_eq!(lines[2]["survived"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_at_once_passes_and_prints_a_table() {
    let server = TestServer::start(fast_heartbeat()).await;
    let mut command = server.roomcast();
    command.args([
        "dead-clients",
        "--mode",
        "nopong,noread,vanish,pause",
        "--count",
        "1",
    ]);
    assert(command)
        .await
        .success()
        .stdout(predicate::str::contains(
            "ok: 3 of 4 dead client(s) evicted in time, 1 paused",
        ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_evicts_too_slowly_fails_with_exit_3() {
    // The server waits 5s after a ping; the operator expects 300ms.
    let server = TestServer::start(Config {
        ping_interval: ms(200),
        ping_timeout: ms(5_000),
        ..Config::default()
    })
    .await;
    let mut command = server.roomcast();
    command.args([
        "dead-clients",
        "--mode",
        "nopong",
        "--count",
        "2",
        "--ping-interval",
        "200ms",
        "--ping-timeout",
        "300ms",
    ]);
    assert(command)
        .await
        .code(3)
        .stdout(predicate::str::contains("not_evicted"))
        .stderr(predicate::str::contains("not evicted within 1.00s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_eviction_off_fails_with_exit_3_instead_of_hanging() {
    let server = TestServer::start(Config {
        ping_interval: std::time::Duration::from_secs(3600),
        ..Config::default()
    })
    .await;
    let mut command = server.roomcast();
    command.args([
        "dead-clients",
        "--mode",
        "nopong,noread",
        "--count",
        "1",
        "--expect-within",
        "500ms",
    ]);
    assert(command)
        .await
        .code(3)
        .stderr(predicate::str::contains("not evicted within 500.0ms").count(2));
}
