//! channels_redis's message format: a msgpack map (`msgpack.packb(message)`, its default
//! `serializer_format`), which the core layer precedes with random bytes
//! (`random_prefix_length`, 12 by default) so equal messages stay distinct members of a
//! channel's sorted set. With `symmetric_encryption_keys` the map is a Fernet token instead,
//! which the bridge cannot read: it counts such payloads as `encrypted`.

use rmpv::Value;
use roomcast_protocol::UserName;
use serde_json::Map;

use super::json::{self, Unfit};
use crate::history::MessageData;

/// Random bytes the core layer puts before every message (`random_prefix_length`'s default).
pub(crate) const CORE_RANDOM_PREFIX_BYTES: usize = 12;

/// The field channels_redis adds to a message sent to process-local channels, naming them.
const CHANNEL_FIELD: &str = "__asgi_channel__";

/// The field roomcast adds to the messages it forwards, holding its `--redis-prefix`, so its
/// own nodes know a message on a group came from them and do not publish it again.
pub(crate) const ORIGIN_FIELD: &str = "__roomcast__";

/// Who a Django message is shown as when it names no valid `user`.
pub(crate) const DEFAULT_USER: &str = "django";

/// A Fernet token is URL-safe base64 of a version byte 0x80 and a big-endian timestamp whose
/// top bytes are zero for centuries: it always starts with this.
const FERNET_START: &[u8] = b"gAAAAA";

/// Fields of a Channels message that are never `data`: the handler's name, the text, the
/// sender, and the markers channels_redis and roomcast add.
const NOT_DATA: [&str; 5] = ["type", "message", "user", CHANNEL_FIELD, ORIGIN_FIELD];

/// A group message the bridge publishes to its room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Incoming {
    pub(crate) user: UserName,
    pub(crate) text: String,
    /// The other fields that JSON can hold (`None` when there are none).
    pub(crate) data: Option<MessageData>,
    /// Fields left out of `data` because JSON cannot hold them, one entry per field.
    pub(crate) dropped: Vec<Unfit>,
}

/// What a payload turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A message for the room.
    Message(Incoming),
    /// One this deployment forwarded itself: not published again.
    Echo,
}

/// Why a payload was refused; the `kind` label of `roomcast_bridge_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Rejected {
    /// Not msgpack (or shorter than the core layer's random prefix).
    NotMsgpack,
    /// Msgpack, but not a map with text keys.
    NotMap,
    /// Larger than the bound (`--max-message-bytes` and room for the other fields).
    TooLarge,
    /// Encrypted with `symmetric_encryption_keys`, which roomcast does not support.
    Encrypted,
    /// A map without a text `message` field (the tutorial's shape).
    NoMessage,
}

impl Rejected {
    /// Every kind, for pre-created label values.
    pub(crate) const ALL: [Rejected; 5] = [
        Rejected::NotMsgpack,
        Rejected::NotMap,
        Rejected::TooLarge,
        Rejected::Encrypted,
        Rejected::NoMessage,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Rejected::NotMsgpack => "not_msgpack",
            Rejected::NotMap => "not_map",
            Rejected::TooLarge => "too_large",
            Rejected::Encrypted => "encrypted",
            Rejected::NoMessage => "no_message",
        }
    }
}

/// Reads one payload. `random_prefix` is 0 for the pub/sub layer and
/// [`CORE_RANDOM_PREFIX_BYTES`] for the core layer; `max_bytes` bounds the whole payload and
/// the text; `origin` is this deployment's [`ORIGIN_FIELD`] value.
pub(crate) fn decode(
    payload: &[u8],
    random_prefix: usize,
    max_bytes: usize,
    origin: &str,
) -> Result<Decoded, Rejected> {
    if payload.len() > max_bytes {
        return Err(Rejected::TooLarge);
    }
    let body = payload.get(random_prefix..).ok_or(Rejected::NotMsgpack)?;
    if body.starts_with(FERNET_START) {
        return Err(Rejected::Encrypted);
    }
    let mut reader = body;
    let value = rmpv::decode::read_value(&mut reader).map_err(|_| Rejected::NotMsgpack)?;
    if !reader.is_empty() {
        return Err(Rejected::NotMsgpack);
    }
    let Value::Map(fields) = value else {
        return Err(Rejected::NotMap);
    };
    let mut text = None;
    let mut user = None;
    let mut data = Map::new();
    let mut dropped = Vec::new();
    for (key, value) in &fields {
        let Some(key) = key.as_str() else {
            return Err(Rejected::NotMap);
        };
        match key {
            "message" => text = value.as_str(),
            "user" => user = value.as_str().and_then(|u| UserName::new(u).ok()),
            ORIGIN_FIELD if value.as_str() == Some(origin) => return Ok(Decoded::Echo),
            _ if NOT_DATA.contains(&key) => {}
            _ => match json::to_json(value) {
                Ok(json) => {
                    data.insert(key.to_owned(), json);
                }
                Err(unfit) => dropped.push(unfit),
            },
        }
    }
    let text = text.ok_or(Rejected::NoMessage)?;
    let user = match user {
        Some(user) => user,
        None => UserName::new(DEFAULT_USER).map_err(|_| Rejected::NoMessage)?,
    };
    Ok(Decoded::Message(Incoming {
        user,
        text: text.to_owned(),
        data: (!data.is_empty()).then(|| MessageData::from_map(&data)),
        dropped,
    }))
}

