//! The SQLite file itself: its size as SQLite and the file system see it, the write-ahead log's
//! room under a budget, handing free pages back, truncating the log.
//!
//! These are the backend mechanics under the size budget; which rows go when the file is over
//! it is retention's rule (`retention::size`). The recorder's writer uses them too, to report
//! the file's size and to checkpoint.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use super::db::BUSY_TIMEOUT;
pub use crate::store::size::FileSize;

/// Pages handed back per `incremental_vacuum` step (4 MiB at the default page size).
const VACUUM_PAGES_PER_STEP: i64 = 1024;

/// The database file a connection has open.
pub fn db_path(conn: &Connection) -> Option<PathBuf> {
    conn.path().filter(|p| !p.is_empty()).map(PathBuf::from)
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// The lengths of the database file and of its write-ahead log (0 for one that is absent).
pub fn file_lengths(db: &Path) -> (u64, u64) {
    let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    (len(db), len(&wal_path(db)))
}

/// Measures the file behind `conn`.
pub fn measure(conn: &Connection) -> rusqlite::Result<FileSize> {
    let pragma = |name: &str| conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0));
    let (db_bytes, wal_bytes) = db_path(conn).map_or((0, 0), |path| file_lengths(&path));
    Ok(FileSize {
        db_bytes,
        wal_bytes,
        page_size: pragma("page_size")? as u64,
        page_count: pragma("page_count")? as u64,
        freelist_pages: pragma("freelist_count")? as u64,
    })
}

/// The room to leave for the write-ahead log under a budget. While a recorder writes, the log
/// grows to `wal_autocheckpoint` pages plus the commit that crosses that line before a
/// checkpoint lets it start over, and it keeps its largest size until a pass truncates it. A
/// commit dirties every page it touches, so with random keys (pod uids) in the indexes one commit
/// can write megabytes; the log's size when the pass starts (`observed_wal_bytes`) is the best
/// guess of that. At most a fifth of the budget, so a small budget is not eaten by it.
pub fn wal_allowance(
    conn: &Connection,
    budget: u64,
    observed_wal_bytes: u64,
) -> rusqlite::Result<u64> {
    let pages: i64 = conn.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))?;
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let log = (pages.max(0) * page_size) as u64;
    Ok((log + log / 4).max(observed_wal_bytes).min(budget / 5))
}

/// Caps `wal_autocheckpoint` on this connection (in `record`, the writer's) at a tenth of the
/// budget: the log grows to that many pages before a checkpoint lets it start over, and the
/// recorder's own setting (tens of MB, for throughput) would not fit a small budget.
pub fn cap_wal_autocheckpoint(conn: &Connection, budget: u64) -> rusqlite::Result<()> {
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let current: i64 = conn.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))?;
    let cap = ((budget / 10) as i64 / page_size.max(1)).max(100);
    if current <= 0 || current > cap {
        conn.pragma_update(None, "wal_autocheckpoint", cap)?;
    }
    Ok(())
}

/// Hands up to [`VACUUM_PAGES_PER_STEP`] free pages back; returns whether the freelist is empty
/// (or cannot be emptied this way: a database without incremental auto-vacuum).
pub fn give_back_step(conn: &Connection) -> rusqlite::Result<bool> {
    let mode: i64 = conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
    let free: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
    if mode != 2 || free == 0 {
        return Ok(true);
    }
    // A pragma's argument cannot be a bound parameter; this one is a constant.
    let mut stmt = conn.prepare(&format!(
        "PRAGMA incremental_vacuum({VACUUM_PAGES_PER_STEP})"
    ))?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(free <= VACUUM_PAGES_PER_STEP)
}

/// Whether the database can hand pages back at all (created with incremental auto-vacuum).
pub fn can_give_back(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(conn.pragma_query_value(None, "auto_vacuum", |r| r.get::<_, i64>(0))? == 2)
}

/// `wal_checkpoint(TRUNCATE)`: copies the log into the main file (which then shrinks to its
/// page count) and empties the log. Returns false when readers still use the log, in which
/// case SQLite did what it could and the log is emptied by a later checkpoint.
///
/// A truncating checkpoint holds the write lock while it waits for readers, so it waits a
/// second at most rather than the usual busy timeout: the recorder must not stall behind a
/// long query.
pub fn checkpoint_truncate(conn: &Connection) -> rusqlite::Result<bool> {
    conn.busy_timeout(Duration::from_secs(1))?;
    let result = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    conn.busy_timeout(BUSY_TIMEOUT)?;
    match result {
        Ok(busy) => Ok(busy == 0),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}
