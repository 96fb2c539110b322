//! Turning inbound text into a frame, or into a refusal that says exactly what was wrong.
//!
//! The fast path is one serde decode. Only a frame that fails it is parsed again, generically,
//! to pick the most useful error code and to echo the frame's `ref`.

use roomcast_protocol::{ClientFrame, ErrorCode, Ref, RoomName, TutorialSend};
use serde_json::Value;

/// A refused frame: the answer the client gets, and the session goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    pub(crate) room: Option<RoomName>,
    pub(crate) reference: Option<Ref>,
}

impl Refusal {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            room: None,
            reference: None,
        }
    }

    pub(crate) fn about(mut self, room: Option<RoomName>, reference: Option<Ref>) -> Self {
        self.room = room;
        self.reference = reference;
        self
    }
}

const TYPES: [&str; 4] = ["join", "leave", "publish", "ping"];

/// Decodes a tutorial frame: `{"message": "<text>"}`.
pub(crate) fn tutorial(text: &str) -> Result<TutorialSend, Refusal> {
    serde_json::from_str(text).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            Refusal::new(ErrorCode::InvalidJson, format!("frame is not JSON: {e}"))
        } else {
            Refusal::new(
                ErrorCode::InvalidFrame,
                format!("expected {{\"message\": \"<text>\"}}: {e}"),
            )
        }
    })
}

/// Decodes a typed frame.
pub(crate) fn typed(text: &str) -> Result<ClientFrame, Refusal> {
    serde_json::from_str(text).map_err(|e| explain_typed(text, &e))
}

fn explain_typed(text: &str, error: &serde_json::Error) -> Refusal {
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) => return Refusal::new(ErrorCode::InvalidJson, format!("frame is not JSON: {e}")),
    };
    let reference = value
        .get("ref")
        .cloned()
        .and_then(|r| serde_json::from_value(r).ok());
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return Refusal::new(
            ErrorCode::InvalidFrame,
            "every frame needs a string \"type\": join, leave, publish or ping",
        )
        .about(None, reference);
    };
    if !TYPES.contains(&kind) {
        return Refusal::new(
            ErrorCode::UnknownType,
            format!("unknown type {kind:?}; expected join, leave, publish or ping"),
        )
        .about(None, reference);
    }
    if let Some(room) = value.get("room").and_then(Value::as_str)
        && let Err(e) = RoomName::new(room)
    {
        return Refusal::new(ErrorCode::InvalidRoom, e.to_string()).about(None, reference);
    }
    let room = value
        .get("room")
        .and_then(Value::as_str)
        .and_then(|r| RoomName::new(r).ok());
    Refusal::new(
        ErrorCode::InvalidFrame,
        format!("invalid {kind} frame: {error}"),
    )
    .about(room, reference)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> Refusal {
        typed(text)
            .err()
            .unwrap_or_else(|| panic!("{text} should be refused"))
    }

    #[test]
    fn each_mistake_gets_its_own_code_and_the_ref_comes_back() {
        assert_eq!(refused("{oops").code, ErrorCode::InvalidJson);
        assert_eq!(refused("[1]").code, ErrorCode::InvalidFrame);
        let unknown = refused(r#"{"type":"shout","ref":"r1"}"#);
        assert_eq!(unknown.code, ErrorCode::UnknownType);
        assert_eq!(unknown.reference, Some(Ref::Text("r1".into())));
        assert_eq!(
            refused(r#"{"type":"join","room":"a b"}"#).code,
            ErrorCode::InvalidRoom
        );
        let missing = refused(r#"{"type":"publish","room":"lobby","ref":2}"#);
        assert_eq!(missing.code, ErrorCode::InvalidFrame);
        assert!(missing.message.contains("message"), "{}", missing.message);
        assert_eq!(missing.reference, Some(Ref::Number(2)));
    }

    #[test]
    fn tutorial_frames_need_a_string_message() {
        assert!(tutorial(r#"{"message":"hi","extra":1}"#).is_ok());
        assert_eq!(
            tutorial("nope").err().map(|r| r.code),
            Some(ErrorCode::InvalidJson)
        );
        assert_eq!(
            tutorial("{}").err().map(|r| r.code),
            Some(ErrorCode::InvalidFrame)
        );
        assert_eq!(
            tutorial(r#"{"message":5}"#).err().map(|r| r.code),
            Some(ErrorCode::InvalidFrame)
        );
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics_either_decoder_and_every_refusal_explains_itself(text in "\\PC{0,200}") {
            if let Err(refusal) = typed(&text) {
                proptest::prop_assert!(!refusal.message.is_empty());
            }
            if let Err(refusal) = tutorial(&text) {
                proptest::prop_assert!(!refusal.message.is_empty());
            }
        }
    }
}
