//! The top level of a JSON document, read without building it: its kind,
//! an object's keys (and a `format` tag), an array's first element. Content
//! sniffing decides with this what a `.json` file is before any reader
//! builds a tree of it, so a 200 MB array costs no memory to recognise
//! (serde's `IgnoredAny` skips values in place).

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// What the first element of a top-level array is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum First {
    /// The array is empty.
    Nothing,
    /// An integer.
    Integer,
    /// A number that is not an integer.
    Number,
    /// An array whose first element is an integer (a row of token ids).
    IntegerRow,
    /// Any other array.
    OtherArray,
    /// A string, object, boolean or null.
    Other,
}

/// The top level of a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outline {
    /// An object: its keys in file order, and the value of a string `format`
    /// key (at most 64 characters of it).
    Object {
        keys: Vec<String>,
        format: Option<String>,
    },
    /// An array and what its first element is.
    Array(First),
    /// A number, string, boolean or null.
    Scalar,
}

impl Outline {
    /// Whether an object has `key` at its top level.
    pub fn has_key(&self, key: &str) -> bool {
        matches!(self, Outline::Object { keys, .. } if keys.iter().any(|k| k == key))
    }
}

/// The outline of `bytes` if they are exactly one JSON document (after
/// whitespace and a UTF-8 BOM); `Err` with serde_json's message otherwise
/// (JSON lines, a cut document, not JSON at all). Linear time, constant
/// memory apart from the keys.
pub fn outline(bytes: &[u8]) -> Result<Outline, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let out = TopSeed.deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(out)
}

/// The outline of the start of a document that may be cut (a file's head):
/// the keys seen before the cut. `None` when the head does not start a JSON
/// object.
pub fn head_keys(head: &[u8]) -> Option<(Vec<String>, Option<String>)> {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = head.iter().position(|b| !b.is_ascii_whitespace())?;
    if head[start] != b'{' {
        return None;
    }
    let mut keys = Vec::new();
    let mut format = None;
    let mut de = serde_json::Deserializer::from_slice(&head[start..]);
    // A cut head ends in an error; what was read before it counts.
    let _ = de::Deserializer::deserialize_map(
        &mut de,
        ObjectVisitor {
            keys: &mut keys,
            format: &mut format,
        },
    );
    Some((keys, format))
}

struct TopSeed;

impl<'de> DeserializeSeed<'de> for TopSeed {
    type Value = Outline;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Outline, D::Error> {
        d.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Outline;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON document")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Outline, A::Error> {
        let (mut keys, mut format) = (Vec::new(), None);
        ObjectVisitor {
            keys: &mut keys,
            format: &mut format,
        }
        .visit_map(map)?;
        Ok(Outline::Object { keys, format })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Outline, A::Error> {
        let first = seq
            .next_element::<FirstElement>()?
            .map_or(First::Nothing, |f| f.0);
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Outline::Array(first))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Outline, E> {
        Ok(Outline::Scalar)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Outline, E> {
        Ok(Outline::Scalar)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Outline, E> {
        Ok(Outline::Scalar)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Outline, E> {
        Ok(Outline::Scalar)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Outline, E> {
        Ok(Outline::Scalar)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Outline, E> {
        Ok(Outline::Scalar)
    }
}

/// Collects an object's keys, skipping values (a string `format` is kept).
struct ObjectVisitor<'a> {
    keys: &'a mut Vec<String>,
    format: &'a mut Option<String>,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "format" && self.format.is_none() {
                *self.format = map.next_value::<ShortString>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
            self.keys.push(key.into_owned());
        }
        Ok(())
    }
}

/// A string value's first 64 characters; `None` for any other value (skipped).
struct ShortString(Option<String>);

impl<'de> de::Deserialize<'de> for ShortString {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ShortString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ShortString, E> {
                Ok(ShortString(Some(v.chars().take(64).collect())))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<ShortString, E> {
                Ok(ShortString(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<ShortString, E> {
                Ok(ShortString(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<ShortString, E> {
                Ok(ShortString(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<ShortString, E> {
                Ok(ShortString(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ShortString, E> {
                Ok(ShortString(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ShortString, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ShortString(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ShortString, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ShortString(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// What an array's first element is (its own contents skipped).
struct FirstElement(First);

impl<'de> de::Deserialize<'de> for FirstElement {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FirstElement;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<FirstElement, E> {
                Ok(FirstElement(First::Integer))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<FirstElement, E> {
                Ok(FirstElement(First::Integer))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<FirstElement, E> {
                Ok(FirstElement(First::Number))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<FirstElement, E> {
                Ok(FirstElement(First::Other))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<FirstElement, E> {
                Ok(FirstElement(First::Other))
            }
            fn visit_unit<E: de::Error>(self) -> Result<FirstElement, E> {
                Ok(FirstElement(First::Other))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FirstElement, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(FirstElement(First::Other))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FirstElement, A::Error> {
                let first = seq.next_element::<FirstElement>()?.map(|f| f.0);
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstElement(if first == Some(First::Integer) {
                    First::IntegerRow
                } else {
                    First::OtherArray
                }))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlines() {
        assert_eq!(
            outline(b"[[1, 2], [3, 4]]"),
            Ok(Outline::Array(First::IntegerRow))
        );
        assert_eq!(outline(b" [1.5, 2]"), Ok(Outline::Array(First::Number)));
        assert_eq!(outline(b"[]"), Ok(Outline::Array(First::Nothing)));
        assert_eq!(outline(b"[[\"a\"]]"), Ok(Outline::Array(First::OtherArray)));
        let o = outline(br#"{"format": "rankscope-session", "x": [1, {"y": 2}]}"#).unwrap();
        assert_eq!(
            o,
            Outline::Object {
                keys: vec!["format".into(), "x".into()],
                format: Some("rankscope-session".into())
            }
        );
        assert!(
            outline(b"{\"a\": 1}\n{\"a\": 2}\n").is_err(),
            "JSON lines are not one document"
        );
        assert!(outline(b"{\"a\": ").is_err());
        let (keys, format) =
            head_keys(br#"{"format": "rankscope-session", "version": 1, "files": [1, 2"#).unwrap();
        assert_eq!(
            (keys, format.as_deref()),
            (
                vec!["format".to_string(), "version".into()],
                Some("rankscope-session")
            )
        );
        assert_eq!(head_keys(b"[1]"), None);
    }
}
