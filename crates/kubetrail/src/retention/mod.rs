//! Retention: keeping one SQLite file within an age and size budget for months of recording,
//! while long-range node utilisation survives as hourly rollups.
//!
//! - `policy`: the flags (`--max-age`, `--raw-usage-age`, `--rollup-age`, `--max-db-size`,
//!   `--retention-interval`) and the validated [`Policy`].
//! - `bytes`: byte sizes as users type and read them ("2GiB").
//! - `prune`: deleting ended pods' and deleted nodes' history.
//! - `rollup`: rolling raw utilisation up into hourly rows, expiring them, reading them back.
//! - `size`: measuring the file, shrinking it to the budget, handing pages back.
//! - `pass`: one application of the policy as bounded steps ([`Pass`]).
//! - `periodic`: running passes inside `record`, on the writer thread.
//! - `plan`: what a policy would remove, without changing anything (`prune --dry-run`, `stats`).

pub mod bytes;
pub mod pass;
pub mod periodic;
pub mod plan;
pub mod policy;
pub mod prune;
pub mod rollup;
pub mod size;

pub use pass::{Pass, PassReport, Step};
pub use plan::{Plan, plan};
pub use policy::{Policy, PolicyArgs, RetentionArgs};
pub use rollup::{ROLLUP_BUCKET_MS, RollupRow, read_rollups};
