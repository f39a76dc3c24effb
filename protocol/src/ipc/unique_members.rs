//! A JSON value read with every object's member names checked for repeats.
//!
//! `serde_json` keeps the last of two members with the same name, so
//! `{"method":"status","method":"shutdown"}` reads as `shutdown` while a
//! wrapper that looks at the first `method` sees `status`. The daemon reads
//! each request line through [`UniqueValue`] instead, which refuses a repeated
//! name at any depth (the envelope and `params` alike), so every reader of
//! the line agrees on what it says.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// What [`UniqueValue`] puts at the start of its error, so the caller can tell
/// a repeated member from malformed JSON.
pub const DUPLICATE_MEMBER: &str = "duplicate member";

/// A [`Value`] whose objects have no member named twice.
pub struct UniqueValue(pub Value);

impl UniqueValue {
    /// Reads `line` as JSON, refusing an object that names a member twice.
    pub fn from_slice(line: &[u8]) -> Result<Value, Malformed> {
        match serde_json::from_slice::<UniqueValue>(line) {
            Ok(v) => Ok(v.0),
            Err(e) => {
                let text = e.to_string();
                match text.strip_prefix(DUPLICATE_MEMBER) {
                    Some(_) if e.is_data() => Err(Malformed::Duplicate(text)),
                    _ => Err(Malformed::NotJson(e)),
                }
            }
        }
    }
}

/// Why a line is not a [`UniqueValue`].
#[derive(Debug)]
pub enum Malformed {
    /// Not JSON at all.
    NotJson(serde_json::Error),
    /// JSON, with a member named twice in one object (the text names it).
    Duplicate(String),
}

impl<'de> Deserialize<'de> for UniqueValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(UniqueValue)
    }
}

struct UniqueVisitor;

impl<'de> DeserializeSeed<'de> for UniqueVisitor {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(UniqueVisitor)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        let mut seen = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if !seen.insert(name.clone()) {
                return Err(de::Error::custom(format_args!(
                    "{DUPLICATE_MEMBER} `{name}`: each member may appear once"
                )));
            }
            let v = map.next_value_seed(UniqueVisitor)?;
            members.insert(name, v);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_serde_json_reads() {
        let line = br#"{"a":[1,-2,3.5,"x",null,true,{"b":{}}],"c":{"d":"e"}}"#;
        let strict = UniqueValue::from_slice(line).expect("valid");
        let lax: Value = serde_json::from_slice(line).expect("valid");
        assert_eq!(strict, lax);
    }

    #[test]
    fn refuses_a_repeated_member_at_any_depth() {
        for line in [
            r#"{"id":1,"id":2}"#,
            r#"{"params":{"a":1,"a":1}}"#,
            r#"{"params":{"list":[{"x":1,"x":2}]}}"#,
        ] {
            match UniqueValue::from_slice(line.as_bytes()) {
                Err(Malformed::Duplicate(text)) => {
                    assert!(text.starts_with(DUPLICATE_MEMBER), "{text}")
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn not_json_is_not_a_duplicate() {
        assert!(matches!(
            UniqueValue::from_slice(b"{\"a\":"),
            Err(Malformed::NotJson(_))
        ));
    }
}
