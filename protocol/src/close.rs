//! Close codes: why the server ended a session, and whether the client should come back.
//!
//! 1000–1011 are RFC 6455's; 4000–4999 are roomcast's. The range carries the advice:
//! 4000–4499 may reconnect (after jittered backoff), 4500–4999 should not, because the same
//! request would be refused again.

use std::fmt;

/// What a client should do after the server closed its session with a given code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconnectAdvice {
    /// Reconnect after a jittered, growing delay (the usual case: restarts, evictions).
    Backoff,
    /// Do not reconnect with the same request: it will be refused again.
    DoNot,
}

/// A close code the server sends, with its meaning. Unknown codes are kept as [`CloseCode::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1000: the session ended normally (the client asked to close).
    Normal,
    /// 1001: the server is shutting down or restarting; reconnect to another node.
    GoingAway,
    /// 1002: the peer broke the WebSocket protocol.
    ProtocolError,
    /// 1007: a text message (or a close reason) was not valid UTF-8 (RFC 6455 §8.1).
    InvalidPayload,
    /// 1009: a frame exceeded the server's `max-message-bytes`.
    MessageTooBig,
    /// 1011: the server hit an internal error.
    InternalError,
    /// 1013: the server is at a capacity bound (`--max-rooms`); try again later.
    TryAgainLater,
    /// 4000: nothing (not even a pong) arrived within `ping-timeout` after a ping.
    HeartbeatTimeout,
    /// 4001: the client read too slowly; its outbound queue passed `max-queue-bytes`, or a write
    /// stalled past `write-timeout`.
    SlowConsumer,
    /// 4002: the client sent frames faster than the rate limit allows, for too long.
    Flood,
    /// 4003: the session sent no frame and joined no room within `handshake-timeout` of its
    /// upgrade (an idle socket holding a connection slot). Reconnect when there is something
    /// to say.
    FirstFrameTimeout,
    /// 4500: the room name in the URL is not valid; the reason says which rule it broke.
    InvalidRoom,
    /// 4501: the `user` query parameter is not a valid user name.
    InvalidUser,
    /// 4503: a private room refused this session (no valid token, a token for other rooms, a
    /// name that is not the token's, or the app's join proxy said no). The reason starts with
    /// `forbidden: <rule>`.
    Forbidden,
    /// Any other code.
    Other(u16),
}

impl CloseCode {
    /// Every named code, in table order (for docs and tests).
    pub const ALL: [CloseCode; 14] = [
        CloseCode::Normal,
        CloseCode::GoingAway,
        CloseCode::ProtocolError,
        CloseCode::InvalidPayload,
        CloseCode::MessageTooBig,
        CloseCode::InternalError,
        CloseCode::TryAgainLater,
        CloseCode::HeartbeatTimeout,
        CloseCode::SlowConsumer,
        CloseCode::Flood,
        CloseCode::FirstFrameTimeout,
        CloseCode::InvalidRoom,
        CloseCode::InvalidUser,
        CloseCode::Forbidden,
    ];

    /// The numeric code on the wire.
    pub const fn as_u16(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::ProtocolError => 1002,
            CloseCode::InvalidPayload => 1007,
            CloseCode::MessageTooBig => 1009,
            CloseCode::InternalError => 1011,
            CloseCode::TryAgainLater => 1013,
            CloseCode::HeartbeatTimeout => 4000,
            CloseCode::SlowConsumer => 4001,
            CloseCode::Flood => 4002,
            CloseCode::FirstFrameTimeout => 4003,
            CloseCode::InvalidRoom => 4500,
            CloseCode::InvalidUser => 4501,
            CloseCode::Forbidden => 4503,
            CloseCode::Other(code) => code,
        }
    }

    /// The short, stable name of the code (also used as the metric label and leave reason).
    pub const fn name(self) -> &'static str {
        match self {
            CloseCode::Normal => "normal",
            CloseCode::GoingAway => "going_away",
            CloseCode::ProtocolError => "protocol_error",
            CloseCode::InvalidPayload => "invalid_payload",
            CloseCode::MessageTooBig => "message_too_big",
            CloseCode::InternalError => "internal_error",
            CloseCode::TryAgainLater => "try_again_later",
            CloseCode::HeartbeatTimeout => "timeout",
            CloseCode::SlowConsumer => "slow",
            CloseCode::Flood => "flood",
            CloseCode::FirstFrameTimeout => "first_frame_timeout",
            CloseCode::InvalidRoom => "invalid_room",
            CloseCode::InvalidUser => "invalid_user",
            CloseCode::Forbidden => "forbidden",
            CloseCode::Other(_) => "other",
        }
    }

    /// What the client should do next. RFC codes and 4000–4499 say [`ReconnectAdvice::Backoff`];
    /// 4500–4999 say [`ReconnectAdvice::DoNot`].
    pub const fn advice(self) -> ReconnectAdvice {
        match self.as_u16() {
            4500..=4999 => ReconnectAdvice::DoNot,
            _ => ReconnectAdvice::Backoff,
        }
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode::ALL
            .into_iter()
            .find(|named| named.as_u16() == code)
            .unwrap_or(CloseCode::Other(code))
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.as_u16(), self.name())
    }
}

/// Longest close reason RFC 6455 allows, in bytes (125-byte control payload minus the code).
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// Cuts `reason` to at most [`MAX_CLOSE_REASON_BYTES`] bytes on a character boundary, so a long
/// detail never makes the close frame itself invalid.
pub fn fit_close_reason(reason: &str) -> &str {
    if reason.len() <= MAX_CLOSE_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_CLOSE_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_numbers() {
        for code in CloseCode::ALL {
            assert_eq!(CloseCode::from(code.as_u16()), code);
        }
        assert_eq!(CloseCode::from(4242), CloseCode::Other(4242));
    }

    #[test]
    fn the_range_carries_the_advice() {
        assert_eq!(
            CloseCode::HeartbeatTimeout.advice(),
            ReconnectAdvice::Backoff
        );
        assert_eq!(CloseCode::SlowConsumer.advice(), ReconnectAdvice::Backoff);
        assert_eq!(CloseCode::GoingAway.advice(), ReconnectAdvice::Backoff);
        assert_eq!(CloseCode::InvalidRoom.advice(), ReconnectAdvice::DoNot);
        assert_eq!(CloseCode::Other(4999).advice(), ReconnectAdvice::DoNot);
    }

    #[test]
    fn long_reasons_are_cut_on_a_character_boundary() {
        let reason = "é".repeat(100);
        let fitted = fit_close_reason(&reason);
        assert!(fitted.len() <= MAX_CLOSE_REASON_BYTES);
        assert!(reason.starts_with(fitted));
    }
}
