//! Storage: the store seam (`api`: the traits every other layer writes and reads the history
//! through, `Location` and the openers), with what is the same whatever the backend: the row
//! types (`rows`), errors (`error`), recording sessions and the covered time they add up to
//! (`sessions`, `coverage`), sizes (`size`), what a retention policy would remove and what a
//! prune step removed (`plan`), and the statements a roll-up step runs on (`rollup`). The
//! backends, SQLite (`sqlite`) and PostgreSQL (`postgres`), hold the schema, the statements and
//! the mechanics; nothing outside them uses a driver (`tests/seam.rs`).
//!
//! The store names only `model`: the layers above hand it their vocabulary from there and their
//! rules as closures (retention's roll-up rule runs inside `HistoryWriter::roll_up`'s
//! transaction). Callbacks say stop with `ControlFlow`, and every failure is a [`StoreError`].

pub mod api;
pub mod copy;
pub mod coverage;
pub mod error;
pub mod plan;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod rollup;
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
pub use rollup::{NodeLife, RollupRule, RollupStore};
pub use rows::{
    Batch, BatchStats, EventRow, NodeCapacityRow, NodeResources, NodeRow, NodeUsageRow, OwnerRow,
    PodResourcesRow, PodRow, SubjectUid, TransitionRow,
};
pub use sessions::{Scope, Session};
pub use size::FileSize;
