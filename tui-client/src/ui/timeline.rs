//! The message pane: entries turned into wrapped rows (time, coloured nick, text), date
//! separators, dimmed join/leave lines, and the "N new messages below" marker.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};

use super::palette;
use super::wrap::{sanitize, wrap};
use crate::app::App;
use crate::clock;
use crate::rooms::{Entry, Room};

/// Continuation rows start under the nick, past `HH:MM `.
const HANGING_INDENT: usize = 6;

fn visible(app: &App, entry: &Entry) -> bool {
    !(app.hide_presence && entry.is_presence())
}

/// The rows of `entry`, with a date separator first when its day differs from `prev`'s.
pub fn entry_lines(
    app: &App,
    prev: Option<&Entry>,
    entry: &Entry,
    width: u16,
) -> Vec<Line<'static>> {
    let width = usize::from(width);
    let zone = &app.settings.time_zone;
    let mut lines = Vec::new();
    let day = clock::day(entry.ts(), zone);
    if prev.is_some_and(|p| clock::day(p.ts(), zone) != day) {
        let label = format!("── {} ──", clock::date_label(day));
        lines.extend(wrap(&[Span::styled(label, palette::dim())], width, 0));
    }
    let time = Span::styled(
        format!("{} ", clock::hh_mm(entry.ts(), zone)),
        palette::dim(),
    );
    let spans = match entry {
        Entry::Message {
            user,
            text,
            own,
            mention,
            ..
        } => {
            let body = if *mention {
                palette::mention()
            } else {
                ratatui::style::Style::new()
            };
            vec![
                time,
                Span::styled(sanitize(user.as_str()), palette::nick(user.as_str(), *own)),
                Span::styled(": ", palette::dim()),
                Span::styled(sanitize(text), body),
            ]
        }
        Entry::Presence { user, left, .. } => {
            let what = match left {
                None => format!("→ {user} joined"),
                Some(roomcast_protocol::LeaveReason::Left) => format!("← {user} left"),
                Some(reason) => format!("← {user} left ({reason})"),
            };
            vec![time, Span::styled(what, palette::dim())]
        }
        Entry::Missing { count, .. } => {
            let what = match count {
                Some(1) => "⚠ 1 message may be missing".to_owned(),
                Some(n) => {
                    format!("⚠ {n} messages may be missing")
                }
                None => "⚠ some messages may be missing (the room's history was reset)".to_owned(),
            };
            vec![
                time,
                Span::styled(what, palette::warning().add_modifier(Modifier::BOLD)),
            ]
        }
        Entry::Notice { text, error, .. } => {
            let style = if *error {
                palette::error()
            } else {
                palette::dim()
            };
            vec![time, Span::styled(format!("· {}", sanitize(text)), style)]
        }
    };
    lines.extend(wrap(&spans, width, HANGING_INDENT));
    lines
}

/// Visible entries of `room`, oldest first.
fn visible_entries<'a>(
    app: &'a App,
    room: &'a Room,
) -> impl DoubleEndedIterator<Item = &'a Entry> + 'a {
    room.entries.iter().filter(move |e| visible(app, e))
}

/// Rows one more entry adds at the bottom of `room` (0 when hidden).
pub fn entry_rows(app: &App, room: &Room, entry: &Entry, width: u16) -> usize {
    if !visible(app, entry) {
        return 0;
    }
    let prev = visible_entries(app, room).next_back();
    entry_lines(app, prev, entry, width).len()
}

/// Rows the whole timeline of `room` takes at `width`.
pub fn total_rows(app: &App, room: &Room, width: u16) -> usize {
    let mut prev = None;
    let mut total = 0;
    for entry in visible_entries(app, room) {
        total += entry_lines(app, prev, entry, width).len();
        prev = Some(entry);
    }
    total
}

/// Draws the shown room's timeline, bottom-anchored, `room.scroll` rows up from the newest.
pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let Some(room) = app.active_room() else {
        let lines = [
            "No rooms yet.",
            "",
            "Type /join ROOM and Enter.",
            "? or F1 shows every key.",
        ];
        for (row, text) in (area.y + 1..area.bottom()).zip(lines) {
            buf.set_stringn(
                area.x + 1,
                row,
                text,
                usize::from(area.width.saturating_sub(1)),
                palette::dim(),
            );
        }
        return;
    };
    let height = usize::from(area.height);
    if room.entries.is_empty() {
        let text = if room.joined {
            format!("Nothing said in {} yet.", room.name)
        } else {
            format!("joining {}…", room.name)
        };
        buf.set_stringn(
            area.x + 1,
            area.y,
            text,
            usize::from(area.width.saturating_sub(1)),
            palette::dim(),
        );
        return;
    }
    // Wrap from the newest entry backwards until the view (plus what is scrolled past) is full.
    let entries: Vec<&Entry> = visible_entries(app, room).collect();
    let needed = height + room.scroll;
    let mut rows: Vec<Line<'static>> = Vec::new();
    for i in (0..entries.len()).rev() {
        let prev = i.checked_sub(1).map(|p| entries[p]);
        let mut lines = entry_lines(app, prev, entries[i], area.width);
        lines.extend(rows);
        rows = lines;
        if rows.len() >= needed {
            break;
        }
    }
    let end = rows.len().saturating_sub(room.scroll);
    let start = end.saturating_sub(height);
    for (y, line) in (area.y..).zip(&rows[start..end]) {
        buf.set_line(area.x, y, line, area.width);
    }
    if room.scroll > 0 {
        let text = match room.new_below {
            0 => "── more below · End jumps to the newest ──".to_owned(),
            1 => "── 1 new message below · End ──".to_owned(),
            n => format!("── {n} new messages below · End ──"),
        };
        let y = area.bottom() - 1;
        buf.set_style(Rect::new(area.x, y, area.width, 1), palette::bar());
        buf.set_stringn(
            area.x,
            y,
            format!("{text:^width$}", width = usize::from(area.width)),
            usize::from(area.width),
            palette::bar(),
        );
    }
}
