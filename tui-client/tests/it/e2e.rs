//! One run in a real terminal: tmux hosts `roomcast-chat`, keys are typed with `send-keys`,
//! and the screen is read with `capture-pane`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use roomcast_protocol::ServerFrame;
use roomcast_server::Config;

use crate::support::{TestServer, WAIT, wait_for};

/// A tmux server of our own (unique socket), killed on drop even when the test fails.
struct Tmux {
    socket: String,
    /// The socket file, removed on drop: `kill-server` does not always unlink it.
    socket_path: Option<String>,
}

impl Tmux {
    fn start(command: &[&str], size: (u16, u16)) -> Self {
        let version = Command::new("tmux").arg("-V").output();
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
        tmux.run(&args);
        let path = tmux
            .run(&["display-message", "-p", "#{socket_path}"])
            .stdout;
        tmux.socket_path = Some(String::from_utf8_lossy(&path).trim().to_owned());
        // Keep the pane after the program exits, to check how it left the terminal.
        tmux.run(&["set-option", "-w", "-t", "chat", "remain-on-exit", "on"]);
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        let output = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null", "-u"])
            .args(args)
            .env("TERM", "xterm-256color")
            .env("LANG", "C.UTF-8")
            .env_remove("TMUX")
            .env_remove("ROOMCAST_ROOMS")
            .env_remove("ROOMCAST_URL")
            .env_remove("ROOMCAST_USER")
            .output()
            .expect("tmux runs");
        assert!(output.status.success(), "tmux {args:?} failed: {output:?}");
        output
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "chat"]).stdout)
            .into_owned()
    }

    fn format(&self, format: &str) -> String {
        let output = self.run(&["display-message", "-p", "-t", "chat", format]);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Waits until the program in the pane has exited, then says how it left the terminal:
    /// exit status (when tmux reports it), alternate screen, mouse capture.
    fn exit_state(&self) -> (Option<String>, String, String) {
        let deadline = Instant::now() + WAIT;
        while self.format("#{pane_dead}") != "1" {
            assert!(
                Instant::now() < deadline,
                "roomcast-chat did not exit:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // tmux 3.3 marks the pane dead when its terminal closes and records the exit status
        // when it reaps the process; now and then it never records it for a detached session.
        // So the status is checked whenever tmux has it, and the terminal state always.
        let reaped = Instant::now() + Duration::from_secs(1);
        let status = loop {
            let dead = self.format("#{pane_dead_status}:#{pane_dead_signal}");
            match dead.split_once(':') {
                Some((status, _)) if !status.is_empty() => break Some(status.to_owned()),
                Some((_, signal)) if !signal.is_empty() => break Some(format!("signal {signal}")),
                _ if Instant::now() > reaped => break None,
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        // tmux prints an empty flag for "off" on a dead pane, so each is spelled out.
        (
            status,
            self.format("#{?alternate_on,on,off}"),
            self.format("#{?mouse_any_flag,on,off}"),
        )
    }

    /// Polls the screen (bounded, short pauses: a terminal has no event to wait on).
    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "chat", "-l", text]);
    }

    fn key(&self, key: &str) {
        self.run(&["send-keys", "-t", "chat", key]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _best_effort = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
        if let Some(path) = &self.socket_path {
            let _already_gone = std::fs::remove_file(path);
        }
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
    );
    tmux.wait_for("the chat to join lobby", |s| {
        s.contains("joined lobby") && s.contains("connected")
    });
    assert_eq!(
        tmux.format("#{?alternate_on,on,off} #{?mouse_any_flag,on,off}"),
        "on on"
    );

    tmux.type_text("hello from a real terminal");
    tmux.key("Enter");
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
    });

    // Bracketed paste: several lines ask first, then go out as one message.
    tmux.run(&["set-buffer", "-b", "two", "first line\nsecond line"]);
    tmux.run(&["paste-buffer", "-p", "-d", "-b", "two", "-t", "chat"]);
    tmux.wait_for("the paste question", |s| {
        s.contains("paste 2 lines as one message?")
    });
    tmux.key("y");
    tmux.key("Enter");
    let pasted = wait_for(&mut bob, "the pasted message", |f| match f {
        ServerFrame::Message(m) if m.user.as_str() == "ana" => Some(m.message.clone()),
        _ => None,
    })
    .await;
    assert_eq!(pasted, "first line\nsecond line");

    tmux.type_text("/quit");
    tmux.key("Enter");
    assert_restored(&tmux);
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
    );
    tmux.wait_for("the chat to connect", |s| s.contains("connected"));
    let pid = tmux.format("#{pane_pid}");
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    assert_restored(&tmux);
}

/// The program exited with 0 (when tmux knows), off the alternate screen, mouse released.
fn assert_restored(tmux: &Tmux) {
    let (status, alternate, mouse) = tmux.exit_state();
    if let Some(status) = status {
        assert_eq!(status, "0", "exit status");
    }
    assert_eq!(alternate, "off", "left the alternate screen");
    assert_eq!(mouse, "off", "released the mouse");
}
