//! A server in this process, and the `roomcast` binary pointed at it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::Command;
use assert_cmd::assert::Assert;
use roomcast_server::{Config, run};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long any one command or awaited event may take before the test fails: generous for a
/// loaded machine, and a hang still fails in seconds.
pub const WAIT: Duration = Duration::from_secs(30);

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

/// A server running in this process until dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let addr = listener.local_addr().expect("listener address");
        let (stop, stopped) = oneshot::channel::<()>();
        let config = config.validate().expect("test configs are valid");
        let task = tokio::spawn(run(listener, config, async move {
            let _stopped = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `roomcast` with `--url` pointing here (through ROOMCAST_URL, as users would set it).
    pub fn roomcast(&self) -> Command {
        let mut command = roomcast();
        command.env("ROOMCAST_URL", self.url());
        command
    }

    /// The same, as a `std` command for a process the test keeps running.
    pub fn spawn(&self, args: &[&str]) -> Running {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_roomcast"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("ROOMCAST_")) {
            command.env_remove(key);
        }
        let mut child = command
            .env("ROOMCAST_URL", self.url())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("roomcast starts");
        let (lines, stderr_lines) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    return;
                }
            }
        });
        Running {
            child: Some(child),
            stderr_lines,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _sent = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
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

/// A `roomcast` process the test keeps running, with its stderr read line by line.
pub struct Running {
    child: Option<Child>,
    stderr_lines: mpsc::Receiver<String>,
}

impl Running {
    /// Waits for a stderr line containing `text`: the process's own word that it is ready.
    pub async fn wait_for_stderr(&mut self, text: &str) -> String {
        let lines = std::mem::replace(&mut self.stderr_lines, mpsc::channel().1);
        let wanted = text.to_owned();
        let (lines, found) = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + WAIT;
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match lines.recv_timeout(left) {
                    Ok(line) if line.contains(&wanted) => return (lines, Some(line)),
                    Ok(_) => continue,
                    Err(_) => return (lines, None),
                }
            }
        })
        .await
        .expect("the reading thread");
        self.stderr_lines = lines;
        found.unwrap_or_else(|| panic!("roomcast never said {text:?} on stderr"))
    }

    /// Waits for the process to exit; returns its exit code and stdout.
    pub async fn finish(mut self) -> (Option<i32>, String) {
        let child = self.child.take().expect("not finished twice");
        tokio::task::spawn_blocking(move || {
            let output = child.wait_with_output().expect("roomcast exits");
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
            )
        })
        .await
        .expect("the waiting thread")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that failed midway must not leave its process behind.
        if let Some(child) = self.child.as_mut() {
            let _killed = child.kill();
            let _reaped = child.wait();
        }
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
