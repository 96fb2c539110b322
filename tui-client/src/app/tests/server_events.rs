//! Server events in, room state and the status line out.

use std::time::Duration;

use roomcast_protocol::{LeaveReason, Position, ServerFrame};

use super::{NOON_MS, chatting, connected, key, message, room, user};
use crate::app::{App, Link};
use crate::event::Event;
use crate::net::{Joined, NetCommand, NetEvent};
use crate::rooms::Entry;
use crate::ui::link_text;
use ratatui::crossterm::event::KeyCode;

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
