//! The room list: unread counts, mentions, switching, joining and leaving.

use ratatui::crossterm::event::KeyCode;
use roomcast_protocol::ServerFrame;

use super::{active, alt, chatting, ctrl, key, message, room, type_text, user};
use crate::event::{Effect, Event};
use crate::net::{NetCommand, NetEvent};

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
