//! Storage: the SQLite schema (in `migrations/`), opening the file, the row types, and writing
//! batches of rows in one transaction each; the recording sessions and the covered time they
//! add up to (`coverage`); the file's own mechanics (`file`: size, free pages, the log).

pub mod coverage;
pub mod error;
pub mod rows;
pub mod sessions;
pub mod size;
pub mod sqlite;

// The old paths, until every caller goes through the store seam.
pub use sqlite::{backup, batch, db, file, labels};

pub use backup::{BackupError, copy_database};
pub use batch::{BatchStats, write_batch, write_batch_in_session};
pub use coverage::Coverage;
pub use error::StoreError;
pub use db::{ReadPool, SCHEMA_VERSION, WriteHandle, open_for_writing, open_read_pool};
pub use rows::{
    Batch, NodeCapacityRow, NodeResources, NodeRow, NodeUsageRow, PodResourcesRow, PodRow,
    SubjectUid, TransitionRow,
};
pub use sessions::{Scope, Session};
