//! Keys and server events in, state and effects out: no terminal, no socket, no clock.

use std::time::Duration;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use roomcast_protocol::{LeaveReason, Position, RoomMessage, RoomName, ServerFrame, UserName};

use super::{App, Link, Mode, Settings};
use crate::event::{Effect, Event};
use crate::net::{Joined, NetCommand, NetEvent};
use crate::rooms::Entry;
use crate::ui::link_text;

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
        utc_offset_secs: 0,
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
    })))
}

fn key(code: KeyCode) -> Event {
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
fn unread_count_resets_when_the_room_is_shown() {
    let mut app = chatting(&["lobby", "dev"], (80, 24));
    app.update(message("dev", "bob", 1, "one"));
    app.update(message("dev", "bob", 2, "two"));
    assert_eq!(app.rooms()[1].unread, 2);
    app.update(ctrl('n'));
    assert_eq!(active(&app), "dev");
    assert_eq!(app.rooms()[1].unread, 0);
}

#[test]
fn own_and_presence_lines_are_not_unread() {
    let mut app = chatting(&["lobby", "dev"], (80, 24));
    app.update(message("dev", "ana", 1, "mine"));
    app.update(Event::Net(NetEvent::Frame(ServerFrame::Join {
        room: room("dev"),
        user: user("cy"),
    })));
    assert_eq!(app.rooms()[1].unread, 0);
}

#[test]
fn a_mention_marks_the_room_and_next_unread_goes_there_first() {
    let mut app = chatting(&["lobby", "dev", "ops"], (80, 24));
    app.update(message("dev", "bob", 1, "plain"));
    app.update(message("ops", "bob", 1, "ana, look"));
    assert!(app.rooms()[2].mentioned && !app.rooms()[1].mentioned);
    app.update(alt('a'));
    assert_eq!(active(&app), "ops");
    app.update(alt('a'));
    assert_eq!(active(&app), "dev");
    app.update(alt('a'));
    assert_eq!(active(&app), "dev", "nothing unread: stay");
}

#[test]
fn rooms_switch_with_ctrl_n_ctrl_p_and_alt_digits() {
    let mut app = chatting(&["a", "b", "c"], (80, 24));
    app.update(ctrl('p'));
    assert_eq!(active(&app), "c");
    app.update(ctrl('n'));
    assert_eq!(active(&app), "a");
    app.update(alt('2'));
    assert_eq!(active(&app), "b");
    app.update(alt('9'));
    assert_eq!(active(&app), "b");
}

#[test]
fn join_adds_the_room_and_asks_the_network_once() {
    let mut app = chatting(&["lobby"], (80, 24));
    type_text(&mut app, "/join dev");
    let effect = app.update(key(KeyCode::Enter));
    assert_eq!(effect, Some(Effect::Net(NetCommand::Join(room("dev")))));
    assert_eq!(active(&app), "dev");
    type_text(&mut app, "/join lobby");
    assert_eq!(app.update(key(KeyCode::Enter)), None);
    assert_eq!(active(&app), "lobby");
    assert_eq!(app.rooms().len(), 2);
}

#[test]
fn leave_removes_the_shown_room_and_tells_the_network() {
    let mut app = chatting(&["lobby", "dev"], (80, 24));
    app.update(ctrl('n'));
    type_text(&mut app, "/leave");
    let effect = app.update(key(KeyCode::Enter));
    assert_eq!(effect, Some(Effect::Net(NetCommand::Leave(room("dev")))));
    assert_eq!(app.rooms().len(), 1);
    assert_eq!(active(&app), "lobby");
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

fn rejoin(recovered: bool, epoch: &str, seq: u64, replay: usize, since: u64) -> Event {
    Event::Net(NetEvent::Joined(Joined {
        room: room("lobby"),
        epoch: epoch.into(),
        seq,
        members: vec![user("ana")],
        recovered: Some(recovered),
        replay,
        since: Some(Position {
            epoch: "e1".into(),
            seq: since,
        }),
    }))
}

fn missing(app: &App) -> Vec<Option<u64>> {
    app.rooms()[0]
        .entries
        .iter()
        .filter_map(|e| match e {
            Entry::Missing { count, .. } => Some(*count),
            _ => None,
        })
        .collect()
}

#[test]
fn a_recovered_rejoin_adds_no_line() {
    let mut app = chatting(&["lobby"], (80, 24));
    let before = app.rooms()[0].entries.len();
    app.update(rejoin(true, "e1", 7, 2, 5));
    app.update(message("lobby", "bob", 6, "six"));
    app.update(message("lobby", "bob", 7, "seven"));
    assert_eq!(app.rooms()[0].entries.len(), before + 2);
    assert!(missing(&app).is_empty());
}

#[test]
fn a_gap_in_the_same_epoch_says_how_many_messages_may_be_missing() {
    let mut app = chatting(&["lobby"], (80, 24));
    app.update(rejoin(false, "e1", 10, 2, 5));
    assert!(
        missing(&app).is_empty(),
        "wait for the first replayed message"
    );
    app.update(message("lobby", "bob", 9, "nine"));
    app.update(message("lobby", "bob", 10, "ten"));
    assert_eq!(missing(&app), [Some(3)]);
}

#[test]
fn a_new_epoch_says_some_messages_may_be_missing() {
    let mut app = chatting(&["lobby"], (80, 24));
    app.update(rejoin(false, "e2", 0, 0, 5));
    assert_eq!(missing(&app), [None]);
}

#[test]
fn the_status_counts_down_to_the_reconnect_and_gives_the_reason() {
    let mut app = chatting(&["lobby"], (80, 24));
    app.update(Event::Net(NetEvent::Disconnected {
        reason: "1001 going_away: server shutting down".into(),
        retry_in: Some(Duration::from_millis(2_500)),
    }));
    assert!(!app.rooms()[0].joined);
    let (text, _) = link_text(&app);
    assert_eq!(
        text,
        "↻ reconnecting in 3s (1001 going_away: server shutting down)"
    );
    app.update(Event::Tick(NOON_MS + 1_000));
    assert!(link_text(&app).0.starts_with("↻ reconnecting in 2s"));
    connected(&mut app);
    app.update(Event::Net(NetEvent::Rtt(Duration::from_millis(12))));
    assert_eq!(link_text(&app).0, "● connected · 12 ms");
}

#[test]
fn a_do_not_retry_close_stops_and_says_what_to_do() {
    let mut app = chatting(&["lobby"], (80, 24));
    app.update(Event::Net(NetEvent::Disconnected {
        reason: "4501 invalid_user".into(),
        retry_in: None,
    }));
    assert!(matches!(app.link(), Link::Stopped { .. }));
    assert!(link_text(&app).0.contains("/nick"));
}

#[test]
fn presence_updates_members_and_lines_can_be_hidden() {
    let mut app = chatting(&["lobby"], (80, 24));
    let join = ServerFrame::Join {
        room: room("lobby"),
        user: user("cy"),
    };
    app.update(Event::Net(NetEvent::Frame(join)));
    assert_eq!(app.rooms()[0].members.len(), 3);
    let leave = ServerFrame::Leave {
        room: room("lobby"),
        user: user("bob"),
        reason: LeaveReason::Timeout,
    };
    app.update(Event::Net(NetEvent::Frame(leave)));
    let names: Vec<&str> = app.rooms()[0].members.iter().map(|u| u.as_str()).collect();
    assert_eq!(names, ["ana", "cy"]);
    assert!(!app.hide_presence);
    app.update(key(KeyCode::F(3)));
    assert!(app.hide_presence);
}

#[test]
fn a_busy_network_puts_the_message_back_in_the_input() {
    let mut app = chatting(&["lobby"], (80, 24));
    app.update(Event::NetBusy(NetCommand::Publish {
        room: room("lobby"),
        text: "lost?".into(),
    }));
    assert_eq!(app.input(), "lost?");
}

#[test]
fn messages_the_server_could_not_take_are_shown_as_errors() {
    let mut app = chatting(&["lobby"], (80, 24));
    app.update(Event::Net(NetEvent::NotSent {
        room: room("lobby"),
        text: "hi".into(),
    }));
    let last = app.rooms()[0].entries.back().cloned();
    assert!(matches!(last, Some(Entry::Notice { error: true, text, .. }) if text.contains("hi")));
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
