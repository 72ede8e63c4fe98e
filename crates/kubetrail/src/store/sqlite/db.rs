//! Opening the SQLite file: the recorder's single write connection (with its lock, pragmas and
//! migrations) and the read-only r2d2 pool that queries, exports and stats use.
//!
//! Every way this can go wrong for a user (missing file, unwritable path, a file that is not a
//! database, a database from a newer kubetrail, a second recorder) is a [`StoreError`] variant with
//! a message that names the file and says what to do.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{db_error, pool_error};
pub use crate::store::error::{StoreError, describe_io};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};

/// The schema, one file per version, applied in order. A shipped migration is never edited;
/// changes go into a new file. `PRAGMA user_version` holds the number applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/0001_initial.sql"),
    include_str!("../../../migrations/0002_retention.sql"),
    include_str!("../../../migrations/0003_pod_state.sql"),
    include_str!("../../../migrations/0004_label_sets.sql"),
    include_str!("../../../migrations/0005_waiting_scope_resize.sql"),
    include_str!("../../../migrations/0006_recording_sessions.sql"),
    include_str!("../../../migrations/0007_quarantine.sql"),
    include_str!("../../../migrations/0008_events.sql"),
    include_str!("../../../migrations/0009_owners.sql"),
    include_str!("../../../migrations/0010_usage.sql"),
    include_str!("../../../migrations/0011_container_resources.sql"),
    include_str!("../../../migrations/0012_event_uids.sql"),
    include_str!("../../../migrations/0013_binary_pod_state.sql"),
];

/// SQLite's process-wide settings, applied before the first connection of the process opens
/// (SQLite accepts them only before it initialises, so every opening function here calls this
/// first).
///
/// Memory statistics off: with them on (SQLite's default), every allocation SQLite makes takes
/// and releases a process-wide mutex to keep a running total. Turning them off took the
/// writer's mutex samples from 10.9 % to 8.6 % and `bench_pipeline` from 55.4k to 56.3k
/// events/s (BENCHMARKS.md, "Decoding without a `String` per field, and the writer's smaller
/// steps"); the rest is the page cache's own mutex. kubetrail reads no SQLite memory
/// statistic and sets no soft heap limit, the two things the totals are for.
fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sqlite3_config is called before any other SQLite function of this process
        // (Once, and every opening function calls this first); with an int argument, as
        // SQLITE_CONFIG_MEMSTATUS takes. Were SQLite initialised already (a connection opened
        // by other code), it returns SQLITE_MISUSE and changes nothing, which is harmless.
        let rc =
            unsafe { rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0) };
        if rc != rusqlite::ffi::SQLITE_OK {
            tracing::debug!(
                rc,
                "SQLite was initialised already; its memory statistics stay on"
            );
        }
    });
}

/// The schema version this binary writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a connection waits for a lock before giving up. Readers and the pruner take short
/// transactions, so this is only reached if something is badly stuck.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub type ReadPool = r2d2::Pool<SqliteConnectionManager>;

/// How long the integrity check at start may take: a file of several GB is then checked only
/// in part (with a note in the log) rather than holding up the start for minutes.
pub const INTEGRITY_CHECK_BUDGET: Duration = Duration::from_secs(10);

/// `PRAGMA quick_check` (structure and page lists; not index contents, which a full
/// `integrity_check` would add at many times the cost), bounded by [`INTEGRITY_CHECK_BUDGET`].
/// `record`, `prune` and `stats` run it before anything else touches the file: writing into a
/// damaged file spreads the damage, and a report from one is wrong without saying so.
pub fn check_integrity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    check_integrity_within(conn, path, INTEGRITY_CHECK_BUDGET)
}

fn check_integrity_within(
    conn: &Connection,
    path: &Path,
    budget: Duration,
) -> Result<(), StoreError> {
    let damaged = |detail: String| StoreError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    // A watchdog interrupts the check once the budget is spent, unless told it is done.
    let interrupt = conn.get_interrupt_handle();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(budget) {
            interrupt.interrupt();
        }
    });
    // At most five problems: enough to say what is wrong, bounded on a badly damaged file.
    let result: rusqlite::Result<Vec<String>> =
        conn.prepare("PRAGMA quick_check(5)").and_then(|mut stmt| {
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        });
    drop(done_tx);
    let _ = watchdog.join();
    match result {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Ok(()),
        Ok(lines) => Err(damaged(lines.join("; "))),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::OperationInterrupted =>
        {
            tracing::info!(
                db = %path.display(),
                "integrity check stopped after {budget:?}: the file is large, and was checked only in part"
            );
            Ok(())
        }
        Err(rusqlite::Error::SqliteFailure(e, detail))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) =>
        {
            Err(damaged(detail.unwrap_or_else(|| e.to_string())))
        }
        Err(source) => Err(db_error(path, source)),
    }
}

