//! Keys while a popup has the keyboard (help, room filter, paste confirmation), and pastes.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{App, Mode};
use crate::event::Effect;

/// Pastes with more lines than this ask before landing in the input.
pub const PASTE_ASK_LINES: usize = 1;

impl App {
    pub(crate) fn on_modal_key(&mut self, key: &KeyEvent) -> Option<Effect> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return self.quit();
        }
        match &mut self.mode {
            Mode::Normal => {}
            Mode::Help { scroll } => match key.code {
                KeyCode::Down | KeyCode::Char('j') => *scroll += 1,
                KeyCode::Up | KeyCode::Char('k') => *scroll = scroll.saturating_sub(1),
                KeyCode::PageDown => *scroll += 10,
                KeyCode::PageUp => *scroll = scroll.saturating_sub(10),
                _ => self.mode = Mode::Normal,
            },
            Mode::Filter { query, selected } => match key.code {
                KeyCode::Esc => self.mode = Mode::Normal,
                KeyCode::Enter => {
                    let selected = *selected;
                    let pick = self.filtered_rooms().get(selected).copied();
                    self.mode = Mode::Normal;
                    match pick {
                        Some(index) => self.show_room(index),
                        None => self.flash("no room matches"),
                    }
                }
                KeyCode::Down | KeyCode::Tab => *selected += 1,
                KeyCode::Up | KeyCode::BackTab => *selected = selected.saturating_sub(1),
                KeyCode::Backspace => {
                    query.pop();
                    *selected = 0;
                }
                KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                    query.push(c);
                    *selected = 0;
                }
                _ => {}
            },
            Mode::PasteConfirm { text } => match key.code {
                KeyCode::Char('y' | 'Y') | KeyCode::Enter => {
                    let text = std::mem::take(text);
                    self.mode = Mode::Normal;
                    self.editor.insert(&text);
                }
                KeyCode::Char('n' | 'N') | KeyCode::Esc => {
                    self.mode = Mode::Normal;
                    self.flash("paste dropped");
                }
                _ => {}
            },
        }
        // Keep the selection on a real row as the list shrinks.
        let matches = self.filtered_rooms().len();
        if let Mode::Filter { selected, .. } = &mut self.mode {
            *selected = (*selected).min(matches.saturating_sub(1));
        }
        None
    }

    /// A bracketed paste: one line lands in the input; several ask first, then land in the
    /// input as one message (sent with Enter), never one message per line.
    pub(crate) fn on_paste(&mut self, text: &str) -> Option<Effect> {
        // Terminals send pasted line breaks as CR.
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let text = text.trim_end_matches('\n').to_owned();
        match self.mode {
            Mode::Normal if text.lines().count() > PASTE_ASK_LINES => {
                self.mode = Mode::PasteConfirm { text };
            }
            Mode::Normal => self.editor.insert(&text),
            Mode::Filter { ref mut query, .. } => query.push_str(text.lines().next().unwrap_or("")),
            _ => {}
        }
        None
    }

    /// Indexes of the rooms whose names contain the filter's letters in order
    /// (case-insensitive): names starting with the query first, each group in list order.
    pub(crate) fn filtered_rooms(&self) -> Vec<usize> {
        let query = match &self.mode {
            Mode::Filter { query, .. } => query.to_lowercase(),
            _ => String::new(),
        };
        let mut hits: Vec<usize> = (0..self.rooms.len())
            .filter(|&i| is_subsequence(&query, &self.rooms[i].name.as_str().to_lowercase()))
            .collect();
        hits.sort_by_key(|&i| {
            !self.rooms[i]
                .name
                .as_str()
                .to_lowercase()
                .starts_with(&query)
        });
        hits
    }
}

fn is_subsequence(needle: &str, haystack: &str) -> bool {
    let mut rest = haystack.chars();
    needle.chars().all(|c| rest.any(|h| h == c))
}
