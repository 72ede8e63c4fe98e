//! [`WireStr`]: a string field of a decoded object that borrows from the JSON it came from.
//!
//! Most strings in a pod's JSON are read once and dropped: times become milliseconds,
//! quantities integers, container IDs a hash, the phase an enum, and names and reasons are
//! copied into the cache's shared strings. Decoding each into a `String` first cost an
//! allocation and a copy apiece, about thirty for a typical pod (BENCHMARKS.md, "Decoding
//! without a `String` per field").
//!
//! serde borrows a `Cow<str>` field only when the field is the `Cow` itself: inside an `Option`,
//! as these fields are, it always allocates (a known serde limitation). `WireStr` is a `Cow`
//! with its own `Deserialize`, which takes the input's bytes whenever the deserializer lends
//! them (`serde_json` from a slice or a `&str`, as kube's list and watch decode) and owns a copy
//! only when it must (a string with escapes, or a deserializer that does not lend).

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A string borrowed from the input where possible. Derefs to `str`.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct WireStr<'a>(Cow<'a, str>);

/// An optional field's text as an owned `String` (for what outlives the decoding).
pub fn owned(s: &Option<WireStr>) -> Option<String> {
    s.as_deref().map(str::to_owned)
}

/// [`owned`], with an empty string as absent.
pub fn non_empty(s: &Option<WireStr>) -> Option<String> {
    s.as_deref().filter(|s| !s.is_empty()).map(str::to_owned)
}

impl Deref for WireStr<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WireStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl PartialEq<&str> for WireStr<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl serde::Serialize for WireStr<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for WireStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Lend;

        impl<'de> Visitor<'de> for Lend {
            type Value = WireStr<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(WireStr(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(WireStr(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(WireStr(Cow::Owned(v)))
            }
        }

        d.deserialize_str(Lend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Holder<'a> {
        #[serde(borrow)]
        s: Option<WireStr<'a>>,
    }

    #[test]
    fn a_plain_string_is_borrowed_from_the_input() {
        let json = r#"{"s": "250m"}"#;
        let held: Holder = serde_json::from_str(json).unwrap();
        let s = held.s.unwrap();
        assert!(matches!(s.0, Cow::Borrowed(_)), "{s:?} was copied");
        assert_eq!(&*s, "250m");
    }

    #[test]
    fn a_string_with_escapes_is_decoded_into_its_own_copy() {
        let held: Holder = serde_json::from_str(r#"{"s": "a\"b\u00e9"}"#).unwrap();
        let s = held.s.unwrap();
        assert!(matches!(s.0, Cow::Owned(_)));
        assert_eq!(&*s, "a\"bé");
    }

    #[test]
    fn from_a_deserializer_that_does_not_lend_the_string_is_owned() {
        // A `Value` taken by value hands its strings over (`visit_string`), not a borrow.
        let value = serde_json::json!({"s": "x"});
        let held = Holder::deserialize(value).unwrap();
        let s = held.s.unwrap();
        assert!(matches!(s.0, Cow::Owned(_)));
        assert_eq!(s, "x");
    }

    #[test]
    fn a_value_that_is_not_a_string_is_an_error_that_says_so() {
        let err = serde_json::from_str::<Holder>(r#"{"s": 5}"#).err().unwrap();
        assert!(err.to_string().contains("expected a string"), "{err}");
        assert!(
            serde_json::from_str::<Holder>(r#"{"s": null}"#)
                .unwrap()
                .s
                .is_none()
        );
    }
}
