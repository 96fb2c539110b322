//! The shared in-process server (`roomcast-testing`, restartable on the same port) and a
//! harness that runs the network task and feeds its events into an `App`.

use std::time::Duration;

use jiff::tz::TimeZone;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use roomcast_chat::app::{App, Settings};
use roomcast_chat::event::{Effect, Event};
use roomcast_chat::net::{self, NetCommand, NetConfig, NetEvent};
use roomcast_chat::rooms::Entry;
use roomcast_protocol::{Backoff, RoomName, ServerUrl};
pub use roomcast_testing::{TestServer, WAIT, room, user, wait_for, within};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

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
        Self::start_with(url, name, rooms, |_| {})
    }

    /// [`Chat::start`], with `adjust` changing the network task's settings first.
    pub fn start_with(
        url: &ServerUrl,
        name: &str,
        rooms: &[&str],
        adjust: impl FnOnce(&mut NetConfig),
    ) -> Self {
        let rooms: Vec<RoomName> = rooms.iter().map(|r| room(r)).collect();
        let mut config = NetConfig::new(url.clone(), Some(user(name)), rooms.clone());
        config.backoff = Backoff {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(200),
        };
        config.ping_every = Duration::from_millis(200);
        adjust(&mut config);
        let (commands, command_rx) = mpsc::channel(net::COMMAND_QUEUE);
        let (event_tx, events) = mpsc::channel(net::EVENT_QUEUE);
        let task = tokio::spawn(net::run(config, command_rx, event_tx));
        let settings = Settings {
            server_label: url.authority(),
            time_zone: TimeZone::UTC,
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
