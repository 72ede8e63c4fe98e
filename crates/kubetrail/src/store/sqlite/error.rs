//! SQLite's errors in the store's terms: one phrase per failure, and which failures can pass by
//! themselves, so that everything above the store sees only [`StoreError`].

use std::path::Path;

use rusqlite::ErrorCode;

use crate::store::StoreError;

/// A rusqlite error in one phrase: SQLite's own message once (rusqlite's Display and its
/// source both carry it, so a chain would print "disk I/O error: disk I/O error: Error code 266").
pub fn describe_sqlite(err: &rusqlite::Error) -> String {
    match err {
        rusqlite::Error::SqliteFailure(code, Some(message)) => {
            if message.is_empty() {
                code.to_string()
            } else {
                message.clone()
            }
        }
        rusqlite::Error::SqliteFailure(code, None) => code.to_string(),
        other => other.to_string(),
    }
}

/// Errors that can pass by themselves: another writer holds the lock, the disk is full, an I/O
/// error, no memory. Anything else (a constraint, a type mismatch, a corrupt page) fails the
/// same way on every retry.
pub fn is_transient(err: &rusqlite::Error) -> bool {
    match err {
        rusqlite::Error::SqliteFailure(e, _) => matches!(
            e.code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::OutOfMemory
                | ErrorCode::CannotOpen
                | ErrorCode::FileLockingProtocolFailed
        ),
        _ => false,
    }
}

/// A failure of the database file at `path`, as a [`StoreError::Database`].
pub fn db_error(path: &Path, err: rusqlite::Error) -> StoreError {
    StoreError::Database {
        target: path.display().to_string(),
        detail: describe_sqlite(&err),
        transient: is_transient(&err),
    }
}

/// The read pool could not hand out a connection (r2d2 gave up after its timeout).
pub fn pool_error(path: &Path, err: r2d2::Error) -> StoreError {
    StoreError::Database {
        target: path.display().to_string(),
        detail: format!("cannot open a read connection: {err}"),
        transient: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_are_not_transient_but_busy_and_full_are() {
        let failure = |code| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        assert!(is_transient(&failure(rusqlite::ffi::SQLITE_BUSY)));
        assert!(is_transient(&failure(rusqlite::ffi::SQLITE_FULL)));
        assert!(is_transient(&failure(rusqlite::ffi::SQLITE_IOERR_WRITE)));
        assert!(!is_transient(&failure(rusqlite::ffi::SQLITE_CONSTRAINT)));
        assert!(!is_transient(&failure(rusqlite::ffi::SQLITE_CORRUPT)));
        let err = db_error(Path::new("/x.db"), failure(rusqlite::ffi::SQLITE_BUSY));
        assert!(err.is_transient());
        assert_eq!(
            err.to_string(),
            "database /x.db: Error code 5: database is locked"
        );
    }
}
