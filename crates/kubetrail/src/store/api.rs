//! The store seam: what the recorder, retention, the reports and the command line need from a
//! history store, as three object-safe traits, plus where a store lives ([`Location`]) and the
//! openers that pick the backend.
//!
//! - [`HistoryWriter`]: the one write connection (batches, sessions, quarantine, the bounded
//!   retention steps, and the backend's own mechanics behind backend-neutral names);
//! - [`HistoryReader`]: hands out read transactions, from any thread;
//! - [`Snapshot`]: one consistent read transaction, and every read.
//!
//! The traits are synchronous: the writer is a `std::thread`, and readers run in
//! `spawn_blocking` or threads of their own. Callers hold `Box<dyn ...>`, so a second backend
//! (a PostgreSQL server) is one more [`Location`] variant and one more module beside `sqlite`.
//! The portable rules (which rows retention removes, how reports filter and integrate) stay
//! with their callers; only the statements that carry them out are behind the traits. A rule
//! that must run inside the store's own transaction (retention's roll-up step) is handed in as
//! a closure ([`RollupRule`]), so the store never names the layers above it.

use std::ops::ControlFlow;
use std::path::PathBuf;

use serde::Serialize;

use super::copy::{ChunkCounts, CopyChunk, CopyTable};
use super::error::StoreError;
use super::plan::{Plan, PruneCounts, TableSize};
use super::rollup::RollupRule;
use super::rows::{Batch, BatchStats};
use super::sessions::{Scope, Session};
use super::size::FileSize;
use super::sqlite;
use crate::model::event::{EventFilter, EventRecord};
use crate::model::owner::{OwnerFilter, OwnerRecord};
use crate::model::policy::Policy;
use crate::model::report::{
    Incarnation, PodFilter, PodSummary, TransitionFilter, TransitionRecord,
};
use crate::model::rollup::RollupProgress;
use crate::model::usage::{
    ContainerHour, ContainerRollup, ContainerSample, NodeHour, NodeSample, UsageBatch, UsageFilter,
    UsageRollupProgress, UsageWriteStats,
};
use crate::model::utilisation::{BucketUsage, UsageSample};
use crate::model::{Effective, Phase};

pub type R<T> = Result<T, StoreError>;

/// Where a history store lives: a SQLite file, or a database on a PostgreSQL server with the
/// clusters to write or read.
#[derive(Clone, Debug)]
pub enum Location {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by many clusters.
    #[cfg(feature = "postgres")]
    Postgres(Box<super::postgres::PgLocation>),
}

impl Location {
    /// `--db`: a `postgres://` (or `postgresql://`) URL names a server, anything else a file.
    /// `clusters` is `--cluster` (a writer needs exactly one; a reader reads all when empty);
    /// a file has no clusters.
    pub fn parse(db: &str, clusters: &[String]) -> Result<Location, String> {
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            return Ok(Location::Postgres(Box::new(
                super::postgres::PgLocation::parse(db, clusters)?,
            )));
            #[cfg(not(feature = "postgres"))]
            return Err(format!(
                "--db {}: this kubetrail was built without PostgreSQL support (feature \
                 `postgres`)",
                db.split('@').next_back().unwrap_or(db)
            ));
        }
        if !clusters.is_empty() {
            return Err(format!(
                "--cluster is for a PostgreSQL --db (postgres://...): the SQLite file {db} \
                 holds one cluster"
            ));
        }
        Ok(Location::Sqlite(PathBuf::from(db)))
    }

    /// What the store takes on this machine's disk, for `/metrics`: the file and its
    /// write-ahead log. None for a store without files of its own (a server).
    pub fn bytes_on_disk(&self) -> Option<u64> {
        match self {
            Location::Sqlite(path) => {
                let (db, wal) = sqlite::file::file_lengths(path);
                Some(db + wal)
            }
            #[cfg(feature = "postgres")]
            Location::Postgres(_) => None,
        }
    }

    /// The SQLite file, for what only a file has (backup, a size budget).
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            Location::Sqlite(path) => Some(path),
            #[cfg(feature = "postgres")]
            Location::Postgres(_) => None,
        }
    }
}

impl std::fmt::Display for Location {
    /// The file's path, or the server as `postgres://user@host:port/db` (never a password).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            #[cfg(feature = "postgres")]
            Location::Postgres(pg) => write!(f, "{pg}"),
        }
    }
}

