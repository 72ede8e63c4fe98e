//! The store's error type, whatever the backend: every way opening or using the history can go
//! wrong for a user (missing file, unwritable path, not a kubetrail database, too new, a second
//! recorder, damage), each with a message that names the database and says what to do, plus
//! [`StoreError::Database`] for failures of the database itself.

use std::io::ErrorKind;
use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(
        "database {0} does not exist (record into it first with `kubetrail record --db {0}`, or pass the right --db)"
    )]
    Missing(PathBuf),
    // The causes below are part of each message, written once: they are deliberately not
    // `#[source]`, or `{:#}` would print the same text again after it.
    #[error("cannot create database {path}: {}", describe_io(cause))]
    Create {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot open database {path}: {}", describe_io(cause))]
    Open {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot open database {path} for writing: {}", describe_io(cause))]
    NotWritable {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot create database {path}: directory {dir} does not exist")]
    NoDirectory { path: PathBuf, dir: PathBuf },
    #[error("{0} is a directory, not a database file; pass a file path such as {0}/kubetrail.db")]
    Directory(PathBuf),
    #[error("{path} is not a kubetrail database, or it is corrupt: {detail}")]
    NotKubetrail { path: PathBuf, detail: String },
    #[error(
        "database {path} has schema version {found}, but this kubetrail knows versions up to \
         {known}: it was written by a newer kubetrail, so upgrade kubetrail to read or write it"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "database {path} has schema version {found}, older than this kubetrail's {known}; \
         run `kubetrail record` (or `kubetrail prune`) on it once to upgrade it"
    )]
    TooOld {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "another kubetrail process is already writing to {0}; stop it first or use another --db"
    )]
    Locked(PathBuf),
    /// The database itself failed (SQLite's message, or a server's): `target` names the file
    /// or server, `detail` says what went wrong in one phrase, and `transient` says whether the
    /// same statement may succeed later (busy, disk full, I/O), which the writer retries.
    #[error("database {target}: {detail}")]
    Database {
        target: String,
        detail: String,
        transient: bool,
    },
    /// A server's database that kubetrail must not use: another program's, or a newer
    /// kubetrail's.
    #[error("database {target} cannot be used: {reason}")]
    Refused { target: String, reason: String },
    #[error(
        "another kubetrail process is already recording cluster {cluster} into {target}; stop \
         it first, or give this one another --cluster"
    )]
    ClusterLocked { target: String, cluster: String },
    /// `--cluster` names a cluster the database does not have, or is missing where it is needed.
    #[error("database {target}: {detail}")]
    Cluster { target: String, detail: String },
    #[error(
        "database {path} is damaged ({detail}), so it is left as it is; copy what can still be \
         read into a new file with `sqlite3 {path} .recover | sqlite3 NEW.db` (or try \
         `kubetrail backup --db {path} --out NEW.db`), then use --db NEW.db"
    )]
    Damaged { path: PathBuf, detail: String },
}

/// An io::Error in words, without the "(os error N)" suffix that repeats what the words say.
pub fn describe_io(err: &std::io::Error) -> String {
    match err.kind() {
        ErrorKind::NotFound => "no such file or directory".to_string(),
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        ErrorKind::IsADirectory => "it is a directory".to_string(),
        ErrorKind::ReadOnlyFilesystem => "the file system is read-only".to_string(),
        ErrorKind::StorageFull => "no space left on the device".to_string(),
        _ => {
            let text = err.to_string();
            match text.find(" (os error") {
                Some(cut) => text[..cut].to_string(),
                None => text,
            }
        }
    }
}

impl StoreError {
    /// Whether retrying the same work may succeed (a busy lock, a full disk, an I/O error):
    /// the writer retries those with backoff and quarantines rows for anything else.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Database {
                transient: true,
                ..
            }
        )
    }

    /// What went wrong without naming the database: a database failure's own phrase (as the
    /// rows kept in quarantine and `/readyz` say it), any other error's whole message.
    pub fn detail(&self) -> String {
        match self {
            StoreError::Database { detail, .. } => detail.clone(),
            other => other.to_string(),
        }
    }
}
