//! Reading a SQLite store through the seam: [`SqliteReader`] (the read-only r2d2 pool) hands
//! out [`SqliteSnapshot`]s, each one read transaction; the writer's reads use a snapshot on its
//! own connection, without a transaction of its own.

use std::ops::{ControlFlow, Deref};
use std::path::{Path, PathBuf};

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use super::db::{ReadPool, open_read_pool_with};
use super::error::{db_error, pool_error};
use super::file::db_path;
use super::{reports, resume, sessions, stats};
use crate::model::event::{EventFilter, EventRecord};
use crate::model::owner::{OwnerFilter, OwnerRecord};
use crate::model::policy::Policy;
use crate::model::report::{
    Incarnation, PodFilter, PodSummary, TransitionFilter, TransitionRecord,
};
use crate::model::utilisation::{BucketUsage, UsageSample};
use crate::store::api::{
    Bounds, HistoryReader, NodeInfo, OpenNode, OpenPod, R, ReadOptions, Snapshot, StoreStats,
};
use crate::store::plan::Plan;
use crate::store::{Session, StoreError};

/// The read-only pool of a SQLite file.
pub struct SqliteReader {
    pool: ReadPool,
    path: PathBuf,
}

impl SqliteReader {
    /// Opens the pool (see [`open_read_pool_with`]: never creates or changes the file).
    pub fn open(path: &Path, opts: ReadOptions) -> Result<SqliteReader, StoreError> {
        Ok(SqliteReader {
            pool: open_read_pool_with(path, opts.connections, opts.streaming)?,
            path: path.to_path_buf(),
        })
    }
}

impl HistoryReader for SqliteReader {
    fn snapshot(&self) -> R<Box<dyn Snapshot + '_>> {
        let conn = self.pool.get().map_err(|e| pool_error(&self.path, e))?;
        Ok(Box::new(SqliteSnapshot::in_transaction(Conn::Pooled(
            conn,
        ))?))
    }

    fn max_snapshots(&self) -> usize {
        self.pool.max_size() as usize
    }
}

enum Conn<'a> {
    Pooled(PooledConnection<SqliteConnectionManager>),
    Borrowed(&'a Connection),
}

impl Deref for Conn<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            Conn::Pooled(conn) => conn,
            Conn::Borrowed(conn) => conn,
        }
    }
}

/// Reads on one connection. A snapshot from the pool (or [`SqliteSnapshot::begin`]) runs
/// `BEGIN` when made and `ROLLBACK` when dropped, by hand: an owned rusqlite `Transaction`
/// would borrow the connection it lives beside.
pub struct SqliteSnapshot<'a> {
    conn: Conn<'a>,
    in_transaction: bool,
}

