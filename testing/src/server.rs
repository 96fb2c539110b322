//! [`TestServer`]: the real roomcast server running in this process, on a port of its own.

use std::net::SocketAddr;
use std::time::Duration;

use roomcast_protocol::raw::RawSocket;
use roomcast_protocol::{Client, ConnectOptions, ServerFrame, ServerUrl, TutorialClient};
use roomcast_server::{Config, RoomList, run};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::member::{Member, wait_for};
use crate::wait::{WAIT, within};
use crate::{room, user};

/// Connections the kernel queues before the server accepts them: a test opens at most a few
/// hundred at once.
const LISTEN_BACKLOG: u32 = 1024;

/// A listener on `addr` that a restarted server can bind again at once (SO_REUSEADDR), even
/// while the old server's connections sit in TIME_WAIT. `127.0.0.1:0` picks a free port.
pub fn reusable_listener(addr: SocketAddr) -> TcpListener {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .expect("a TCP socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(addr).expect("bind the test address");
    socket.listen(LISTEN_BACKLOG).expect("listen")
}

/// A server running in this process until [`TestServer::stop`] or drop.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The same, as the base URL every client takes.
    pub url: ServerUrl,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    http: reqwest::Client,
}

impl TestServer {
    /// Starts on a free loopback port (restartable there: see [`TestServer::restart`]).
    pub async fn start(config: Config) -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_on(reusable_listener(loopback), config)
    }

    /// Starts on a listener the test bound (a given port, a socket option under test).
    pub fn start_on(listener: TcpListener, config: Config) -> Self {
        let addr = listener.local_addr().expect("listener address");
        let (stop, stopped) = oneshot::channel::<()>();
        let config = config.validate().expect("test configs are valid");
        let task = tokio::spawn(run(listener, config, async move {
            let _sender_dropped_means_stop = stopped.await;
        }));
        Self {
            addr,
            url: format!("http://{addr}").parse().expect("server URL"),
            stop: Some(stop),
            task: Some(task),
            http: reqwest::Client::new(),
        }
    }

    /// Triggers shutdown (sessions get 1001) and waits for `run` to return; returns how long
    /// that took.
    pub async fn stop(mut self) -> Duration {
        let started = Instant::now();
        if let Some(stop) = self.stop.take() {
            let _already_stopping = stop.send(());
        }
        if let Some(task) = self.task.take() {
            within("run() to return after shutdown", task)
                .await
                .expect("server task");
        }
        started.elapsed()
    }

    /// Stops this server and starts a new one with `config` on the same port: a restart as
    /// clients see it (same address, new epochs, empty rooms).
    pub async fn restart(self, config: Config) -> Self {
        let addr = self.addr;
        self.stop().await;
        Self::start_on(reusable_listener(addr), config)
    }

    /// The absolute URL of `path` on this server (`api/rooms`).
    pub fn http_url(&self, path: &str) -> String {
        self.url.http(path).to_string()
    }

    /// An HTTP client for this server's routes.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `GET /api/rooms`.
    pub async fn rooms(&self) -> RoomList {
        let response = within(
            "GET /api/rooms",
            self.http.get(self.http_url("api/rooms")).send(),
        )
        .await
        .expect("GET /api/rooms");
        response.json().await.expect("room list")
    }

    /// Sessions in `name`, 0 if the room does not exist.
    pub async fn sessions_in(&self, name: &str) -> usize {
        self.rooms()
            .await
            .rooms
            .into_iter()
            .find(|r| r.room.as_str() == name)
            .map_or(0, |r| r.sessions)
    }

    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        within(
            "GET /metrics",
            self.http.get(self.http_url("metrics")).send(),
        )
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
    }

    /// `POST /api/rooms/{room}/messages` with `{"message": text, "user": user}`; the response,
    /// whatever its status.
    pub async fn publish_as(&self, room_name: &str, user: &str, text: &str) -> reqwest::Response {
        let url = self.http_url(&format!("api/rooms/{room_name}/messages"));
        within(
            "publish",
            self.http
                .post(url)
                .json(&serde_json::json!({"message": text, "user": user}))
                .send(),
        )
        .await
        .expect("publish request")
    }

    /// Publishes `message` through the POC's HTTP send-test route, failing on any refusal.
    pub async fn send_test(&self, room_name: &str, message: &str) {
        let url = self.http_url(&format!("chat/{room_name}/send-test/"));
        let response = within(
            "send-test",
            self.http.get(url).query(&[("message", message)]).send(),
        )
        .await
        .expect("send-test request");
        assert!(
            response.status().is_success(),
            "send-test: {}",
            response.status()
        );
    }

    /// A tutorial member whose frames are read by a background task, so it keeps answering
    /// pings while the test waits on something else (a real client always reads).
    pub async fn member(&self, room_name: &str) -> Member {
        let (sender, mut receiver) = self.tutorial(room_name).await.split();
        let (forward, frames) = mpsc::channel(1024);
        let reader = tokio::spawn(async move {
            while let Ok(incoming) = receiver.recv().await {
                if forward.send(incoming).await.is_err() {
                    break;
                }
            }
        });
        Member::new(sender, frames, reader)
    }

    /// A tutorial session in `room_name`, the server naming its user.
    pub async fn tutorial(&self, room_name: &str) -> TutorialClient {
        within(
            "a tutorial connection",
            TutorialClient::connect(&self.url, &room(room_name), None),
        )
        .await
        .expect("tutorial client connects")
    }

    /// A tutorial session in `room_name`, speaking as `name`.
    pub async fn tutorial_as(&self, room_name: &str, name: &str) -> TutorialClient {
        within(
            "a tutorial connection",
            TutorialClient::connect(&self.url, &room(room_name), Some(&user(name))),
        )
        .await
        .expect("tutorial client connects")
    }

    /// A typed session speaking as `name`, past its `welcome`, in no room yet.
    pub async fn typed(&self, name: &str) -> Client {
        let options = ConnectOptions {
            user: Some(user(name)),
            room: None,
            token: None,
        };
        within("a typed connection", Client::connect(&self.url, options))
            .await
            .expect("typed client connects")
    }

    /// A typed session speaking as `name` that has joined `room_name` (its `joined` read).
    pub async fn peer(&self, name: &str, room_name: &str) -> Client {
        let mut client = self.typed(name).await;
        within("the peer's join", client.join(&room(room_name), None, None))
            .await
            .expect("peer joins");
        wait_for(&mut client, "the peer's joined", |f| {
            matches!(f, ServerFrame::Joined { .. }).then_some(())
        })
        .await;
        client
    }

    /// A socket that completed the upgrade to `room`'s tutorial URL and is then left to the
    /// test: it answers nothing unless the test writes.
    pub async fn raw(&self, room_name: &str) -> RawSocket {
        let url = self.url.room_socket(&room(room_name));
        within("a raw upgrade", RawSocket::connect(&url, None, WAIT))
            .await
            .expect("raw upgrade")
    }

    /// [`TestServer::raw`], speaking as `name`.
    pub async fn raw_as(&self, room_name: &str, name: &str) -> RawSocket {
        let mut url = self.url.room_socket(&room(room_name));
        url.query_pairs_mut().append_pair("user", name);
        within("a raw upgrade", RawSocket::connect(&url, None, WAIT))
            .await
            .expect("raw upgrade")
    }

    /// A raw member of `room_name` (speaking as `name`) that will never read, with a 4 KiB
    /// receive window so the kernel cannot hide that it stopped: a slow reader.
    pub async fn stalled_reader(&self, room_name: &str, name: &str) -> RawSocket {
        let mut url = self.url.room_socket(&room(room_name));
        url.query_pairs_mut().append_pair("user", name);
        self.small_window(&url, None).await
    }

    /// A raw socket upgraded at `url` (asking for `subprotocol`) with a 4 KiB receive window:
    /// whatever the test does not read soon stays in the server instead of the kernel.
    pub async fn small_window(&self, url: &url::Url, subprotocol: Option<&str>) -> RawSocket {
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .set_recv_buffer_size(4096)
            .expect("small receive buffer");
        let stream = within("connect", socket.connect(self.addr))
            .await
            .expect("connect");
        within("upgrade", RawSocket::upgrade(stream, url, subprotocol))
            .await
            .expect("upgrade")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A test that failed midway must not leave its server serving.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The value on the first line of a `/metrics` text that starts with `sample ` (name and labels).
pub fn sample_value(metrics: &str, sample: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(sample)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
