//! Colours: one per nick, hashed from the name so a person keeps their colour everywhere.

use ratatui::style::{Color, Modifier, Style};

/// Nick colours readable on dark and light backgrounds (no black, white, or dark blue).
const NICK_COLOURS: [Color; 10] = [
    Color::Red,
    Color::Green,
    Color::Yellow,
    Color::Magenta,
    Color::Cyan,
    Color::LightRed,
    Color::LightGreen,
    Color::LightMagenta,
    Color::LightCyan,
    Color::LightBlue,
];

/// The colour of `name` (FNV-1a: stable across runs and platforms, unlike `DefaultHasher`).
pub fn nick_colour(name: &str) -> Color {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    NICK_COLOURS[hash as usize % NICK_COLOURS.len()]
}

/// The style of a nick; this client's own is bold in the default colour.
pub fn nick(name: &str, own: bool) -> Style {
    if own {
        Style::new().add_modifier(Modifier::BOLD)
    } else {
        Style::new().fg(nick_colour(name))
    }
}

/// Timestamps, join/leave lines and other quiet text.
pub fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

/// A line that names this user.
pub fn mention() -> Style {
    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
}

/// Warnings ("messages may be missing", reconnecting).
pub fn warning() -> Style {
    Style::new().fg(Color::Yellow)
}

/// Errors.
pub fn error() -> Style {
    Style::new().fg(Color::Red)
}

/// The title bar and selected rows.
pub fn bar() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nick_always_gets_the_same_colour() {
        assert_eq!(nick_colour("ana"), nick_colour("ana"));
        let colours: std::collections::HashSet<_> = ["ana", "bob", "carla", "dmitri", "eve"]
            .iter()
            .map(|n| format!("{:?}", nick_colour(n)))
            .collect();
        assert!(colours.len() > 1, "names must spread over the palette");
    }
}
