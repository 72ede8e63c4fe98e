//! Kubernetes uids as SQLite values, where they are stored by the hundred thousand (the
//! `events` table's `uid` and `regarding_uid`, migration 0012).
//!
//! A canonical UUID (see [`crate::model::uid`]), which is what the API server gives every
//! object, is stored as its 16 bytes, a BLOB; anything else (an uppercase or foreign uid,
//! which tests and hand-made data have) as the text it is, so every uid comes back exactly as
//! it went in. The type tells the two apart, and a lookup binds the same encoding the write
//! did ([`UidKey`]), so equal uids always meet. The migration applies this rule in SQL (`GLOB`
//! and `unhex`) to the rows stored before it; a test holds the two to the same result.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::model::uid::{canonical_uuid, uuid_text};

/// A uid to bind: 16 bytes if canonical, else its text.
pub struct UidKey<'a>(pub &'a str);

impl ToSql for UidKey<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match canonical_uuid(self.0) {
            Some(bytes) => ToSqlOutput::Owned(rusqlite::types::Value::Blob(bytes.to_vec())),
            None => ToSqlOutput::Borrowed(ValueRef::Text(self.0.as_bytes())),
        })
    }
}

/// A uid read back: the text of a 16-byte BLOB, or the stored text.
pub struct StoredUid(pub String);

impl FromSql for StoredUid {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value {
            ValueRef::Blob(b) => {
                let bytes: &[u8; 16] = b.try_into().map_err(|_| FromSqlError::InvalidBlobSize {
                    expected_size: 16,
                    blob_size: b.len(),
                })?;
                Ok(StoredUid(uuid_text(bytes)))
            }
            other => String::column_result(other).map(StoredUid),
        }
    }
}

/// Reads a uid column.
pub fn get_uid(row: &rusqlite::Row, index: usize) -> rusqlite::Result<String> {
    Ok(row.get::<_, StoredUid>(index)?.0)
}

/// Reads a uid column that may be NULL.
pub fn get_opt_uid(row: &rusqlite::Row, index: usize) -> rusqlite::Result<Option<String>> {
    Ok(row.get::<_, Option<StoredUid>>(index)?.map(|u| u.0))
}

/// The hex of the canonical uids among `uids`, for a filter that matches their 16 bytes
/// (`unhex`). Such a filter matches every uid as text too: the text of a canonical uid matches
/// nothing in a migrated file, but it is how a file not yet migrated (a new `kubetrail query`
/// before the recorder has restarted) still holds it, so a report on that file is not
/// silently short.
pub fn canonical_hex(uids: &[String]) -> Vec<String> {
    uids.iter()
        .filter(|uid| canonical_uuid(uid).is_some())
        .map(|uid| uid.replace('-', ""))
        .collect()
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    /// Each uid, and whether it is a canonical UUID.
    const SAMPLES: &[(&str, bool)] = &[
        ("cf13eb72-b1c1-40bc-8cf1-ee72b1c135d5", true),
        ("00000000-0000-0000-0000-000000000000", true),
        ("ffffffff-ffff-ffff-ffff-ffffffffffff", true),
        ("CF13EB72-B1C1-40BC-8CF1-EE72B1C135D5", false),
        ("cf13eb72b1c140bc8cf1ee72b1c135d5", false),
        ("cf13eb72-b1c1-40bc-8cf1-ee72b1c135dg", false),
        ("cf13eb72-b1c1-40bc-8cf1+ee72b1c135d5", false),
        ("cf13eb72-b1c1-40bc-8cf1-ee72b1c135d", false),
        ("p-1", false),
        ("", false),
        ("ünïcode-uid-çf13eb72-b1c1-40bc-8cf1", false),
    ];

    #[test]
    fn canonical_uuids_are_16_bytes_and_everything_comes_back_as_it_went_in() {
        let conn = Connection::open_in_memory().unwrap();
        for &(uid, canonical) in SAMPLES {
            let (kind, len, back): (String, i64, StoredUid) = conn
                .query_row(
                    "SELECT typeof(?1), length(CAST(?1 AS BLOB)), ?1",
                    [UidKey(uid)],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap();
            assert_eq!(back.0, uid);
            let expected = if canonical {
                ("blob", 16)
            } else {
                ("text", uid.len() as i64)
            };
            assert_eq!((kind.as_str(), len), expected, "{uid}");
        }
    }

    /// The migration's SQL rule and [`UidKey`] give the same value for every sample, so rows
    /// stored before migration 0012 are found by the lookups written after it.
    #[test]
    fn the_migrations_rule_in_sql_encodes_as_uid_key_does() {
        let migration = include_str!("../../../migrations/0012_event_uids.sql");
        let start = migration.find("CASE WHEN uid").unwrap();
        let end = start + migration[start..].find("END").unwrap() + 3;
        let rule = migration[start..end].replace("uid", "?1");
        let conn = Connection::open_in_memory().unwrap();
        for &(uid, _) in SAMPLES {
            let same: bool = conn
                .query_row(&format!("SELECT ({rule}) IS ?2"), (uid, UidKey(uid)), |r| {
                    r.get(0)
                })
                .unwrap();
            assert!(same, "{uid}");
        }
    }

    #[test]
    fn a_blob_of_another_size_is_an_error_not_a_panic() {
        let conn = Connection::open_in_memory().unwrap();
        let err = conn
            .query_row("SELECT x'0102'", [], |r| r.get::<_, StoredUid>(0))
            .err()
            .unwrap();
        assert!(err.to_string().contains("16"), "{err}");
    }
}
