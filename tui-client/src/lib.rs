//! roomcast-chat: a terminal chat client for roomcast rooms.
//!
//! # Layout
//! - [`app`]: all state and [`App::update`](app::App::update), the one pure entry point
//!   (`app/keys`, `app/modes`, `app/server` split it by what the event is).
//! - [`event`]: the [`Event`](event::Event)s the app reacts to and the
//!   [`Effect`](event::Effect)s it asks for.
//! - [`net`]: the network task that owns the protocol client (reconnects with the protocol
//!   crate's backoff, rejoins with `since`, pings and drops a server silent past
//!   `--server-timeout`), talking to the app over bounded channels.
//! - [`rooms`], [`input`], [`complete`], [`commands`], [`keymap`]: room state, the input
//!   editor and history, Tab completion, slash commands, and the key table behind the help.
//! - [`ui`], [`layout`]: `impl Widget for &App`, one file per pane.
//! - [`terminal`], [`run`], [`cli`], [`clock`]: raw mode and its restoration, the event loop,
//!   flags, and time formatting.

pub mod app;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod complete;
pub mod event;
pub mod input;
pub mod keymap;
pub mod layout;
pub mod net;
pub mod rooms;
pub mod run;
pub mod terminal;
pub mod ui;
