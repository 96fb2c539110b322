//! Keys and server events in, state and effects out: no terminal, no socket, no clock.

use jiff::tz::TimeZone;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use roomcast_protocol::{RoomMessage, RoomName, ServerFrame, UserName};

use super::{App, Mode, Settings};

mod rooms;
mod server_events;
use crate::event::{Effect, Event};
use crate::net::{Joined, NetCommand, NetEvent};
use crate::rooms::Entry;

/// 2024-05-01 12:00:00 UTC.
pub(crate) const NOON_MS: u64 = 1_714_564_800_000;

pub(crate) fn room(name: &str) -> RoomName {
    RoomName::new(name).expect("valid test room")
}

pub(crate) fn user(name: &str) -> UserName {
    UserName::new(name).expect("valid test user")
}

/// Ana's client with `rooms` listed, at noon, 80x24, not yet connected.
pub(crate) fn app_with(rooms: &[&str], size: (u16, u16)) -> App {
    let settings = Settings {
        server_label: "127.0.0.1:8000".into(),
        time_zone: TimeZone::UTC,
        hide_presence: false,
        show_members: true,
    };
    let rooms: Vec<RoomName> = rooms.iter().map(|r| room(r)).collect();
    App::new(settings, Some(user("ana")), &rooms, NOON_MS, size)
}

pub(crate) fn connected(app: &mut App) {
    let server = roomcast_protocol::ServerInfo {
        version: "test".into(),
        ping_interval_ms: 20_000,
        ping_timeout_ms: 30_000,
        max_message_bytes: 65_536,
        max_queue_bytes: 1 << 20,
        max_rooms_per_session: 100,
        history_size: 100,
        room_ttl_ms: 120_000,
        rate_per_second: 100,
    };
    app.update(Event::Net(NetEvent::Connected {
        user: user("ana"),
        server,
    }));
}

pub(crate) fn joined(name: &str, members: &[&str]) -> Event {
    Event::Net(NetEvent::Joined(Joined {
        room: room(name),
        epoch: "e1".into(),
        seq: 0,
        members: members.iter().map(|m| user(m)).collect(),
        recovered: None,
        replay: 0,
        since: None,
    }))
}

/// Ana's client, connected, in every room of `rooms` with ana and bob.
pub(crate) fn chatting(rooms: &[&str], size: (u16, u16)) -> App {
    let mut app = app_with(rooms, size);
    connected(&mut app);
    for name in rooms {
        app.update(joined(name, &["ana", "bob"]));
    }
    app
}

pub(crate) fn message(room_name: &str, from: &str, seq: u64, text: &str) -> Event {
    Event::Net(NetEvent::Frame(ServerFrame::Message(RoomMessage {
        room: room(room_name),
        user: user(from),
        seq,
        ts: NOON_MS + seq * 60_000,
        message: text.into(),
        data: None,
    })))
}

pub(crate) fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ctrl(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

fn alt(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::ALT))
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        assert_eq!(app.update(key(KeyCode::Char(c))), None);
    }
}

fn active(app: &App) -> &str {
    app.active_room().map_or("", |r| r.name.as_str())
}

fn publish(room_name: &str, text: &str) -> Option<Effect> {
    Some(Effect::Net(NetCommand::Publish {
        room: room(room_name),
        text: text.into(),
    }))
}

#[test]
fn enter_publishes_the_input_to_the_shown_room() {
    let mut app = chatting(&["lobby"], (80, 24));
    type_text(&mut app, "hello");
    assert_eq!(app.update(key(KeyCode::Enter)), publish("lobby", "hello"));
    assert_eq!(app.input(), "");
}

#[test]
fn a_message_stays_in_the_input_until_the_room_is_joined() {
    let mut app = app_with(&["lobby"], (80, 24));
    type_text(&mut app, "early");
    assert_eq!(app.update(key(KeyCode::Enter)), None);
    assert_eq!(app.input(), "early");
    assert!(app.flash.is_some());
}

#[test]
fn nick_reconnects_under_the_new_name() {
    let mut app = chatting(&["lobby"], (80, 24));
    type_text(&mut app, "/nick Ana Lima");
    let effect = app.update(key(KeyCode::Enter));
    assert_eq!(
        effect,
        Some(Effect::Net(NetCommand::Nick(user("Ana Lima"))))
    );
}

#[test]
fn unknown_commands_explain_themselves_and_are_not_sent() {
    let mut app = chatting(&["lobby"], (80, 24));
    type_text(&mut app, "/shrug");
    assert_eq!(app.update(key(KeyCode::Enter)), None);
    assert_eq!(app.input(), "/shrug");
    let flash = app.flash.clone().map(|(text, _)| text).unwrap_or_default();
    assert!(flash.contains("unknown command"), "{flash}");
    app.update(Event::Tick(NOON_MS + super::FLASH_MS));
    assert!(app.flash.is_none());
}

#[test]
fn who_lists_the_members_in_the_room() {
    let mut app = chatting(&["lobby"], (80, 24));
    type_text(&mut app, "/who");
    app.update(key(KeyCode::Enter));
    let last = app.rooms()[0].entries.back().cloned();
    assert!(matches!(last, Some(Entry::Notice { text, .. }) if text == "2 here: ana, bob"));
}

