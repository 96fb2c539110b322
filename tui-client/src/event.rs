//! What reaches [`App::update`](crate::app::App::update) and what it asks for in return.
//! Everything the app reacts to is an [`Event`] value, so tests drive it without a terminal or
//! a socket; everything it wants done is an [`Effect`] value, performed by `run`.

use ratatui::crossterm::event::KeyEvent;

use crate::net::{NetCommand, NetEvent};

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A key press.
    Key(KeyEvent),
    /// Bracketed paste: the whole pasted text at once.
    Paste(String),
    /// Mouse wheel rows (positive scrolls up, into the past); only with `--mouse`.
    Scroll(i16),
    /// The terminal's new size in columns and rows.
    Resize(u16, u16),
    /// The clock, in milliseconds since the Unix epoch. Time only moves through this event.
    Tick(u64),
    /// News from the network task.
    Net(NetEvent),
    /// The network task's queue was full, so this command was not handed over.
    NetBusy(NetCommand),
    /// A signal (SIGTERM, SIGHUP, SIGINT) asks the program to end.
    Terminate,
}

/// What the app asks `run` to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Hand a command to the network task.
    Net(NetCommand),
    /// Close the session cleanly and restore the terminal.
    Quit,
}
