//! Whole-screen snapshots at 80x24 and 40x12 (`src/ui/snapshots/`). The clock and the time zone
//! are fixed, so a changed screen is a changed `.snap` file to review.

use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use roomcast_protocol::{LeaveReason, Position, ServerFrame};

use crate::app::App;
use crate::app::tests::{NOON_MS, app_with, chatting, message, room, user};
use crate::event::Event;
use crate::net::{Joined, NetEvent};

const SIZES: [(u16, u16); 2] = [(80, 24), (40, 12)];

fn screen(app: &App) -> String {
    let (width, height) = app.size;
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|frame| frame.render_widget(app, frame.area()))
        .expect("drawing never fails on a test backend");
    terminal.backend().to_string()
}

/// Snapshots the screen `build` makes at each size.
fn snapshot_at_every_size(name: &str, build: impl Fn((u16, u16)) -> App) {
    for size in SIZES {
        let app = build(size);
        insta::assert_snapshot!(format!("{name}_{}x{}", size.0, size.1), screen(&app));
    }
}

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn presence(name: &str, who: &str, left: Option<LeaveReason>) -> Event {
    let frame = match left {
        None => ServerFrame::Join {
            room: room(name),
            user: user(who),
        },
        Some(reason) => ServerFrame::Leave {
            room: room(name),
            user: user(who),
            reason,
        },
    };
    Event::Net(NetEvent::Frame(frame))
}

fn rtt(app: &mut App, ms: u64) {
    app.update(Event::Net(NetEvent::Rtt(Duration::from_millis(ms))));
}

/// Ana in lobby with a lively conversation.
fn busy(size: (u16, u16)) -> App {
    let mut app = chatting(&["lobby", "dev", "random"], size);
    rtt(&mut app, 12);
    app.update(presence("lobby", "Carla", None));
    app.update(message("lobby", "bob", 1, "morning all"));
    app.update(message("lobby", "Carla", 2, "hi! did the deploy go out?"));
    app.update(message(
        "lobby",
        "ana",
        3,
        "yes, at 11:40. the release notes are in the wiki, and the dashboards look calm so far",
    ));
    app.update(message("lobby", "server", 4, "send-test: hello from HTTP"));
    app.update(message(
        "lobby",
        "李雷",
        5,
        "宽字符也要对齐：这一行应该正确换行而不是溢出",
    ));
    app.update(Event::Tick(NOON_MS + 5 * 60_000 + 30_000));
    app.update(presence("lobby", "bob", Some(LeaveReason::Timeout)));
    app.update(message("lobby", "Carla", 6, "ana: nice work"));
    app
}

#[test]
fn empty_start() {
    snapshot_at_every_size("empty_start", |size| app_with(&[], size));
}

#[test]
fn busy_room() {
    snapshot_at_every_size("busy_room", busy);
}

#[test]
fn busy_room_with_join_lines_hidden() {
    snapshot_at_every_size("busy_room_joins_hidden", |size| {
        let mut app = busy(size);
        app.update(key(KeyCode::F(3)));
        app
    });
}

#[test]
fn unread_counts() {
    snapshot_at_every_size("unread_counts", |size| {
        let mut app = busy(size);
        for seq in 1..=3 {
            app.update(message("dev", "bob", seq, "build is green"));
        }
        app.update(message("random", "Carla", 1, "lunch, ana?"));
        app.update(message("random", "bob", 2, "+1"));
        app
    });
}

#[test]
fn scrolled_up_marker() {
    snapshot_at_every_size("scrolled_up", |size| {
        let mut app = chatting(&["lobby"], size);
        rtt(&mut app, 12);
        for seq in 1..=30 {
            app.update(message(
                "lobby",
                "bob",
                seq,
                &format!("message number {seq}"),
            ));
        }
        app.update(key(KeyCode::PageUp));
        app.update(message("lobby", "Carla", 31, "you missed this"));
        app.update(message("lobby", "Carla", 32, "and this"));
        app
    });
}

#[test]
fn help_overlay() {
    snapshot_at_every_size("help_overlay", |size| {
        let mut app = busy(size);
        app.update(key(KeyCode::F(1)));
        app
    });
}

#[test]
fn reconnecting_status() {
    snapshot_at_every_size("reconnecting", |size| {
        let mut app = busy(size);
        app.update(Event::Net(NetEvent::Disconnected {
            reason: "1001 going_away: server shutting down".into(),
            retry_in: Some(Duration::from_secs(4)),
        }));
        app
    });
}

#[test]
fn missing_messages_line() {
    snapshot_at_every_size("missing_messages", |size| {
        let mut app = busy(size);
        app.update(Event::Net(NetEvent::Disconnected {
            reason: "connection lost (no close frame)".into(),
            retry_in: Some(Duration::from_millis(400)),
        }));
        app.update(Event::Tick(NOON_MS + 10 * 60_000));
        app.update(Event::Net(NetEvent::Connected {
            user: user("ana"),
            server: app.server.clone().expect("connected before"),
        }));
        for (name, epoch, recovered) in [
            ("lobby", "e1", false),
            ("dev", "e2", false),
            ("random", "e1", true),
        ] {
            app.update(Event::Net(NetEvent::Joined(Joined {
                room: room(name),
                epoch: epoch.into(),
                seq: 12,
                members: vec![user("ana"), user("Carla")],
                recovered: Some(recovered),
                replay: 2,
                since: Some(Position {
                    epoch: "e1".into(),
                    seq: 6,
                }),
            })));
        }
        app.update(message("lobby", "Carla", 11, "anyone there?"));
        app.update(message("lobby", "Carla", 12, "ana?"));
        rtt(&mut app, 9);
        app
    });
}

