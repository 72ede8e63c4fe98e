//! A SQLite file as the source of `kubetrail copy` ([`HistoryExport`]): every table of the
//! history, read in one read transaction on a read-only connection, handed out in bounded
//! chunks with uids in place of the file's integer keys.
//!
//! The file is never changed: it is opened like a query opens it (read-only, a file without a
//! kubetrail schema or of another version is refused), and one statement per table streams its
//! rows in key order, so memory holds one chunk whatever the file's size. A recorder may keep
//! writing the file meanwhile (WAL); the copy sees the file as it was when it began, and a
//! later copy picks up the rest.

use std::path::{Path, PathBuf};

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Row;

use super::db::open_read_pool_with;
use super::error::{db_error, pool_error};
use super::rollup::{ROLLUP_COLUMNS, bucket_from_row};
use crate::model::{Effective, Phase, Resources, TransitionKind};
use crate::store::api::{HistoryExport, R};
use crate::store::copy::{CopyChunk, CopyTable, QuarantineRow, RollupCopy};
use crate::store::rows::{
    NodeCapacityRow, NodeResources, NodeRow, NodeUsageRow, PodResourcesRow, PodRow, SubjectUid,
    TransitionRow,
};
use crate::store::{Session, StoreError};

/// One read transaction on a SQLite file, for the whole copy.
pub struct SqliteExport {
    conn: PooledConnection<SqliteConnectionManager>,
    path: PathBuf,
}

