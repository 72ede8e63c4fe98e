//! A consistent, compact copy of a database that may be written meanwhile.
//!
//! `VACUUM INTO` reads one snapshot of the database (a WAL read transaction, so the recorder
//! keeps committing) and writes it, defragmented, to a new file: the copy is never torn, and
//! it is a plain rollback-journal file that needs no `-wal` beside it. Copying the file with
//! `cp` instead could miss what is still in the write-ahead log.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::db::{StoreError, open_read_pool};

/// Why a copy could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} already exists; a backup never overwrites a file: remove it or choose another")]
    Exists(PathBuf),
    // Causes are written into the message once, not chained (see `StoreError`).
    #[error("cannot create {path}: {}", super::db::describe_io(cause))]
    Create {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot copy {from} to {to}: {}", super::error::describe_sqlite(cause))]
    Copy {
        from: PathBuf,
        to: PathBuf,
        cause: rusqlite::Error,
    },
}

/// Copies the kubetrail database `src` to the new file `dest` (created mode 0600, like the
/// database); returns the copy's size in bytes. On failure `dest` is removed.
pub fn copy_database(src: &Path, dest: &Path) -> Result<u64, BackupError> {
    let pool = open_read_pool(src, 1)?;
    let conn = pool
        .get()
        .map_err(|source| super::error::pool_error(src, source))?;
    // VACUUM INTO accepts an empty file, so the copy is created here, private from the start.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(|source| match source.kind() {
            ErrorKind::AlreadyExists => BackupError::Exists(dest.to_path_buf()),
            _ => BackupError::Create {
                path: dest.to_path_buf(),
                cause: source,
            },
        })?;
    let copied = conn
        .execute("VACUUM INTO ?1", [dest.to_string_lossy()])
        .map_err(|source| BackupError::Copy {
            from: src.to_path_buf(),
            to: dest.to_path_buf(),
            cause: source,
        });
    if let Err(err) = copied {
        let _ = std::fs::remove_file(dest);
        return Err(err);
    }
    Ok(std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::open_for_writing;
    use std::os::unix::fs::PermissionsExt;

    fn count(path: &Path) -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row("SELECT count(*) FROM nodes", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn the_copy_holds_what_is_committed_and_not_what_is_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("live.db");
        let handle = open_for_writing(&src).unwrap();
        handle
            .conn
            .execute_batch(
                "INSERT INTO nodes (uid, name, created_at_ms, state) VALUES ('a', 'a', 1, '{}');
                 BEGIN IMMEDIATE;
                 INSERT INTO nodes (uid, name, created_at_ms, state) VALUES ('b', 'b', 2, '{}');",
            )
            .unwrap();
        let dest = dir.path().join("copy.db");
        let bytes = copy_database(&src, &dest).unwrap();
        assert!(bytes > 0);
        assert_eq!(count(&dest), 1, "the open transaction is not in the copy");
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        handle.conn.execute_batch("COMMIT").unwrap();
        assert_eq!(count(&src), 2);

        match copy_database(&src, &dest) {
            Err(BackupError::Exists(p)) => assert_eq!(p, dest),
            other => panic!("{other:?}"),
        }
        assert_eq!(count(&dest), 1, "an existing file is left as it was");
    }

    #[test]
    fn a_file_that_is_not_a_kubetrail_database_is_refused_and_nothing_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("notes.txt");
        std::fs::write(&src, "hello").unwrap();
        let dest = dir.path().join("copy.db");
        let err = copy_database(&src, &dest).unwrap_err();
        assert!(matches!(err, BackupError::Store(_)), "{err}");
        assert!(!dest.exists());
    }
}