/// What a writer is opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// `record`: creates the store if needed, and holds the single-writer lock.
    Record,
    /// `prune`: the store must exist, and no lock is taken, so it runs beside a recorder
    /// (their transactions are serialised by the database).
    Maintenance,
}

/// How a reader is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    /// At most this many snapshots at once (the node report reads on several threads).
    pub connections: u32,
    /// Tuned for streaming whole tables (exports) rather than short queries.
    pub streaming: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            connections: 1,
            streaming: false,
        }
    }
}

/// A recording session's heartbeat: its covered time reaches `at_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub session: i64,
    pub at_ms: i64,
}

/// One step of handing freed space back to the file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveBack {
    /// Some was handed back; there may be more.
    More,
    /// Nothing (more) to hand back.
    Done,
    /// The store cannot hand space back at all; `holds_free_space` says whether it has some.
    Cannot { holds_free_space: bool },
}

/// A node incarnation, as the node report lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// The cluster's name when the reader reads more than one, else None.
    pub cluster: Option<String>,
    pub id: i64,
    pub uid: String,
    pub name: String,
    pub created_ms: i64,
    pub deleted_ms: Option<i64>,
}

/// An open pod with its last committed compact state, for a recorder that resumes. The state
/// stays in its stored form and the labels JSON here: the recorder decodes them and applies its
/// selector.
///
/// The stored state leaves out what the `pods` row holds (identity, node, owner, creation,
/// phase, end, resources): those come from the row's columns, which the writer sets from the
/// same projection in the same commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenPod {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    pub owner_kind: Option<String>,
    pub owner_name: Option<String>,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub phase: Phase,
    pub resources: Effective,
    pub labels_json: Option<String>,
    /// The stored state (recorder::codec; JSON in rows an older recorder wrote).
    pub state: Vec<u8>,
}

/// An open node with its last committed compact state (JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenNode {
    pub uid: String,
    pub state_json: String,
}

/// Where the history's parts begin and end, for retention's size rule and the node report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bounds {
    /// The oldest raw usage row.
    pub raw_from_ms: Option<i64>,
    pub oldest_rollup_ms: Option<i64>,
    /// Where the rollups end and raw usage begins.
    pub rolled_up_until_ms: Option<i64>,
    pub oldest_ended_pod_ms: Option<i64>,
    pub oldest_deleted_node_with_history_ms: Option<i64>,
}

/// A time range of one kind of history, in ms since the epoch.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Span {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// What a store holds, for `kubetrail stats`. Figures a backend does not have are None and
/// left out of the JSON.
#[derive(Debug, Serialize)]
pub struct StoreStats {
    pub schema_version: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_vacuum: Option<&'static str>,
    pub tables: Vec<TableSize>,
    pub transitions: Span,
    pub raw_node_usage: Span,
    pub node_usage_rollups: Span,
    pub open_pods: u64,
    pub ended_pods: u64,
    pub open_nodes: u64,
    pub deleted_nodes: u64,
    /// Kubernetes Events kept, and when they were last seen.
    pub events: Span,
    pub event_count: u64,
    /// Rows the recorder's database refused for good (kept in the `quarantine` table).
    pub quarantined_rows: u64,
}

