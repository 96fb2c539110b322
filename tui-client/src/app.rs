//! The chat's state and its one entry point, [`App::update`]: an [`Event`] in, state changed,
//! at most one [`Effect`] out. No I/O and no clock reads happen here, so every behaviour is a
//! unit test and every screen a deterministic snapshot.

mod keys;
mod modes;
mod server;

use std::time::Duration;

use jiff::tz::TimeZone;
use roomcast_protocol::{RoomName, ServerInfo, UserName};

use crate::complete::Completion;
use crate::event::{Effect, Event};
use crate::input::Editor;
use crate::layout::{self, Areas};
use crate::net::NetCommand;
use crate::rooms::{Entry, Room};

/// How long a status-line notice ("unknown command", "no unread rooms") stays, in ms.
pub const FLASH_MS: u64 = 5_000;

/// The connection as the status line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Dialing; `attempt` counts failures since the last good session.
    Connecting {
        /// Failed tries so far.
        attempt: u32,
    },
    /// Connected; `rtt` once the first application ping returned.
    Connected {
        /// The last measured round trip.
        rtt: Option<Duration>,
    },
    /// Waiting to retry.
    Reconnecting {
        /// Clock time (ms) of the next try.
        at_ms: u64,
        /// Why the last session ended.
        reason: String,
    },
    /// The server said not to come back (e.g. an invalid name); `/nick` or `/quit`.
    Stopped {
        /// Why.
        reason: String,
    },
}

/// What has the keyboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Typing into the input line.
    Normal,
    /// The help overlay, scrolled by `scroll` rows.
    Help {
        /// Rows scrolled.
        scroll: usize,
    },
    /// The room filter (Ctrl-K).
    Filter {
        /// Text typed so far.
        query: String,
        /// Index into the matching rooms.
        selected: usize,
    },
    /// A multi-line paste waiting for a yes or no.
    PasteConfirm {
        /// The pasted text.
        text: String,
    },
}

/// Start-up choices that do not change while running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How the status line names the server (`host:port`).
    pub server_label: String,
    /// The time zone timestamps are shown in (its rules, so daylight saving is followed).
    pub time_zone: TimeZone,
    /// Whether join/leave lines start hidden.
    pub hide_presence: bool,
    /// Whether the member list starts shown.
    pub show_members: bool,
}

/// The whole client state.
#[derive(Debug, Clone)]
pub struct App {
    pub(crate) settings: Settings,
    /// Who this client speaks as (asked for until `welcome` says).
    pub(crate) me: Option<UserName>,
    pub(crate) rooms: Vec<Room>,
    pub(crate) active: usize,
    pub(crate) editor: Editor,
    pub(crate) completion: Option<Completion>,
    pub(crate) mode: Mode,
    pub(crate) link: Link,
    pub(crate) server: Option<ServerInfo>,
    pub(crate) now_ms: u64,
    pub(crate) size: (u16, u16),
    pub(crate) hide_presence: bool,
    pub(crate) show_members: bool,
    /// A transient status-line notice and when it expires (clock ms).
    pub(crate) flash: Option<(String, u64)>,
    pub(crate) quitting: bool,
}

impl App {
    /// A client about to join `rooms` as `me`, at clock time `now_ms`, on a `size` terminal.
    pub fn new(
        settings: Settings,
        me: Option<UserName>,
        rooms: &[RoomName],
        now_ms: u64,
        size: (u16, u16),
    ) -> Self {
        let mut app = Self {
            hide_presence: settings.hide_presence,
            show_members: settings.show_members,
            settings,
            me,
            rooms: Vec::new(),
            active: 0,
            editor: Editor::default(),
            completion: None,
            mode: Mode::Normal,
            link: Link::Connecting { attempt: 0 },
            server: None,
            now_ms,
            size,
            flash: None,
            quitting: false,
        };
        for room in rooms {
            if app.room_index(room).is_none() {
                app.rooms.push(Room::new(room.clone()));
            }
        }
        app
    }

    /// Applies one event; returns what must be done outside (network, quitting).
    pub fn update(&mut self, event: Event) -> Option<Effect> {
        match event {
            Event::Tick(now_ms) => {
                self.now_ms = now_ms;
                if self
                    .flash
                    .as_ref()
                    .is_some_and(|(_, until)| *until <= now_ms)
                {
                    self.flash = None;
                }
                None
            }
            Event::Resize(width, height) => {
                self.size = (width, height);
                if let Some(room) = self.rooms.get_mut(self.active) {
                    room.scroll = 0;
                    room.new_below = 0;
                }
                None
            }
            Event::Key(key) => self.on_key(&key),
            Event::Paste(text) => self.on_paste(&text),
            Event::Scroll(rows) => {
                self.scroll_by(isize::from(rows));
                None
            }
            Event::Net(event) => self.on_net(event),
            Event::NetBusy(command) => {
                self.on_net_busy(command);
                None
            }
            Event::Terminate => self.quit(),
        }
    }

    pub(crate) fn quit(&mut self) -> Option<Effect> {
        self.quitting = true;
        Some(Effect::Quit)
    }

    /// True once the app asked to quit.
    pub fn is_quitting(&self) -> bool {
        self.quitting
    }

    /// The rooms in list order.
    pub fn rooms(&self) -> &[Room] {
        &self.rooms
    }

    /// The room on screen.
    pub fn active_room(&self) -> Option<&Room> {
        self.rooms.get(self.active)
    }

    /// The connection state.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// What the input line holds.
    pub fn input(&self) -> &str {
        self.editor.text()
    }

    /// Who this client speaks as.
    pub fn me(&self) -> Option<&UserName> {
        self.me.as_ref()
    }

    /// What has the keyboard.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    pub(crate) fn room_index(&self, name: &RoomName) -> Option<usize> {
        self.rooms.iter().position(|r| r.name == *name)
    }

    /// Screen areas for the current size and state (shared with rendering).
    pub fn areas(&self) -> Areas {
        layout::areas(
            self.size,
            self.show_members && self.active_room().is_some(),
            crate::ui::input_rows(self),
        )
    }

    pub(crate) fn flash(&mut self, text: impl Into<String>) {
        self.flash = Some((text.into(), self.now_ms + FLASH_MS));
    }

    /// Shows room `index`: it becomes read, and its view follows new messages.
    pub(crate) fn show_room(&mut self, index: usize) {
        if index >= self.rooms.len() {
            return;
        }
        self.active = index;
        if let Some(room) = self.rooms.get_mut(index) {
            room.mark_read();
        }
    }

    /// Adds a notice line to the shown room, or flashes it when no room is shown.
    pub(crate) fn notice(&mut self, text: String, error: bool) {
        let ts = self.now_ms;
        match self.rooms.get_mut(self.active) {
            Some(room) => room.push(Entry::Notice { ts, text, error }),
            None => self.flash(text),
        }
    }

    fn on_net_busy(&mut self, command: NetCommand) {
        match command {
            NetCommand::Publish { text, .. } => {
                // Put the text back so nothing typed is lost.
                if self.editor.is_empty() {
                    self.editor.set(text);
                }
                self.flash("network busy: message not sent (it is back in the input)");
            }
            other => self.flash(format!("network busy: {other:?} not done; try again")),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
