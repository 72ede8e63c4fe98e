//! Reading history back: the reports behind `kubetrail query` and `kubetrail export`.
//!
//! Each report is one module with a filter, a row type and one `for_each_*` function that reads
//! rows from a read-only connection and hands them over one at a time. The CLI renders those rows
//! as a table, JSON or CSV (`output`); exports write the very same rows as CSV. Nothing here
//! writes to the database.
//!
//! - `transitions`, `history`, `pods`: row reports.
//! - `nodes`: per-node utilisation over time, the SQL pass over the step function that
//!   `model::utilisation` integrates, merged with retention's hourly rollups.
//!
//! Every report honours the recorded time (`store::coverage`), and takes its `--since`/`--until`
//! from `model::time` and its `-l` from `model::selector`.

pub mod error;
pub mod history;
pub mod nodes;
pub mod pods;
pub mod sql;
pub mod transitions;

pub use crate::model::selector::{self, LabelSelector};
pub use error::QueryError;
pub use history::{Incarnation, PodRef, history};
pub use nodes::{NodeFilter, NodeReport, NodeUsageRecord, for_each_node_bucket};
pub use pods::{PodFilter, PodSummary, for_each_pod, parse_phase};
pub use transitions::{TransitionFilter, TransitionRecord, for_each_transition, parse_kinds};

/// Read settings for exports, which stream a whole table.
///
/// An export of transitions looks up each row's pod by rowid, all over the file, and SQLite's
/// default 2 MB page cache turns most of those into a `pread` each. Memory-mapping the file
/// makes them plain memory reads (a third less time on a 10M-row export). Not for short queries:
/// setting up and faulting in a large mapping costs more than the few reads they make.
pub fn tune_for_export(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    // SQLite caps this at its compile-time limit (2 GB); it is address space, not memory.
    conn.pragma_update(None, "mmap_size", 1i64 << 31)
}
