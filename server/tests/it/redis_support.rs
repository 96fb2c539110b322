//! A real `redis-server` on a free loopback port, started and stopped by the test that owns it,
//! and roomcast nodes pointed at it (in this process, or as child processes a test can kill).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use roomcast_server::Config;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::support::{TestServer, eventually, within};

/// A redis-server child process, killed (by PID, through its handle) when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    /// Where the append-only file lives, for servers that must survive a restart.
    dir: Option<PathBuf>,
}

/// A port nobody listens on right now (the kernel's pick, released for the child to bind).
pub async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    listener.local_addr().expect("address").port()
}

impl RedisServer {
    /// Without persistence: `--save '' --appendonly no`.
    pub async fn start() -> Self {
        let mut server = Self {
            port: free_port().await,
            child: None,
            dir: None,
        };
        server.spawn().await;
        server
    }

    /// With an append-only file synced on every write, so a restart loses nothing that Redis
    /// acknowledged.
    pub async fn start_persistent() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "roomcast-redis-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).expect("a directory for the AOF");
        let mut server = Self {
            port: free_port().await,
            child: None,
            dir: Some(dir),
        };
        server.spawn().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let mut command = Command::new("redis-server");
        command
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("");
        match &self.dir {
            Some(dir) => {
                command
                    .arg("--appendonly")
                    .arg("yes")
                    .arg("--appendfsync")
                    .arg("always")
                    .arg("--dir")
                    .arg(dir);
            }
            None => {
                command.arg("--appendonly").arg("no");
            }
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be installed (scripts/check installs it)");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).expect("redis URL");
        eventually("redis-server to answer PING", || {
            let client = client.clone();
            async move {
                let mut connection = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .ok()
            }
        })
        .await;
    }

    /// Kills the server (SIGKILL) and waits until it is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("kill redis-server");
            within("redis-server to exit", child.wait())
                .await
                .expect("wait for redis-server");
        }
    }

    /// Starts the server again on the same port (and the same AOF).
    pub async fn restart(&mut self) {
        self.spawn().await;
    }

    /// A command connection for the test's own questions.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url()).expect("redis URL");
        within(
            "a Redis connection",
            client.get_multiplexed_async_connection(),
        )
        .await
        .expect("connect to redis-server")
    }

    /// The channels some client subscribes to (`PUBSUB CHANNELS`).
    pub async fn channels(&self) -> Vec<String> {
        let mut connection = self.connection().await;
        let mut channels: Vec<String> = redis::cmd("PUBSUB")
            .arg("CHANNELS")
            .query_async(&mut connection)
            .await
            .expect("PUBSUB CHANNELS");
        channels.sort();
        channels
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The settings every relayed test node uses: `urls`, and a short node timeout so a dead
/// node is noticed within a test's patience.
pub fn relayed(urls: &[String]) -> Config {
    Config {
        redis_url: urls.to_vec(),
        redis_node_timeout: Duration::from_secs(1),
        ..Config::default()
    }
}

/// A node in this process, relayed through `urls`, once `/readyz` says it reached Redis.
pub async fn node(urls: &[String]) -> TestServer {
    let server = TestServer::start(relayed(urls)).await;
    wait_ready(&server, true).await;
    server
}

/// Waits until `/readyz` answers 200 (`ready`) or 503.
pub async fn wait_ready(server: &TestServer, ready: bool) {
    let url = server.http_url("readyz");
    let what = if ready {
        "the node to be ready"
    } else {
        "the node to report not ready"
    };
    eventually(what, || {
        let request = server.http().get(&url).send();
        async move {
            let status = request.await.ok()?.status();
            (status.is_success() == ready).then_some(())
        }
    })
    .await;
}

/// A roomcast-server child process on `port`, killed on drop.
pub struct NodeProcess {
    pub url: roomcast_protocol::ServerUrl,
    child: Option<Child>,
}

impl NodeProcess {
    pub async fn start(redis: &str, node_timeout: &str) -> Self {
        Self::start_with(redis, node_timeout, &[]).await
    }

    /// Like [`NodeProcess::start`], with more flags.
    pub async fn start_with(redis: &str, node_timeout: &str, flags: &[&str]) -> Self {
        let port = free_port().await;
        let child = Command::new(env!("CARGO_BIN_EXE_roomcast-server"))
            .args(flags)
            .arg("--port")
            .arg(port.to_string())
            .arg("--redis-url")
            .arg(redis)
            .arg("--redis-node-timeout")
            .arg(node_timeout)
            .env_remove("ROOMCAST_REDIS_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start roomcast-server");
        let url: roomcast_protocol::ServerUrl = format!("http://127.0.0.1:{port}")
            .parse()
            .expect("node URL");
        let http = reqwest::Client::new();
        let ready = url.http("readyz").to_string();
        eventually("the node process to be ready", || {
            let request = http.get(&ready).send();
            async move { request.await.ok()?.status().is_success().then_some(()) }
        })
        .await;
        Self {
            url,
            child: Some(child),
        }
    }

    /// SIGKILL: the node dies without a word.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("kill the node");
            within("the node to exit", child.wait())
                .await
                .expect("wait for the node");
        }
    }
}
