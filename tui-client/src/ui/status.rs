//! The status line: connection health first (connected · RTT, or reconnecting in Ns with the
//! reason), then a transient notice, then who you are; or the paste question.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

use super::palette;
use super::wrap::text_width;
use crate::app::{App, Link, Mode};

/// Screens narrower than this get the short forms of long status texts.
const NARROW: u16 = 60;

/// The link as words and a style.
pub fn link_text(app: &App) -> (String, Style) {
    match app.link() {
        Link::Connected { rtt: Some(rtt) } if rtt.as_millis() == 0 => (
            "● connected · <1 ms".to_owned(),
            Style::new().fg(Color::Green),
        ),
        Link::Connected { rtt: Some(rtt) } => (
            format!("● connected · {} ms", rtt.as_millis()),
            Style::new().fg(Color::Green),
        ),
        Link::Connected { rtt: None } => ("● connected".to_owned(), Style::new().fg(Color::Green)),
        Link::Connecting { attempt: 0 } => ("◌ connecting…".to_owned(), palette::warning()),
        Link::Connecting { attempt } => (
            format!("◌ connecting (try {})…", attempt + 1),
            palette::warning(),
        ),
        Link::Reconnecting { at_ms, reason } => {
            let secs = at_ms.saturating_sub(app.now_ms).div_ceil(1000);
            // Narrow screens keep the countdown and the close code, which come first.
            let text = if app.size.0 < NARROW {
                format!("↻ in {secs}s · {reason}")
            } else {
                format!("↻ reconnecting in {secs}s ({reason})")
            };
            (text, palette::warning())
        }
        Link::Stopped { reason } => (
            format!("✕ disconnected: {reason}; not retrying (/nick NAME or /quit)"),
            palette::error().add_modifier(Modifier::BOLD),
        ),
    }
}

/// Draws the status line.
pub fn render(app: &App, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let width = usize::from(area.width);
    if let Mode::PasteConfirm { text } = app.mode() {
        let lines = text.lines().count();
        let ask = if width < usize::from(NARROW) {
            format!(" paste {lines} lines as one message? y/n")
        } else {
            format!(" paste {lines} lines as one message? y/Enter: yes · n/Esc: no")
        };
        let style = palette::warning().add_modifier(Modifier::REVERSED);
        buf.set_style(area, style);
        buf.set_stringn(area.x, area.y, ask, width, style);
        return;
    }
    let (link, link_style) = link_text(app);
    let mut spans = vec![Span::styled(link, link_style)];
    if let Some((flash, _)) = &app.flash {
        spans.push(Span::styled(" │ ", palette::dim()));
        spans.push(Span::styled(
            flash.clone(),
            Style::new().add_modifier(Modifier::BOLD),
        ));
    }
    let left = Line::from(spans);
    buf.set_line(area.x, area.y, &left, area.width);
    let me = app.me().map_or("", |u| u.as_str());
    let right = format!("{me}@{} · ? help ", app.settings.server_label);
    let used = left.width();
    let right_width = text_width(&right);
    if used + 2 + right_width <= width {
        let x = area.x + u16::try_from(width - right_width).unwrap_or(0);
        buf.set_stringn(x, area.y, right, right_width, palette::dim());
    }
}
