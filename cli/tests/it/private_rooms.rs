//! The CLI in private rooms: `roomcast token` mints what the server admits (and refuses bad
//! arguments); `dead-clients` and `soak` get in with `--token-secret-file` (one token per
//! simulated client, for its own name) and are refused, with the rule and a hint, without.

use std::path::PathBuf;

use predicates::prelude::*;
use roomcast_server::Config;
use roomcast_server::config::AccessConfig;

use crate::support::{TestServer, assert, fast_heartbeat, json_lines};

const SECRET: &str = "cli-test-secret-of-at-least-32-bytes";

/// A fast-heartbeat server whose `pagamento_*` and `soak-*` rooms need a token.
async fn private_server() -> TestServer {
    TestServer::start(Config {
        access: AccessConfig {
            private_rooms: vec!["pagamento_*".to_owned(), "soak-*".to_owned()],
            token_secret: Some(SECRET.to_owned()),
            ..AccessConfig::default()
        },
        ..fast_heartbeat()
    })
    .await
}

/// The secret in a file of its own (with the newline `echo` adds), removed on drop.
struct SecretFile(PathBuf);

impl SecretFile {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "roomcast-cli-secret-{}-{nanos}",
            std::process::id()
        ));
        std::fs::write(&path, format!("{SECRET}\n")).expect("write the secret file");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _already_gone = std::fs::remove_file(&self.0);
    }
}

/// What `roomcast token --secret SECRET --user USER --room ROOM EXTRA...` prints, asserting
/// it succeeded.
async fn minted(server: &TestServer, user: &str, room: &str, extra: &[&str]) -> String {
    let mut command = server.roomcast();
    command
        .args(["token", "--secret", SECRET, "--user", user, "--room", room])
        .args(extra);
    let output = assert(command).await.success();
    String::from_utf8(output.get_output().stdout.clone())
        .expect("UTF-8")
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_roomcast_token_opens_its_room_and_no_other() {
    let server = private_server().await;
    let token = minted(&server, "ana", "pagamento_1", &["--ttl", "10m"]).await;

    let mut send = server.roomcast();
    send.args([
        "--token",
        &token,
        "--json",
        "send",
        "--user",
        "ana",
        "pagamento_1",
        "paid",
    ]);
    let output = assert(send).await.success();
    let acked = &json_lines(&output.get_output().stdout)[0];
    assert_eq!(acked["room"], "pagamento_1", "{acked}");

    // The same token for another room, or under another name, is refused with the rule.
    let mut other_room = server.roomcast();
    other_room.args([
        "--token",
        &token,
        "send",
        "--user",
        "ana",
        "pagamento_2",
        "x",
    ]);
    assert(other_room)
        .await
        .code(1)
        .stderr(predicate::str::contains("4503").and(predicate::str::contains("wrong_room")));
    let mut other_name = server.roomcast();
    other_name.args([
        "--token",
        &token,
        "send",
        "--user",
        "bob",
        "pagamento_1",
        "x",
    ]);
    assert(other_name)
        .await
        .code(1)
        .stderr(predicate::str::contains("impersonation"));

    // --json wraps the same token.
    let json = minted(&server, "ana", "pagamento_1", &["--json"]).await;
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("one JSON object");
    assert!(
        parsed["token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3),
        "{parsed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roomcast_token_refuses_bad_arguments_with_a_usage_error() {
    let server = private_server().await;
    let cases: [(&[&str], &str); 4] = [
        (
            &["--secret", "short", "--user", "ana", "--room", "a"],
            "at least 32 bytes",
        ),
        (
            &["--secret", SECRET, "--user", "bad name!", "--room", "a"],
            "user",
        ),
        (&["--secret", SECRET, "--user", "ana"], "--room"),
        (
            &[
                "--secret", SECRET, "--user", "ana", "--room", "a", "--ttl", "soon",
            ],
            "--ttl",
        ),
    ];
    for (args, said) in cases {
        let mut command = server.roomcast();
        command.arg("token").args(args);
        let refused = assert(command)
            .await
            .failure()
            .stdout(predicate::str::is_empty());
        let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
        assert!(stderr.contains(said), "{args:?}: {stderr}");
        assert_eq!(
            refused.get_output().status.code(),
            Some(2),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_clients_get_into_a_private_room_with_minted_tokens_and_are_refused_without() {
    let server = private_server().await;
    let secret = SecretFile::new();
    let mut command = server.roomcast();
    command.args([
        "--token-secret-file",
        secret.path(),
        "dead-clients",
        "--room",
        "pagamento_7",
        "--mode",
        "nopong,vanish",
        "--count",
        "2",
        "--live",
        "2",
        "--json",
    ]);
    let output = assert(command).await.success();
    let summary = json_lines(&output.get_output().stdout)
        .pop()
        .expect("a summary line");
    assert_eq!(summary["passed"], true, "{summary}");
    assert!(summary["live"]["received"].as_u64() > Some(0), "{summary}");

    let mut without = server.roomcast();
    without.args(["dead-clients", "--room", "pagamento_7", "--count", "1"]);
    assert(without)
        .await
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(
            predicate::str::contains("4503")
                .and(predicate::str::contains("missing"))
                .and(predicate::str::contains("--token-secret-file")),
        );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_of_private_rooms_runs_with_minted_tokens_and_is_refused_without() {
    let server = private_server().await;
    let secret = SecretFile::new();
    let soak_args = [
        "soak",
        "--clients",
        "4",
        "--rooms",
        "2",
        "--rate",
        "40",
        "--duration",
        "2s",
        "--churn",
        "2",
        "--dead-fraction",
        "0.5",
        "--json",
        "--assert",
        "lost=0,refused=0,dropped=0,evicted=all",
    ];
    let mut soak = server.roomcast();
    soak.args(["--token-secret-file", secret.path()])
        .args(soak_args);
    let output = assert(soak).await.success();
    let summary = &json_lines(&output.get_output().stdout)[0];
    assert_eq!(summary["passed"], true, "{summary}");
    assert!(summary["delivered"].as_u64() > Some(20), "{summary}");
    assert_eq!(summary["dead"]["failed"], 0, "{summary}");

    let mut without = server.roomcast();
    without.args(soak_args);
    assert(without)
        .await
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("4503").and(predicate::str::contains("missing")));

    // One token for every client: a private room admits it only under its sub.
    let token = minted(&server, "ana", "soak-*", &[]).await;
    let mut shared = server.roomcast();
    shared.args(["--token", &token]).args(soak_args);
    assert(shared)
        .await
        .code(1)
        .stderr(predicate::str::contains("impersonation"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_file_is_a_usage_error_before_any_socket() {
    let server = private_server().await;
    let mut command = server.roomcast();
    command.args([
        "--token-secret-file",
        "/nonexistent/roomcast-secret",
        "dead-clients",
        "--room",
        "pagamento_1",
    ]);
    assert(command).await.code(2).stderr(
        predicate::str::contains("--token-secret-file")
            .and(predicate::str::contains("cannot read")),
    );
}
