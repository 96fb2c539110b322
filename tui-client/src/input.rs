//! The input line: a small editor (cursor, emacs kills) and a per-room sent-message history.
//! No I/O; the cursor is a byte index kept on a `char` boundary.

use std::collections::VecDeque;

/// Sent lines remembered per room for Up/Down.
pub const HISTORY_LEN: usize = 100;

/// Text being typed, with a cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Editor {
    text: String,
    cursor: usize,
}

impl Editor {
    /// The text typed so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cursor as a byte index into [`Editor::text`].
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// True when nothing is typed.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Replaces the text and puts the cursor at its end.
    pub fn set(&mut self, text: String) {
        self.cursor = text.len();
        self.text = text;
    }

    /// Empties the editor and returns what was typed.
    pub fn take(&mut self) -> String {
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    /// Inserts at the cursor.
    pub fn insert(&mut self, text: &str) {
        self.text.insert_str(self.cursor, text);
        self.cursor += text.len();
    }

    /// Replaces the bytes `start..cursor` with `with` (completion).
    pub fn replace_before_cursor(&mut self, start: usize, with: &str) {
        let start = start.min(self.cursor);
        self.text.replace_range(start..self.cursor, with);
        self.cursor = start + with.len();
    }

    fn prev_boundary(&self) -> usize {
        self.text[..self.cursor]
            .char_indices()
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self) -> usize {
        self.text[self.cursor..]
            .chars()
            .next()
            .map_or(self.cursor, |c| self.cursor + c.len_utf8())
    }

    /// Moves one character left.
    pub fn left(&mut self) {
        self.cursor = self.prev_boundary();
    }

    /// Moves one character right.
    pub fn right(&mut self) {
        self.cursor = self.next_boundary();
    }

    /// Ctrl-A: start of the text.
    pub fn home(&mut self) {
        self.cursor = 0;
    }

    /// Ctrl-E: end of the text.
    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    /// Where the word before the cursor starts (skipping whitespace first, as readline does).
    fn word_start(&self) -> usize {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end();
        trimmed
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8())
    }

    /// Alt-B: one word left.
    pub fn word_left(&mut self) {
        self.cursor = self.word_start();
    }

    /// Alt-F: one word right.
    pub fn word_right(&mut self) {
        let after = &self.text[self.cursor..];
        let skip_space = after.len() - after.trim_start().len();
        let word = after[skip_space..]
            .find(char::is_whitespace)
            .unwrap_or(after.len() - skip_space);
        self.cursor += skip_space + word;
    }

    /// Backspace.
    pub fn delete_back(&mut self) {
        let start = self.prev_boundary();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Delete.
    pub fn delete_forward(&mut self) {
        let end = self.next_boundary();
        self.text.replace_range(self.cursor..end, "");
    }

    /// Ctrl-W: deletes the word before the cursor.
    pub fn delete_word_back(&mut self) {
        let start = self.word_start();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Ctrl-U: deletes from the start to the cursor.
    pub fn delete_to_start(&mut self) {
        self.text.replace_range(..self.cursor, "");
        self.cursor = 0;
    }

    /// Ctrl-K: deletes from the cursor to the end; false when there was nothing to delete.
    pub fn kill_to_end(&mut self) -> bool {
        if self.cursor == self.text.len() {
            return false;
        }
        self.text.truncate(self.cursor);
        true
    }
}

/// Lines sent in one room, newest last, browsed with Up/Down like a shell's history.
#[derive(Debug, Clone, Default)]
pub struct History {
    sent: VecDeque<String>,
    /// Index into `sent` while browsing.
    browsing: Option<usize>,
    /// What was typed before browsing started, restored when browsing past the newest.
    draft: String,
}

impl History {
    /// Remembers a sent line and stops browsing.
    pub fn push(&mut self, line: String) {
        self.browsing = None;
        if self.sent.back() == Some(&line) {
            return;
        }
        if self.sent.len() == HISTORY_LEN {
            self.sent.pop_front();
        }
        self.sent.push_back(line);
    }

    /// Up: the previous sent line, given what the editor holds now.
    pub fn older(&mut self, current: &str) -> Option<String> {
        let next = match self.browsing {
            None => {
                self.draft = current.to_owned();
                self.sent.len().checked_sub(1)?
            }
            Some(0) => return None,
            Some(i) => i - 1,
        };
        self.browsing = Some(next);
        self.sent.get(next).cloned()
    }

    /// Down: the next newer line, or the draft once past the newest.
    pub fn newer(&mut self) -> Option<String> {
        let i = self.browsing?;
        if i + 1 < self.sent.len() {
            self.browsing = Some(i + 1);
            self.sent.get(i + 1).cloned()
        } else {
            self.browsing = None;
            Some(std::mem::take(&mut self.draft))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn editor(text: &str) -> Editor {
        let mut e = Editor::default();
        e.set(text.to_owned());
        e
    }

    #[test]
    fn emacs_kills_remove_what_readline_removes() {
        let mut e = editor("hello big world");
        e.delete_word_back();
        assert_eq!(e.text(), "hello big ");
        e.word_left();
        assert_eq!(e.cursor(), 6);
        assert!(e.kill_to_end());
        assert_eq!(e.text(), "hello ");
        assert!(!e.kill_to_end());
        e.delete_to_start();
        assert_eq!((e.text(), e.cursor()), ("", 0));
    }

    #[test]
    fn the_cursor_moves_by_whole_characters() {
        let mut e = editor("zoë李");
        e.left();
        e.delete_back();
        assert_eq!(e.text(), "zo李");
        e.home();
        e.delete_forward();
        e.right();
        e.insert("!");
        assert_eq!(e.text(), "o!李");
    }

    #[test]
    fn history_browses_back_and_restores_the_draft() {
        let mut h = History::default();
        h.push("one".into());
        h.push("two".into());
        assert_eq!(h.older("draft").as_deref(), Some("two"));
        assert_eq!(h.older("two").as_deref(), Some("one"));
        assert_eq!(h.older("one"), None);
        assert_eq!(h.newer().as_deref(), Some("two"));
        assert_eq!(h.newer().as_deref(), Some("draft"));
        assert_eq!(h.newer(), None);
    }
}
