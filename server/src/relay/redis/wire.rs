//! What travels on a room's Redis channel and sits in its history list: one text format, built
//! by our Lua scripts (by concatenation) and read by every node.
//!
//! ```text
//! rc1\nm\n<seq>\n<epoch>\n<ts>\n<user>\n<text>     a message (also each history entry)
//! rc1\nd\n<seq>\n<epoch>\n<ts>\n<user>\n<data>\n<text>   one with data (compact JSON object)
//! rc1\nj\n<pver>\n<user>                           a user became present on some node
//! rc1\nl\n<pver>\n<user>\n<reason>                 a user's last session anywhere left
//! ```
//!
//! Fields are separated by newlines because no field but the text, which comes last, can hold
//! one (user names and epochs cannot, and compact JSON escapes them). A message without data
//! is still written as `m`, so nodes from before `d` existed read it, and entries written by
//! them read as messages without data. Hand-written rather than JSON or msgpack because the Lua
//! side must build it by concatenation and this side reads it with a handful of `split`s.

use roomcast_protocol::{LeaveReason, UserName};

use crate::history::MessageData;

/// The first line of everything we publish; anything else on our channels is someone else's.
const MAGIC: &str = "rc1";

/// One decoded item from a room's channel or history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Relayed {
    /// A numbered chat message.
    Message {
        epoch: Box<str>,
        seq: u64,
        ts: u64,
        user: UserName,
        text: Box<str>,
        data: Option<MessageData>,
    },
    /// `user` became present in the room (their first session on any node).
    Join { pver: u64, user: UserName },
    /// `user`'s last session on any node left.
    Leave {
        pver: u64,
        user: UserName,
        reason: LeaveReason,
    },
}

/// Why a payload was not ours; the metric label and the once-per-kind log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Garbage {
    /// Not UTF-8.
    NotText,
    /// Does not start with our format's first line.
    Foreign,
    /// Our first line, then a kind we do not know (a newer node's?).
    UnknownKind,
    /// A known kind with a missing or malformed field.
    BadField,
}

impl Garbage {
    /// The `kind` label of `roomcast_relay_garbage_total`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Garbage::NotText => "not_text",
            Garbage::Foreign => "foreign",
            Garbage::UnknownKind => "unknown_kind",
            Garbage::BadField => "bad_field",
        }
    }
}

/// Reads one payload.
pub(crate) fn decode(payload: &[u8]) -> Result<Relayed, Garbage> {
    let text = std::str::from_utf8(payload).map_err(|_| Garbage::NotText)?;
    let rest = text
        .strip_prefix(MAGIC)
        .and_then(|r| r.strip_prefix('\n'))
        .ok_or(Garbage::Foreign)?;
    let (kind, rest) = rest.split_once('\n').ok_or(Garbage::BadField)?;
    match kind {
        "m" | "d" => {
            let with_data = kind == "d";
            let mut fields = rest.splitn(if with_data { 6 } else { 5 }, '\n');
            let seq = number(fields.next())?;
            let epoch = fields
                .next()
                .filter(|e| !e.is_empty())
                .ok_or(Garbage::BadField)?;
            let ts = number(fields.next())?;
            let user = user(fields.next())?;
            let data = if with_data {
                let json = fields.next().ok_or(Garbage::BadField)?;
                Some(MessageData::parse(json).ok_or(Garbage::BadField)?)
            } else {
                None
            };
            let text = fields.next().ok_or(Garbage::BadField)?;
            Ok(Relayed::Message {
                epoch: epoch.into(),
                seq,
                ts,
                user,
                text: text.into(),
                data,
            })
        }
        "j" => {
            let mut fields = rest.splitn(2, '\n');
            let pver = number(fields.next())?;
            Ok(Relayed::Join {
                pver,
                user: user(fields.next())?,
            })
        }
        "l" => {
            let mut fields = rest.splitn(3, '\n');
            let pver = number(fields.next())?;
            let user = user(fields.next())?;
            let reason = leave_reason(fields.next().ok_or(Garbage::BadField)?);
            Ok(Relayed::Leave { pver, user, reason })
        }
        _ => Err(Garbage::UnknownKind),
    }
}

fn number(field: Option<&str>) -> Result<u64, Garbage> {
    field.and_then(|f| f.parse().ok()).ok_or(Garbage::BadField)
}

fn user(field: Option<&str>) -> Result<UserName, Garbage> {
    field
        .and_then(|f| UserName::new(f).ok())
        .ok_or(Garbage::BadField)
}

/// The reason's wire name back to the reason; names we do not know yet become `Other`.
pub(crate) fn leave_reason(name: &str) -> LeaveReason {
    [
        LeaveReason::Left,
        LeaveReason::Timeout,
        LeaveReason::Slow,
        LeaveReason::Closed,
        LeaveReason::Shutdown,
    ]
    .into_iter()
    .find(|reason| reason.as_str() == name)
    .unwrap_or(LeaveReason::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_and_the_text_may_hold_newlines() {
        let message = decode(b"rc1\nm\n7\nabc\n1700\nana b\nhello\nworld");
        assert_eq!(
            message,
            Ok(Relayed::Message {
                epoch: "abc".into(),
                seq: 7,
                ts: 1700,
                user: UserName::new("ana b").expect("user"),
                text: "hello\nworld".into(),
                data: None,
            })
        );
        assert!(matches!(
            decode(b"rc1\nj\n3\nana"),
            Ok(Relayed::Join { pver: 3, .. })
        ));
        assert!(matches!(
            decode(b"rc1\nl\n4\nana\ntimeout"),
            Ok(Relayed::Leave {
                pver: 4,
                reason: LeaveReason::Timeout,
                ..
            })
        ));
        assert_eq!(decode(b"rc1\nm\n7\nabc\n1700\nana\n"), {
            Ok(Relayed::Message {
                epoch: "abc".into(),
                seq: 7,
                ts: 1700,
                user: UserName::new("ana").expect("user"),
                text: "".into(),
                data: None,
            })
        });
    }

    #[test]
    fn a_message_with_data_reads_back_and_its_text_may_hold_newlines() {
        let decoded = decode(b"rc1\nd\n8\nabc\n1700\nana\n{\"status\":\"approved\"}\npaid\ntwice");
        let Ok(Relayed::Message { data, text, .. }) = decoded else {
            panic!("not a message: {decoded:?}");
        };
        assert_eq!(
            data.as_ref().map(MessageData::as_json),
            Some(r#"{"status":"approved"}"#)
        );
        assert_eq!(&*text, "paid\ntwice");
        // Data that is not one JSON object is not ours.
        assert_eq!(
            decode(b"rc1\nd\n8\nabc\n1700\nana\n[1]\npaid"),
            Err(Garbage::BadField)
        );
        assert_eq!(
            decode(b"rc1\nd\n8\nabc\n1700\nana\n{\"a\":1}"),
            Err(Garbage::BadField)
        );
    }

    #[test]
    fn garbage_is_sorted_by_kind() {
        assert_eq!(decode(&[0xff, 0xfe]), Err(Garbage::NotText));
        assert_eq!(decode(b"{\"message\":\"hi\"}"), Err(Garbage::Foreign));
        assert_eq!(decode(b"rc1\nx\n1"), Err(Garbage::UnknownKind));
        assert_eq!(
            decode(b"rc1\nm\nseven\nabc\n1\nana\nhi"),
            Err(Garbage::BadField)
        );
        assert_eq!(decode(b"rc1\nj\n1\n\x07bell"), Err(Garbage::BadField));
        assert_eq!(decode(b"rc1\nm\n1"), Err(Garbage::BadField));
    }
}
