//! Word wrapping by display width (CJK and emoji take two columns, combining marks none), and
//! the sanitizing that keeps a peer's text from driving the terminal.

use ratatui::style::Style;
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

/// The protocol crate's rule, shared with `roomcast listen`: control characters and
/// bidirectional overrides become U+FFFD, a tab a space, line breaks stay.
pub use roomcast_protocol::terminal_text::{clean_char, sanitize};

/// Columns `c` takes on screen.
pub fn char_width(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// Columns `text` takes on screen.
pub fn text_width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

/// Wraps styled `spans` into rows of at most `width` columns. Rows after the first start with
/// `indent` spaces. Breaks at spaces when it can, inside a word when the word is longer than
/// a row, and always at `\n`. Text must be sanitized first.
pub fn wrap(spans: &[Span<'_>], width: usize, indent: usize) -> Vec<Line<'static>> {
    if width == 0 {
        return Vec::new();
    }
    let indent = if indent + 4 > width { 0 } else { indent };
    let chars: Vec<(char, Style)> = spans
        .iter()
        .flat_map(|s| s.content.chars().map(move |c| (c, s.style)))
        .collect();
    let mut rows = Rows::new(width, indent);
    let mut i = 0;
    while i < chars.len() {
        let (c, _) = chars[i];
        if c == '\n' {
            rows.new_row();
            i += 1;
            continue;
        }
        // A token is a run of spaces or a run of other characters.
        let is_space = c == ' ';
        let end = chars[i..]
            .iter()
            .position(|&(d, _)| d == '\n' || (d == ' ') != is_space)
            .map_or(chars.len(), |n| i + n);
        let token = &chars[i..end];
        let token_width: usize = token.iter().map(|&(c, _)| char_width(c)).sum();
        if rows.fits(token_width) {
            rows.push_all(token);
        } else if is_space {
            // Spaces at a break disappear, as in any text view.
            rows.new_row();
        } else if token_width <= rows.fresh_capacity() && !rows.at_row_start() {
            rows.new_row();
            rows.push_all(token);
        } else {
            for &(c, style) in token {
                if !rows.fits(char_width(c)) {
                    rows.new_row();
                }
                rows.push(c, style);
            }
        }
        i = end;
    }
    rows.finish()
}

/// Rows being built.
struct Rows {
    width: usize,
    indent: usize,
    done: Vec<Line<'static>>,
    current: Vec<(char, Style)>,
    used: usize,
    start: usize,
}

impl Rows {
    fn new(width: usize, indent: usize) -> Self {
        Self {
            width,
            indent,
            done: Vec::new(),
            current: Vec::new(),
            used: 0,
            start: 0,
        }
    }

    fn fits(&self, columns: usize) -> bool {
        self.used + columns <= self.width
    }

    fn fresh_capacity(&self) -> usize {
        self.width - self.indent
    }

    fn at_row_start(&self) -> bool {
        self.used == self.start
    }

    fn push(&mut self, c: char, style: Style) {
        self.used += char_width(c);
        self.current.push((c, style));
    }

    fn push_all(&mut self, token: &[(char, Style)]) {
        for &(c, style) in token {
            self.push(c, style);
        }
    }

    fn new_row(&mut self) {
        // Spaces before a break are invisible; dropping them keeps rows comparable in tests.
        while self.current.len() > self.start && self.current.last().is_some_and(|(c, _)| *c == ' ')
        {
            self.current.pop();
        }
        let row = std::mem::take(&mut self.current);
        self.done.push(to_line(&row));
        self.current = vec![(' ', Style::default()); self.indent];
        self.used = self.indent;
        self.start = self.indent;
    }

    fn finish(mut self) -> Vec<Line<'static>> {
        if !self.current.is_empty() || self.done.is_empty() {
            let row = std::mem::take(&mut self.current);
            self.done.push(to_line(&row));
        }
        self.done
    }
}

/// Groups runs of one style into spans.
fn to_line(chars: &[(char, Style)]) -> Line<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut text = String::new();
    let mut style = None;
    for &(c, s) in chars {
        if style.is_some_and(|current| current != s) {
            spans.push(Span::styled(
                std::mem::take(&mut text),
                style.unwrap_or_default(),
            ));
        }
        style = Some(s);
        text.push(c);
    }
    if let Some(style) = style {
        spans.push(Span::styled(text, style));
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str, width: usize, indent: usize) -> Vec<String> {
        wrap(&[Span::raw(text.to_owned())], width, indent)
            .iter()
            .map(|line| line.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    #[test]
    fn words_wrap_at_spaces_with_a_hanging_indent() {
        assert_eq!(
            rows("12:00 ana: hello there general kenobi", 16, 6),
            [
                "12:00 ana: hello",
                "      there",
                "      general",
                "      kenobi"
            ]
        );
    }

    #[test]
    fn wide_characters_never_overflow_a_row() {
        let wrapped = rows("李李李李李", 5, 0);
        assert_eq!(wrapped, ["李李", "李李", "李"]);
        assert!(wrapped.iter().all(|r| text_width(r) <= 5));
    }

    #[test]
    fn long_words_are_split_and_line_breaks_kept() {
        assert_eq!(rows("abcdefgh", 3, 0), ["abc", "def", "gh"]);
        assert_eq!(rows("one\ntwo", 10, 2), ["one", "  two"]);
    }
}