/// Opens `path` read-only and runs [`check_integrity`] on it (for `kubetrail stats`).
pub fn check_file(path: &Path) -> Result<(), StoreError> {
    configure_sqlite();
    require_existing(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| db_error(path, source))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|source| db_error(path, source))?;
    check_integrity(&conn, path)
}

/// The recorder's (or pruner's) exclusive handle on a database file.
///
/// Holds an advisory `flock` on the database file for as long as it lives, so a second writer is
/// refused instead of interleaving history. flock is separate from SQLite's own POSIX locks on
/// Linux; the lock file handle is closed only when the writer is done with the database.
pub struct WriteHandle {
    pub conn: Connection,
    pub path: PathBuf,
    _lock: File,
}

/// Opens (creating if needed, mode 0600) the database for writing, takes the writer lock,
/// applies pragmas and migrations.
pub fn open_for_writing(path: &Path) -> Result<WriteHandle, StoreError> {
    configure_sqlite();
    let existing = match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Err(StoreError::Directory(path.to_path_buf())),
        Ok(_) => true,
        Err(_) => false,
    };
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        // Never truncate: an existing file is the history.
        .truncate(false)
        // The history names pods, nodes and owners: not secret, but not for everyone either.
        .mode(0o600)
        .open(path)
        .map_err(|cause| {
            let path = path.to_path_buf();
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            if existing {
                StoreError::NotWritable { path, cause }
            } else if let Some(dir) = parent.filter(|dir| !dir.is_dir()) {
                StoreError::NoDirectory {
                    dir: dir.to_path_buf(),
                    path,
                }
            } else {
                StoreError::Create { path, cause }
            }
        })?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(StoreError::Locked(path.to_path_buf()));
        }
        Err(std::fs::TryLockError::Error(source)) => {
            return Err(StoreError::Open {
                path: path.to_path_buf(),
                cause: source,
            });
        }
    }
    let sqlite = |source| db_error(path, source);
    let mut conn = Connection::open(path).map_err(sqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    let version = schema_version(&conn, path)?;
    if version > 0 {
        check_integrity(&conn, path)?;
    }
    if version == 0 {
        // auto_vacuum must be chosen before the first table exists; incremental lets retention
        // hand pages back to the file system in bounded steps.
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")
            .map_err(sqlite)?;
    }
    configure_writer(&mut conn, version, path)?;
    Ok(WriteHandle {
        conn,
        path: path.to_path_buf(),
        _lock: lock,
    })
}

/// The pragmas and migrations every writing connection needs.
fn configure_writer(conn: &mut Connection, version: i64, path: &Path) -> Result<(), StoreError> {
    let sqlite = |source| db_error(path, source);
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(sqlite)?;
    // NORMAL in WAL mode survives a process crash (kill -9) without an fsync per commit; only an
    // OS crash can lose the last commits.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sqlite)?;
    // The writer updates indexes keyed by random uids; with SQLite's default 2 MB page cache
    // nearly every index page is re-read from the OS on each commit. 8 MB is enough for a
    // 100k-pod cluster: against 32 MB it wrote 40 % more through write(2) on the
    // initial list (pages evicted mid-transaction go to the WAL early) but neither the list
    // nor the churn got slower, and the recorder held 28 MB less (BENCHMARKS.md).
    conn.pragma_update(None, "cache_size", -8_192)
        .map_err(sqlite)?;
    // Checkpoint every ~40 MB of WAL instead of ~4 MB: a page rewritten by many commits is
    // copied into the database file once per checkpoint, so rarer checkpoints write less.
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)
        .map_err(sqlite)?;
    super::labels::register_hash_function(conn).map_err(sqlite)?;
    migrate(conn, version, path)?;
    // The writer's statements keep a statement journal (the pages a statement changed, to undo
    // it alone), and SQLite spills it to a temporary file: on the initial list of 100k pods
    // that was 5.3 GB through write(2) into /var/tmp for a 135 MB database, and a quarter of
    // the recorder's CPU. Kept in memory, the resident set did not grow (BENCHMARKS.md). Set
    // after the migrations, whose temporary tables may be large and stay on disk.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(sqlite)
}

/// Readers and the pruner never create a database: a missing file is [`StoreError::Missing`].
fn require_existing(path: &Path) -> Result<(), StoreError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(StoreError::Directory(path.to_path_buf())),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::Missing(path.to_path_buf())),
        Err(source) => Err(StoreError::Open {
            path: path.to_path_buf(),
            cause: source,
        }),
    }
}

