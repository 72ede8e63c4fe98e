//! What can go wrong while answering a query, split by whose fault it is: the user's (unknown or
//! ambiguous pod, a window too fine to print) or the machine's (database, output).

use std::io;
use std::ops::ControlFlow;

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

/// Runs `read`, a store read that hands rows to a callback, with `each` as that callback. The
/// store knows nothing of [`QueryError`]: it only hears "stop" when `each` fails (a closed pipe,
/// say), and that error is returned once the read has ended. A failure of the read itself
/// becomes a [`QueryError`] as every store error does.
pub(crate) fn handing_over<T, N>(
    mut each: impl FnMut(T) -> Result<(), QueryError>,
    read: impl FnOnce(&mut dyn FnMut(T) -> ControlFlow<()>) -> Result<N, StoreError>,
) -> Result<N, QueryError> {
    let mut failed = None;
    let read = read(&mut |row| match each(row) {
        Ok(()) => ControlFlow::Continue(()),
        Err(err) => {
            failed = Some(err);
            ControlFlow::Break(())
        }
    });
    match failed {
        Some(err) => Err(err),
        None => Ok(read?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read that hands over `rows` until told to stop, as a store does; returns how many.
    fn read(rows: u32, each: &mut dyn FnMut(u32) -> ControlFlow<()>) -> Result<u64, StoreError> {
        let mut count = 0;
        for row in 0..rows {
            count += 1;
            if each(row).is_break() {
                break;
            }
        }
        Ok(count)
    }

    #[test]
    fn the_callbacks_error_stops_the_read_and_is_returned() {
        let mut seen = Vec::new();
        let result = handing_over(
            |row| {
                seen.push(row);
                if row == 1 {
                    Err(QueryError::Interrupted)
                } else {
                    Ok(())
                }
            },
            |each| read(5, each),
        );
        assert!(matches!(result, Err(QueryError::Interrupted)), "{result:?}");
        assert_eq!(seen, vec![0, 1]);
        assert_eq!(handing_over(|_| Ok(()), |each| read(5, each)).unwrap(), 5);
    }

    #[test]
    fn a_database_failure_reads_as_before() {
        let result = handing_over(
            |_: u32| Ok(()),
            |_| -> Result<u64, StoreError> {
                Err(StoreError::Database {
                    target: "/x.db".into(),
                    detail: "disk I/O error".into(),
                    transient: true,
                })
            },
        );
        assert_eq!(
            result.unwrap_err().to_string(),
            "reading the database: disk I/O error"
        );
    }
}
