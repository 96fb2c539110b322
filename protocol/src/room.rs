//! Room names: the one identifier every path, frame and Redis key is built from.

use std::sync::Arc;

/// Longest accepted room name, in characters (all ASCII, so also bytes).
///
/// Django Channels documents "a maximum length of 100" for group names; we accept exactly that,
/// so every name a Channels deployment used is still valid here.
pub const MAX_ROOM_NAME_CHARS: usize = 100;

/// A validated room name: 1 to [`MAX_ROOM_NAME_CHARS`] ASCII letters, digits, `-`, `_` or `.`,
/// and not made of dots alone (so `.` and `..` can never reach a path or a key).
///
/// Cloning is cheap (a reference count), because every message and membership carries one.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(Arc<str>);

/// Why a string is not a [`RoomName`]. The `Display` text names the rule that was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomNameError {
    /// The name was empty.
    #[error("room name is empty; use 1 to {MAX_ROOM_NAME_CHARS} of A-Z a-z 0-9 - _ .")]
    Empty,
    /// The name was longer than [`MAX_ROOM_NAME_CHARS`].
    #[error("room name is {chars} characters long; the limit is {MAX_ROOM_NAME_CHARS}")]
    TooLong {
        /// Length of the rejected name, in characters.
        chars: usize,
    },
    /// The name held a character outside the allowed set.
    #[error("room name has {found:?} at position {position}; only A-Z a-z 0-9 - _ . are allowed")]
    InvalidChar {
        /// The first offending character.
        found: char,
        /// Its position, counted in characters from 0.
        position: usize,
    },
    /// The name was `.`, `..` or more dots: path segments, not rooms.
    #[error("room name {0:?} is only dots, which paths treat specially; add a letter or digit")]
    OnlyDots(String),
}

impl RoomName {
    /// Validates `name` and wraps it.
    pub fn new(name: &str) -> Result<Self, RoomNameError> {
        validate(name)?;
        Ok(Self(Arc::from(name)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name's path segment in URLs. Valid names need no percent-encoding.
    pub fn path_segment(&self) -> &str {
        &self.0
    }
}

fn validate(name: &str) -> Result<(), RoomNameError> {
    if name.is_empty() {
        return Err(RoomNameError::Empty);
    }
    let chars = name.chars().count();
    if chars > MAX_ROOM_NAME_CHARS {
        return Err(RoomNameError::TooLong { chars });
    }
    if let Some((position, found)) = name
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(RoomNameError::InvalidChar { found, position });
    }
    if name.bytes().all(|b| b == b'.') {
        return Err(RoomNameError::OnlyDots(name.to_owned()));
    }
    Ok(())
}

crate::name::validated_name!(RoomName, RoomNameError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_characters_channels_accepts() {
        for name in ["lobby", "pagamento_42", "a.b-c_D9", "x", &"a".repeat(100)] {
            assert_eq!(
                RoomName::new(name).map(|r| r.to_string()),
                Ok(name.to_owned())
            );
        }
    }

    #[test]
    fn rejects_with_an_error_that_names_the_rule() {
        assert_eq!(RoomName::new(""), Err(RoomNameError::Empty));
        assert_eq!(
            RoomName::new(&"a".repeat(101)),
            Err(RoomNameError::TooLong { chars: 101 })
        );
        assert_eq!(
            RoomName::new("café"),
            Err(RoomNameError::InvalidChar {
                found: 'é',
                position: 3
            })
        );
        let message = RoomName::new("a/b").err().map(|e| e.to_string());
        assert_eq!(
            message.as_deref(),
            Some("room name has '/' at position 1; only A-Z a-z 0-9 - _ . are allowed")
        );
    }

    #[test]
    fn rejects_path_tricks() {
        for name in [
            ".", "..", "...", "../x", "a/../b", "a\\b", "a%2Fb", "a b", "a\0",
        ] {
            assert!(RoomName::new(name).is_err(), "{name:?} must be rejected");
        }
    }

    #[test]
    fn deserializing_validates() {
        let ok: Result<RoomName, _> = serde_json::from_str("\"lobby\"");
        assert!(ok.is_ok());
        let bad: Result<RoomName, _> = serde_json::from_str("\"no way\"");
        assert!(bad.is_err_and(|e| e.to_string().contains("only A-Z a-z 0-9")));
    }
}
