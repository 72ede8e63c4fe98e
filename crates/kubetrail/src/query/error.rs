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
    /// Opening the store (missing file, wrong schema, ...): the store's own message.
    #[error(transparent)]
    Store(StoreError),
    /// The database failed mid-report. Its message is written into this one, not chained: a
    /// chain printed it twice. Always a [`StoreError::Database`].
    #[error("reading the database: {}", .0.detail())]
    Database(StoreError),
    #[error("cannot open a read connection: {0}")]
    Pool(String),
    /// Stopped by SIGINT/SIGTERM before the report was complete.
    #[error("interrupted before the report was complete; an --out file was not written")]
    Interrupted,
    /// Writing the report; kept as the io::Error itself so that a closed pipe is recognised.
    #[error("writing the output")]
    Io(#[source] io::Error),
}

/// A database failure becomes [`QueryError::Database`] ("reading the database: ..."); any other
/// store error keeps its own message.
impl From<StoreError> for QueryError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Database { .. } => QueryError::Database(err),
            other => QueryError::Store(other),
        }
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
