//! Storage: the store seam (`api`: the traits every other layer writes and reads the history
//! through, `Location` and the openers), with what is the same whatever the backend: the row
//! types (`rows`), errors (`error`), recording sessions and the covered time they add up to
//! (`sessions`, `coverage`), and sizes (`size`). The one backend so far is SQLite (`sqlite`:
//! the schema, the statements, the file's mechanics); nothing outside it uses the driver.

pub mod api;
#[cfg(test)]
mod conformance;
pub mod copy;
pub mod coverage;
pub mod error;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod rows;
pub mod sessions;
pub mod size;
pub mod sqlite;

pub use api::{
    Bounds, GiveBack, Heartbeat, HistoryExport, HistoryImport, HistoryReader, HistoryWriter,
    Location, NodeInfo, OpenNode, OpenPod, ReadOptions, Snapshot, Span, StoreStats, WriteMode,
    check, open_export, open_import, open_reader, open_writer,
};
pub use coverage::Coverage;
pub use error::StoreError;
pub use rows::{
    Batch, BatchStats, NodeCapacityRow, NodeResources, NodeRow, NodeUsageRow, PodResourcesRow,
    PodRow, SubjectUid, TransitionRow,
};
pub use sessions::{Scope, Session};
pub use size::FileSize;
