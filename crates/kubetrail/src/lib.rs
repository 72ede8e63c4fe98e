//! kubetrail: an embedded-store auditing recorder for Kubernetes. This crate is the whole
//! pipeline, without a command line:
//!
//! `recorder` (watch streams, compact state, transition detection, the writer thread) ->
//! `store` (the seam every layer writes and reads through, and its SQLite backend) -> `query`
//! (reports as typed rows, formatted by `output`) and `retention` (pruning and rollups).
//! `model` holds the vocabulary every layer shares: quantities, effective resources, phases,
//! label selectors, time.
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
pub mod retention;
pub mod store;
