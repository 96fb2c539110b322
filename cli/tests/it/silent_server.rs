//! `listen` against a server that vanishes without a word: the link (a `TcpProxy`) goes silent,
//! so no FIN, no RST and no close frame arrive. The client's own bound must notice, say so, and
//! recover every message once the server answers again.

use std::time::Duration;

use roomcast_server::Config;
use roomcast_testing::{TcpProxy, assert_noticed_within, netns};
use tokio::time::Instant;

use crate::support::{TestServer, json_lines, spawn_at, spawn_in};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_reports_a_silent_server_within_its_bound_and_recovers_with_no_gap() {
    let server = TestServer::start(Config::default()).await;
    let proxy = TcpProxy::start(server.addr).await;
    let mut listener = spawn_at(
        &proxy.url.to_string(),
        &[
            "listen",
            "lobby",
            "--json",
            "--count",
            "4",
            "--server-timeout",
            "1s",
            "--timeout",
            "20s",
        ],
    );
    listener.wait_for_stderr("listening to lobby").await;
    server.send_test("lobby", "one").await;
    listener.wait_for_stdout(r#""message":"one""#).await;

    proxy.go_silent();
    let silent_since = Instant::now();
    listener
        .wait_for_stderr("reconnecting: no answer from the server for 1s")
        .await;
    assert_noticed_within(silent_since, Duration::from_secs(1));

    for text in ["two", "three"] {
        server.send_test("lobby", text).await;
    }
    proxy.resume();
    let rejoined = listener.wait_for_stderr("listening to lobby").await;
    assert!(
        rejoined.contains("replaying 2"),
        "recovered with since: {rejoined}"
    );
    server.send_test("lobby", "four").await;

    let (code, stdout) = listener.finish().await;
    assert_eq!(code, Some(0), "{stdout}");
    let lines = json_lines(stdout.as_bytes());
    let got: Vec<_> = lines
        .iter()
        .map(|m| (m["seq"].clone(), m["message"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            (1.into(), "one".into()),
            (2.into(), "two".into()),
            (3.into(), "three".into()),
            (4.into(), "four".into())
        ],
        "every message once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_follows_a_server_restart_and_says_what_could_not_be_recovered() {
    let server = TestServer::start(Config::default()).await;
    let mut listener = server.spawn(&["listen", "lobby", "--json", "--count", "2"]);
    listener.wait_for_stderr("listening to lobby").await;
    server.send_test("lobby", "before").await;
    listener.wait_for_stdout(r#""message":"before""#).await;

    let server = server.restart(Config::default()).await;
    listener
        .wait_for_stderr("reconnecting: closed with 1001 (going_away)")
        .await;
    let rejoined = listener.wait_for_stderr("listening to lobby").await;
    assert!(
        rejoined.contains("older ones are gone"),
        "a new server's history cannot recover the old one: {rejoined}"
    );
    server.send_test("lobby", "after").await;
    let (code, stdout) = listener.finish().await;
    assert_eq!(code, Some(0), "{stdout}");
    let texts: Vec<_> = json_lines(stdout.as_bytes())
        .iter()
        .map(|m| m["message"].clone())
        .collect();
    assert_eq!(texts, ["before", "after"]);
}

/// The same loss made by the kernel: `listen` runs in a network namespace whose only way to the
/// server is a veth link, and the link is cut (nothing arrives either way, no FIN, no RST).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_in_a_namespace_reports_a_cut_link_within_its_bound_and_recovers_with_no_gap() {
    let netns = roomcast_testing::netns().await;
    let (server, url) = netns::server_for(&netns, Config::default());
    let mut listener = spawn_in(
        &netns,
        &url,
        &[
            "listen",
            "lobby",
            "--json",
            "--count",
            "4",
            "--server-timeout",
            "1s",
            "--timeout",
            "20s",
        ],
    );
    listener.wait_for_stderr("listening to lobby").await;
    server.send_test("lobby", "one").await;
    listener.wait_for_stdout(r#""message":"one""#).await;

    netns.cut().await.expect("cut the link");
    let cut_at = Instant::now();
    listener
        .wait_for_stderr("reconnecting: no answer from the server for 1s")
        .await;
    assert_noticed_within(cut_at, Duration::from_secs(1));

    for text in ["two", "three"] {
        server.send_test("lobby", text).await;
    }
    netns.restore().await.expect("restore the link");
    let rejoined = listener.wait_for_stderr("listening to lobby").await;
    assert!(
        rejoined.contains("replaying 2"),
        "recovered with since: {rejoined}"
    );
    server.send_test("lobby", "four").await;

    let (code, stdout) = listener.finish().await;
    assert_eq!(code, Some(0), "{stdout}");
    let got: Vec<_> = json_lines(stdout.as_bytes())
        .iter()
        .map(|m| (m["seq"].clone(), m["message"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            (1.into(), "one".into()),
            (2.into(), "two".into()),
            (3.into(), "three".into()),
            (4.into(), "four".into())
        ],
        "every message once, in order"
    );
    netns.remove().await;
}
