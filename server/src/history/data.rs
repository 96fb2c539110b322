//! A message's `data`: the structured fields published beside its text (an HTTP publish's or a
//! typed `publish` frame's `data` object, a Django `group_send`'s other fields).
//!
//! Kept as its compact JSON encoding, made once where the message enters the server: every
//! typed frame, SSE event and Redis entry embeds those bytes as they are, so a message with
//! data costs no extra serialization per member, and its size is known for the bounds.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A JSON object, held as compact JSON text (no newline can occur in it: the Redis wire
/// format relies on that).
#[derive(Clone)]
pub(crate) struct MessageData(Box<RawValue>);

impl MessageData {
    /// Encodes `map` once.
    pub(crate) fn from_map(map: &Map<String, Value>) -> Self {
        // A map with string keys always encodes; the fallback is unreachable, not bad input.
        let raw = serde_json::value::to_raw_value(map).unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not encode message data");
            RawValue::NULL.to_owned()
        });
        Self(raw)
    }

    /// Reads compact JSON written by [`as_json`](Self::as_json) (from a Redis entry); `None`
    /// unless it is one JSON object on one line.
    pub(crate) fn parse(json: &str) -> Option<Self> {
        if !json.starts_with('{') || json.contains('\n') {
            return None;
        }
        RawValue::from_string(json.to_owned()).ok().map(Self)
    }

    /// The compact JSON text.
    pub(crate) fn as_json(&self) -> &str {
        self.0.get()
    }

    /// Its size in bytes: what it adds to a message for `--max-message-bytes` and history.
    pub(crate) fn len(&self) -> usize {
        self.0.get().len()
    }

    /// The object itself (HTTP history, forwarding to Django): decoded again, off the fan-out
    /// path.
    pub(crate) fn to_map(&self) -> Map<String, Value> {
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }
}

impl PartialEq for MessageData {
    fn eq(&self, other: &Self) -> bool {
        self.as_json() == other.as_json()
    }
}

impl Eq for MessageData {}

impl fmt::Debug for MessageData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_json())
    }
}

impl Serialize for MessageData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_compact_json_that_reads_back() {
        let map: Map<String, Value> =
            serde_json::from_str("{ \"status\": \"a\\nb\",\n \"amount\": 12.5 }").expect("object");
        let data = MessageData::from_map(&map);
        assert!(!data.as_json().contains('\n'), "{}", data.as_json());
        assert_eq!(MessageData::parse(data.as_json()), Some(data.clone()));
        assert_eq!(data.to_map(), map);
        assert_eq!(data.len(), data.as_json().len());
        assert_eq!(MessageData::parse("[1]"), None);
        assert_eq!(MessageData::parse("{\"a\":"), None);
    }
}