#[test]
fn question_mark_opens_help_only_on_an_empty_input() {
    let mut app = chatting(&["lobby"], (80, 24));
    type_text(&mut app, "why");
    app.update(Event::Key(KeyEvent::new(
        KeyCode::Char('?'),
        KeyModifiers::SHIFT,
    )));
    assert_eq!(app.input(), "why?");
    assert_eq!(app.mode(), &Mode::Normal);
    app.update(ctrl('u'));
    app.update(Event::Key(KeyEvent::new(
        KeyCode::Char('?'),
        KeyModifiers::SHIFT,
    )));
    assert_eq!(app.mode(), &Mode::Help { scroll: 0 });
    app.update(key(KeyCode::Esc));
    assert_eq!(app.mode(), &Mode::Normal);
    app.update(key(KeyCode::F(1)));
    assert_eq!(app.mode(), &Mode::Help { scroll: 0 });
}

#[test]
fn ctrl_k_kills_text_before_it_opens_the_room_filter() {
    let mut app = chatting(&["lobby", "dev", "devops"], (80, 24));
    type_text(&mut app, "abc");
    app.update(ctrl('a'));
    app.update(ctrl('k'));
    assert_eq!((app.input(), app.mode()), ("", &Mode::Normal));
    app.update(ctrl('k'));
    assert!(matches!(app.mode(), Mode::Filter { .. }));
    type_text(&mut app, "ops");
    app.update(key(KeyCode::Enter));
    assert_eq!(active(&app), "devops");
    assert_eq!(app.mode(), &Mode::Normal);
}

#[test]
fn a_multi_line_paste_asks_first_then_goes_out_as_one_message() {
    let mut app = chatting(&["lobby"], (80, 24));
    app.update(Event::Paste("one\r\ntwo\r\nthree\r\n".into()));
    assert!(matches!(app.mode(), Mode::PasteConfirm { .. }));
    assert_eq!(app.input(), "");
    app.update(key(KeyCode::Char('y')));
    assert_eq!(app.input(), "one\ntwo\nthree");
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        publish("lobby", "one\ntwo\nthree")
    );
    app.update(Event::Paste("a\nb".into()));
    app.update(key(KeyCode::Esc));
    assert_eq!((app.input(), app.mode()), ("", &Mode::Normal));
    app.update(Event::Paste("single line".into()));
    assert_eq!(app.input(), "single line");
}

#[test]
fn up_and_down_browse_the_shown_rooms_own_history() {
    let mut app = chatting(&["lobby", "dev"], (80, 24));
    type_text(&mut app, "in lobby");
    app.update(key(KeyCode::Enter));
    app.update(ctrl('n'));
    app.update(key(KeyCode::Up));
    assert_eq!(app.input(), "", "dev has no history");
    app.update(ctrl('p'));
    type_text(&mut app, "draft");
    app.update(key(KeyCode::Up));
    assert_eq!(app.input(), "in lobby");
    app.update(key(KeyCode::Down));
    assert_eq!(app.input(), "draft");
}

#[test]
fn tab_completes_nicks_of_the_room_and_commands() {
    let mut app = chatting(&["lobby"], (80, 24));
    type_text(&mut app, "b");
    app.update(key(KeyCode::Tab));
    assert_eq!(app.input(), "bob: ");
    app.update(ctrl('u'));
    type_text(&mut app, "/ni");
    app.update(key(KeyCode::Tab));
    assert_eq!(app.input(), "/nick ");
}

#[test]
fn scrolling_up_holds_the_view_and_counts_new_messages_below() {
    let mut app = chatting(&["lobby"], (80, 24));
    for seq in 1..=40 {
        app.update(message("lobby", "bob", seq, "filler"));
    }
    app.update(key(KeyCode::PageUp));
    let scrolled = app.rooms()[0].scroll;
    assert!(scrolled > 0);
    app.update(message("lobby", "bob", 41, "new one"));
    assert_eq!(app.rooms()[0].scroll, scrolled + 1, "the view did not move");
    assert_eq!(app.rooms()[0].new_below, 1);
    assert_eq!(app.rooms()[0].unread, 0);
    app.update(key(KeyCode::Home));
    assert!(app.rooms()[0].scroll > scrolled + 1);
    app.update(key(KeyCode::End));
    assert_eq!((app.rooms()[0].scroll, app.rooms()[0].new_below), (0, 0));
}

#[test]
fn ctrl_c_quit_and_signals_all_quit() {
    for event in [ctrl('c'), Event::Terminate] {
        let mut app = chatting(&["lobby"], (80, 24));
        assert_eq!(app.update(event), Some(Effect::Quit));
        assert!(app.is_quitting());
    }
    let mut app = chatting(&["lobby"], (80, 24));
    type_text(&mut app, "/quit");
    assert_eq!(app.update(key(KeyCode::Enter)), Some(Effect::Quit));
}

#[test]
fn a_message_over_the_servers_frame_limit_is_kept_instead_of_sent() {
    let mut app = chatting(&["lobby"], (80, 24));
    let limit = app.server.as_ref().map_or(0, |s| s.max_message_bytes);
    app.update(Event::Paste("x".repeat(limit)));
    assert_eq!(app.update(key(KeyCode::Enter)), None);
    assert_eq!(app.input().len(), limit);
    let flash = app.flash.clone().map(|(text, _)| text).unwrap_or_default();
    assert!(flash.contains("too long"), "{flash}");
}
