//! User names: how a session names itself in messages and presence.

use std::sync::Arc;

/// Longest accepted user name, in characters.
///
/// Long enough for "Firstname Lastname", short enough to fit a chat client's nick column.
pub const MAX_USER_NAME_CHARS: usize = 32;

/// A validated display name: 1 to [`MAX_USER_NAME_CHARS`] characters, each a Unicode letter or
/// digit, a space, or one of `- _ . '`; no leading, trailing or doubled spaces.
///
/// Unicode letters are allowed because display names need them ("José", "Zoë", "李"); control,
/// zero-width and bidirectional-override characters are not, so a name always looks like what
/// it is. Names compare exactly (case-sensitive).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(Arc<str>);

/// Why a string is not a [`UserName`]. The `Display` text names the rule that was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserNameError {
    /// The name was empty.
    #[error("user name is empty")]
    Empty,
    /// The name was longer than [`MAX_USER_NAME_CHARS`].
    #[error("user name is {chars} characters long; the limit is {MAX_USER_NAME_CHARS}")]
    TooLong {
        /// Length of the rejected name, in characters.
        chars: usize,
    },
    /// The name held a character outside the allowed set.
    #[error(
        "user name has {found:?} at position {position}; use letters, digits, spaces and - _ . '"
    )]
    InvalidChar {
        /// The first offending character.
        found: char,
        /// Its position, counted in characters from 0.
        position: usize,
    },
    /// The name started or ended with a space, or had two in a row.
    #[error("user name has a leading, trailing or doubled space")]
    BadSpacing,
}

impl UserName {
    /// Validates `name` and wraps it.
    pub fn new(name: &str) -> Result<Self, UserNameError> {
        validate(name)?;
        Ok(Self(Arc::from(name)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate(name: &str) -> Result<(), UserNameError> {
    if name.is_empty() {
        return Err(UserNameError::Empty);
    }
    let chars = name.chars().count();
    if chars > MAX_USER_NAME_CHARS {
        return Err(UserNameError::TooLong { chars });
    }
    if let Some((position, found)) = name
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '\'')))
    {
        return Err(UserNameError::InvalidChar { found, position });
    }
    if name.starts_with(' ') || name.ends_with(' ') || name.contains("  ") {
        return Err(UserNameError::BadSpacing);
    }
    Ok(())
}

crate::name::validated_name!(UserName, UserNameError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_display_names() {
        for name in [
            "alice",
            "José Núñez",
            "Zoë",
            "李小龍",
            "o'neil",
            "bot-7",
            "a.b_c",
        ] {
            assert!(UserName::new(name).is_ok(), "{name:?} should be accepted");
        }
    }

    #[test]
    fn rejects_invisible_and_misleading_characters() {
        for name in [
            "",
            " bob",
            "bob ",
            "bo  b",
            "a\u{200b}b",
            "a\u{202e}b",
            "tab\tx",
            "<b>",
        ] {
            assert!(UserName::new(name).is_err(), "{name:?} must be rejected");
        }
        assert_eq!(
            UserName::new(&"x".repeat(33)),
            Err(UserNameError::TooLong { chars: 33 })
        );
    }
}