impl SqliteExport {
    /// Opens `path` read-only and begins the read transaction.
    pub fn open(path: &Path) -> Result<SqliteExport, StoreError> {
        // Not memory-mapped (unlike exports): a copy reads the whole file, and a mapping would
        // count every page it touched as the process's memory, up to the file's size (measured:
        // 480 MB resident for a 540 MB file). SQLite's own page cache stays small.
        let pool = open_read_pool_with(path, 1, false)?;
        let conn = pool.get().map_err(|e| pool_error(path, e))?;
        conn.execute_batch("BEGIN").map_err(|e| db_error(path, e))?;
        Ok(SqliteExport {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn error(&self, err: rusqlite::Error) -> StoreError {
        db_error(&self.path, err)
    }

    /// Streams `sql`'s rows through `decode`, `chunk_rows` at a time, into `each`. False when
    /// `each` asked to stop.
    fn stream<T>(
        &self,
        sql: &str,
        chunk_rows: usize,
        decode: impl Fn(&Row) -> rusqlite::Result<T>,
        wrap: impl Fn(Vec<T>) -> CopyChunk,
        each: &mut dyn FnMut(CopyChunk) -> R<bool>,
    ) -> R<bool> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.error(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.error(e))?;
        let mut chunk = Vec::with_capacity(chunk_rows.min(1 << 16));
        while let Some(row) = rows.next().map_err(|e| self.error(e))? {
            chunk.push(decode(row).map_err(|e| self.error(e))?);
            if chunk.len() >= chunk_rows && !each(wrap(std::mem::take(&mut chunk)))? {
                return Ok(false);
            }
        }
        if !chunk.is_empty() {
            return each(wrap(chunk));
        }
        Ok(true)
    }
}

impl Drop for SqliteExport {
    fn drop(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }
}

const NODES: &str = "SELECT uid, name, created_at_ms, deleted_at_ms, cpu_capacity_millis,
        memory_capacity_bytes, pods_capacity, cpu_allocatable_millis, memory_allocatable_bytes,
        pods_allocatable, state
    FROM nodes ORDER BY id";

/// A pod's labels from its label set, and its compact state while open (`''` when none, as the
/// recorder's rows say it).
pub(super) const PODS: &str =
    "SELECT p.uid, p.namespace, p.name, p.node, p.owner_kind, p.owner_name,
        l.labels, p.created_at_ms, p.started_at_ms, p.finished_at_ms, p.deleted_at_ms, p.phase,
        p.reason, p.restarts, p.cpu_request_millis, p.memory_request_bytes, p.cpu_limit_millis,
        p.memory_limit_bytes, coalesce(s.state, x'')
    FROM pods p
    LEFT JOIN label_sets l ON l.id = p.label_set_id
    LEFT JOIN pod_state s ON s.pod_id = p.id
    ORDER BY p.id";

/// In id order: the destination gives them ids in the same order, which is how reports order
/// transitions of the same millisecond.
const TRANSITIONS: &str = "SELECT p.uid, n.uid, t.kind, t.seq, t.at_ms, t.observed_at_ms,
        t.phase_before, t.phase_after, t.container, t.reason, t.message, t.exit_code,
        t.restart_count, t.resource_version, t.inferred
    FROM transitions t
    LEFT JOIN pods p ON p.id = t.pod_id
    LEFT JOIN nodes n ON n.id = t.node_id AND t.pod_id IS NULL
    ORDER BY t.id";

const POD_RESOURCES: &str = "SELECT p.uid, r.at_ms, r.cpu_request_millis,
        r.memory_request_bytes, r.cpu_limit_millis, r.memory_limit_bytes
    FROM pod_resources r JOIN pods p ON p.id = r.pod_id
    ORDER BY r.pod_id, r.at_ms";

const NODE_CAPACITY: &str = "SELECT n.uid, c.at_ms, c.cpu_capacity_millis,
        c.memory_capacity_bytes, c.pods_capacity, c.cpu_allocatable_millis,
        c.memory_allocatable_bytes, c.pods_allocatable
    FROM node_capacity c JOIN nodes n ON n.id = c.node_id
    ORDER BY c.node_id, c.at_ms";

const NODE_USAGE: &str = "SELECT n.uid, u.at_ms, u.cpu_requested_millis,
        u.memory_requested_bytes, u.cpu_limits_millis, u.memory_limits_bytes, u.pod_count,
        u.cpu_allocatable_millis, u.memory_allocatable_bytes, u.keyframe
    FROM node_usage u JOIN nodes n ON n.id = u.node_id
    ORDER BY u.node_id, u.at_ms";

const QUARANTINE: &str = "SELECT at_ms, kind, error, row FROM quarantine ORDER BY id";

fn node(r: &Row) -> rusqlite::Result<NodeRow> {
    Ok(NodeRow {
        uid: r.get(0)?,
        name: r.get(1)?,
        created_at_ms: r.get(2)?,
        deleted_at_ms: r.get(3)?,
        capacity: NodeResources {
            cpu_millis: r.get(4)?,
            memory_bytes: r.get(5)?,
            pods: r.get(6)?,
        },
        allocatable: NodeResources {
            cpu_millis: r.get(7)?,
            memory_bytes: r.get(8)?,
            pods: r.get(9)?,
        },
        state_json: r.get(10)?,
    })
}

pub(super) fn pod(r: &Row) -> rusqlite::Result<PodRow> {
    Ok(PodRow {
        uid: r.get(0)?,
        namespace: r.get(1)?,
        name: r.get(2)?,
        node: r.get(3)?,
        owner_kind: r.get(4)?,
        owner_name: r.get(5)?,
        labels_json: r.get(6)?,
        created_at_ms: r.get(7)?,
        started_at_ms: r.get(8)?,
        finished_at_ms: r.get(9)?,
        deleted_at_ms: r.get(10)?,
        phase: Phase::from_code(r.get(11)?),
        reason: r.get(12)?,
        restarts: r.get(13)?,
        resources: Effective {
            requests: Resources::new(r.get(14)?, r.get(15)?),
            limits: Resources::new(r.get(16)?, r.get(17)?),
        },
        state: r.get(18)?,
    })
}

fn transition(r: &Row) -> rusqlite::Result<TransitionRow> {
    let pod: Option<String> = r.get(0)?;
    let node: Option<String> = r.get(1)?;
    // The file's foreign keys make a row without its subject impossible; one would be a
    // damaged file, and is named rather than dropped.
    let subject = match (pod, node) {
        (Some(uid), _) => SubjectUid::Pod(uid),
        (None, Some(uid)) => SubjectUid::Node(uid),
        (None, None) => {
            return Err(rusqlite::Error::InvalidColumnType(
                0,
                "a transition whose pod or node is missing".into(),
                rusqlite::types::Type::Null,
            ));
        }
    };
    let code: i64 = r.get(2)?;
    let kind = TransitionKind::from_code(code).ok_or_else(|| {
        rusqlite::Error::InvalidColumnType(
            2,
            format!("transition kind {code}, unknown to this kubetrail"),
            rusqlite::types::Type::Integer,
        )
    })?;
    let phase = |i: usize| -> rusqlite::Result<Option<Phase>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(Phase::from_code))
    };
    Ok(TransitionRow {
        subject,
        kind,
        seq: r.get(3)?,
        at_ms: r.get(4)?,
        observed_at_ms: r.get(5)?,
        phase_before: phase(6)?,
        phase_after: phase(7)?,
        container: r.get(8)?,
        reason: r.get(9)?,
        message: r.get(10)?,
        exit_code: r.get(11)?,
        restart_count: r.get(12)?,
        resource_version: r.get(13)?,
        inferred: r.get::<_, i64>(14)? != 0,
    })
}

fn pod_resources(r: &Row) -> rusqlite::Result<PodResourcesRow> {
    Ok(PodResourcesRow {
        pod_uid: r.get(0)?,
        at_ms: r.get(1)?,
        resources: Effective {
            requests: Resources::new(r.get(2)?, r.get(3)?),
            limits: Resources::new(r.get(4)?, r.get(5)?),
        },
    })
}

fn node_capacity(r: &Row) -> rusqlite::Result<NodeCapacityRow> {
    Ok(NodeCapacityRow {
        node_uid: r.get(0)?,
        at_ms: r.get(1)?,
        capacity: NodeResources {
            cpu_millis: r.get(2)?,
            memory_bytes: r.get(3)?,
            pods: r.get(4)?,
        },
        allocatable: NodeResources {
            cpu_millis: r.get(5)?,
            memory_bytes: r.get(6)?,
            pods: r.get(7)?,
        },
    })
}

