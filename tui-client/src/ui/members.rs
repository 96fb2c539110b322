//! The member list on the right (F2 / Alt-M), in the nick colours of the timeline.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

use super::palette;
use super::sidebar::{separator, truncate};
use crate::app::App;

/// Draws the shown room's members with a separator in the first column.
pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    if area.width < 4 || area.height == 0 {
        return;
    }
    separator(area.x, area, buf);
    let Some(room) = app.active_room() else {
        return;
    };
    let width = usize::from(area.width - 2);
    let x = area.x + 2;
    let header = format!("{} here", room.members.len());
    buf.set_stringn(x, area.y, truncate(&header, width), width, palette::dim());
    let rows = usize::from(area.height.saturating_sub(1));
    let overflow = room.members.len() > rows;
    let shown = if overflow {
        rows.saturating_sub(1)
    } else {
        rows
    };
    for (user, y) in room.members.iter().take(shown).zip(area.y + 1..) {
        let own = app.me() == Some(user);
        let name = truncate(user.as_str(), width);
        buf.set_stringn(x, y, name, width, palette::nick(user.as_str(), own));
    }
    if overflow {
        let more = format!("+{} more", room.members.len() - shown);
        buf.set_stringn(x, area.bottom() - 1, more, width, palette::dim());
    }
}