/// Opens an existing database for maintenance (`kubetrail prune`) while a recorder may be
/// writing to it: the same checks, pragmas and migrations as [`open_for_writing`], but without
/// the writer lock, since SQLite's own locking (and the busy timeout) serialises the two
/// writers transaction by transaction. Never creates a file, and refuses one without a
/// kubetrail schema or with a newer one.
pub fn open_for_maintenance(path: &Path) -> Result<Connection, StoreError> {
    configure_sqlite();
    require_existing(path)?;
    let sqlite = |source| db_error(path, source);
    // Without SQLITE_OPEN_CREATE: the file must already be there (it could vanish after the
    // check above).
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(sqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    let version = schema_version(&conn, path)?;
    if version == 0 {
        return Err(StoreError::NotKubetrail {
            path: path.to_path_buf(),
            detail: "it holds no kubetrail schema (is it empty?)".into(),
        });
    }
    check_integrity(&conn, path)?;
    configure_writer(&mut conn, version, path)?;
    Ok(conn)
}

/// Reads `user_version` and refuses files that are not (or no longer) ours.
fn schema_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let not_ours = |detail: String| StoreError::NotKubetrail {
        path: path.to_path_buf(),
        detail,
    };
    // Reading sqlite_master is the cheapest query that fails on a file that is not SQLite.
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| not_ours(e.to_string()))?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| not_ours(e.to_string()))?;
    if version == 0 && tables > 0 {
        return Err(not_ours(format!(
            "it has {tables} tables but no kubetrail schema version"
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    Ok(version)
}

/// Applies the migrations after `from`, each in its own transaction with its version bump, so a
/// crash mid-upgrade leaves a consistent, resumable database.
fn migrate(conn: &mut Connection, from: i64, path: &Path) -> Result<(), StoreError> {
    let sqlite = |source| db_error(path, source);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        let tx = conn.transaction().map_err(sqlite)?;
        tx.execute_batch(sql).map_err(sqlite)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)
            .map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
    }
    Ok(())
}

/// A pool of read-only connections. Never creates or modifies the file: a missing database is an
/// error, and WAL lets these readers run while the recorder writes.
pub fn open_read_pool(path: &Path, max_size: u32) -> Result<ReadPool, StoreError> {
    open_read_pool_with(path, max_size, false)
}

/// [`open_read_pool`], tuned for streaming whole tables when `streaming` (exports).
///
/// An export of transitions looks up each row's pod by rowid, all over the file, and SQLite's
/// default 2 MB page cache turns most of those into a `pread` each. Memory-mapping the file
/// makes them plain memory reads (a third less time on a 10M-row export). Not for short queries:
/// setting up and faulting in a large mapping costs more than the few reads they make.
pub fn open_read_pool_with(
    path: &Path,
    max_size: u32,
    streaming: bool,
) -> Result<ReadPool, StoreError> {
    configure_sqlite();
    require_existing(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    // The file is checked on a plain connection before the pool exists: r2d2 retries a
    // connection that fails (a file that is not a database) for its whole 30 s timeout,
    // logging every attempt, before it gives up.
    let conn = Connection::open_with_flags(path, flags).map_err(|source| db_error(path, source))?;
    let version = schema_version(&conn, path)?;
    drop(conn);
    let manager = SqliteConnectionManager::file(path)
        .with_flags(flags)
        .with_init(move |c| {
            c.busy_timeout(BUSY_TIMEOUT)?;
            if streaming {
                // SQLite caps this at its compile-time limit (2 GB); it is address space, not
                // memory.
                c.pragma_update(None, "mmap_size", 1i64 << 31)?;
            }
            Ok(())
        });
    let pool = r2d2::Pool::builder()
        .max_size(max_size)
        .build(manager)
        .map_err(|source| pool_error(path, source))?;
    if version == 0 {
        return Err(StoreError::NotKubetrail {
            path: path.to_path_buf(),
            detail: "it holds no kubetrail schema (is it empty?)".into(),
        });
    }
    if version < SCHEMA_VERSION {
        return Err(StoreError::TooOld {
            path: path.to_path_buf(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_sound_file_passes_the_integrity_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(open_for_writing(&path).unwrap());
        drop(open_for_writing(&path).unwrap());
        check_file(&path).unwrap();
        drop(open_for_maintenance(&path).unwrap());
    }

    /// Statement journals and temporary tables of the writing connections stay in memory: on
    /// disk they cost the initial list a quarter of its CPU (see `configure_writer`).
    #[test]
    fn writing_connections_keep_their_temporary_files_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let temp_store = |conn: &Connection| -> i64 {
            conn.pragma_query_value(None, "temp_store", |r| r.get(0))
                .unwrap()
        };
        let handle = open_for_writing(&path).unwrap();
        assert_eq!(temp_store(&handle.conn), 2, "2 is MEMORY");
        drop(handle);
        assert_eq!(temp_store(&open_for_maintenance(&path).unwrap()), 2);
    }

    #[test]
    fn creates_a_private_wal_database_at_the_latest_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let handle = open_for_writing(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let journal: String = handle
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
        let version: i64 = handle
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let vacuum: i64 = handle
            .conn
            .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
            .unwrap();
        assert_eq!(vacuum, 2, "incremental");
    }

    #[test]
    fn an_older_database_is_upgraded_in_place_keeping_open_pod_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(MIGRATIONS[1]).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute_batch(
            "INSERT INTO pods (uid, namespace, name, created_at_ms, phase, state)
             VALUES ('open', 'ns', 'a', 1, 2, '{\"u\":\"open\"}'),
                    ('gone', 'ns', 'b', 1, 3, '');
             UPDATE pods SET deleted_at_ms = 5 WHERE uid = 'gone';",
        )
        .unwrap();
        drop(conn);
        let handle = open_for_writing(&path).unwrap();
        // The JSON state is kept byte for byte, now as a BLOB (migration 0013), which the
        // recorder still reads.
        let states: Vec<(String, String, Vec<u8>)> = handle
            .conn
            .prepare(
                "SELECT p.uid, typeof(s.state), s.state FROM pod_state s
                 JOIN pods p ON p.id = s.pod_id",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            states,
            vec![(
                "open".to_string(),
                "blob".to_string(),
                b"{\"u\":\"open\"}".to_vec()
            )]
        );
        assert!(
            handle.conn.prepare("SELECT state FROM pods").is_err(),
            "the column is gone"
        );
        let version: i64 = handle
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn labels_move_into_label_sets_once_per_distinct_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..3] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 3).unwrap();
        conn.execute_batch(
            r#"INSERT INTO pods (uid, namespace, name, created_at_ms, phase, labels) VALUES
                 ('a', 'ns', 'a', 1, 2, '{"app":"web"}'),
                 ('b', 'ns', 'b', 1, 2, '{"app":"web"}'),
                 ('c', 'ns', 'c', 1, 2, '{"app":"db"}'),
                 ('d', 'ns', 'd', 1, 2, NULL);"#,
        )
        .unwrap();
        drop(conn);
        let handle = open_for_writing(&path).unwrap();
        let rows: Vec<(String, Option<String>)> = handle
            .conn
            .prepare("SELECT pod, labels FROM pod_labels ORDER BY pod")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let web = Some(r#"{"app":"web"}"#.to_string());
        let db = Some(r#"{"app":"db"}"#.to_string());
        assert_eq!(
            rows,
            vec![
                ("a".into(), web.clone()),
                ("b".into(), web),
                ("c".into(), db),
                ("d".into(), None)
            ]
        );
        let (sets, hashed): (i64, i64) = handle
            .conn
            .query_row(
                "SELECT count(*), sum(hash = kubetrail_labels_hash(labels)) FROM label_sets",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((sets, hashed), (2, 2), "one row per distinct set, hashed");
        assert!(handle.conn.prepare("SELECT labels FROM pods").is_err());
    }

    #[test]
    fn a_second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let _first = open_for_writing(&path).unwrap();
        let err = open_for_writing(&path).err().unwrap();
        assert!(matches!(err, StoreError::Locked(_)), "{err}");
        assert!(err.to_string().contains("already writing"));
    }

    #[test]
    fn a_newer_schema_is_refused_by_writer_and_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(open_for_writing(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = open_for_writing(&path).err().unwrap();
        assert!(err.to_string().contains("newer kubetrail"), "{err}");
        let err = open_read_pool(&path, 1).err().unwrap();
        assert!(err.to_string().contains("newer kubetrail"), "{err}");
    }

    #[test]
    fn garbage_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![b'x'; 8192]).unwrap();
        let err = open_for_writing(&garbage).err().unwrap();
        assert!(
            err.to_string().contains("not a kubetrail database"),
            "{err}"
        );
        assert_eq!(
            std::fs::read(&garbage).unwrap(),
            vec![b'x'; 8192],
            "file untouched"
        );

        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let err = open_for_writing(&foreign).err().unwrap();
        assert!(
            err.to_string().contains("no kubetrail schema version"),
            "{err}"
        );
    }

    #[test]
    fn readers_never_create_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.db");
        let err = open_read_pool(&path, 1).err().unwrap();
        assert!(matches!(err, StoreError::Missing(_)));
        assert!(!path.exists());
    }

    #[test]
    fn readers_work_on_a_closed_wal_database_and_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(open_for_writing(&path).unwrap());
        let pool = open_read_pool(&path, 2).unwrap();
        let conn = pool.get().unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM transition_kinds", [], |r| r.get(0))
            .unwrap();
        assert!(n > 0);
        assert!(conn.execute("DELETE FROM transition_kinds", []).is_err());
    }
}

