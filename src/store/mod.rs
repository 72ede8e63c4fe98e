//! Storage: the SQLite schema (in `migrations/`), opening the file, the row types, and writing
//! batches of rows in one transaction each.

pub mod batch;
pub mod db;
pub mod rows;

pub use batch::{write_batch, BatchStats};
pub use db::{open_for_writing, open_read_pool, ReadPool, StoreError, WriteHandle, SCHEMA_VERSION};
pub use rows::{
    Batch, NodeCapacityRow, NodeResources, NodeRow, NodeUsageRow, PodResourcesRow, PodRow,
    SubjectUid, TransitionRow,
};
