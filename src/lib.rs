//! kubetrail: an embedded-store auditing recorder for Kubernetes.
//!
//! The module tree follows the pipeline (see README.md, "How it works"):
//! `sim` (a simulated API server) -> `recorder` (watchers, compact state, transition detection)
//! -> `store` (SQLite: schema, writer, read pool) -> `query` / `export` (reports) and
//! `retention` (pruning and rollups). `cli` holds one file per subcommand.

pub mod cli;
pub mod model;
pub mod output;
pub mod query;
pub mod recorder;
pub mod retention;
pub mod sim;
pub mod store;
