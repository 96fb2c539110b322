//! What `listen` writes on stdout: messages and presence events, as lines for people or as the
//! typed frames in JSON, with peers' text neutralised when it would drive a terminal.

use std::borrow::Cow;
use std::io::Write;

use clap::ValueEnum;
use roomcast_protocol::terminal_text::sanitize;
use roomcast_protocol::{RoomMessage, ServerFrame};

use crate::cmd::json_line;

/// When `listen` neutralises control characters in the text it prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sanitize {
    /// When stdout is a terminal (a pipe gets the text as sent).
    Auto,
    /// Always, also into pipes and files.
    Always,
    /// Never: peers' escape sequences reach the terminal.
    Never,
}

impl Sanitize {
    /// Whether text is neutralised when stdout is (or is not) a terminal.
    pub fn applies(self, stdout_is_terminal: bool) -> bool {
        match self {
            Sanitize::Auto => stdout_is_terminal,
            Sanitize::Always => true,
            Sanitize::Never => false,
        }
    }
}

/// One message: the typed frame as JSON (escaped by [`json_line`]), or a line for people, its
/// text neutralised when `sanitize_text` (room and user names cannot hold control characters).
pub fn print_message<W: Write>(
    out: &mut W,
    message: &RoomMessage,
    json: bool,
    sanitize_text: bool,
) -> std::io::Result<()> {
    if json {
        return json_line(out, &ServerFrame::Message(message.clone()));
    }
    let text = if sanitize_text {
        Cow::Owned(sanitize(&message.message))
    } else {
        Cow::Borrowed(message.message.as_str())
    };
    writeln!(
        out,
        "{} {} #{} {}: {text}",
        clock(message.ts),
        message.room,
        message.seq,
        message.user,
    )?;
    out.flush()
}

/// A join or leave event (with the leave reason).
pub fn print_presence<W: Write>(
    out: &mut W,
    frame: &ServerFrame,
    json: bool,
) -> std::io::Result<()> {
    if json {
        return json_line(out, frame);
    }
    match frame {
        ServerFrame::Join { room, user } => writeln!(out, "{room} --> {user} joined")?,
        ServerFrame::Leave { room, user, reason } => {
            writeln!(out, "{room} <-- {user} left ({reason})")?;
        }
        _ => {}
    }
    out.flush()
}

/// `HH:MM:SS` (UTC) of a server timestamp in milliseconds since the Unix epoch.
fn clock(ts_ms: u64) -> String {
    let secs = (ts_ms / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use roomcast_protocol::{RoomName, UserName};

    use super::*;

    fn message() -> RoomMessage {
        RoomMessage {
            room: RoomName::new("lobby").expect("valid room"),
            user: UserName::new("ana").expect("valid user"),
            seq: 3,
            ts: 1_700_000_000_000,
            message: "hi".into(),
            data: None,
        }
    }

    #[test]
    fn messages_print_as_a_line_or_as_the_typed_frame() {
        let mut human = Vec::new();
        print_message(&mut human, &message(), false, true).expect("write");
        assert_eq!(
            String::from_utf8_lossy(&human),
            "22:13:20 lobby #3 ana: hi\n"
        );
        let mut json = Vec::new();
        print_message(&mut json, &message(), true, true).expect("write");
        let value: serde_json::Value = serde_json::from_slice(&json).expect("one JSON object");
        assert_eq!(value["type"], "message");
        assert_eq!(value["seq"], 3);
    }

    #[test]
    fn sanitizing_applies_on_a_terminal_unless_told_otherwise() {
        assert!(Sanitize::Auto.applies(true));
        assert!(!Sanitize::Auto.applies(false));
        assert!(Sanitize::Always.applies(false));
        assert!(!Sanitize::Never.applies(true));
    }

    #[test]
    fn leave_events_show_their_reason() {
        let leave = ServerFrame::Leave {
            room: RoomName::new("lobby").expect("valid room"),
            user: UserName::new("bo").expect("valid user"),
            reason: roomcast_protocol::LeaveReason::Timeout,
        };
        let mut human = Vec::new();
        print_presence(&mut human, &leave, false).expect("write");
        assert_eq!(
            String::from_utf8_lossy(&human),
            "lobby <-- bo left (timeout)\n"
        );
    }
}
