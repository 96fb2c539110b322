//! A real server on 127.0.0.1 (restartable on the same port) and a harness that runs the network task and feeds its events into an `App`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use roomcast_chat::app::{App, Settings};
use roomcast_chat::backoff::Backoff;
use roomcast_chat::event::{Effect, Event};
use roomcast_chat::net::{self, NetCommand, NetConfig, NetEvent};
use roomcast_chat::rooms::Entry;
use roomcast_protocol::{
    Client, ConnectOptions, Incoming, RoomName, ServerFrame, ServerUrl, UserName,
};
use roomcast_server::{Config, run};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How long any expected event may take before the test fails: generous for a loaded CI
/// machine, and a hang still fails in seconds.
pub const WAIT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test with `what` after [`WAIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

pub fn room(name: &str) -> RoomName {
    RoomName::new(name).expect("valid test room")
}

pub fn user(name: &str) -> UserName {
    UserName::new(name).expect("valid test user")
}

/// A listener that a restarted server can bind again at once (SO_REUSEADDR), even while the
/// old server's connections sit in TIME_WAIT.
fn reusable_listener(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("a TCP socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(addr).expect("bind the test address");
    socket.listen(1024).expect("listen")
}

/// A roomcast server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    pub url: ServerUrl,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts on a free port.
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("loopback address"))
    }

    /// Starts on `addr` (a restart reuses the old server's port).
    pub fn start_on(addr: SocketAddr) -> Self {
        let listener = reusable_listener(addr);
        let addr = listener.local_addr().expect("listener address");
        let config = Config {
            shutdown_grace: Duration::from_secs(2),
            ..Config::default()
        };
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
        }
    }

    /// Shuts down (sessions get 1001) and waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _already_stopping = stop.send(());
        }
        if let Some(task) = self.task.take() {
            within("the server to stop", task)
                .await
                .expect("server task");
        }
    }

    /// Publishes through the POC's HTTP send-test route.
    pub async fn send_test(&self, room_name: &str, message: &str) {
        let url = self.url.http(&format!("chat/{room_name}/send-test/"));
        let response = within(
            "send-test",
            reqwest::Client::new()
                .get(url)
                .query(&[("message", message)])
                .send(),
        )
        .await
        .expect("send-test request");
        assert!(
            response.status().is_success(),
            "send-test: {}",
            response.status()
        );
    }

    /// A typed client (the protocol crate's own) joined to `room_name`.
    pub async fn peer(&self, name: &str, room_name: &str) -> Client {
        let options = ConnectOptions {
            user: Some(user(name)),
            room: None,
        };
        let mut client = within("a peer connection", Client::connect(&self.url, options))
            .await
            .expect("peer connects");
        within("the peer's join", client.join(&room(room_name), None, None))
            .await
            .expect("peer joins");
        next_frame(&mut client, "the peer's joined", |f| {
            matches!(f, ServerFrame::Joined { .. }).then_some(())
        })
        .await;
        client
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Reads `client` until `pick` returns something.
pub async fn next_frame<T>(
    client: &mut Client,
    what: &str,
    mut pick: impl FnMut(&ServerFrame) -> Option<T>,
) -> T {
    within(what, async {
        loop {
            match client.recv().await.expect("peer reads") {
                Incoming::Frame(frame) => {
                    if let Some(found) = pick(&frame) {
                        return found;
                    }
                }
                other => panic!("peer session ended waiting for {what}: {other:?}"),
            }
        }
    })
    .await
}

/// The app and its network task, wired as `run` wires them, minus the terminal.
pub struct Chat {
    pub app: App,
    commands: mpsc::Sender<NetCommand>,
    events: mpsc::Receiver<NetEvent>,
    task: JoinHandle<()>,
}

impl Chat {
    /// `name` joining `rooms` on `url`, with fast retries and pings so tests take seconds.
    pub fn start(url: &ServerUrl, name: &str, rooms: &[&str]) -> Self {
        let rooms: Vec<RoomName> = rooms.iter().map(|r| room(r)).collect();
        let mut config = NetConfig::new(url.clone(), Some(user(name)), rooms.clone());
        config.backoff = Backoff {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(200),
        };
        config.ping_every = Duration::from_millis(200);
        let (commands, command_rx) = mpsc::channel(net::COMMAND_QUEUE);
        let (event_tx, events) = mpsc::channel(net::EVENT_QUEUE);
        let task = tokio::spawn(net::run(config, command_rx, event_tx));
        let settings = Settings {
            server_label: url.authority(),
            utc_offset_secs: 0,
            hide_presence: false,
            show_members: true,
        };
        let app = App::new(settings, Some(user(name)), &rooms, 0, (80, 24));
        Self {
            app,
            commands,
            events,
            task,
        }
    }

    fn apply(&mut self, event: Event) {
        match self.app.update(event) {
            Some(Effect::Net(command)) => self
                .commands
                .try_send(command)
                .expect("the command queue has room"),
            Some(Effect::Quit) | None => {}
        }
    }

    /// Feeds network events to the app until `done` holds.
    pub async fn until(&mut self, what: &str, done: impl Fn(&App) -> bool) {
        within(what, async {
            while !done(&self.app) {
                let event = self
                    .events
                    .recv()
                    .await
                    .expect("the network task is running");
                self.apply(Event::Net(event));
            }
        })
        .await;
    }

    /// Types `line` and presses Enter.
    pub fn type_line(&mut self, line: &str) {
        for c in line.chars() {
            self.apply(Event::Key(KeyEvent::new(
                KeyCode::Char(c),
                KeyModifiers::NONE,
            )));
        }
        self.apply(Event::Key(KeyEvent::new(
            KeyCode::Enter,
            KeyModifiers::NONE,
        )));
    }

    /// Quits and waits for the network task to close the session.
    pub async fn quit(self) {
        self.commands
            .try_send(NetCommand::Quit)
            .expect("queue has room");
        within("the network task to end", self.task)
            .await
            .expect("net task");
    }
}

/// The texts of the messages in `room_name`, in order.
pub fn texts(app: &App, room_name: &str) -> Vec<String> {
    entries(app, room_name)
        .into_iter()
        .filter_map(|e| match e {
            Entry::Message { text, .. } => Some(text),
            _ => None,
        })
        .collect()
}

/// The timeline of `room_name`.
pub fn entries(app: &App, room_name: &str) -> Vec<Entry> {
    app.rooms()
        .iter()
        .find(|r| r.name.as_str() == room_name)
        .map(|r| r.entries.iter().cloned().collect())
        .unwrap_or_default()
}

/// True when `room_name` is joined.
pub fn is_joined(app: &App, room_name: &str) -> bool {
    app.rooms()
        .iter()
        .any(|r| r.name.as_str() == room_name && r.joined)
}
