//! The room list: stable join order, a number for Alt-1..9, unread counts and a mention mark.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};

use super::palette;
use super::wrap::{char_width, text_width};
use crate::app::App;

/// Draws the room list with its separator in the last column.
pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    if area.width < 4 || area.height == 0 {
        return;
    }
    separator(area.right() - 1, area, buf);
    let width = usize::from(area.width - 1);
    for (i, (room, y)) in app.rooms().iter().zip(area.y..area.bottom()).enumerate() {
        let number = if i < 9 {
            format!("{}", i + 1)
        } else {
            " ".to_owned()
        };
        let badge = match (room.mentioned, room.unread) {
            (_, 0) => String::new(),
            (true, n) => format!("@{n}"),
            (false, n) => n.to_string(),
        };
        let badge_cols = if badge.is_empty() { 0 } else { badge.len() + 1 };
        let name_room = width.saturating_sub(2 + badge_cols);
        // Room names are ASCII (protocol rule), so padding by characters is padding by columns.
        let name = truncate(room.name.as_str(), name_room);
        let active = i == app.active;
        let mut style = if active { palette::bar() } else { Style::new() };
        if !room.joined {
            style = style.patch(palette::dim());
        } else if room.unread > 0 {
            style = style.add_modifier(Modifier::BOLD);
        }
        let line = format!("{number} {name:<name_room$}{badge:>badge_cols$}");
        buf.set_stringn(area.x, y, format!("{line:<width$}"), width, style);
        if room.mentioned {
            let x = area.x + u16::try_from(width - badge.len()).unwrap_or(0);
            buf.set_stringn(x, y, &badge, badge.len(), style.patch(palette::mention()));
        }
    }
}

/// A vertical line in column `x` of `area`.
pub fn separator(x: u16, area: Rect, buf: &mut Buffer) {
    for y in area.y..area.bottom() {
        buf.set_string(x, y, "│", palette::dim());
    }
}

/// Cuts `text` to `width` columns, ending in `…` when cut.
pub fn truncate(text: &str, width: usize) -> String {
    if text_width(text) <= width {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        if used + char_width(c) + 1 > width {
            break;
        }
        used += char_width(c);
        out.push(c);
    }
    if width > 0 {
        out.push('…');
    }
    out
}
