//! kubetrail: an embedded-store auditing recorder for Kubernetes. This crate is the whole
//! pipeline, without a command line. Its top-level modules are layers, each naming only the
//! ones below it (`tests/layers.rs` checks that, and that there is no cycle):
//!
//! - `model`: the vocabulary every layer shares, plain data and pure rules without I/O
//!   (quantities, effective resources, phases, label selectors, time, utilisation), including
//!   what the layers above exchange through the store: the reports' filters and rows, what a
//!   rollup is, the retention policy.
//! - `store`: the seam every layer writes and reads through (`store::api`), its SQLite and
//!   PostgreSQL backends, and the backend-neutral data only the store computes (coverage, plans,
//!   prune counts, the statements of a roll-up step). It names only `model`.
//! - `query` (reports as typed rows, formatted by `output`) and `retention` (pruning, rollups,
//!   the size budget): both run over the store, and neither names the other.
//! - `recorder` (watch streams, compact state, transition detection, the writer thread): on
//!   top; it writes through the store and runs retention's passes on its writer.
//! - `report` (pictures: the HTML report's model and page, `serve`'s read-only API): over
//!   `query`, `model` and `store`; nothing names it.
//! - `output` and `error` are leaves.
//!
//! Where the store needs a rule from above, the rule is handed in rather than called up:
//! retention's roll-up step runs inside the store's transaction as a closure. The cross-backend
//! conformance suite (`conformance`, tests only) sits at the top because it drives them all.
//!
//! The `kubetrail` binary (the workspace's root package) drives it; the simulated cluster
//! lives in the `kubetrail-sim` crate.

#[cfg(test)]
mod conformance;
pub mod error;
pub mod model;
pub mod output;
pub mod query;
pub mod recorder;
pub mod report;
pub mod retention;
pub mod store;
