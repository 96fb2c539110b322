//! Tab completion of /commands and nicks. Repeated Tabs cycle through the candidates.

use crate::commands::COMMANDS;

/// A completion in progress: the word being replaced and the candidates to cycle through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Byte index where the completed word starts.
    pub start: usize,
    /// Full replacements, in the order Tab offers them.
    pub candidates: Vec<String>,
    /// The candidate shown now.
    pub index: usize,
}

impl Completion {
    /// Starts completing the word that ends at `cursor` in `text`; `None` when nothing fits.
    pub fn start(text: &str, cursor: usize, nicks: &[&str]) -> Option<Self> {
        let before = &text[..cursor];
        let start = before
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = &before[start..];
        let candidates: Vec<String> = if start == 0 && word.starts_with('/') {
            COMMANDS
                .iter()
                .map(|c| c.word())
                .filter(|w| w.starts_with(word))
                .map(|w| format!("{w} "))
                .collect()
        } else if word.is_empty() {
            return None;
        } else {
            let lower = word.to_lowercase();
            // A nick at the start of a line addresses someone: "ana: ", as IRC clients do.
            let suffix = if start == 0 { ": " } else { " " };
            nicks
                .iter()
                .filter(|n| n.to_lowercase().starts_with(&lower))
                .map(|n| format!("{n}{suffix}"))
                .collect()
        };
        if candidates.is_empty() {
            return None;
        }
        Some(Self {
            start,
            candidates,
            index: 0,
        })
    }

    /// The replacement shown now.
    pub fn current(&self) -> &str {
        self.candidates.get(self.index).map_or("", String::as_str)
    }

    /// Moves to the next candidate.
    pub fn advance(&mut self) {
        self.index = (self.index + 1) % self.candidates.len().max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slash_word_completes_to_commands() {
        let c = Completion::start("/jo", 3, &[]).expect("a candidate");
        assert_eq!(c.current(), "/join ");
    }

    #[test]
    fn nicks_complete_case_insensitively_and_cycle() {
        let nicks = ["Ana", "anders", "bob"];
        let mut c = Completion::start("an", 2, &nicks).expect("candidates");
        assert_eq!(c.current(), "Ana: ");
        c.advance();
        assert_eq!(c.current(), "anders: ");
        c.advance();
        assert_eq!(c.current(), "Ana: ");
        let mid = Completion::start("hi b", 4, &nicks).expect("a candidate");
        assert_eq!((mid.start, mid.current()), (3, "bob "));
        assert_eq!(Completion::start("zz", 2, &nicks), None);
    }
}
