//! Pod label sets, stored once each (migration 0004): the hash that finds a set, and the
//! lookup-or-insert the writer does for every pod row that carries labels.

use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

pub use crate::store::rows::labels_hash;

/// Makes `kubetrail_labels_hash(text)` available to SQL on `conn`, for migration 0004.
pub fn register_hash_function(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "kubetrail_labels_hash",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| Ok(labels_hash(&ctx.get::<String>(0)?)),
    )
}

/// The id of the set with exactly this JSON text, inserted if new.
pub fn label_set_id(tx: &Transaction, json: &str) -> rusqlite::Result<i64> {
    let hash = labels_hash(json);
    let found = tx
        .prepare_cached("SELECT id FROM label_sets WHERE hash = ?1 AND labels = ?2")?
        .query_row(params![hash, json], |r| r.get(0))
        .optional()?;
    match found {
        Some(id) => Ok(id),
        None => tx
            .prepare_cached("INSERT INTO label_sets (hash, labels) VALUES (?1, ?2) RETURNING id")?
            .query_row(params![hash, json], |r| r.get(0)),
    }
}

/// Removes the set `id` if no pod uses it any more (after a pod row was deleted).
pub fn drop_if_unused(tx: &Transaction, id: i64) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "DELETE FROM label_sets WHERE id = ?1
           AND NOT EXISTS (SELECT 1 FROM pods WHERE label_set_id = ?1)",
    )?
    .execute([id])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fnv_1a_64() {
        // Reference values of FNV-1a 64 (the empty string is the offset basis).
        assert_eq!(labels_hash("") as u64, 0xcbf2_9ce4_8422_2325);
        assert_eq!(labels_hash("a") as u64, 0xaf63_dc4c_8601_ec8c);
        assert_eq!(labels_hash("foobar") as u64, 0x8594_4171_f739_67e8);
    }
}