#[test]
fn room_filter_and_paste_question() {
    snapshot_at_every_size("room_filter", |size| {
        let mut app = busy(size);
        app.update(Event::Key(KeyEvent::new(
            KeyCode::Char('k'),
            KeyModifiers::CONTROL,
        )));
        app.update(key(KeyCode::Char('d')));
        app
    });
    snapshot_at_every_size("paste_question", |size| {
        let mut app = busy(size);
        app.update(Event::Paste("line one\nline two\nline three".into()));
        app
    });
}

#[test]
fn a_long_input_grows_upwards_into_the_timeline() {
    snapshot_at_every_size("long_input", |size| {
        let mut app = busy(size);
        for c in "this is a long draft that keeps going and going, because the input line grows instead of scrolling sideways".chars() {
            app.update(key(KeyCode::Char(c)));
        }
        app
    });
}

/// Renders into a bare buffer (TestBackend's text view cannot show a 0-wide screen).
fn draw(app: &App) {
    use ratatui::widgets::Widget;
    let area = ratatui::layout::Rect::new(0, 0, app.size.0, app.size.1);
    let mut buf = ratatui::buffer::Buffer::empty(area);
    app.render(area, &mut buf);
}

#[test]
fn no_terminal_size_makes_drawing_panic() {
    // tmux hands a freshly split pane one row at first; a resize can pass through 0x0.
    for width in (0..=45).chain([60, 70, 80, 160]) {
        for height in 0..=14 {
            let mut app = busy((width, height));
            draw(&app);
            for event in [key(KeyCode::F(1)), key(KeyCode::Esc), key(KeyCode::PageUp)] {
                app.update(event);
                draw(&app);
            }
            app.update(Event::Key(KeyEvent::new(
                KeyCode::Char('k'),
                KeyModifiers::CONTROL,
            )));
            draw(&app);
            app.update(Event::Paste("a\nb".into()));
            draw(&app);
        }
    }
}

/// The cell where `needle` starts on screen (rows without wide characters).
fn find(buf: &ratatui::buffer::Buffer, needle: &str) -> (u16, u16) {
    for y in 0..buf.area.height {
        let row: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
        if let Some(at) = row.find(needle) {
            let x = row[..at].chars().count();
            return (u16::try_from(x).expect("fits a screen"), y);
        }
    }
    panic!("{needle:?} is not on screen");
}

#[test]
fn nicks_are_coloured_by_name_and_join_lines_dimmed() {
    use ratatui::style::{Color, Modifier};

    let app = busy((80, 24));
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
    terminal
        .draw(|frame| frame.render_widget(&app, frame.area()))
        .expect("drawing never fails on a test backend");
    let buf = terminal.backend().buffer();
    let (x, y) = find(buf, "bob: morning");
    assert_eq!(buf[(x, y)].fg, super::palette::nick_colour("bob"));
    let (x, y) = find(buf, "Carla: hi!");
    assert_eq!(buf[(x, y)].fg, super::palette::nick_colour("Carla"));
    let (x, y) = find(buf, "ana: yes");
    assert!(
        buf[(x, y)].modifier.contains(Modifier::BOLD),
        "own nick is bold"
    );
    let (x, y) = find(buf, "→ Carla joined");
    assert_eq!(buf[(x, y)].fg, Color::DarkGray);
    let (x, y) = find(buf, "ana: nice work");
    assert_eq!(buf[(x, y)].fg, Color::Yellow, "a mention stands out");
}

#[test]
fn escape_sequences_in_a_peers_message_never_reach_the_screen() {
    let mut app = chatting(&["lobby"], (80, 24));
    app.update(message(
        "lobby",
        "bob",
        1,
        "hi\u{1b}[2J\u{1b}]52;c;cHduZWQ=\u{7}\u{202E}there",
    ));
    let shown = screen(&app);
    assert!(
        !shown.contains('\u{1b}') && !shown.contains('\u{7}') && !shown.contains('\u{202E}'),
        "{shown}"
    );
    assert!(shown.contains("hi\u{FFFD}[2J\u{FFFD}]52;c;cHduZWQ=\u{FFFD}\u{FFFD}there"));
}

#[test]
fn the_timeline_follows_the_zones_daylight_saving_change() {
    let mut app = chatting(&["lobby"], (80, 24));
    // Lisbon (WET/WEST); spring forward on 2025-03-30 at 01:00 UTC.
    app.settings.time_zone =
        jiff::tz::TimeZone::posix("WET0WEST,M3.5.0/1,M10.5.0").expect("a POSIX TZ rule");
    let before_ms = 1_743_296_340_000; // 2025-03-30T00:59:00Z
    for (seq, ts, text) in [(1, before_ms, "before"), (2, before_ms + 60_000, "after")] {
        app.update(Event::Net(NetEvent::Frame(ServerFrame::Message(
            roomcast_protocol::RoomMessage {
                room: room("lobby"),
                user: user("bob"),
                seq,
                ts,
                message: text.into(),
                data: None,
            },
        ))));
    }
    let shown = screen(&app);
    assert!(shown.contains("00:59 bob: before"), "{shown}");
    assert!(shown.contains("02:00 bob: after"), "{shown}");
}
