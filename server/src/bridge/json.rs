//! Between a Channels message's msgpack fields and a room message's JSON `data`.
//!
//! msgpack holds more than JSON can: bytes, extension types, maps keyed by non-strings,
//! NaN and infinities, strings that are not UTF-8. A field holding any of those (anywhere
//! inside it) is not representable: the bridge drops that field, counts it by [`Unfit`]
//! kind, and still publishes the message. JSON to msgpack (forwarding) always works.

use rmpv::Value as Pack;
use serde_json::{Map, Number, Value as Json};

/// Why a field could not become JSON; the `kind` label of
/// `roomcast_bridge_dropped_fields_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Unfit {
    /// msgpack `bin` (Python `bytes`).
    Binary,
    /// A msgpack extension type.
    Ext,
    /// A map with a key that is not a string.
    NonStringKey,
    /// A float that is NaN or infinite.
    NotFinite,
    /// A msgpack string that is not UTF-8.
    NotUtf8,
}

impl Unfit {
    /// Every kind, for pre-created label values.
    pub(crate) const ALL: [Unfit; 5] = [
        Unfit::Binary,
        Unfit::Ext,
        Unfit::NonStringKey,
        Unfit::NotFinite,
        Unfit::NotUtf8,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Unfit::Binary => "binary",
            Unfit::Ext => "ext",
            Unfit::NonStringKey => "non_string_key",
            Unfit::NotFinite => "not_finite",
            Unfit::NotUtf8 => "not_utf8",
        }
    }
}

/// `value` as JSON, or the first reason it is not representable.
pub(crate) fn to_json(value: &Pack) -> Result<Json, Unfit> {
    Ok(match value {
        Pack::Nil => Json::Null,
        Pack::Boolean(b) => Json::Bool(*b),
        Pack::Integer(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Json::from(u),
            (None, Some(i)) => Json::from(i),
            // rmpv integers are always u64 or i64.
            (None, None) => return Err(Unfit::NotFinite),
        },
        Pack::F32(f) => float(f64::from(*f))?,
        Pack::F64(f) => float(*f)?,
        Pack::String(s) => Json::String(s.as_str().ok_or(Unfit::NotUtf8)?.to_owned()),
        Pack::Binary(_) => return Err(Unfit::Binary),
        Pack::Ext(..) => return Err(Unfit::Ext),
        Pack::Array(items) => Json::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Pack::Map(fields) => {
            let mut map = Map::new();
            for (key, value) in fields {
                let key = match key {
                    Pack::String(s) => s.as_str().ok_or(Unfit::NotUtf8)?,
                    _ => return Err(Unfit::NonStringKey),
                };
                map.insert(key.to_owned(), to_json(value)?);
            }
            Json::Object(map)
        }
    })
}

fn float(f: f64) -> Result<Json, Unfit> {
    Number::from_f64(f)
        .map(Json::Number)
        .ok_or(Unfit::NotFinite)
}

/// `value` as msgpack, as Python's `msgpack.unpackb` will read it back (ints stay ints,
/// other numbers are float64).
pub(crate) fn to_msgpack(value: &Json) -> Pack {
    match value {
        Json::Null => Pack::Nil,
        Json::Bool(b) => Pack::Boolean(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Pack::from(u),
            (None, Some(i), _) => Pack::from(i),
            (None, None, Some(f)) => Pack::F64(f),
            (None, None, None) => Pack::Nil,
        },
        Json::String(s) => Pack::from(s.as_str()),
        Json::Array(items) => Pack::Array(items.iter().map(to_msgpack).collect()),
        Json::Object(map) => Pack::Map(
            map.iter()
                .map(|(k, v)| (Pack::from(k.as_str()), to_msgpack(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_kinds_round_trip_and_the_rest_is_named() {
        let json: Json = serde_json::from_str(
            r#"{"status":"approved","amount":12.5,"items":[1,-2,null,true],"nested":{"a":"b"}}"#,
        )
        .expect("json");
        assert_eq!(to_json(&to_msgpack(&json)), Ok(json));
        assert_eq!(to_json(&Pack::Binary(vec![1])), Err(Unfit::Binary));
        assert_eq!(to_json(&Pack::Ext(1, vec![1])), Err(Unfit::Ext));
        assert_eq!(to_json(&Pack::F64(f64::NAN)), Err(Unfit::NotFinite));
        assert_eq!(to_json(&Pack::F32(f32::INFINITY)), Err(Unfit::NotFinite));
        let keyed = Pack::Map(vec![(Pack::from(1), Pack::from("one"))]);
        assert_eq!(to_json(&keyed), Err(Unfit::NonStringKey));
        let deep = Pack::Array(vec![Pack::from(1), Pack::Binary(vec![])]);
        assert_eq!(to_json(&deep), Err(Unfit::Binary));
    }
}
