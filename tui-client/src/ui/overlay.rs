//! Popups drawn over the timeline: the help (generated from the keymap and the command table)
//! and the Ctrl-K room filter.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Widget};

use super::palette;
use super::sidebar::truncate;
use crate::app::App;
use crate::commands::COMMANDS;
use crate::keymap::BINDINGS;

/// Help boxes narrower than this put each description under its key.
const TWO_COLUMN_MIN: usize = 50;

/// The help's rows for an inner width: keys first, then commands.
pub fn help_lines(width: usize) -> Vec<Line<'static>> {
    let entries: Vec<(String, &str)> = BINDINGS.iter().map(|b| (b.label(), b.help)).collect();
    let commands: Vec<(String, &str)> = COMMANDS
        .iter()
        .map(|c| (c.usage.to_owned(), c.help))
        .collect();
    let key_style = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = Vec::new();
    for (title, rows) in [("Keys", entries), ("Commands", commands)] {
        if !lines.is_empty() {
            lines.push(Line::from(""));
        }
        lines.push(Line::styled(
            title,
            palette::warning().add_modifier(Modifier::BOLD),
        ));
        let label_width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0).min(20);
        for (label, help) in rows {
            if width >= TWO_COLUMN_MIN {
                let help = truncate(help, width.saturating_sub(label_width + 2));
                lines.push(Line::from(vec![
                    Span::styled(format!("{label:<label_width$}  "), key_style),
                    Span::raw(help),
                ]));
            } else {
                lines.push(Line::styled(label, key_style));
                lines.push(Line::raw(format!(
                    "  {}",
                    truncate(help, width.saturating_sub(2))
                )));
            }
        }
    }
    lines
}

/// A box of `width` x `height` centred in `area`.
fn centred(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect::new(
        area.x + (area.width - width) / 2,
        area.y + (area.height - height) / 2,
        width,
        height,
    )
}

/// Draws the help overlay over the whole screen, scrolled by `scroll` rows.
pub fn render_help(area: Rect, scroll: usize, buf: &mut Buffer) {
    let width = area.width.saturating_sub(4).clamp(20, 72);
    let inner_width = usize::from(width.saturating_sub(2));
    let lines = help_lines(inner_width);
    let height = u16::try_from(lines.len() + 2)
        .unwrap_or(u16::MAX)
        .min(area.height);
    let popup = centred(area, width, height);
    if popup.width < 3 || popup.height < 3 {
        return;
    }
    Clear.render(popup, buf);
    let rows = usize::from(popup.height.saturating_sub(2));
    let scroll = scroll.min(lines.len().saturating_sub(rows));
    let more = lines.len() > rows + scroll;
    let title = if more || scroll > 0 {
        " help · ↑↓ scroll · Esc closes "
    } else {
        " help · Esc closes "
    };
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(palette::dim())
        .title(title);
    let inner = block.inner(popup);
    block.render(popup, buf);
    for (line, y) in lines.iter().skip(scroll).zip(inner.y..inner.bottom()) {
        buf.set_line(inner.x, y, line, inner.width);
    }
}

/// Draws the room filter at the top of `area`.
pub fn render_filter(app: &App, area: Rect, query: &str, selected: usize, buf: &mut Buffer) {
    let matches = app.filtered_rooms();
    let width = area.width.saturating_sub(4).clamp(16, 40);
    let list_rows = u16::try_from(matches.len().max(1)).unwrap_or(u16::MAX);
    let height = (list_rows + 3).min(area.height);
    let popup = Rect::new(
        area.x + (area.width.saturating_sub(width)) / 2,
        area.y,
        width.min(area.width),
        height,
    );
    if popup.width < 3 || popup.height < 3 {
        return;
    }
    Clear.render(popup, buf);
    let block = Block::new()
        .borders(Borders::ALL)
        .border_style(palette::dim())
        .title(" jump to room ");
    let inner = block.inner(popup);
    block.render(popup, buf);
    if inner.is_empty() {
        return;
    }
    let w = usize::from(inner.width);
    buf.set_stringn(inner.x, inner.y, format!("› {query}▏"), w, Style::new());
    if matches.is_empty() {
        buf.set_stringn(inner.x, inner.y + 1, "no room matches", w, palette::dim());
        return;
    }
    for (row, (&index, y)) in matches.iter().zip(inner.y + 1..inner.bottom()).enumerate() {
        let room = &app.rooms()[index];
        let style = if row == selected {
            palette::bar()
        } else {
            Style::new()
        };
        let text = format!("{:<w$}", format!(" {}", room.name));
        buf.set_stringn(inner.x, y, text, w, style);
    }
}
