//! Peer text made safe to show in a terminal: the one rule every roomcast client applies before
//! a message, a user name or a reason reaches a screen.
//!
//! Anyone in a room can send any text, and a terminal obeys what it is written: `ESC [ 2 J`
//! clears the screen, `ESC ] 52` writes the clipboard, OSC 8 hides a link behind other text.
//! Bidirectional overrides make text read differently than it is (CVE-2021-42574).

use std::io;

/// What a neutralised character becomes: visible, so the reader sees that something was there.
pub const REPLACEMENT: char = '\u{FFFD}';

/// Makes `text` safe to write to a terminal: control characters (C0 and C1, so every escape
/// sequence) and bidirectional overrides become [`REPLACEMENT`]; a tab becomes a space. Line
/// breaks stay. Never returns a control character other than `\n`.
pub fn sanitize(text: &str) -> String {
    text.chars().map(clean_char).collect()
}

/// One character of [`sanitize`].
pub fn clean_char(c: char) -> char {
    match c {
        '\n' => '\n',
        '\t' => ' ',
        c if drives_terminal(c) => REPLACEMENT,
        c => c,
    }
}

/// True for a character a terminal may act on instead of showing: every control character
/// (C0, DEL, C1, including `\n` and `\t`) and the bidirectional overrides and isolates.
pub fn drives_terminal(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A `serde_json` formatter whose output is safe on a terminal and still the same JSON:
/// besides what JSON itself escapes (C0, `"` and `\\`), it writes DEL, C1 controls (U+009B is
/// a one-character CSI) and bidirectional overrides as `\uXXXX`. A parser reads back the same
/// string.
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminalSafeJson;

impl serde_json::ser::Formatter for TerminalSafeJson {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| drives_terminal(c)) {
            writer.write_all(&rest.as_bytes()[..at])?;
            // Every such character is in the Basic Multilingual Plane: one \u escape.
            write!(writer, "\\u{:04x}", u32::from(c))?;
            rest = &rest[at + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_direction_overrides_are_neutralized() {
        let clean = sanitize("hi\u{1b}[2Jthere\u{202E}x\ty\u{9b}31m\r\n");
        assert_eq!(clean, "hi\u{FFFD}[2Jthere\u{FFFD}x y\u{FFFD}31m\u{FFFD}\n");
    }

    #[test]
    fn terminal_safe_json_escapes_what_json_leaves_raw_and_reads_back_the_same() {
        let text = "a\u{1b}[2J\u{7f}\u{9b}31m\u{202E}b\"\\é";
        let mut out = Vec::new();
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, TerminalSafeJson);
        serde::Serialize::serialize(text, &mut serializer).expect("serialize");
        let json = String::from_utf8(out).expect("UTF-8");
        assert_eq!(json, r#""a\u001b[2J\u007f\u009b31m\u202eb\"\\é""#);
        assert!(!json.chars().any(drives_terminal), "{json:?}");
        let back: String = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(back, text);
    }

    #[test]
    fn nothing_but_line_breaks_survives_among_controls() {
        let every_control: String = (0..=0x9f_u32).filter_map(char::from_u32).collect();
        let clean = sanitize(&every_control);
        assert!(
            clean.chars().all(|c| c == '\n' || !c.is_control()),
            "{clean:?}"
        );
    }
}