/// The msgpack map of a forwarded message, as the tutorial's consumer expects it:
/// `{"type": "chat.message", "message": text, "user": user}`, plus [`ORIGIN_FIELD`], for the
/// core layer `__asgi_channel__` naming the process-local channels it is for, and the
/// message's `data` fields beside them (a data field never replaces one of those).
pub(crate) fn encode(
    user: &str,
    text: &str,
    data: Option<&Map<String, serde_json::Value>>,
    origin: &str,
    channels: Option<&[String]>,
) -> Vec<u8> {
    let mut fields = vec![
        (Value::from("type"), Value::from("chat.message")),
        (Value::from("message"), Value::from(text)),
        (Value::from("user"), Value::from(user)),
        (Value::from(ORIGIN_FIELD), Value::from(origin)),
    ];
    for (key, value) in data.into_iter().flatten() {
        if !NOT_DATA.contains(&key.as_str()) {
            fields.push((Value::from(key.as_str()), json::to_msgpack(value)));
        }
    }
    if let Some(channels) = channels {
        let list = channels.iter().map(|c| Value::from(c.as_str())).collect();
        fields.push((Value::from(CHANNEL_FIELD), Value::Array(list)));
    }
    let mut bytes = Vec::with_capacity(64 + text.len());
    // Writing to a Vec cannot fail.
    let _infallible = rmpv::encode::write_value(&mut bytes, &Value::Map(fields));
    bytes
}

/// `body` behind [`CORE_RANDOM_PREFIX_BYTES`] random bytes, as the core layer stores messages.
pub(crate) fn with_random_prefix(body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(CORE_RANDOM_PREFIX_BYTES + body.len());
    bytes.extend(std::iter::repeat_with(|| fastrand::u8(..)).take(CORE_RANDOM_PREFIX_BYTES));
    bytes.extend_from_slice(body);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(decoded: Result<Decoded, Rejected>) -> Option<(String, String)> {
        match decoded {
            Ok(Decoded::Message(m)) => Some((m.user.to_string(), m.text)),
            _ => None,
        }
    }

    #[test]
    fn a_forwarded_message_reads_back_as_an_echo_and_foreign_ones_as_messages() {
        let ours = encode("ana", "hi", None, "roomcast", None);
        assert_eq!(decode(&ours, 0, 1024, "roomcast"), Ok(Decoded::Echo));
        assert_eq!(
            message(decode(&ours, 0, 1024, "other")),
            Some(("ana".into(), "hi".into()))
        );
        let core = with_random_prefix(&encode("ana", "hi", None, "x", Some(&["a!b".into()])));
        assert_eq!(
            message(decode(&core, CORE_RANDOM_PREFIX_BYTES, 1024, "roomcast")),
            Some(("ana".into(), "hi".into()))
        );
    }

    fn field(key: &str, value: Value) -> (Value, Value) {
        (Value::from(key), value)
    }

    fn packed(fields: Vec<(Value, Value)>) -> Vec<u8> {
        let mut bytes = Vec::new();
        let _infallible = rmpv::encode::write_value(&mut bytes, &Value::Map(fields));
        bytes
    }

    #[test]
    fn other_fields_become_data_and_unrepresentable_ones_are_dropped_by_kind() {
        let payload = packed(vec![
            field("type", Value::from("chat.message")),
            field("message", Value::from("paid")),
            field("status", Value::from("approved")),
            field("amount", Value::F64(12.5)),
            field("items", Value::Array(vec![Value::from(1), Value::from(2)])),
            field("receipt", Value::Binary(vec![0, 1])),
            field("ratio", Value::F64(f64::NAN)),
        ]);
        let Ok(Decoded::Message(incoming)) = decode(&payload, 0, 1024, "roomcast") else {
            panic!("not a message");
        };
        assert_eq!(incoming.text, "paid");
        assert_eq!(
            incoming.data.as_ref().map(MessageData::to_map),
            serde_json::from_str(r#"{"status":"approved","amount":12.5,"items":[1,2]}"#).ok()
        );
        assert_eq!(incoming.dropped, [Unfit::Binary, Unfit::NotFinite]);
        // The tutorial's shape has no data at all.
        let plain = packed(vec![
            field("type", Value::from("chat.message")),
            field("message", Value::from("hi")),
        ]);
        assert!(matches!(
            decode(&plain, 0, 1024, "roomcast"),
            Ok(Decoded::Message(Incoming { data: None, .. }))
        ));
    }

    #[test]
    fn forwarded_data_goes_beside_the_fields_and_never_replaces_them() {
        let data: Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"status":"approved","type":"evil","message":"no"}"#)
                .expect("object");
        let bytes = encode("ana", "paid", Some(&data), "roomcast", None);
        let value = rmpv::decode::read_value(&mut bytes.as_slice()).expect("msgpack");
        let fields: Vec<(String, Value)> = value
            .as_map()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.clone())))
            .collect();
        let get = |name: &str| {
            let found: Vec<_> = fields.iter().filter(|(k, _)| k == name).collect();
            assert_eq!(found.len(), 1, "{name} once in {fields:?}");
            found[0].1.clone()
        };
        assert_eq!(get("type"), Value::from("chat.message"));
        assert_eq!(get("message"), Value::from("paid"));
        assert_eq!(get("status"), Value::from("approved"));
    }

    #[test]
    fn bad_payloads_are_refused_by_kind() {
        let kind = |payload: &[u8]| decode(payload, 0, 64, "roomcast").err();
        assert_eq!(kind(b"\x92\x01"), Some(Rejected::NotMsgpack));
        assert_eq!(kind(b"\x01"), Some(Rejected::NotMap));
        assert_eq!(kind(&[0u8; 65]), Some(Rejected::TooLarge));
        assert_eq!(kind(b"gAAAAABk..."), Some(Rejected::Encrypted));
        assert_eq!(kind(b"\x80"), Some(Rejected::NoMessage));
        assert_eq!(
            decode(b"short", CORE_RANDOM_PREFIX_BYTES, 64, "r").err(),
            Some(Rejected::NotMsgpack)
        );
    }
}
