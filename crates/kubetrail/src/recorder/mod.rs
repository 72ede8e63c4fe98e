//! `kubetrail record`'s engine, an informer in the client-go sense: watchers (list + watch) feed
//! a compact cache with a node index; every change is diffed into transition rows, which a single
//! batched writer commits to SQLite.
//!
//! - [`objects`]: the slim pod/node types the watchers decode.
//! - [`wire_str`]: a decoded string field that borrows from the JSON.
//! - [`state`]: the compact projections that are cached, diffed and persisted.
//! - [`maybe`]: an optional `i64` in 8 bytes, for the cached states.
//! - [`codec`]: the stored (binary) form of a pod's state.
//! - [`detect`]: old state + new state -> transition rows (pure).
//! - [`cache`]: the local cache and the node index; turns events into rows.
//! - [`pod_set`]: the cache's pods, keyed by the uid each state holds.
//! - [`resume`]: loading what a previous run left open.
//! - [`kind`]: the kind seam: what the loop knows of a watched kind (pods, nodes).
//! - [`informer`]: the one event loop over the watch streams of every kind.
//! - [`stream`]: one watch stream: list bookkeeping, inferred events, liveness, restart and probe.
//! - [`backoff`]: how fast the watchers retry.
//! - [`begin`]: when the side watches (Events, owners) begin: after the initial list.
//! - [`events`]: Kubernetes Events about pods and nodes, on a stream and queue of their own.
//! - [`owners`]: ReplicaSets and Jobs (the chain from a pod to its workload), on a task of
//!   their own.
//! - [`usage`]: measured usage from the metrics API, sampled on a task of its own.
//! - [`writer`]: the single batched writer thread.
//! - [`quarantine`]: which commit failures are retried; rows the database refuses.
//! - [`stats`]: the live figures, kept as Prometheus metrics.
//! - [`health`]: the readiness checks and the API probe.
//! - [`http`]: `--metrics-addr`'s `/healthz`, `/readyz` and `/metrics`.

pub mod backoff;
pub mod begin;
pub mod cache;
pub mod codec;
pub mod detect;
pub mod events;
pub mod health;
pub mod http;
pub mod informer;
pub mod kind;
pub mod maybe;
pub mod objects;
pub mod owners;
pub mod pod_set;
pub mod quarantine;
pub mod resume;
pub mod state;
pub mod stats;
pub mod stream;
pub mod usage;
pub mod wire_str;
pub mod writer;

pub use informer::{RecordOutcome, Recorder, RecorderConfig};
pub use stats::RecorderStats;
