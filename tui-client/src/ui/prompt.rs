//! The input line: `› ` then the text, hard-wrapped by display width so it grows downwards
//! for long messages and pasted line breaks; the cursor is placed where the next character goes.

use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::Style;

use super::palette;
use super::wrap::{char_width, clean_char};
use crate::app::App;

const PROMPT: &str = "› ";
const PROMPT_WIDTH: usize = 2;

/// Rows of text (each a string, sanitized) and the cursor's (row, column), for `width` columns.
fn layout(text: &str, cursor: usize, width: usize) -> (Vec<String>, (usize, usize)) {
    let room = width.saturating_sub(PROMPT_WIDTH).max(1);
    let mut rows = vec![String::new()];
    let mut used = 0;
    let mut at = (0, 0);
    for (i, c) in text.char_indices() {
        if i == cursor {
            at = (rows.len() - 1, used);
        }
        if c == '\n' {
            rows.push(String::new());
            used = 0;
            continue;
        }
        let w = char_width(clean_char(c));
        if used + w > room {
            rows.push(String::new());
            used = 0;
        }
        if let Some(row) = rows.last_mut() {
            row.push(clean_char(c));
        }
        used += w;
    }
    if cursor >= text.len() {
        if used >= room {
            rows.push(String::new());
            used = 0;
        }
        at = (rows.len() - 1, used);
    }
    (rows, at)
}

/// Rows the input needs at the app's width (before the layout caps it).
pub fn rows_needed(app: &App) -> u16 {
    let (rows, _) = layout(app.input(), app.editor.cursor(), usize::from(app.size.0));
    u16::try_from(rows.len()).unwrap_or(u16::MAX)
}

/// First row shown when the text is taller than the area: keep the cursor visible.
fn first_row(cursor_row: usize, height: usize) -> usize {
    (cursor_row + 1).saturating_sub(height)
}

/// Draws the input.
pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let text = app.input();
    let (rows, (cursor_row, _)) = layout(text, app.editor.cursor(), usize::from(area.width));
    let skip = first_row(cursor_row, usize::from(area.height));
    buf.set_string(area.x, area.y, PROMPT, palette::dim());
    if text.is_empty() {
        let hint = match app.active_room() {
            Some(room) => format!("message {} · /help · Tab completes", room.name),
            None => "/join ROOM · ? help".to_owned(),
        };
        let width = usize::from(area.width).saturating_sub(PROMPT_WIDTH);
        buf.set_stringn(area.x + 2, area.y, hint, width, palette::dim());
        return;
    }
    for (row, y) in rows.iter().skip(skip).zip(area.y..area.bottom()) {
        buf.set_stringn(
            area.x + 2,
            y,
            row,
            usize::from(area.width).saturating_sub(PROMPT_WIDTH),
            Style::new(),
        );
    }
}

/// Where the terminal cursor goes.
pub fn cursor(app: &App, area: Rect) -> Option<Position> {
    if area.is_empty() {
        return None;
    }
    let (_, (row, col)) = layout(app.input(), app.editor.cursor(), usize::from(area.width));
    let skip = first_row(row, usize::from(area.height));
    let x = area.x + u16::try_from(col + PROMPT_WIDTH).ok()?;
    let y = area.y + u16::try_from(row - skip).ok()?;
    (x < area.right() && y < area.bottom()).then_some(Position::new(x, y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_grows_downwards_and_the_cursor_follows() {
        let (rows, at) = layout("abcdefgh", 8, 6);
        assert_eq!(rows, ["abcd", "efgh", ""]);
        assert_eq!(at, (2, 0));
        let (rows, at) = layout("ab\ncd", 1, 10);
        assert_eq!(rows, ["ab", "cd"]);
        assert_eq!(at, (0, 1));
    }
}
