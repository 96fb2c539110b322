//! Rendering: `impl Widget for &App`, a pure function of state. Each pane has its own file.

mod members;
mod overlay;
mod palette;
mod prompt;
mod sidebar;
mod status;
pub mod timeline;
pub mod wrap;

use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::Modifier;
use ratatui::widgets::Widget;

use crate::app::{App, Mode};

pub use overlay::help_lines;
pub use status::link_text;

/// Rows the input wants at the current width (the layout caps it).
pub fn input_rows(app: &App) -> u16 {
    prompt::rows_needed(app)
}

/// Where the terminal cursor belongs (in the input), or `None` while a popup has the keys.
pub fn cursor_position(app: &App) -> Option<Position> {
    match app.mode() {
        Mode::Normal => prompt::cursor(app, app.areas().input),
        _ => None,
    }
}

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let areas = self.areas();
        title(self, areas.title, buf);
        sidebar::render(self, areas.sidebar, buf);
        timeline::render(self, areas.timeline, buf);
        members::render(self, areas.members, buf);
        status::render(self, areas.status, buf);
        prompt::render(self, areas.input, buf);
        match self.mode() {
            Mode::Help { scroll } => overlay::render_help(area, *scroll, buf),
            Mode::Filter { query, selected } => {
                overlay::render_filter(self, areas.timeline, query, *selected, buf);
            }
            Mode::Normal | Mode::PasteConfirm { .. } => {}
        }
    }
}

/// The top bar: program, room, member count, and whether join/leave lines are hidden.
fn title(app: &App, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let style = palette::bar().add_modifier(Modifier::BOLD);
    buf.set_style(area, style);
    let mut text = " roomcast".to_owned();
    if let Some(room) = app.active_room() {
        text.push_str(&format!(" · {}", room.name));
        if room.joined {
            let n = room.members.len();
            text.push_str(&format!(
                " · {n} {}",
                if n == 1 { "member" } else { "members" }
            ));
        }
    }
    if app.hide_presence {
        text.push_str(" · joins hidden (F3)");
    }
    buf.set_stringn(area.x, area.y, text, usize::from(area.width), style);
}

#[cfg(test)]
mod tests;
