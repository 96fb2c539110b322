//! Room patterns (`--private-rooms`, a token's `rooms`): a room name in which `*` stands for
//! any run of characters, possibly empty. `pagamento_*` matches `pagamento_42` and
//! `pagamento_`; `*` matches every room; `a*b` matches `ab` and `a-x-b`. Every other character
//! matches itself (room names are ASCII letters, digits, `-`, `_` and `.`), so there is nothing
//! to escape.

use std::fmt;

/// Longest pattern accepted: a room name is at most 100 characters, and a few `*` more.
pub(crate) const MAX_PATTERN_BYTES: usize = 200;

/// A checked room pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern(Box<str>);

/// Why a text is not a pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PatternError {
    /// Nothing to match.
    #[error("a room pattern may not be empty")]
    Empty,
    /// Longer than [`MAX_PATTERN_BYTES`].
    #[error("a room pattern is at most {MAX_PATTERN_BYTES} bytes")]
    TooLong,
    /// A character no room name can hold.
    #[error(
        "{0:?} cannot be in a room name; patterns hold room-name characters \
         (A-Z a-z 0-9 - _ .) and * for any run of them"
    )]
    InvalidChar(char),
}

impl Pattern {
    /// Checks `text`.
    pub(crate) fn new(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.len() > MAX_PATTERN_BYTES {
            return Err(PatternError::TooLong);
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*')))
        {
            return Err(PatternError::InvalidChar(bad));
        }
        Ok(Self(text.into()))
    }

    /// Whether `room` matches. Linear in the room's length times the pattern's, with no
    /// recursion, whatever the pattern (no backtracking blow-up on `*a*a*a*`).
    pub(crate) fn matches(&self, room: &str) -> bool {
        let pattern = self.0.as_bytes();
        let text = room.as_bytes();
        let (mut p, mut t) = (0, 0);
        // Where the last `*` was, and the text position it has swallowed up to.
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            if p < pattern.len() && pattern[p] == b'*' {
                star = Some((p, t));
                p += 1;
            } else if p < pattern.len() && pattern[p] == text[t] {
                p += 1;
                t += 1;
            } else if let Some((star_p, star_t)) = star {
                p = star_p + 1;
                t = star_t + 1;
                star = Some((star_p, star_t + 1));
            } else {
                return false;
            }
        }
        pattern[p..].iter().all(|&b| b == b'*')
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether any of `patterns` matches `room`.
pub(crate) fn any_matches(patterns: &[Pattern], room: &str) -> bool {
    patterns.iter().any(|pattern| pattern.matches(room))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> Pattern {
        Pattern::new(text).expect("valid pattern")
    }

    #[test]
    fn a_star_stands_for_any_run_of_characters() {
        let payments = pattern("pagamento_*");
        assert!(payments.matches("pagamento_42"));
        assert!(payments.matches("pagamento_"));
        assert!(!payments.matches("pagamento"));
        assert!(!payments.matches("xpagamento_1"));
        assert!(pattern("*").matches("anything"));
        assert!(pattern("a*b").matches("ab"));
        assert!(pattern("a*b").matches("a-x-b"));
        assert!(!pattern("a*b").matches("a-x-bc"));
        assert!(pattern("*a*a*a*b").matches("aaaaaaaaaaaaaaab"));
        assert!(!pattern("*a*a*a*b").matches(&"a".repeat(100)));
        assert!(pattern("lobby").matches("lobby"));
        assert!(!pattern("lobby").matches("lobby2"));
    }

    #[test]
    fn patterns_hold_only_room_name_characters_and_stars() {
        assert_eq!(Pattern::new(""), Err(PatternError::Empty));
        assert_eq!(Pattern::new("a b"), Err(PatternError::InvalidChar(' ')));
        assert_eq!(Pattern::new("a?"), Err(PatternError::InvalidChar('?')));
        assert_eq!(
            Pattern::new(&"a".repeat(MAX_PATTERN_BYTES + 1)),
            Err(PatternError::TooLong)
        );
    }

    /// The obvious recursive definition, to check the linear matcher against.
    fn reference(pattern: &[u8], text: &[u8]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some((b'*', rest)) => (0..=text.len()).any(|skip| reference(rest, &text[skip..])),
            Some((c, rest)) => text.first() == Some(c) && reference(rest, &text[1..]),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn the_matcher_agrees_with_the_definition(
            pattern in "[ab*]{1,10}",
            room in "[ab]{0,14}",
        ) {
            let compiled = Pattern::new(&pattern).expect("valid");
            proptest::prop_assert_eq!(
                compiled.matches(&room),
                reference(pattern.as_bytes(), room.as_bytes())
            );
        }

        #[test]
        fn any_text_is_a_pattern_or_a_named_refusal(text in "\\PC{0,40}") {
            if let Err(e) = Pattern::new(&text) {
                proptest::prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}
