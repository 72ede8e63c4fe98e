//! SQLite's process-wide settings: kubetrail turns SQLite's memory statistics off before its
//! first connection, because keeping them takes a global mutex on every allocation SQLite makes
//! (BENCHMARKS.md, "Decoding without a `String` per field, and the writer's smaller steps").
//!
//! A file of its own with one test: the setting can only be made before SQLite initialises, so
//! the process must open no connection before kubetrail's own (another test in the same binary,
//! run first on another thread, would make the result depend on the order).

use kubetrail::store::sqlite::open_for_writing;

#[test]
fn the_first_connection_turns_sqlite_memory_statistics_off() {
    let dir = tempfile::tempdir().unwrap();
    let handle = open_for_writing(&dir.path().join("t.db")).unwrap();
    // Work that allocates: with statistics on, SQLite counts these bytes as in use.
    handle
        .conn
        .execute_batch(
            "CREATE TABLE filler (x TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO filler SELECT printf('%0500d', i) FROM n;",
        )
        .unwrap();
    // SAFETY: a read of SQLite's counter, valid at any time after initialisation.
    let counted = unsafe { rusqlite::ffi::sqlite3_memory_used() };
    assert_eq!(
        counted, 0,
        "SQLite counted {counted} bytes: its memory statistics are on"
    );
}
