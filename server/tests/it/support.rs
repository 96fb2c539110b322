//! A real server on 127.0.0.1:0 and the helpers every test uses to talk to it.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use roomcast_protocol::raw::RawSocket;
use roomcast_protocol::{
    Client, ConnectOptions, Incoming, RoomName, Sender, ServerFrame, ServerUrl, TutorialClient,
    TutorialFrame, TutorialSend, UserName,
};
use roomcast_server::{Config, RoomList, run};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long any single expected event may take before the test fails. Generous for a loaded CI
/// machine; a hang still fails in seconds instead of stalling the suite.
pub const WAIT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test with `what` if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Polls `check` until it returns `Some`, failing after [`WAIT`]. For state with no event to
/// wait on (an HTTP stats route); every poll is a real request.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(value) = check().await {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

pub fn room(name: &str) -> RoomName {
    RoomName::new(name).expect("test room names are valid")
}

pub fn user(name: &str) -> UserName {
    UserName::new(name).expect("test user names are valid")
}

/// A server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    pub url: ServerUrl,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    http: reqwest::Client,
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        Self::start_on(listener, config)
    }

    /// Starts on a listener the test bound (to restart on the same port).
    pub fn start_on(listener: TcpListener, config: Config) -> Self {
        let addr = listener.local_addr().expect("listener address");
        let (stop, stopped) = oneshot::channel::<()>();
        let config = config.validate().expect("test configs are valid");
        let task = tokio::spawn(run(listener, config, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            url: format!("http://{addr}").parse().expect("server URL"),
            stop: Some(stop),
            task: Some(task),
            http: reqwest::Client::new(),
        }
    }

    /// Triggers shutdown and waits for `run` to return; returns how long that took.
    pub async fn stop(mut self) -> Duration {
        let started = Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            within("run() to return after shutdown", task)
                .await
                .expect("server task");
        }
        started.elapsed()
    }

    pub fn http_url(&self, path: &str) -> String {
        self.url.http(path).to_string()
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

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
        Member {
            sender,
            frames,
            reader,
        }
    }

    pub async fn tutorial(&self, room_name: &str) -> TutorialClient {
        within(
            "a tutorial connection",
            TutorialClient::connect(&self.url, &room(room_name), None),
        )
        .await
        .expect("tutorial client connects")
    }

    pub async fn tutorial_as(&self, room_name: &str, name: &str) -> TutorialClient {
        within(
            "a tutorial connection",
            TutorialClient::connect(&self.url, &room(room_name), Some(&user(name))),
        )
        .await
        .expect("tutorial client connects")
    }

    pub async fn typed(&self, name: &str) -> Client {
        let options = ConnectOptions {
            user: Some(user(name)),
            room: None,
        };
        within("a typed connection", Client::connect(&self.url, options))
            .await
            .expect("typed client connects")
    }

    /// A socket that completed the upgrade to `room`'s tutorial URL and is then left to the
    /// test: it answers nothing unless the test writes.
    pub async fn raw(&self, room_name: &str) -> RawSocket {
        let url = self.url.room_socket(&room(room_name));
        within("a raw upgrade", RawSocket::connect(&url, None, WAIT))
            .await
            .expect("raw upgrade")
    }

    /// A raw member of `room_name` (speaking as `name`) that will never read, with a 4 KiB
    /// receive window so the kernel cannot hide that it stopped: a slow reader.
    pub async fn stalled_reader(&self, room_name: &str, name: &str) -> RawSocket {
        let socket = TcpSocket::new_v4().expect("socket");
        socket
            .set_recv_buffer_size(4096)
            .expect("small receive buffer");
        let stream = within("connect", socket.connect(self.addr))
            .await
            .expect("connect");
        let mut url = self.url.room_socket(&room(room_name));
        url.query_pairs_mut().append_pair("user", name);
        within("upgrade", RawSocket::upgrade(stream, &url, None))
            .await
            .expect("upgrade")
    }

    /// [`TestServer::raw`], speaking as `name`.
    pub async fn raw_as(&self, room_name: &str, name: &str) -> RawSocket {
        let mut url = self.url.room_socket(&room(room_name));
        url.query_pairs_mut().append_pair("user", name);
        within("a raw upgrade", RawSocket::connect(&url, None, WAIT))
            .await
            .expect("raw upgrade")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A tutorial client read by a background task; see [`TestServer::member`].
pub struct Member {
    pub sender: Sender<TutorialSend>,
    frames: mpsc::Receiver<Incoming<TutorialFrame>>,
    reader: JoinHandle<()>,
}

impl Member {
    pub async fn say(&mut self, text: &str) {
        let frame = TutorialSend {
            message: text.to_owned(),
        };
        within("a send", self.sender.send(&frame))
            .await
            .expect("send");
    }

    /// The next chat message's text, failing on anything else.
    pub async fn next_text(&mut self) -> String {
        match within("a frame", self.frames.recv()).await {
            Some(Incoming::Frame(TutorialFrame::Message(m))) => m.message,
            other => panic!("expected a chat message, got {other:?}"),
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The next tutorial frame, failing on close or timeout.
pub async fn next_tutorial(client: &mut TutorialClient) -> TutorialFrame {
    match within("a tutorial frame", client.recv())
        .await
        .expect("recv")
    {
        Incoming::Frame(frame) => frame,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// The next tutorial chat message's text.
pub async fn next_text(client: &mut TutorialClient) -> String {
    match next_tutorial(client).await {
        TutorialFrame::Message(message) => message.message,
        other => panic!("expected a chat message, got {other:?}"),
    }
}

/// The next typed frame, failing on close or timeout.
pub async fn next_typed(client: &mut Client) -> ServerFrame {
    match within("a typed frame", client.recv()).await.expect("recv") {
        Incoming::Frame(frame) => frame,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// Skips frames until one matches `pick`.
pub async fn wait_for<T>(
    client: &mut Client,
    what: &str,
    mut pick: impl FnMut(&ServerFrame) -> Option<T>,
) -> T {
    within(what, async {
        loop {
            match client.recv().await.expect("recv") {
                Incoming::Frame(frame) => {
                    if let Some(found) = pick(&frame) {
                        return found;
                    }
                }
                other => panic!("session ended while waiting for {what}: {other:?}"),
            }
        }
    })
    .await
}

/// Reads until the session closes; returns the close code (None without a close frame) and
/// the reason.
pub async fn tutorial_close(client: &mut TutorialClient) -> (Option<u16>, String) {
    within("the session to close", async {
        loop {
            if let Incoming::Closed(info) = client.recv().await.expect("recv before close") {
                return (info.code.map(|c| c.as_u16()), info.reason);
            }
        }
    })
    .await
}

/// Reads until the session closes; returns the close code and the reason.
pub async fn typed_close(client: &mut Client) -> (Option<u16>, String) {
    within("the session to close", async {
        loop {
            if let Incoming::Closed(info) = client.recv().await.expect("recv before close") {
                return (info.code.map(|c| c.as_u16()), info.reason);
            }
        }
    })
    .await
}

/// Reads raw frames until a close frame; returns its code and reason.
pub async fn raw_close(socket: &mut RawSocket) -> (u16, String) {
    loop {
        let frame = socket
            .read_frame()
            .await
            .expect("the server sends frames")
            .expect("a close frame before the end of the stream");
        if let Some(close) = frame.close() {
            return close;
        }
    }
}