/// The write connection. One per store in `record` (the writer thread owns it); `prune` opens
/// its own in [`WriteMode::Maintenance`]. Each method is one transaction unless it says not.
pub trait HistoryWriter: Send {
    /// Reads on the write connection (resuming, sessions, retention's candidates), seeing
    /// everything committed so far. Not a transaction of its own.
    fn read(&mut self) -> R<Box<dyn Snapshot + '_>>;
    /// Writes `batch` in one transaction, moving the session's heartbeat in the same one.
    /// Replaying a batch inserts nothing twice.
    fn commit(&mut self, batch: &Batch, heartbeat: Option<Heartbeat>) -> R<BatchStats>;
    /// Opens a recording session with this scope; returns its id.
    fn start_session(&mut self, scope: &Scope, now_ms: i64) -> R<i64>;
    /// Moves a session's covered end forward (never back).
    fn heartbeat(&mut self, hb: Heartbeat) -> R<()>;
    /// Ends a session cleanly.
    fn stop_session(&mut self, hb: Heartbeat) -> R<()>;
    /// Keeps a row the store refused for good (`row` is its text, `error` why).
    fn quarantine(&mut self, kind: &str, row: &str, error: &str, at_ms: i64) -> R<()>;
    /// Writes one sampling of the metrics API in one transaction; a replayed sample inserts
    /// nothing, and samples of pods or nodes without an open row are skipped (counted).
    fn write_usage(&mut self, batch: &UsageBatch) -> R<UsageWriteStats>;
    /// Replaces about `row_budget` measured samples of the oldest complete hour before
    /// `horizon_ms` by exact hourly rollups, in one transaction.
    fn roll_up_usage(&mut self, horizon_ms: i64, row_budget: u64) -> R<UsageRollupProgress>;
    /// Removes at most `row_budget` measured rollups of hours that end before `cutoff_ms`;
    /// (removed, done).
    fn expire_usage_rollups(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(u64, bool)>;

    // Retention: each call removes or rolls up at most about `row_budget` rows, in one short
    // transaction, and says whether it is done.
    /// Pods deleted before `cutoff_ms`, with their rows.
    fn prune_ended_pods(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(PruneCounts, bool)>;
    /// Nodes deleted before `cutoff_ms`: their rows, and the node row once nothing names it.
    fn prune_deleted_nodes(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(PruneCounts, bool)>;
    /// Events last seen before `cutoff_ms`, with their occurrences.
    fn prune_events(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(PruneCounts, bool)>;
    /// Removes at most `row_budget` owners deleted before `cutoff_ms` that no kept pod names,
    /// with their scale rows; true when none are left.
    fn prune_owners(&mut self, cutoff_ms: i64, row_budget: u64) -> R<(PruneCounts, bool)>;
    /// Replaces raw usage before `horizon_ms` by hourly rollups: runs `rule` (retention's, which
    /// keeps to its own row budget) on the step's statements in one transaction, and commits.
    fn roll_up(&mut self, horizon_ms: i64, rule: &mut RollupRule<'_>) -> R<RollupProgress>;
    /// Removes rollups that end before `cutoff_ms` (none from `keep_from_ms` on).
    fn expire_rollups(
        &mut self,
        cutoff_ms: i64,
        keep_from_ms: Option<i64>,
        row_budget: u64,
    ) -> R<(u64, bool)>;

    // The backend's mechanics, behind neutral names.
    /// The store's size as the budget counts it; None for a store without a size of its own
    /// (a database on a shared server), which `--max-db-size` cannot apply to.
    fn space(&mut self) -> R<Option<FileSize>>;
    /// Bytes to leave for the backend's log under a `budget` (its length at the pass's start
    /// was `observed_log_bytes`), after fitting the log's own limit to the budget.
    fn log_allowance(&mut self, budget: u64, observed_log_bytes: u64) -> R<u64>;
    /// Empties the log into the store; false when a reader still needs it.
    fn checkpoint(&mut self) -> R<bool>;
    /// Hands a bounded amount of freed space back to the file system.
    fn give_back_step(&mut self) -> R<GiveBack>;
    /// A counter that moves when another connection commits; None when the backend cannot
    /// tell (a server), so that sharing never pauses for it.
    fn foreign_commits(&mut self) -> R<Option<i64>>;
}

/// Hands out snapshots; shared by the threads of one report.
pub trait HistoryReader: Send + Sync {
    /// One consistent read transaction, ended when the snapshot is dropped.
    fn snapshot(&self) -> R<Box<dyn Snapshot + '_>>;
    /// How many snapshots can be open at once.
    fn max_snapshots(&self) -> usize;
    /// The names of the clusters read, when the store keeps several (PostgreSQL); empty for a
    /// store of one cluster (a SQLite file). Reports show a cluster column when more than one
    /// is read.
    fn clusters(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Every read, inside one transaction (or on the write connection, for [`HistoryWriter::read`]).
pub trait Snapshot {
    /// Every recording session, oldest first.
    fn sessions(&mut self) -> R<Vec<Session>>;
    /// The transitions `filter` selects, in `(at_ms, id)` order, each handed to `each` until it
    /// breaks; returns how many were.
    fn transitions(
        &mut self,
        filter: &TransitionFilter,
        each: &mut dyn FnMut(TransitionRecord) -> ControlFlow<()>,
    ) -> R<u64>;
    /// The events `filter` selects, in `last_seen` order, each handed to `each` until it
    /// breaks; returns how many were.
    fn events(
        &mut self,
        filter: &EventFilter,
        each: &mut dyn FnMut(EventRecord) -> ControlFlow<()>,
    ) -> R<u64>;
    /// The container samples `filter` selects, by pod, container and time.
    fn container_samples(
        &mut self,
        filter: &UsageFilter,
        each: &mut dyn FnMut(ContainerSample),
    ) -> R<()>;
    /// Each container's rollups of the hours that start in `filter`'s window, merged into one
    /// row per container ([`crate::model::usage::Hourly::merge`]), by pod and container.
    fn container_rollups(
        &mut self,
        filter: &UsageFilter,
        each: &mut dyn FnMut(ContainerRollup),
    ) -> R<()>;
    /// Every container's hourly rollups of measured usage, by pod, container and hour.
    fn container_hours(&mut self, each: &mut dyn FnMut(ContainerHour)) -> R<()>;
    /// The nodes' (or the one named `node`'s) hourly rollups of measured usage whose hours
    /// start in `[since_ms, until_ms)`, by node and hour.
    fn node_hours(
        &mut self,
        node: Option<&str>,
        since_ms: i64,
        until_ms: i64,
        each: &mut dyn FnMut(NodeHour),
    ) -> R<()>;
    /// The node samples (of the node named `node` only, when given) in `[since_ms,
    /// until_ms)`, by node name and time.
    fn node_samples_measured(
        &mut self,
        node: Option<&str>,
        since_ms: Option<i64>,
        until_ms: Option<i64>,
        each: &mut dyn FnMut(NodeSample),
    ) -> R<()>;
    /// `(uid, count)` of the events last seen at or after `since_ms`, for a recorder that
    /// resumes: a relist then writes only what is new.
    fn recent_event_counts(&mut self, since_ms: i64, each: &mut dyn FnMut(String, i64)) -> R<()>;
    /// The ReplicaSets and Jobs `filter` selects, by creation, each with its scale rows.
    fn owners(&mut self, filter: &OwnerFilter) -> R<Vec<OwnerRecord>>;
    /// The pods `filter` selects, oldest first, each handed to `each` until it breaks; an open
    /// pod's lifetime ends at `open_until_ms`. Returns how many were handed over.
    fn pods(
        &mut self,
        filter: &PodFilter,
        open_until_ms: i64,
        each: &mut dyn FnMut(PodSummary) -> ControlFlow<()>,
    ) -> R<u64>;
    /// The pod incarnation with this uid (without transitions).
    fn pod_by_uid(&mut self, uid: &str) -> R<Option<Incarnation>>;
    /// The incarnations of `namespace/name`, oldest first (without transitions).
    fn pods_named(&mut self, namespace: &str, name: &str) -> R<Vec<Incarnation>>;
    /// The namespaces that have (or had) a pod with this name, sorted.
    fn namespaces_with(&mut self, pod_name: &str) -> R<Vec<String>>;
    /// The node incarnations (named `node`, or all) alive in `[since_ms, until_ms)`, by name
    /// then creation.
    fn nodes_alive(&mut self, node: Option<&str>, since_ms: i64, until_ms: i64)
    -> R<Vec<NodeInfo>>;
    /// One node's raw usage from the row in force at `since_ms` to `until_ms`, in time order.
    fn node_samples(
        &mut self,
        node_id: i64,
        since_ms: i64,
        until_ms: i64,
        each: &mut dyn FnMut(UsageSample),
    ) -> R<()>;
    /// One node's rollups overlapping `[since_ms, until_ms)`, in time order.
    fn node_rollups(
        &mut self,
        node: &NodeInfo,
        since_ms: i64,
        until_ms: i64,
    ) -> R<Vec<BucketUsage>>;
    /// Where the history's parts begin and end (retention's size rule).
    fn bounds(&mut self) -> R<Bounds>;
    /// The first usage (raw or rolled up) of any node: where a node report starts by default.
    fn first_usage_ms(&mut self) -> R<Option<i64>>;
    /// Where the rollups end and raw usage begins; None when nothing is rolled up.
    fn rolled_up_until_ms(&mut self) -> R<Option<i64>>;
    /// The time of the raw usage row `offset` rows after the oldest.
    fn nth_raw_usage_ms(&mut self, offset: u64) -> R<Option<i64>>;
    /// Open pods (in `namespace`, or all) that have a compact state, each handed to `each` as
    /// it is read (a large cluster's states are not all held at once).
    fn open_pods(&mut self, namespace: Option<&str>, each: &mut dyn FnMut(OpenPod)) -> R<()>;
    /// Every open node with its compact state, each handed to `each`.
    fn open_nodes(&mut self, each: &mut dyn FnMut(OpenNode)) -> R<()>;
    /// Uids of open pods whose latest scope transition is `left_scope`.
    fn pods_left_scope(&mut self, namespace: Option<&str>) -> R<Vec<String>>;
    /// What `policy` would remove at `now_ms` (`prune --dry-run`, `stats`).
    fn plan(&mut self, policy: &Policy, now_ms: i64) -> R<Plan>;
    fn stats(&mut self) -> R<StoreStats>;
}

/// A whole history read out of a store, for `kubetrail copy` ([`super::copy`]): everything
/// inside one read transaction, so that a source being recorded into meanwhile is copied as it
/// was at one instant.
pub trait HistoryExport: Send {
    /// How many rows each table holds (for progress).
    fn counts(&mut self) -> R<Vec<(CopyTable, u64)>>;
    /// Where the source's covered time ends (its newest session's end); None without sessions.
    fn covered_until_ms(&mut self) -> R<Option<i64>>;
    /// Hands every row to `each` in chunks of at most `chunk_rows`, the tables in
    /// [`CopyTable::ORDER`]. `each` returns false to stop (the copy was interrupted).
    fn export(&mut self, chunk_rows: usize, each: &mut dyn FnMut(CopyChunk) -> R<bool>) -> R<()>;
}

/// The destination of `kubetrail copy`: one cluster of a store, held like a recorder holds it
/// (a recorder of that cluster is refused meanwhile, and the copy is refused while one runs).
pub trait HistoryImport: Send {
    /// Writes one chunk in one transaction. Writing a chunk again changes nothing.
    fn import(&mut self, chunk: &CopyChunk) -> R<ChunkCounts>;
}

/// Opens the (existing) store at `at` as the source of a copy; never creates or changes it.
pub fn open_export(at: &Location) -> R<Box<dyn HistoryExport>> {
    match at {
        Location::Sqlite(path) => Ok(Box::new(sqlite::export::SqliteExport::open(path)?)),
        #[cfg(feature = "postgres")]
        Location::Postgres(pg) => Err(StoreError::Refused {
            target: pg.to_string(),
            reason: "a copy reads a SQLite file; to copy between PostgreSQL servers use the \
                     server's own tools (pg_dump)"
                .to_string(),
        }),
    }
}

/// Opens the one cluster of `at` as a copy's destination (creating the schema and the cluster
/// when new). `source_until_ms` is the source's [`HistoryExport::covered_until_ms`]: it decides
/// whose view of a pod or node that both hold open is kept (the newer history's).
pub fn open_import(at: &Location, source_until_ms: Option<i64>) -> R<Box<dyn HistoryImport>> {
    #[cfg(not(feature = "postgres"))]
    let _ = source_until_ms;
    match at {
        Location::Sqlite(path) => Err(StoreError::Refused {
            target: path.display().to_string(),
            reason: "a copy writes into PostgreSQL (postgres://...), not into a SQLite file"
                .to_string(),
        }),
        #[cfg(feature = "postgres")]
        Location::Postgres(pg) => Ok(Box::new(pg.open_import(source_until_ms)?)),
    }
}

/// Opens the store at `at` for writing.
pub fn open_writer(at: &Location, mode: WriteMode) -> R<Box<dyn HistoryWriter>> {
    match at {
        Location::Sqlite(path) => match mode {
            WriteMode::Record => Ok(Box::new(sqlite::db::open_for_writing(path)?)),
            WriteMode::Maintenance => Ok(Box::new(sqlite::db::open_for_maintenance(path)?)),
        },
        #[cfg(feature = "postgres")]
        Location::Postgres(pg) => Ok(Box::new(pg.open_writer(mode)?)),
    }
}

/// Opens the (existing) store at `at` for reading; never creates or changes it.
pub fn open_reader(at: &Location, opts: ReadOptions) -> R<Box<dyn HistoryReader>> {
    match at {
        Location::Sqlite(path) => Ok(Box::new(sqlite::SqliteReader::open(path, opts)?)),
        #[cfg(feature = "postgres")]
        Location::Postgres(pg) => Ok(Box::new(pg.open_reader(opts)?)),
    }
}

/// Checks that the store at `at` is sound (SQLite: a budgeted `quick_check`).
pub fn check(at: &Location) -> R<()> {
    match at {
        Location::Sqlite(path) => sqlite::db::check_file(path),
        // The server checks its own pages (and checksums, when the cluster has them on).
        #[cfg(feature = "postgres")]
        Location::Postgres(_) => Ok(()),
    }
}
