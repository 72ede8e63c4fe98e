//! Retention: keeping one SQLite file within an age and size budget for months of recording,
//! while long-range node utilisation survives as hourly rollups.
//!
//! - `policy`: the flags (`--max-age`, `--raw-usage-age`, `--rollup-age`, `--max-db-size`,
//!   `--retention-interval`) that make a validated [`Policy`].
//! - `prune`: what deleting ended pods' and deleted nodes' history removes.
//! - `rollup_step`: the rule of one roll-up step, handed to the store ([`roll_up`]).
//! - `size`: which history goes first when the store is over its size budget.
//! - `pass`: one application of the policy as bounded steps ([`Pass`]).
//! - `periodic`: running passes inside `record`, on the writer thread.
//! - `plan`: what a policy would remove, said for people (`prune --dry-run`, `stats`).
//!
//! The rules live here and run over the store seam (`store::HistoryWriter`): each bounded
//! DELETE or roll-up transaction, and the file's mechanics (free pages, the log), are the
//! backend's (`store::sqlite::{retention, rollup, plan}`). What the store needs to carry them
//! out sits below it, so that it never names retention: the policy, byte sizes and what a
//! rollup is in `model` (`model::{policy, bytes, rollup}`), plans and prune counts in
//! `store::plan`. They are re-exported here under their old paths (`retention::bytes`,
//! `retention::rollup`, `retention::Plan`, ...).

pub mod pass;
pub mod periodic;
pub mod plan;
pub mod policy;
pub mod prune;
pub mod rollup_step;
pub mod size;

/// Byte sizes, what a rollup is: in `model`, because the store and the reports use them too.
pub use crate::model::{bytes, rollup};
pub use pass::{Pass, PassReport, Step};
pub use plan::Plan;
pub use policy::{Policy, PolicyArgs, RetentionArgs};
pub use prune::PruneCounts;
pub use rollup::{ROLLUP_BUCKET_MS, RollupProgress, RollupRow};
pub use rollup_step::roll_up;
