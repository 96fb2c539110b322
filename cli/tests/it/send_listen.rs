//! Publishing (send-test over HTTP, send over WebSocket), listening, and the rooms list.

use predicates::prelude::*;
use roomcast_server::Config;

use crate::support::{TestServer, assert, json_lines};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_test_message_reaches_a_json_listener() {
    let server = TestServer::start(Config::default()).await;
    let mut listener = server.spawn(&[
        "listen",
        "lobby",
        "--json",
        "--count",
        "1",
        "--timeout",
        "20s",
    ]);
    listener.wait_for_stderr("listening to lobby").await;

    let mut send = server.roomcast();
    send.args(["send-test", "lobby", "hello from the shell"]);
    assert(send)
        .await
        .success()
        .stdout(predicate::str::starts_with(
            "published lobby #1 to 1 session",
        ));

    let (code, stdout) = listener.finish().await;
    assert_eq!(code, Some(0), "listen exits 0 once it has its message");
    let lines = json_lines(stdout.as_bytes());
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["type"], "message");
    assert_eq!(lines[0]["room"], "lobby");
    assert_eq!(lines[0]["message"], "hello from the shell");
    assert_eq!(lines[0]["seq"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_since_a_seq_replays_exactly_the_messages_after_it() {
    let server = TestServer::start(Config::default()).await;
    let mut send = server.roomcast();
    send.args(["send-test", "news", "edition {n}", "--count", "3", "--json"]);
    let published = json_lines(&assert(send).await.success().get_output().stdout);
    assert_eq!(
        published
            .iter()
            .map(|p| p["seq"].clone())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );

    let mut listen = server.roomcast();
    listen.args([
        "listen",
        "news",
        "--since",
        "1",
        "--count",
        "2",
        "--json",
        "--timeout",
        "10s",
    ]);
    let replayed = json_lines(&assert(listen).await.success().get_output().stdout);
    let texts: Vec<_> = replayed.iter().map(|m| m["message"].clone()).collect();
    assert_eq!(
        texts,
        ["edition 2", "edition 3"],
        "exactly the messages after seq 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_publishes_each_stdin_line_and_the_room_list_shows_the_seq() {
    let server = TestServer::start(Config::default()).await;
    let mut send = server.roomcast();
    send.args(["send", "chat", "--user", "ana", "--json"])
        .write_stdin("one\ntwo\nthree\n");
    let acked = json_lines(&assert(send).await.success().get_output().stdout);
    let seqs: Vec<_> = acked.iter().map(|a| a["seq"].clone()).collect();
    assert_eq!(seqs, [1, 2, 3]);

    let mut rooms = server.roomcast();
    rooms.args(["rooms"]);
    assert(rooms)
        .await
        .success()
        .stdout(predicate::str::is_match(r"(?m)^chat\s+\d+\s+\d+\s+3\s").expect("regex"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_times_out_before_its_count_exits_3() {
    let server = TestServer::start(Config::default()).await;
    let mut listen = server.roomcast();
    listen.args(["listen", "quiet", "--count", "1", "--timeout", "300ms"]);
    assert(listen)
        .await
        .code(3)
        .stderr(predicate::str::contains(
            "expected 1 message within 300.0ms, got 0",
        ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_without_the_servers_key_says_how_to_pass_it() {
    let server = TestServer::start(Config {
        api_key: Some("s3cret".into()),
        ..Config::default()
    })
    .await;
    let mut refused = server.roomcast();
    refused.args(["send-test", "lobby", "hi"]);
    assert(refused)
        .await
        .code(1)
        .stderr(predicate::str::contains("401").and(predicate::str::contains("ROOMCAST_API_KEY")));

    let mut allowed = server.roomcast();
    allowed
        .args(["send-test", "lobby", "hi"])
        .env("ROOMCAST_API_KEY", "s3cret");
    assert(allowed).await.success();
}

/// A peer's text that would clear the screen, set the window title and write the clipboard.
const HOSTILE: &str = "hi\u{1b}[2J\u{1b}]0;pwned\u{7}\u{1b}]52;c;cHduZWQ=\u{7}\u{9b}31mthere";

/// Runs `listen lobby --count 1 EXTRA...`, publishes [`HOSTILE`] once it listens, and returns
/// what it printed.
async fn listen_to_hostile_text(extra: &[&str]) -> String {
    let server = TestServer::start(Config::default()).await;
    let mut args = vec!["listen", "lobby", "--count", "1", "--timeout", "20s"];
    args.extend_from_slice(extra);
    let mut listener = server.spawn(&args);
    listener.wait_for_stderr("listening to lobby").await;
    server.send_test("lobby", HOSTILE).await;
    let (code, stdout) = listener.finish().await;
    assert_eq!(code, Some(0), "{stdout}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_sequences_from_a_peer_never_reach_a_terminal() {
    // `--sanitize always` is what a terminal on stdout gets by default (`auto`).
    let shown = listen_to_hostile_text(&["--sanitize", "always"]).await;
    assert!(
        !shown.contains(['\u{1b}', '\u{7}', '\u{9b}']),
        "control bytes reached the output: {shown:?}"
    );
    assert!(
        shown.ends_with(
            "lobby #1 server: hi\u{FFFD}[2J\u{FFFD}]0;pwned\u{FFFD}\u{FFFD}]52;c;cHduZWQ=\u{FFFD}\u{FFFD}31mthere\n"
        ),
        "{shown:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_gets_the_text_as_sent_and_json_escapes_it() {
    let piped = listen_to_hostile_text(&[]).await;
    assert!(
        piped.ends_with(&format!("lobby #1 server: {HOSTILE}\n")),
        "{piped:?}"
    );

    let json = listen_to_hostile_text(&["--json"]).await;
    assert!(!json.contains(['\u{1b}', '\u{7}', '\u{9b}']), "{json:?}");
    assert_eq!(json_lines(json.as_bytes())[0]["message"], HOSTILE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_sse_follows_a_room_and_replays_what_came_before_with_since() {
    let server = TestServer::start(Config::default()).await;
    let mut send = server.roomcast();
    send.args(["send-test", "feed", "early {n}", "--count", "2"]);
    assert(send).await.success();

    let mut listener = server.spawn(&[
        "listen",
        "feed",
        "--sse",
        "--since",
        "0",
        "--json",
        "--count",
        "3",
        "--timeout",
        "20s",
    ]);
    listener.wait_for_stderr("following feed over SSE").await;
    let mut send = server.roomcast();
    send.args(["send-test", "feed", "live"]);
    assert(send).await.success();

    let (code, stdout) = listener.finish().await;
    assert_eq!(
        code,
        Some(0),
        "listen --sse exits 0 once it has its messages"
    );
    let lines = json_lines(stdout.as_bytes());
    let texts: Vec<_> = lines.iter().map(|m| m["message"].clone()).collect();
    assert_eq!(texts, ["early 1", "early 2", "live"], "{stdout}");
    assert!(
        lines
            .iter()
            .all(|m| m["type"] == "message" && m["room"] == "feed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_sse_without_a_server_exits_4() {
    let mut listen = crate::support::roomcast();
    let url = format!("http://127.0.0.1:{}", crate::support::closed_port());
    listen.args(["--url", &url, "listen", "lobby", "--sse", "--timeout", "5s"]);
    assert(listen).await.code(4);
}