#[cfg(test)]
mod event_uid_tests {
    use std::ops::ControlFlow;

    use super::*;
    use crate::model::event::EventFilter;
    use crate::store::rows::{BatchStats, EventRow};
    use crate::store::sqlite::events;

    const POD_UID: &str = "dbc308be-e09e-4f70-b3cd-a8b7cfe732f3";
    const EVENT_UID: &str = "cf13eb72-b1c1-40bc-8cf1-ee72b1c135d5";

    /// Events stored as text before migration 0012 are rebuilt with canonical uids as 16
    /// bytes, keep their ids and occurrences, read back as they were stored, and are found
    /// again by the writer's lookup (a repeat updates the row, it does not add one).
    #[test]
    fn events_stored_before_0012_keep_their_uids_ids_and_occurrences() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        super::super::labels::register_hash_function(&conn).unwrap();
        for sql in &MIGRATIONS[..11] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 11).unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO events (id, uid, regarding_kind, regarding_uid, name, count,
                 first_seen_ms, last_seen_ms) VALUES
                 (7, '{EVENT_UID}', 1, '{POD_UID}', 'web-1', 2, 100, 200),
                 (9, 'hand-made', 2, NULL, 'node-a', 1, 150, 150);
             INSERT INTO event_occurrences (event_id, count, at_ms) VALUES (7, 2, 200);"
        ))
        .unwrap();
        // The pod's events by its uid, as `query history` asks.
        let by_pod = |conn: &Connection| {
            let filter = EventFilter {
                regarding_uids: Some(vec![POD_UID.into(), "hand-made-pod".into()]),
                ..EventFilter::default()
            };
            let mut found = Vec::new();
            events::events(conn, &filter, &mut |e| {
                found.push((e.uid, e.regarding_uid, e.count));
                ControlFlow::Continue(())
            })
            .unwrap();
            found
        };
        // A new reader on the file not yet migrated still finds the pod's events.
        assert_eq!(
            by_pod(&conn),
            vec![(EVENT_UID.to_string(), Some(POD_UID.to_string()), 2)]
        );
        drop(conn);

        let handle = open_for_writing(&path).unwrap();
        let stored: Vec<(i64, String, Option<String>)> = handle
            .conn
            .prepare("SELECT id, typeof(uid), typeof(regarding_uid) FROM events ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            stored,
            vec![
                (7, "blob".into(), Some("blob".into())),
                (9, "text".into(), Some("null".into()))
            ]
        );
        // The view shows them as text again, for other SQLite tools.
        let shown: Vec<(String, String, Option<String>)> = handle
            .conn
            .prepare("SELECT uid, kind, regarding_uid FROM event_log ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            shown,
            vec![
                (EVENT_UID.into(), "Pod".into(), Some(POD_UID.into())),
                ("hand-made".into(), "Node".into(), None)
            ]
        );
        let occurrences: Vec<(String, i64)> = handle
            .conn
            .prepare(events::EXPORT_OCCURRENCES)
            .unwrap()
            .query_map([], |r| {
                let o = events::occurrence_row(r)?;
                Ok((o.event_uid, o.count))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(occurrences, vec![(EVENT_UID.to_string(), 2)]);

        assert_eq!(
            by_pod(&handle.conn),
            vec![(EVENT_UID.to_string(), Some(POD_UID.to_string()), 2)]
        );

        // The series grows: the stored row is found by its uid and updated.
        let mut handle = handle;
        let tx = handle.conn.transaction().unwrap();
        let mut grown = EventRow::about_pod(EVENT_UID, 3, 300);
        grown.regarding_uid = Some(POD_UID.into());
        let mut stats = BatchStats::default();
        events::write_events(&tx, &[grown], &mut stats).unwrap();
        tx.commit().unwrap();
        assert_eq!((stats.events_inserted, stats.events_updated), (0, 1));
        let total: i64 = handle
            .conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(total, 2);
        assert_eq!(
            by_pod(&handle.conn),
            vec![(EVENT_UID.to_string(), Some(POD_UID.to_string()), 3)]
        );
    }
}
