//! `kubetrail record`'s engine, an informer in the client-go sense: watchers (list + watch) feed
//! a compact cache with a node index; every change is diffed into transition rows, which a single
//! batched writer commits to SQLite.
//!
//! - [`objects`]: the slim pod/node types the watchers decode.
//! - [`state`]: the compact projections that are cached, diffed and persisted.
//! - [`detect`]: old state + new state -> transition rows (pure).

pub mod detect;
pub mod objects;
pub mod state;
