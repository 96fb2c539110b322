//! The key bindings: one table that both dispatches keys and generates the help overlay, so
//! the help can never disagree with what the keys do.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks for. Keys that depend on context (`?` only opens help on an empty input,
/// Ctrl-K kills text before it opens the room filter) are resolved by `App`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the input (or run the /command).
    Submit,
    /// Insert a line break into the input.
    NewLine,
    /// Leave the program.
    Quit,
    /// Next room in the list.
    NextRoom,
    /// Previous room in the list.
    PrevRoom,
    /// Room number N (the digit comes from the key).
    GoToRoom,
    /// The next room with unread messages (mentions first).
    NextUnread,
    /// Delete to the end of the line, or open the room filter when there is nothing to delete.
    KillOrFilter,
    /// Help overlay (`?` only when the input is empty).
    Help,
    /// Show or hide the member list.
    ToggleMembers,
    /// Show or hide join/leave lines.
    TogglePresence,
    /// Scroll the timeline up a page.
    PageUp,
    /// Scroll the timeline down a page.
    PageDown,
    /// Oldest loaded message.
    ScrollTop,
    /// Newest message (follow again).
    ScrollBottom,
    /// Previous sent line in this room.
    HistoryOlder,
    /// Next sent line in this room.
    HistoryNewer,
    /// Complete a nick or /command.
    Complete,
    /// Cursor left.
    Left,
    /// Cursor right.
    Right,
    /// Cursor to start.
    Home,
    /// Cursor to end.
    End,
    /// Cursor one word left.
    WordLeft,
    /// Cursor one word right.
    WordRight,
    /// Delete before the cursor.
    Backspace,
    /// Delete under the cursor.
    Delete,
    /// Delete the word before the cursor.
    DeleteWord,
    /// Delete to the start of the line.
    DeleteToStart,
    /// Close what is open / return to the newest message.
    Cancel,
}

/// One key with its modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chord {
    code: KeyCode,
    mods: KeyModifiers,
}

const fn key(code: KeyCode) -> Chord {
    Chord {
        code,
        mods: KeyModifiers::NONE,
    }
}

const fn ctrl(c: char) -> Chord {
    Chord {
        code: KeyCode::Char(c),
        mods: KeyModifiers::CONTROL,
    }
}

const fn alt(code: KeyCode) -> Chord {
    Chord {
        code,
        mods: KeyModifiers::ALT,
    }
}

impl Chord {
    fn matches(&self, event: &KeyEvent) -> bool {
        // Shift is part of the character itself (`?`, `A`), so it is ignored for characters.
        let mods = match event.code {
            KeyCode::Char(_) => event.modifiers - KeyModifiers::SHIFT,
            _ => event.modifiers,
        };
        let code = match event.code {
            KeyCode::Char(c) if mods.contains(KeyModifiers::CONTROL) => {
                KeyCode::Char(c.to_ascii_lowercase())
            }
            other => other,
        };
        code == self.code && mods == self.mods
    }

    /// How the help overlay writes the chord, e.g. `Ctrl-N`, `Alt-1`, `PgUp`.
    pub fn label(&self) -> String {
        let name = match self.code {
            KeyCode::Char(' ') => "Space".to_owned(),
            KeyCode::Char(c) => c.to_ascii_uppercase().to_string(),
            KeyCode::F(n) => format!("F{n}"),
            KeyCode::Enter => "Enter".to_owned(),
            KeyCode::Tab => "Tab".to_owned(),
            KeyCode::Esc => "Esc".to_owned(),
            KeyCode::Up => "Up".to_owned(),
            KeyCode::Down => "Down".to_owned(),
            KeyCode::Left => "Left".to_owned(),
            KeyCode::Right => "Right".to_owned(),
            KeyCode::Home => "Home".to_owned(),
            KeyCode::End => "End".to_owned(),
            KeyCode::PageUp => "PgUp".to_owned(),
            KeyCode::PageDown => "PgDn".to_owned(),
            KeyCode::Backspace => "Backspace".to_owned(),
            KeyCode::Delete => "Del".to_owned(),
            other => format!("{other:?}"),
        };
        if self.mods.contains(KeyModifiers::CONTROL) {
            format!("Ctrl-{name}")
        } else if self.mods.contains(KeyModifiers::ALT) {
            format!("Alt-{name}")
        } else if self.code == KeyCode::Char('?') {
            "?".to_owned()
        } else {
            name
        }
    }
}

/// A row of the keymap: the chords, what they do, and the help text.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// Every chord that triggers the action.
    pub chords: &'static [Chord],
    /// The action.
    pub action: Action,
    /// One line for the help overlay.
    pub help: &'static str,
}

impl Binding {
    /// The chords as the help overlay shows them; a run of digits reads `Alt-1..9`.
    pub fn label(&self) -> String {
        if self.action == Action::GoToRoom
            && let (Some(first), Some(last)) = (self.chords.first(), self.chords.last())
        {
            let last = last.label();
            let digit = last.rsplit('-').next().unwrap_or_default();
            return format!("{}..{digit}", first.label());
        }
        let labels: Vec<String> = self.chords.iter().map(Chord::label).collect();
        labels.join(" ")
    }
}

const ALT_DIGITS: [Chord; 9] = [
    alt(KeyCode::Char('1')),
    alt(KeyCode::Char('2')),
    alt(KeyCode::Char('3')),
    alt(KeyCode::Char('4')),
    alt(KeyCode::Char('5')),
    alt(KeyCode::Char('6')),
    alt(KeyCode::Char('7')),
    alt(KeyCode::Char('8')),
    alt(KeyCode::Char('9')),
];

