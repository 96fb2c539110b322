//! The shared in-process server (`roomcast-testing`), and the `roomcast` binary pointed at it.

use std::ops::Deref;
use std::process::Stdio;
use std::time::Duration;

use assert_cmd::Command;
use assert_cmd::assert::Assert;
use roomcast_server::Config;
pub use roomcast_testing::{WAIT, within};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Lines of a running process's output kept until the test reads them; a process that writes
/// more than this before the test looks stops being read (and the test fails on its wait).
const LINES_QUEUED: usize = 4096;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A config whose heartbeat evicts a dead client within a second.
pub fn fast_heartbeat() -> Config {
    Config {
        ping_interval: ms(200),
        ping_timeout: ms(300),
        ..Config::default()
    }
}

/// The shared [`roomcast_testing::TestServer`], plus ways to point `roomcast` at it.
pub struct TestServer {
    inner: roomcast_testing::TestServer,
}

impl Deref for TestServer {
    type Target = roomcast_testing::TestServer;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        Self {
            inner: roomcast_testing::TestServer::start(config).await,
        }
    }

    /// Stops and starts again on the same port; see [`roomcast_testing::TestServer::restart`].
    pub async fn restart(self, config: Config) -> Self {
        Self {
            inner: self.inner.restart(config).await,
        }
    }

    pub fn url(&self) -> String {
        self.inner.url.to_string()
    }

    /// `roomcast` with `--url` pointing here (through ROOMCAST_URL, as users would set it).
    pub fn roomcast(&self) -> Command {
        let mut command = roomcast();
        command.env("ROOMCAST_URL", self.url());
        command
    }

    /// The same, as a process the test keeps running.
    pub fn spawn(&self, args: &[&str]) -> Running {
        spawn_at(&self.url(), args)
    }
}

/// `roomcast` with no ROOMCAST_* variable from the developer's shell.
pub fn roomcast() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_roomcast"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("ROOMCAST_")) {
        command.env_remove(key);
    }
    command.timeout(WAIT);
    command
}

/// Runs the command off the async runtime (the server keeps serving meanwhile).
pub async fn assert(mut command: Command) -> Assert {
    tokio::task::spawn_blocking(move || command.assert())
        .await
        .expect("the command thread")
}

/// `roomcast ARGS` against `url`, kept running, its stdout and stderr read line by line as they
/// come.
pub fn spawn_at(url: &str, args: &[&str]) -> Running {
    spawn(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_roomcast")),
        url,
        args,
    )
}

/// [`spawn_at`], the process running inside `netns` (`ip netns exec`).
pub fn spawn_in(netns: &roomcast_testing::Netns, url: &str, args: &[&str]) -> Running {
    spawn(netns.command(env!("CARGO_BIN_EXE_roomcast")), url, args)
}

fn spawn(mut command: tokio::process::Command, url: &str, args: &[&str]) -> Running {
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("ROOMCAST_")) {
        command.env_remove(key);
    }
    let mut child = command
        .env("ROOMCAST_URL", url)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A test that failed midway must not leave its process behind.
        .kill_on_drop(true)
        .spawn()
        .expect("roomcast starts");
    let stdout = Lines::read(child.stdout.take().expect("piped stdout"));
    let stderr = Lines::read(child.stderr.take().expect("piped stderr"));
    Running {
        child,
        stdout,
        stderr,
    }
}

/// One output stream of a running process, read line by line by a task of its own.
struct Lines {
    lines: mpsc::Receiver<String>,
    reader: JoinHandle<()>,
    /// Every line taken so far, for `finish` and for failure messages.
    seen: Vec<String>,
}

impl Lines {
    fn read(stream: impl AsyncRead + Unpin + Send + 'static) -> Self {
        let (sender, lines) = mpsc::channel(LINES_QUEUED);
        let reader = tokio::spawn(async move {
            let mut stream = BufReader::new(stream).lines();
            while let Ok(Some(line)) = stream.next_line().await {
                if sender.send(line).await.is_err() {
                    return;
                }
            }
        });
        Self {
            lines,
            reader,
            seen: Vec::new(),
        }
    }

    /// Waits (up to [`WAIT`]) for a line containing `text`; `None` if the stream ended first
    /// or the wait ran out.
    async fn wait_for(&mut self, text: &str) -> Option<String> {
        tokio::time::timeout(WAIT, async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if line.contains(text) {
                    return Some(line);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    /// Every line up to the end of the stream.
    async fn rest(mut self) -> Vec<String> {
        while let Some(line) = self.lines.recv().await {
            self.seen.push(line);
        }
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A `roomcast` process the test keeps running, with its output read line by line.
pub struct Running {
    child: Child,
    stdout: Lines,
    stderr: Lines,
}

impl Running {
    /// Waits for a stderr line containing `text`: the process's own word that it got there.
    pub async fn wait_for_stderr(&mut self, text: &str) -> String {
        match self.stderr.wait_for(text).await {
            Some(line) => line,
            None => panic!(
                "roomcast never said {text:?} on stderr within {WAIT:?}; it said:\n{}",
                self.stderr.seen.join("\n")
            ),
        }
    }

    /// Waits for a stdout line containing `text` (the data it printed).
    pub async fn wait_for_stdout(&mut self, text: &str) -> String {
        match self.stdout.wait_for(text).await {
            Some(line) => line,
            None => panic!(
                "roomcast never printed {text:?} within {WAIT:?}; it printed:\n{}\nand said:\n{}",
                self.stdout.seen.join("\n"),
                self.stderr.seen.join("\n")
            ),
        }
    }

    /// Waits for the process to exit; returns its exit code and all of its stdout (the lines
    /// already waited for included).
    pub async fn finish(self) -> (Option<i32>, String) {
        let Self {
            mut child,
            stdout,
            stderr: _,
        } = self;
        within("roomcast to exit", async move {
            let lines = stdout.rest().await;
            let status = child.wait().await.expect("roomcast exits");
            let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
            (status.code(), text)
        })
        .await
    }
}

/// Every stdout line as JSON.
pub fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    port
}
