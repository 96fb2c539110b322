//! One run in a real terminal: tmux hosts `roomcast-chat`, keys are typed with `send-keys`,
//! and the screen is read with `capture-pane`.

use std::process::Output;
use std::time::Duration;

use roomcast_protocol::ServerFrame;
use roomcast_protocol::{Client, ConnectOptions, TokenClaims};
use roomcast_server::Config;
use roomcast_server::access::mint;
use roomcast_server::config::AccessConfig;

use roomcast_testing::eventually;
use tokio::process::Command;

use crate::support::{TestServer, WAIT, wait_for, within};

/// How long after the pane died tmux may take to record the exit status: tmux 3.3 sometimes
/// never records it for a detached session, so the status is checked only when it comes.
const EXIT_STATUS_WAIT: Duration = Duration::from_secs(1);

/// How often a wait reads the pane again: a terminal has no event to wait on.
const SCREEN_POLL: Duration = Duration::from_millis(50);

/// A tmux server of our own (unique socket), killed on drop even when the test fails. Every
/// tmux call is a tokio process, so no runtime worker waits on one.
struct Tmux {
    socket: String,
    /// The socket file, removed on drop: `kill-server` does not always unlink it.
    socket_path: Option<String>,
}

impl Tmux {
    async fn start(command: &[&str], size: (u16, u16)) -> Self {
        let version = Command::new("tmux").arg("-V").output().await;
        assert!(
            version.as_ref().is_ok_and(|o| o.status.success()),
            "tmux is required for the end-to-end test and was not found: install it \
             (apt-get install tmux; scripts/check installs it when missing). {version:?}"
        );
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut tmux = Self {
            socket: format!("roomcast-chat-e2e-{}-{nanos}", std::process::id()),
            socket_path: None,
        };
        let (width, height) = (size.0.to_string(), size.1.to_string());
        let mut args = vec![
            "new-session",
            "-d",
            "-s",
            "chat",
            "-x",
            &width,
            "-y",
            &height,
        ];
        args.extend_from_slice(command);
        tmux.run(&args).await;
        let path = tmux
            .run(&["display-message", "-p", "#{socket_path}"])
            .await
            .stdout;
        tmux.socket_path = Some(String::from_utf8_lossy(&path).trim().to_owned());
        // Keep the pane after the program exits, to check how it left the terminal.
        tmux.run(&["set-option", "-w", "-t", "chat", "remain-on-exit", "on"])
            .await;
        tmux
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("tmux");
        command
            .args(["-L", &self.socket, "-f", "/dev/null", "-u"])
            .args(args)
            .env("TERM", "xterm-256color")
            .env("LANG", "C.UTF-8")
            .env_remove("TMUX")
            .env_remove("ROOMCAST_ROOMS")
            .env_remove("ROOMCAST_URL")
            .env_remove("ROOMCAST_USER")
            .env_remove("ROOMCAST_SERVER_TIMEOUT")
            .env_remove("ROOMCAST_TOKEN")
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Output {
        let output = within("a tmux command", self.command(args).output())
            .await
            .expect("tmux runs");
        assert!(output.status.success(), "tmux {args:?} failed: {output:?}");
        output
    }

    async fn screen(&self) -> String {
        let output = self.run(&["capture-pane", "-p", "-t", "chat"]).await;
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    async fn format(&self, format: &str) -> String {
        let output = self
            .run(&["display-message", "-p", "-t", "chat", format])
            .await;
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Waits until the program in the pane has exited, then says how it left the terminal:
    /// exit status (when tmux reports it), alternate screen, mouse capture.
    async fn exit_state(&self) -> (Option<String>, String, String) {
        eventually("roomcast-chat to exit", || async {
            (self.format("#{pane_dead}").await == "1").then_some(())
        })
        .await;
        let reaped = tokio::time::timeout(EXIT_STATUS_WAIT, async {
            loop {
                let dead = self.format("#{pane_dead_status}:#{pane_dead_signal}").await;
                match dead.split_once(':') {
                    Some((status, _)) if !status.is_empty() => return status.to_owned(),
                    Some((_, signal)) if !signal.is_empty() => return format!("signal {signal}"),
                    _ => tokio::time::sleep(SCREEN_POLL).await,
                }
            }
        })
        .await;
        // tmux prints an empty flag for "off" on a dead pane, so each is spelled out.
        (
            reaped.ok(),
            self.format("#{?alternate_on,on,off}").await,
            self.format("#{?mouse_any_flag,on,off}").await,
        )
    }

    /// Polls the screen until `done` holds (a terminal has no event to wait on); fails with
    /// the last screen after [`WAIT`].
    async fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let found = tokio::time::timeout(WAIT, async {
            loop {
                last = self.screen().await;
                if done(&last) {
                    return last.clone();
                }
                tokio::time::sleep(SCREEN_POLL).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("timed out waiting for {what}; the screen:\n{last}"))
    }

    async fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "chat", "-l", text]).await;
    }

    async fn key(&self, key: &str) {
        self.run(&["send-keys", "-t", "chat", key]).await;
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Drop cannot await, and the socket file may only go once the server is gone: the
        // cleanup blocks, so the runtime first moves this worker's other tasks elsewhere.
        tokio::task::block_in_place(|| {
            let _best_effort = std::process::Command::new("tmux")
                .args(["-L", &self.socket, "kill-server"])
                .output();
            if let Some(path) = &self.socket_path {
                let _already_gone = std::fs::remove_file(path);
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_terminal_sends_receives_and_restores_itself() {
    let server = TestServer::start(Config::default()).await;
    let mut bob = server.peer("bob", "lobby").await;
    let url = server.url.to_string();
    let tmux = Tmux::start(
        &[
            env!("CARGO_BIN_EXE_roomcast-chat"),
            "--url",
            &url,
            "--user",
            "ana",
            "--mouse",
            "lobby",
        ],
        (100, 30),
    )
    .await;
    tmux.wait_for("the chat to join lobby", |s| {
        s.contains("joined lobby") && s.contains("connected")
    })
    .await;
    assert_eq!(
        tmux.format("#{?alternate_on,on,off} #{?mouse_any_flag,on,off}")
            .await,
        "on on"
    );

    tmux.type_text("hello from a real terminal").await;
    tmux.key("Enter").await;
    let (from, text) = wait_for(&mut bob, "the typed message", |f| match f {
        ServerFrame::Message(m) => Some((m.user.to_string(), m.message.clone())),
        _ => None,
    })
    .await;
    assert_eq!(
        (from.as_str(), text.as_str()),
        ("ana", "hello from a real terminal")
    );

    server.send_test("lobby", "sent over HTTP").await;
    tmux.wait_for("the send-test message", |s| {
        s.contains("server: sent over HTTP")
    })
    .await;

    // Bracketed paste: several lines ask first, then go out as one message.
    tmux.run(&["set-buffer", "-b", "two", "first line\nsecond line"])
        .await;
    tmux.run(&["paste-buffer", "-p", "-d", "-b", "two", "-t", "chat"])
        .await;
    tmux.wait_for("the paste question", |s| {
        s.contains("paste 2 lines as one message?")
    })
    .await;
    tmux.key("y").await;
    tmux.key("Enter").await;
    let pasted = wait_for(&mut bob, "the pasted message", |f| match f {
        ServerFrame::Message(m) if m.user.as_str() == "ana" => Some(m.message.clone()),
        _ => None,
    })
    .await;
    assert_eq!(pasted, "first line\nsecond line");

    tmux.type_text("/quit").await;
    tmux.key("Enter").await;
    assert_restored(&tmux).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminate_signal_restores_the_terminal_too() {
    let server = TestServer::start(Config::default()).await;
    let url = server.url.to_string();
    let tmux = Tmux::start(
        &[
            env!("CARGO_BIN_EXE_roomcast-chat"),
            "--url",
            &url,
            "--mouse",
            "lobby",
        ],
        (80, 24),
    )
    .await;
    tmux.wait_for("the chat to connect", |s| s.contains("connected"))
        .await;
    let pid = tmux.format("#{pane_pid}").await;
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(killed.success());
    assert_restored(&tmux).await;
}

/// A private room: `--token` (here through its twin ROOMCAST_TOKEN) lets the chat in, and it
/// talks there; without one the screen says which rule refused it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_opens_a_private_room_and_without_one_the_screen_says_why() {
    const SECRET: &str = "tui-test-secret-of-at-least-32-bytes";
    let server = TestServer::start(Config {
        access: AccessConfig {
            private_rooms: vec!["pagamento_*".to_owned()],
            token_secret: Some(SECRET.to_owned()),
            ..AccessConfig::default()
        },
        ..Config::default()
    })
    .await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 600;
    let claims = |sub: &str| TokenClaims {
        sub: sub.to_owned(),
        rooms: vec!["pagamento_1".to_owned()],
        exp,
        nbf: None,
    };
    let bob_token = mint(SECRET.as_bytes(), &claims("bob")).expect("mint");
    let options = ConnectOptions {
        user: Some(roomcast_testing::user("bob")),
        room: Some(roomcast_testing::room("pagamento_1")),
        token: Some(bob_token),
    };
    let mut bob = within("bob's typed session", Client::connect(&server.url, options))
        .await
        .expect("bob gets in with his token");
    let server_url = server.url.to_string();

    let ana_token = format!(
        "ROOMCAST_TOKEN={}",
        mint(SECRET.as_bytes(), &claims("ana")).expect("mint")
    );
    let chat = env!("CARGO_BIN_EXE_roomcast-chat");
    let with_token = Tmux::start(
        &[
            "env",
            &ana_token,
            chat,
            "--url",
            &server_url,
            "--user",
            "ana",
            "pagamento_1",
        ],
        (100, 30),
    )
    .await;
    with_token
        .wait_for("the chat to join the private room", |s| {
            s.contains("joined pagamento_1") && s.contains("connected")
        })
        .await;
    with_token.type_text("paid, thanks").await;
    with_token.key("Enter").await;
    let (from, text) = wait_for(&mut bob, "ana's message", |f| match f {
        ServerFrame::Message(m) => Some((m.user.to_string(), m.message.clone())),
        _ => None,
    })
    .await;
    assert_eq!((from.as_str(), text.as_str()), ("ana", "paid, thanks"));
    with_token.type_text("/quit").await;
    with_token.key("Enter").await;
    assert_restored(&with_token).await;

    let without = Tmux::start(
        &[chat, "--url", &server_url, "--user", "eve", "pagamento_1"],
        (100, 30),
    )
    .await;
    let screen = without
        .wait_for("the refusal", |s| s.contains("server refused"))
        .await;
    assert!(
        screen.contains("missing") && screen.contains("forbidden"),
        "the rule is named: {screen}"
    );
    assert!(
        !screen.contains("paid, thanks"),
        "nothing of the room leaked: {screen}"
    );
    without.type_text("/quit").await;
    without.key("Enter").await;
    assert_restored(&without).await;
}

/// The program exited with 0 (when tmux knows), off the alternate screen, mouse released.
async fn assert_restored(tmux: &Tmux) {
    let (status, alternate, mouse) = tmux.exit_state().await;
    if let Some(status) = status {
        assert_eq!(status, "0", "exit status");
    }
    assert_eq!(alternate, "off", "left the alternate screen");
    assert_eq!(mouse, "off", "released the mouse");
}

/// A real silent loss in a real terminal: `roomcast-chat` runs in a network namespace (through
/// `ip netns exec`) whose only way to the server is a veth link, and the link is cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_shows_reconnecting_within_the_bound_and_recovers_without_a_gap() {
    let netns = roomcast_testing::netns().await;
    // On every address: the namespace dials the link's host end, send-test goes by loopback.
    let (server, url) = roomcast_testing::netns::server_for(&netns, Config::default());
    let tmux = Tmux::start(
        &[
            "ip",
            "netns",
            "exec",
            netns.name(),
            env!("CARGO_BIN_EXE_roomcast-chat"),
            "--url",
            &url,
            "--user",
            "ana",
            "--server-timeout",
            "1s",
            "lobby",
        ],
        (100, 30),
    )
    .await;
    tmux.wait_for("the chat to join lobby", |s| {
        s.contains("joined lobby") && s.contains("connected")
    })
    .await;
    server.send_test("lobby", "one").await;
    tmux.wait_for("the first message", |s| s.contains("server: one"))
        .await;

    netns.cut().await.expect("cut the link");
    let cut_at = tokio::time::Instant::now();
    tmux.wait_for("the loss to be reported", |s| {
        s.contains("no answer from the server for 1s")
    })
    .await;
    roomcast_testing::assert_noticed_within(cut_at, Duration::from_secs(1));

    for text in ["two", "three"] {
        server.send_test("lobby", text).await;
    }
    netns.restore().await.expect("restore the link");
    server.send_test("lobby", "four").await;
    let screen = tmux
        .wait_for("every message after recovery", |s| {
            s.contains("server: four") && s.contains("connected")
        })
        .await;
    for text in ["one", "two", "three", "four"] {
        assert!(screen.contains(&format!("server: {text}")), "{screen}");
    }
    assert!(!screen.contains("may be missing"), "no gap: {screen}");

    tmux.type_text("/quit").await;
    tmux.key("Enter").await;
    assert_restored(&tmux).await;
    netns.remove().await;
}
