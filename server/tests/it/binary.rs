//! The `roomcast-server` binary itself: flags, environment, PORT, signals, exit codes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{WAIT, room, tutorial_close, within};

const BINARY: &str = env!("CARGO_BIN_EXE_roomcast-server");

/// Kills the child on drop, so a failing test never leaves a server behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` with stderr piped; its log lines arrive on the returned channel.
fn start_logged(command: &mut Command) -> (Running, mpsc::Receiver<String>) {
    let mut child = command
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (lines, logged) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    (Running(child), logged)
}

#[test]
fn help_explains_every_flag_with_its_default_and_environment_twin() {
    let output = Command::new(BINARY)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--host",
        "--port",
        "--ping-interval",
        "--ping-timeout",
        "--max-queue-bytes",
        "--write-timeout",
        "--max-message-bytes",
        "--max-connections",
        "--max-rooms",
        "--history-size",
        "--room-ttl",
        "--latest-on-join",
        "--api-key",
        "--shutdown-grace",
        "--redis-url",
        "--redis-prefix",
        "--redis-node-timeout",
    ] {
        assert!(help.contains(flag), "--help lists {flag}");
        let twin = format!(
            "ROOMCAST_{}",
            flag.trim_start_matches("--")
                .replace('-', "_")
                .to_uppercase()
        );
        assert!(
            help.contains(&twin),
            "--help names the environment twin {twin}"
        );
    }
    assert!(
        help.contains("[default: 20s]") && help.contains("[default: 30s]"),
        "{help}"
    );
    assert!(help.contains("PORT"), "--help explains the PORT fallback");
}

#[test]
fn bad_settings_exit_2_with_the_shape_expected() {
    let output = Command::new(BINARY)
        .arg("--ping-interval=soon")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("20s"));

    let output = Command::new(BINARY)
        .env("PORT", "eighty")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("PORT"));
}

#[tokio::test]
async fn it_listens_on_port_from_the_environment_and_exits_0_after_sigterm() {
    let (server, logged) = start_logged(
        Command::new(BINARY)
            .env("PORT", "0")
            .env("ROOMCAST_PING_INTERVAL", "1500ms")
            .env("ROOMCAST_SHUTDOWN_GRACE", "3s")
            .env("RUST_LOG", "info"),
    );
    let listening = logged.recv_timeout(WAIT).expect("a log line at start");
    assert!(
        listening.contains("listening") && listening.contains("1.5s"),
        "{listening}"
    );
    let address = listening
        .split("address=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the address is logged");
    let url: roomcast_protocol::ServerUrl = format!("http://{address}").parse().expect("URL");
    let mut client = within(
        "connect",
        roomcast_protocol::TutorialClient::connect(&url, &room("lobby"), None),
    )
    .await
    .expect("the logged address serves");

    let pid = server.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success());
    assert_eq!(tutorial_close(&mut client).await.0, Some(1001));
    let mut server = server;
    let exit = within("the process to exit", async {
        loop {
            if let Some(status) = server.0.try_wait().expect("wait") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn listening_beyond_loopback_without_a_key_warns_that_publishing_is_refused() {
    let (_server, logged) = start_logged(
        Command::new(BINARY)
            .args(["--host", "0.0.0.0", "--port", "0"])
            .env_remove("ROOMCAST_API_KEY")
            .env("RUST_LOG", "warn"),
    );
    let warning = logged.recv_timeout(WAIT).expect("a warning at start");
    assert!(
        warning.contains("WARN") && warning.contains("ROOMCAST_API_KEY"),
        "{warning}"
    );
}

#[test]
fn an_upgrade_refused_at_max_connections_is_logged() {
    let (_server, logged) = start_logged(
        Command::new(BINARY)
            .args(["--port", "0", "--max-connections", "1"])
            .env("RUST_LOG", "info"),
    );
    let listening = logged.recv_timeout(WAIT).expect("a log line at start");
    let address = listening
        .split("address=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the address is logged");
    let url: roomcast_protocol::ServerUrl = format!("http://{address}").parse().expect("URL");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the clients");
    let (_first, second) = runtime.block_on(async {
        let lobby = room("lobby");
        let connect = || roomcast_protocol::TutorialClient::connect(&url, &lobby, None);
        let first = within("the first connection", connect()).await;
        let second = within("the second connection", connect()).await;
        (first.expect("the first session fits"), second)
    });
    assert!(
        matches!(
            second,
            Err(roomcast_protocol::ClientError::Rejected { status: 503, .. })
        ),
        "{second:?}"
    );
    let refusal = std::iter::from_fn(|| logged.recv_timeout(WAIT).ok())
        .find(|line| line.contains("refused"))
        .expect("a log line for the refused upgrade");
    assert!(
        refusal.contains("WARN") && refusal.contains("--max-connections"),
        "{refusal}"
    );
}