fn node_usage(r: &Row) -> rusqlite::Result<NodeUsageRow> {
    Ok(NodeUsageRow {
        node_uid: r.get(0)?,
        at_ms: r.get(1)?,
        requested: Resources::new(r.get(2)?, r.get(3)?),
        limits: Resources::new(r.get(4)?, r.get(5)?),
        pod_count: r.get(6)?,
        allocatable: Resources::new(r.get(7)?, r.get(8)?),
        keyframe: r.get::<_, i64>(9)? != 0,
    })
}

fn quarantine(r: &Row) -> rusqlite::Result<QuarantineRow> {
    Ok(QuarantineRow {
        at_ms: r.get(0)?,
        kind: r.get(1)?,
        error: r.get(2)?,
        row: r.get(3)?,
    })
}

impl HistoryExport for SqliteExport {
    fn counts(&mut self) -> R<Vec<(CopyTable, u64)>> {
        CopyTable::ORDER
            .iter()
            .map(|&table| {
                let n: i64 = self
                    .conn
                    .query_row(&format!("SELECT count(*) FROM {}", table.name()), [], |r| {
                        r.get(0)
                    })
                    .map_err(|e| self.error(e))?;
                Ok((table, n as u64))
            })
            .collect()
    }

    fn covered_until_ms(&mut self) -> R<Option<i64>> {
        let sessions = super::sessions::read_all(&self.conn).map_err(|e| self.error(e))?;
        Ok(sessions.iter().map(Session::end_ms).max())
    }

    fn export(&mut self, chunk_rows: usize, each: &mut dyn FnMut(CopyChunk) -> R<bool>) -> R<()> {
        let n = chunk_rows.max(1);
        let rollups = format!(
            "SELECT n.uid, {ROLLUP_COLUMNS} FROM node_usage_rollup r
             JOIN nodes n ON n.id = r.node_id ORDER BY r.node_id, r.bucket_start_ms"
        );
        let rollup = |r: &Row| -> rusqlite::Result<RollupCopy> {
            Ok(RollupCopy {
                node_uid: r.get(0)?,
                usage: bucket_from_row(r, 1)?,
            })
        };
        let going = self.stream(NODES, n, node, CopyChunk::Nodes, each)?
            && self.stream(PODS, n, pod, CopyChunk::Pods, each)?
            && self.stream(TRANSITIONS, n, transition, CopyChunk::Transitions, each)?
            && self.stream(
                POD_RESOURCES,
                n,
                pod_resources,
                CopyChunk::PodResources,
                each,
            )?
            && self.stream(
                NODE_CAPACITY,
                n,
                node_capacity,
                CopyChunk::NodeCapacity,
                each,
            )?
            && self.stream(NODE_USAGE, n, node_usage, CopyChunk::NodeUsage, each)?
            && self.stream(&rollups, n, rollup, CopyChunk::Rollups, each)?
            && self.stream(
                super::usage::EXPORT_CONTAINER_SAMPLES,
                n,
                super::usage::sample_row,
                CopyChunk::ContainerSamples,
                each,
            )?
            && self.stream(
                super::usage::EXPORT_NODE_SAMPLES,
                n,
                super::usage::sample_row,
                CopyChunk::NodeSamples,
                each,
            )?
            && self.stream(
                super::usage_rollup::EXPORT_CONTAINER_HOURS,
                n,
                super::usage_rollup::hour_row,
                CopyChunk::ContainerHours,
                each,
            )?
            && self.stream(
                super::usage_rollup::EXPORT_NODE_HOURS,
                n,
                super::usage_rollup::hour_row,
                CopyChunk::NodeHours,
                each,
            )?
            && self.stream(QUARANTINE, n, quarantine, CopyChunk::Quarantine, each)?
            && self.stream(
                super::events::EXPORT_EVENTS,
                n,
                super::events::event_row,
                CopyChunk::Events,
                each,
            )?
            && self.stream(
                super::events::EXPORT_OCCURRENCES,
                n,
                super::events::occurrence_row,
                CopyChunk::Occurrences,
                each,
            )?
            && self.stream(
                super::owners::EXPORT_OWNERS,
                n,
                super::owners::owner_row,
                CopyChunk::Owners,
                each,
            )?
            && self.stream(
                super::owners::EXPORT_SCALES,
                n,
                super::owners::scale_row,
                CopyChunk::OwnerScales,
                each,
            )?;
        if going {
            // A session per recorder start: few, read at once.
            let sessions = super::sessions::read_all(&self.conn).map_err(|e| self.error(e))?;
            for chunk in sessions.chunks(n) {
                if !each(CopyChunk::Sessions(chunk.to_vec()))? {
                    break;
                }
            }
        }
        Ok(())
    }
}