/// Every binding, in the order the help overlay lists them.
// One row per line reads as a table; rustfmt would spread each over five lines.
#[rustfmt::skip]
pub const BINDINGS: &[Binding] = &[
    Binding { chords: &[key(KeyCode::F(1)), key(KeyCode::Char('?'))], action: Action::Help, help: "this help (? on an empty input)" },
    Binding { chords: &[key(KeyCode::Enter)], action: Action::Submit, help: "send the message or run the /command" },
    Binding { chords: &[alt(KeyCode::Enter)], action: Action::NewLine, help: "line break in the message" },
    Binding { chords: &[ctrl('n'), alt(KeyCode::Down)], action: Action::NextRoom, help: "next room" },
    Binding { chords: &[ctrl('p'), alt(KeyCode::Up)], action: Action::PrevRoom, help: "previous room" },
    Binding { chords: &ALT_DIGITS, action: Action::GoToRoom, help: "room by number" },
    Binding { chords: &[alt(KeyCode::Char('a'))], action: Action::NextUnread, help: "next room with unread messages" },
    Binding { chords: &[ctrl('k')], action: Action::KillOrFilter, help: "delete to end of line, or (at the end) jump to a room" },
    Binding { chords: &[key(KeyCode::PageUp)], action: Action::PageUp, help: "scroll up a page" },
    Binding { chords: &[key(KeyCode::PageDown)], action: Action::PageDown, help: "scroll down a page" },
    Binding { chords: &[key(KeyCode::Home)], action: Action::ScrollTop, help: "oldest message" },
    Binding { chords: &[key(KeyCode::End)], action: Action::ScrollBottom, help: "newest message" },
    Binding { chords: &[key(KeyCode::Up)], action: Action::HistoryOlder, help: "previous sent message in this room" },
    Binding { chords: &[key(KeyCode::Down)], action: Action::HistoryNewer, help: "next sent message in this room" },
    Binding { chords: &[key(KeyCode::Tab)], action: Action::Complete, help: "complete a nick or /command" },
    Binding { chords: &[ctrl('a')], action: Action::Home, help: "start of line" },
    Binding { chords: &[ctrl('e')], action: Action::End, help: "end of line" },
    Binding { chords: &[key(KeyCode::Left), ctrl('b')], action: Action::Left, help: "cursor left" },
    Binding { chords: &[key(KeyCode::Right), ctrl('f')], action: Action::Right, help: "cursor right" },
    Binding { chords: &[alt(KeyCode::Char('b'))], action: Action::WordLeft, help: "word left" },
    Binding { chords: &[alt(KeyCode::Char('f'))], action: Action::WordRight, help: "word right" },
    Binding { chords: &[key(KeyCode::Backspace), ctrl('h')], action: Action::Backspace, help: "delete before the cursor" },
    Binding { chords: &[key(KeyCode::Delete), ctrl('d')], action: Action::Delete, help: "delete under the cursor" },
    Binding { chords: &[ctrl('w')], action: Action::DeleteWord, help: "delete the word before the cursor" },
    Binding { chords: &[ctrl('u')], action: Action::DeleteToStart, help: "delete to start of line" },
    Binding { chords: &[key(KeyCode::F(2)), alt(KeyCode::Char('m'))], action: Action::ToggleMembers, help: "show/hide the member list" },
    Binding { chords: &[key(KeyCode::F(3)), alt(KeyCode::Char('h'))], action: Action::TogglePresence, help: "show/hide join and leave lines" },
    Binding { chords: &[key(KeyCode::Esc)], action: Action::Cancel, help: "close a popup; back to the newest message" },
    Binding { chords: &[ctrl('c')], action: Action::Quit, help: "quit (also /quit)" },
];

/// The action bound to `event`, if any.
pub fn action_for(event: &KeyEvent) -> Option<Action> {
    BINDINGS
        .iter()
        .find(|b| b.chords.iter().any(|c| c.matches(event)))
        .map(|b| b.action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn no_chord_is_bound_twice() {
        let chords: Vec<&Chord> = BINDINGS.iter().flat_map(|b| b.chords).collect();
        for (i, a) in chords.iter().enumerate() {
            assert!(!chords[i + 1..].contains(a), "{} is bound twice", a.label());
        }
    }

    #[test]
    fn keys_resolve_to_their_actions() {
        let ctrl_n = press(KeyCode::Char('n'), KeyModifiers::CONTROL);
        assert_eq!(action_for(&ctrl_n), Some(Action::NextRoom));
        let question = press(KeyCode::Char('?'), KeyModifiers::SHIFT);
        assert_eq!(action_for(&question), Some(Action::Help));
        let alt_3 = press(KeyCode::Char('3'), KeyModifiers::ALT);
        assert_eq!(action_for(&alt_3), Some(Action::GoToRoom));
        let plain = press(KeyCode::Char('n'), KeyModifiers::NONE);
        assert_eq!(action_for(&plain), None);
    }

    #[test]
    fn labels_read_like_the_docs() {
        let labels: Vec<String> = BINDINGS.iter().map(Binding::label).collect();
        assert!(labels.contains(&"Alt-1..9".to_owned()));
        assert!(labels.contains(&"F1 ?".to_owned()));
        assert!(
            labels.contains(&"Ctrl-N Alt-Up".to_owned())
                || labels.contains(&"Ctrl-N Alt-Down".to_owned())
        );
    }
}
