//! The statements one roll-up step needs, as the store offers them ([`RollupStore`], inside
//! one write transaction), and the shape of the rule that runs over them ([`RollupRule`]).
//! The rule itself (which rows go, where a chunk ends, what a rollup holds) is retention's,
//! written once for every store and handed in to `HistoryWriter::roll_up`: the store opens the
//! transaction, runs the rule on its statements and commits, without naming the layer above.

use super::error::StoreError;
use crate::model::rollup::RollupProgress;
use crate::model::utilisation::{BucketUsage, Intervals, UsageSample};

/// The rule of one roll-up step, run by the store on its statements inside one write
/// transaction (`Send`: a PostgreSQL writer may run it on a thread of its own).
pub type RollupRule<'a> =
    dyn FnMut(&mut dyn RollupStore) -> Result<RollupProgress, StoreError> + Send + 'a;

/// A node's life, as rolling up needs it.
#[derive(Clone, Copy, Debug)]
pub struct NodeLife {
    pub id: i64,
    pub created_ms: i64,
    pub deleted_ms: Option<i64>,
}

/// The statements of one roll-up step, all inside one write transaction of the store.
pub trait RollupStore {
    /// Every node of the history being rolled up.
    fn nodes(&mut self) -> Result<Vec<NodeLife>, StoreError>;
    /// The recorded time (sessions), or None when all time counts.
    fn covered(&mut self) -> Result<Option<Intervals>, StoreError>;
    /// The node's first raw row.
    fn raw_start_ms(&mut self, node: i64) -> Result<Option<i64>, StoreError>;
    /// The time of the node's raw row `offset` rows after its first, before `before_ms`.
    fn nth_raw_ms(
        &mut self,
        node: i64,
        before_ms: i64,
        offset: u64,
    ) -> Result<Option<i64>, StoreError>;
    /// The node's raw rows before `before_ms`, in time order.
    fn raw_samples(
        &mut self,
        node: i64,
        before_ms: i64,
        each: &mut dyn FnMut(UsageSample),
    ) -> Result<(), StoreError>;
    /// The node's rollup starting at `start_ms`, if one is stored.
    fn rollup(&mut self, node: i64, start_ms: i64) -> Result<Option<BucketUsage>, StoreError>;
    /// Stores the rollup, replacing one with the same start.
    fn put_rollup(&mut self, node: i64, bucket: &BucketUsage) -> Result<(), StoreError>;
    /// Stores `sample` as a keyframe row at `at_ms` unless a row is there; true if stored.
    fn put_keyframe(
        &mut self,
        node: i64,
        at_ms: i64,
        sample: &UsageSample,
    ) -> Result<bool, StoreError>;
    /// Deletes the node's raw rows before `before_ms`; returns how many.
    fn delete_raw_before(&mut self, node: i64, before_ms: i64) -> Result<u64, StoreError>;
}
