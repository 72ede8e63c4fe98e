//! Reading history back: the reports behind `kubetrail query` and `kubetrail export`.
//!
//! Each report is one module with one `for_each_*` function that reads rows through the store
//! seam (a `store::HistoryReader`, one snapshot per report) and hands them over one at a time,
//! and how those rows print (`output::Record`). The filters and rows the store itself takes and
//! returns (transitions, pods, incarnations) are `model::report`'s, re-exported here; a
//! callback's error stays here while the store only hears "stop" (`error::handing_over`). The
//! CLI renders the rows as a table, JSON or CSV (`output`); exports write the very same rows as
//! CSV. Nothing here writes to the store, and no SQL lives here: the backend turns a filter into
//! its own statements (`store::sqlite::reports`).
//!
//! - `transitions`, `history`, `pods`, `events`: row reports.
//! - `owners`: `--owner KIND/NAME` resolved through the recorded chain; `workloads`: one line
//!   per workload; `rollout`: a workload's ReplicaSets and pods over time.
//! - `nodes`: per-node utilisation over time, one ordered pass over the step function that
//!   `model::utilisation` integrates, merged with the hourly rollups (`model::rollup`).
//!
//! Every report honours the recorded time (`store::coverage`), and takes its `--since`/`--until`
//! from `model::time` and its `-l` from `model::selector`.

pub mod error;
pub mod events;
pub mod history;
pub mod node_used;
pub mod nodes;
pub mod owners;
pub mod pods;
pub mod rollout;
pub mod transitions;
pub mod usage;
pub mod workloads;

pub use crate::model::selector::{self, LabelSelector};
pub use error::QueryError;
pub use history::{Incarnation, PodRef, history};
pub use nodes::{NodeFilter, NodeReport, NodeUsageRecord, for_each_node_bucket};
pub use pods::{PodFilter, PodSummary, for_each_pod, parse_phase};
pub use transitions::{TransitionFilter, TransitionRecord, for_each_transition, parse_kinds};