impl<'a> SqliteSnapshot<'a> {
    /// Reads on `conn` as it is (the writer's connection: it sees its own commits).
    pub fn borrowed(conn: &'a Connection) -> SqliteSnapshot<'a> {
        SqliteSnapshot {
            conn: Conn::Borrowed(conn),
            in_transaction: false,
        }
    }

    /// One read transaction on `conn`, until the snapshot is dropped.
    pub fn begin(conn: &'a Connection) -> Result<SqliteSnapshot<'a>, StoreError> {
        SqliteSnapshot::in_transaction(Conn::Borrowed(conn))
    }

    fn in_transaction(conn: Conn<'a>) -> Result<SqliteSnapshot<'a>, StoreError> {
        let mut snapshot = SqliteSnapshot {
            conn,
            in_transaction: false,
        };
        snapshot
            .conn
            .execute_batch("BEGIN")
            .map_err(|e| snapshot.error(e))?;
        snapshot.in_transaction = true;
        Ok(snapshot)
    }

    fn error(&self, err: rusqlite::Error) -> StoreError {
        db_error(&db_path(&self.conn).unwrap_or_default(), err)
    }

    /// Runs a read, its error in the store's terms.
    fn run<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> R<T> {
        read(&self.conn).map_err(|e| self.error(e))
    }
}

impl Drop for SqliteSnapshot<'_> {
    fn drop(&mut self) {
        if self.in_transaction {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl Snapshot for SqliteSnapshot<'_> {
    fn sessions(&mut self) -> R<Vec<Session>> {
        self.run(sessions::read_all)
    }

    fn transitions(
        &mut self,
        filter: &TransitionFilter,
        each: &mut dyn FnMut(TransitionRecord) -> ControlFlow<()>,
    ) -> R<u64> {
        self.run(|c| reports::transitions(c, filter, each))
    }

    fn events(
        &mut self,
        filter: &EventFilter,
        each: &mut dyn FnMut(EventRecord) -> ControlFlow<()>,
    ) -> R<u64> {
        self.run(|c| super::events::events(c, filter, each))
    }

    fn container_samples(
        &mut self,
        filter: &crate::model::usage::UsageFilter,
        each: &mut dyn FnMut(crate::model::usage::ContainerSample),
    ) -> R<()> {
        self.run(|c| super::usage::container_samples(c, filter, each))
    }

    fn container_rollups(
        &mut self,
        filter: &crate::model::usage::UsageFilter,
        each: &mut dyn FnMut(crate::model::usage::ContainerRollup),
    ) -> R<()> {
        self.run(|c| super::usage::container_rollups(c, filter, each))
    }

    fn container_hours(
        &mut self,
        each: &mut dyn FnMut(crate::model::usage::ContainerHour),
    ) -> R<()> {
        self.run(|c| super::usage_rollup::container_hours(c, each))
    }

    fn node_hours(
        &mut self,
        node: Option<&str>,
        since_ms: i64,
        until_ms: i64,
        each: &mut dyn FnMut(crate::model::usage::NodeHour),
    ) -> R<()> {
        self.run(|c| super::usage_rollup::node_hours(c, node, since_ms, until_ms, each))
    }

    fn node_samples_measured(
        &mut self,
        node: Option<&str>,
        since_ms: Option<i64>,
        until_ms: Option<i64>,
        each: &mut dyn FnMut(crate::model::usage::NodeSample),
    ) -> R<()> {
        self.run(|c| super::usage::node_samples(c, node, since_ms, until_ms, each))
    }

    fn recent_event_counts(&mut self, since_ms: i64, each: &mut dyn FnMut(String, i64)) -> R<()> {
        self.run(|c| super::events::recent_counts(c, since_ms, each))
    }

    fn owners(&mut self, filter: &OwnerFilter) -> R<Vec<OwnerRecord>> {
        self.run(|c| super::owners::owners(c, filter))
    }

    fn pods(
        &mut self,
        filter: &PodFilter,
        open_until_ms: i64,
        each: &mut dyn FnMut(PodSummary) -> ControlFlow<()>,
    ) -> R<u64> {
        self.run(|c| reports::pods(c, filter, open_until_ms, each))
    }

    fn pod_by_uid(&mut self, uid: &str) -> R<Option<Incarnation>> {
        self.run(|c| reports::pod_by_uid(c, uid))
    }

    fn pods_named(&mut self, namespace: &str, name: &str) -> R<Vec<Incarnation>> {
        self.run(|c| reports::pods_named(c, namespace, name))
    }

    fn namespaces_with(&mut self, pod_name: &str) -> R<Vec<String>> {
        self.run(|c| reports::namespaces_with(c, pod_name))
    }

    fn nodes_alive(
        &mut self,
        node: Option<&str>,
        since_ms: i64,
        until_ms: i64,
    ) -> R<Vec<NodeInfo>> {
        self.run(|c| reports::nodes_alive(c, node, since_ms, until_ms))
    }

    fn node_samples(
        &mut self,
        node_id: i64,
        since_ms: i64,
        until_ms: i64,
        each: &mut dyn FnMut(UsageSample),
    ) -> R<()> {
        self.run(|c| reports::node_samples(c, node_id, since_ms, until_ms, each))
    }

    fn node_rollups(
        &mut self,
        node: &NodeInfo,
        since_ms: i64,
        until_ms: i64,
    ) -> R<Vec<BucketUsage>> {
        self.run(|c| reports::node_rollups(c, node, since_ms, until_ms))
    }

    fn bounds(&mut self) -> R<Bounds> {
        self.run(super::retention::bounds)
    }

    fn first_usage_ms(&mut self) -> R<Option<i64>> {
        self.run(reports::first_usage_ms)
    }

    fn rolled_up_until_ms(&mut self) -> R<Option<i64>> {
        self.run(super::rollup::rolled_up_until_ms)
    }

    fn nth_raw_usage_ms(&mut self, offset: u64) -> R<Option<i64>> {
        self.run(|c| super::retention::nth_raw_usage_ms(c, offset))
    }

    fn open_pods(&mut self, namespace: Option<&str>, each: &mut dyn FnMut(OpenPod)) -> R<()> {
        self.run(|c| resume::open_pods(c, namespace, each))
    }

    fn open_nodes(&mut self, each: &mut dyn FnMut(OpenNode)) -> R<()> {
        self.run(|c| resume::open_nodes(c, each))
    }

    fn pods_left_scope(&mut self, namespace: Option<&str>) -> R<Vec<String>> {
        self.run(|c| resume::pods_left_scope(c, namespace))
    }

    fn plan(&mut self, policy: &Policy, now_ms: i64) -> R<Plan> {
        self.run(|c| super::plan::plan(c, policy, now_ms))
    }

    fn stats(&mut self) -> R<StoreStats> {
        self.run(stats::collect)
    }
}
