//! Error codes shared by error frames (both protocols) and HTTP error bodies.

use serde::{Deserialize, Serialize};

/// Why the server refused a frame or a request. Serialized in `snake_case`
/// (`"invalid_json"`, ...). The session stays open after every one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame or body is not valid JSON.
    InvalidJson,
    /// The JSON is well formed but a field is missing or has the wrong type or value.
    InvalidFrame,
    /// The frame's `type` is not one this server knows.
    UnknownType,
    /// A binary frame arrived; roomcast speaks JSON text frames only.
    BinaryUnsupported,
    /// A room name broke the naming rule; the message says which rule.
    InvalidRoom,
    /// A user name broke the naming rule; the message says which rule.
    InvalidUser,
    /// The frame names a room this session has not joined.
    NotJoined,
    /// Joining would pass the server's `max-rooms-per-session`.
    TooManyRooms,
    /// The session sent faster than the rate limit; the frame was dropped, not published.
    RateLimited,
    /// Publishing needs `Authorization: Bearer <key>` (or a loopback peer when no key is set).
    Unauthorized,
    /// Access to a private room was refused (no valid token, the app said no, or a name that is
    /// not the token's); the message starts with the rule that failed.
    Forbidden,
    /// The request body is larger than `max-message-bytes`.
    PayloadTooLarge,
    /// The server is shutting down and no longer accepts this request.
    Unavailable,
    /// The requested room or resource does not exist.
    NotFound,
    /// A code this client does not know yet (sent by a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code's wire name, e.g. `"invalid_json"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidFrame => "invalid_frame",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BinaryUnsupported => "binary_unsupported",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::InvalidUser => "invalid_user",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of an error: a stable code for programs and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, as a stable code.
    pub code: ErrorCode,
    /// What went wrong and what to do, for a person.
    pub message: String,
}

/// How every HTTP error answer is wrapped: `{"error": {"code": ..., "message": ...}}` (the
/// tutorial protocol's error frame has the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde() {
        for code in [
            ErrorCode::InvalidJson,
            ErrorCode::TooManyRooms,
            ErrorCode::NotFound,
        ] {
            let json = serde_json::to_string(&code).ok();
            assert_eq!(json, Some(format!("\"{code}\"")));
        }
        let unknown: Result<ErrorCode, _> = serde_json::from_str("\"from_the_future\"");
        assert_eq!(unknown.ok(), Some(ErrorCode::Unknown));
    }
}
