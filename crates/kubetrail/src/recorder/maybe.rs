//! [`MaybeI64`]: an optional `i64` in 8 bytes, for the timestamps and versions the cache holds
//! for every pod.
//!
//! `Option<i64>` takes 16 bytes (an `i64` has no spare bit pattern for `None`), and a cached
//! pod holds seven of them. Giving up one value, `i64::MIN`, to stand for `None` saves 56 bytes
//! a pod, which with the containers as a boxed slice brings the state from 320 bytes to 256,
//! mimalloc's next smaller size class (BENCHMARKS.md). No value the recorder keeps can be
//! `i64::MIN`: timestamps are milliseconds of years 0 to 9999, resource versions are etcd
//! revisions, grace periods are seconds. Should one arrive anyway, it is kept as
//! `i64::MIN + 1` rather than read back as absent.
//!
//! The ordering is `Option`'s (absent before any value), and the stored JSON is `Option`'s
//! (`null` or a number), so states written before this type read back unchanged.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MaybeI64(i64);

impl MaybeI64 {
    pub const NONE: MaybeI64 = MaybeI64(i64::MIN);

    /// `Some(value)`; `i64::MIN`, the one value with no room, becomes `i64::MIN + 1`.
    pub const fn some(value: i64) -> Self {
        if value == i64::MIN {
            MaybeI64(i64::MIN + 1)
        } else {
            MaybeI64(value)
        }
    }

    pub const fn get(self) -> Option<i64> {
        if self.0 == i64::MIN {
            None
        } else {
            Some(self.0)
        }
    }

    // `&self`, not `self`: serde's `skip_serializing_if` passes a reference.
    pub const fn is_none(&self) -> bool {
        self.0 == i64::MIN
    }

    pub const fn is_some(&self) -> bool {
        !self.is_none()
    }
}

impl Default for MaybeI64 {
    fn default() -> Self {
        Self::NONE
    }
}

impl From<Option<i64>> for MaybeI64 {
    fn from(value: Option<i64>) -> Self {
        value.map_or(Self::NONE, Self::some)
    }
}

impl From<MaybeI64> for Option<i64> {
    fn from(value: MaybeI64) -> Self {
        value.get()
    }
}

impl std::fmt::Debug for MaybeI64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

impl Serialize for MaybeI64 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for MaybeI64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<i64>::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_eight_bytes_and_round_trips_every_option() {
        assert_eq!(std::mem::size_of::<MaybeI64>(), 8);
        for value in [
            None,
            Some(0),
            Some(-1),
            Some(1_764_000_000_000),
            Some(i64::MAX),
        ] {
            assert_eq!(MaybeI64::from(value).get(), value);
        }
        // The sentinel's own value stays present, one step up.
        assert_eq!(MaybeI64::some(i64::MIN).get(), Some(i64::MIN + 1));
        assert!(MaybeI64::default().is_none());
    }

    #[test]
    fn orders_and_serializes_as_option_does() {
        let values = [None, Some(i64::MIN + 1), Some(-5), Some(0), Some(7)];
        for a in values {
            for b in values {
                assert_eq!(
                    MaybeI64::from(a).cmp(&MaybeI64::from(b)),
                    a.cmp(&b),
                    "{a:?} {b:?}"
                );
            }
            let json = serde_json::to_string(&MaybeI64::from(a)).unwrap();
            assert_eq!(json, serde_json::to_string(&a).unwrap());
            assert_eq!(serde_json::from_str::<MaybeI64>(&json).unwrap().get(), a);
        }
        assert_eq!(format!("{:?}", MaybeI64::some(3)), "Some(3)");
    }
}
