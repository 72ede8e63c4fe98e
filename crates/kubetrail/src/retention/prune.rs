//! Deleting the history of pods and nodes that have ended: a pod deleted before a cutoff goes
//! with its transitions and resource history; a node deleted before a cutoff loses its
//! transitions and capacity history, and its row once no utilisation (raw or rolled up) refers
//! to it any more, because the rollups need its name for "how full was node X in March".
//!
//! Open pods and nodes (`deleted_at_ms IS NULL`) never match: the recorder reconciles its first
//! list after a restart against their rows, and their history is still being written.
//!
//! Each step is one short transaction of about `row_budget` rows, oldest first, so a recorder
//! writing the same file waits at most one step. The steps are the store's
//! (`HistoryWriter::prune_ended_pods`, `prune_deleted_nodes`), and so is what they count
//! ([`PruneCounts`], in `store::plan`).

pub use crate::store::plan::PruneCounts;
