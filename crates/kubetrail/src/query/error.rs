//! What can go wrong while answering a query, split by whose fault it is: the user's (unknown or
//! ambiguous pod, a window too fine to print) or the machine's (database, output).

use std::io;

use thiserror::Error;

use crate::store::StoreError;

#[derive(Debug, Error)]
pub enum QueryError {
    /// No pod matches; a runtime "not found" (exit 1), like kubectl's NotFound.
    #[error("{0}")]
    NotFound(String),
    /// A bare pod name that exists in several namespaces; the user must pick one (exit 2).
    #[error(
        "pod name {name:?} is ambiguous: it exists in namespaces {}; pass -n NAMESPACE (or --uid)",
        namespaces.join(", ")
    )]
    Ambiguous {
        name: String,
        namespaces: Vec<String>,
    },
    /// A request the user can fix by changing flags (exit 2).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// SQLite's message is written into this one, not chained: a chain printed it twice.
    #[error("reading the database: {}", crate::store::db::describe_sqlite(.0))]
    Sqlite(rusqlite::Error),
    #[error("cannot open a read connection: {0}")]
    Pool(String),
    /// Stopped by SIGINT/SIGTERM before the report was complete.
    #[error("interrupted before the report was complete; an --out file was not written")]
    Interrupted,
    /// Writing the report; kept as the io::Error itself so that a closed pipe is recognised.
    #[error("writing the output")]
    Io(#[source] io::Error),
}

impl From<rusqlite::Error> for QueryError {
    fn from(err: rusqlite::Error) -> Self {
        QueryError::Sqlite(err)
    }
}

impl From<io::Error> for QueryError {
    fn from(err: io::Error) -> Self {
        QueryError::Io(err)
    }
}

impl QueryError {
    /// Whether the user caused this (exit code 2) rather than the environment (exit code 1).
    pub fn is_usage(&self) -> bool {
        matches!(self, QueryError::Ambiguous { .. } | QueryError::Usage(_))
    }
}
