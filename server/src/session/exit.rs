//! Why a session ended, and what that means for its close frame, its rooms and the metrics.

use std::time::Duration;

use roomcast_protocol::{CloseCode, LeaveReason};

/// Why a session's loop returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exit {
    /// The client sent a close frame, with this code (the answer echoes it, RFC 6455 §5.5.1).
    ClientClosed(Option<u16>),
    /// The socket ended without a close frame (reset, EOF, write error).
    Vanished,
    /// A ping went unanswered for `ping_timeout`.
    Timeout(Duration),
    /// The outbound queue passed `max_queue_bytes`.
    QueueOverflow(usize),
    /// A socket write stalled past `write_timeout`.
    WriteStalled(Duration),
    /// The client kept sending over the rate limit.
    Flood,
    /// The session sent no frame and joined no room within `--handshake-timeout` of its
    /// upgrade.
    Silent(Duration),
    /// A frame passed `max_message_bytes`.
    TooBig(usize),
    /// The client broke the WebSocket protocol.
    ProtocolError,
    /// A text message or close reason from the client was not UTF-8.
    NotUtf8,
    /// The server is shutting down.
    Shutdown,
    /// The session was refused at connect (bad room or user name).
    Refused(CloseCode, String),
}

impl Exit {
    /// The close frame the server sends on its own account, if it sends one (the answer to a
    /// client's close is that close's echo).
    pub(crate) fn close_frame(&self) -> Option<(CloseCode, String)> {
        let frame = match self {
            Exit::ClientClosed(_) | Exit::Vanished => return None,
            Exit::Timeout(timeout) => (
                CloseCode::HeartbeatTimeout,
                format!("no pong or frame within {timeout:?} of a ping"),
            ),
            Exit::QueueOverflow(bytes) => (
                CloseCode::SlowConsumer,
                format!("too slow: more than {bytes} bytes waiting to be sent"),
            ),
            Exit::WriteStalled(timeout) => (
                CloseCode::SlowConsumer,
                format!("too slow: a write stalled for {timeout:?}"),
            ),
            Exit::Flood => (
                CloseCode::Flood,
                "too many frames: rate limit exceeded".to_owned(),
            ),
            Exit::Silent(timeout) => (
                CloseCode::FirstFrameTimeout,
                format!(
                    "no frame and no room within {timeout:?} of the upgrade (--handshake-timeout)"
                ),
            ),
            Exit::TooBig(limit) => (
                CloseCode::MessageTooBig,
                format!("frame larger than {limit} bytes"),
            ),
            Exit::ProtocolError => (
                CloseCode::ProtocolError,
                "WebSocket protocol violation".to_owned(),
            ),
            Exit::NotUtf8 => (
                CloseCode::InvalidPayload,
                "a text message was not valid UTF-8".to_owned(),
            ),
            Exit::Shutdown => (CloseCode::GoingAway, "server shutting down".to_owned()),
            Exit::Refused(code, reason) => (*code, reason.clone()),
        };
        Some(frame)
    }

    /// What the other members are told in the `leave` event.
    pub(crate) fn leave_reason(&self) -> LeaveReason {
        match self {
            Exit::ClientClosed(_) => LeaveReason::Left,
            Exit::Timeout(_) => LeaveReason::Timeout,
            Exit::QueueOverflow(_) | Exit::WriteStalled(_) => LeaveReason::Slow,
            Exit::Shutdown => LeaveReason::Shutdown,
            Exit::Vanished
            | Exit::Flood
            | Exit::Silent(_)
            | Exit::TooBig(_)
            | Exit::ProtocolError
            | Exit::NotUtf8
            | Exit::Refused(..) => LeaveReason::Closed,
        }
    }

    /// The `evictions` metric label when the server ended the session.
    pub(crate) fn eviction_label(&self) -> Option<&'static str> {
        match self {
            Exit::Timeout(_) => Some("timeout"),
            Exit::QueueOverflow(_) | Exit::WriteStalled(_) => Some("slow"),
            Exit::Flood => Some("flood"),
            Exit::Silent(_) => Some("first_frame_timeout"),
            Exit::TooBig(_) => Some("too_big"),
            Exit::ProtocolError => Some("protocol_error"),
            Exit::NotUtf8 => Some("invalid_payload"),
            Exit::Shutdown => Some("shutdown"),
            Exit::ClientClosed(_) | Exit::Vanished | Exit::Refused(..) => None,
        }
    }

    /// Whether a close frame could still get through: not to a socket that took nothing for
    /// `--write-timeout`, nor to one that is gone. (A reader that fell `--max-queue-bytes`
    /// behind may still be reading: it gets its close frame if it takes it in time.)
    pub(crate) fn peer_takes_bytes(&self) -> bool {
        !matches!(self, Exit::WriteStalled(_) | Exit::Vanished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_fit_in_a_close_frame() {
        let exits = [
            Exit::Timeout(Duration::from_secs(30)),
            Exit::QueueOverflow(usize::MAX),
            Exit::WriteStalled(Duration::from_secs(10)),
            Exit::Flood,
            Exit::Silent(Duration::from_secs(u64::MAX)),
            Exit::TooBig(usize::MAX),
            Exit::ProtocolError,
            Exit::NotUtf8,
            Exit::Shutdown,
        ];
        for exit in exits {
            let (_, reason) = exit
                .close_frame()
                .unwrap_or_else(|| panic!("{exit:?} closes"));
            assert!(reason.len() <= roomcast_protocol::close::MAX_CLOSE_REASON_BYTES);
        }
    }
}
