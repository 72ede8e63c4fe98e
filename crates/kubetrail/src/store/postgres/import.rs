//! PostgreSQL as the destination of `kubetrail copy` ([`HistoryImport`]): one cluster's rows,
//! written chunk by chunk, each chunk in one transaction, through the recorder's own
//! connection ([`PgWriter`], which holds the cluster's advisory lock: a recorder of the cluster
//! is refused while a copy runs, and a copy while a recorder runs).
//!
//! Idempotency comes from the schema's natural keys, not from remembering what was copied:
//! pods and nodes by `(cluster_id, uid)`, transitions by `transitions_key` (subject, kind, seq),
//! the step tables and rollups by (subject, time), sessions by their start and scope,
//! quarantine rows by their whole content. Each chunk goes by binary `COPY` into a staging
//! table, rows that differ from the database's are updated (`UPDATE ... FROM`), then the rest
//! is inserted with `ON CONFLICT DO NOTHING`; a row already there as it is costs a lookup and
//! no write, so a second copy of the same file adds nothing and rewrites nothing. (The two
//! statements count new and updated rows apart without `xmax`, which a partitioned table does
//! not have.) A copy cut short leaves whole chunks only, and running it again finishes it.
//!
//! When the database already has a pod or node the file has (a live recording of the same
//! cluster, or an earlier copy of a file that has grown since), an ended row is never changed
//! (an ended incarnation does not change again), an open row is ended by the file's ended
//! one, and an open row that both have open keeps the newer history's view: the file's when
//! its recording sessions end no earlier than the database's for the cluster
//! (`prefer_source`), else the database's. Transitions are never changed once there, as in
//! the recorder.

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, Transaction};

use super::partitions::Partitioned;
use super::usage_copy;
use super::{PgLocation, PgWriter, outside_runtime};
use crate::store::api::{HistoryImport, R, WriteMode};
use crate::store::copy::{ChunkCounts, CopyChunk, QuarantineRow, RollupCopy};
use crate::store::rows::{
    NodeCapacityRow, NodeRow, NodeUsageRow, PodResourcesRow, PodRow, SubjectUid, TransitionRow,
    labels_hash,
};
use crate::store::{Session, StoreError};

/// The staging tables, made on each connection the first time (and checked again per chunk:
/// the writer may have reconnected). `ON COMMIT DELETE ROWS` empties them at every commit.
const STAGING: &str = "
CREATE TEMP TABLE IF NOT EXISTS copy_nodes_in (
    uid text, name text, created_at_ms bigint, deleted_at_ms bigint,
    cpu_capacity_millis bigint, memory_capacity_bytes bigint, pods_capacity bigint,
    cpu_allocatable_millis bigint, memory_allocatable_bytes bigint, pods_allocatable bigint,
    state text) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS copy_pods_in (
    ord integer, uid text, namespace text, name text, node text, owner_kind text,
    owner_name text, labels text, labels_hash bigint, label_set_id bigint,
    created_at_ms bigint, started_at_ms bigint, finished_at_ms bigint, deleted_at_ms bigint,
    phase smallint, reason text, restarts bigint, cpu_request_millis bigint,
    memory_request_bytes bigint, cpu_limit_millis bigint, memory_limit_bytes bigint,
    state bytea) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS copy_transitions_in (
    ord integer, subject_uid text, is_pod boolean, kind smallint, seq bigint, at_ms bigint,
    observed_at_ms bigint, phase_before smallint, phase_after smallint, container text,
    reason text, message text, exit_code bigint, restart_count bigint,
    resource_version bigint, inferred boolean) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS copy_steps_in (
    subject_uid text, at_ms bigint,
    a bigint, b bigint, c bigint, d bigint, e bigint, f bigint, g bigint, flag boolean)
    ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS copy_rollups_in (
    node_uid text, bucket_start_ms bigint, bucket_ms bigint, covered_ms bigint,
    pods_avg float8, pods_peak bigint,
    cpu_requested_avg_millis float8, cpu_requested_peak_millis bigint,
    memory_requested_avg_bytes float8, memory_requested_peak_bytes bigint,
    cpu_limits_avg_millis float8, cpu_limits_peak_millis bigint,
    memory_limits_avg_bytes float8, memory_limits_peak_bytes bigint,
    cpu_allocatable_avg_millis float8, cpu_allocatable_peak_millis bigint,
    memory_allocatable_avg_bytes float8, memory_allocatable_peak_bytes bigint,
    cpu_requested_ratio_avg float8, cpu_requested_ratio_peak float8,
    memory_requested_ratio_avg float8, memory_requested_ratio_peak float8,
    cpu_limits_ratio_avg float8, cpu_limits_ratio_peak float8,
    memory_limits_ratio_avg float8, memory_limits_ratio_peak float8) ON COMMIT DELETE ROWS;
";

/// One cluster of a PostgreSQL database, open for a copy.
pub struct PgImport {
    writer: PgWriter,
    /// Whether the source's view of a pod or node that both hold open wins (see the module).
    prefer_source: bool,
}

impl PgLocation {
    /// The one `--cluster`'s writer, holding its recorder lock, as a copy's destination.
    pub fn open_import(&self, source_until_ms: Option<i64>) -> Result<PgImport, StoreError> {
        let mut writer = self.open_writer(WriteMode::Record)?;
        let db_until: Option<i64> = outside_runtime(|| {
            writer.with(|c, cluster| {
                c.query_one(
                    "SELECT max(greatest(started_at_ms, coalesce(stopped_at_ms, heartbeat_at_ms)))
                     FROM recording_sessions WHERE cluster_id = $1",
                    &[&cluster],
                )
                .map(|r| r.get(0))
            })
        })?;
        let prefer_source = match (source_until_ms, db_until) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(source), Some(db)) => source >= db,
        };
        Ok(PgImport {
            writer,
            prefer_source,
        })
    }
}

impl HistoryImport for PgImport {
    fn import(&mut self, chunk: &CopyChunk) -> R<ChunkCounts> {
        outside_runtime(move || self.import_chunk(chunk))
    }
}

impl PgImport {
    fn import_chunk(&mut self, chunk: &CopyChunk) -> Result<ChunkCounts, StoreError> {
        // Partitions first, each in a short transaction of its own (see `partitions`).
        match chunk {
            CopyChunk::Nodes(rows) => self.writer.ensure_partitions(
                Partitioned::Transitions,
                rows.iter().map(|n| n.created_at_ms),
            )?,
            CopyChunk::Pods(rows) => self.writer.ensure_partitions(
                Partitioned::Transitions,
                rows.iter().map(|p| p.created_at_ms),
            )?,
            CopyChunk::Transitions(rows) => {
                // By the subjects' creation times, which the database has: their partitions
                // were made with the subjects, but retention of another cluster may have
                // dropped an empty one since.
                let created = self.subject_creation_times(rows)?;
                self.writer
                    .ensure_partitions(Partitioned::Transitions, created)?
            }
            CopyChunk::NodeUsage(rows) => self
                .writer
                .ensure_partitions(Partitioned::NodeUsage, rows.iter().map(|u| u.at_ms))?,
            CopyChunk::Rollups(rows) => self.writer.ensure_partitions(
                Partitioned::NodeUsageRollup,
                rows.iter().map(|r| r.usage.start_ms),
            )?,
            _ => {}
        }
        let prefer = self.prefer_source;
        let cluster = self.writer.cluster_id;
        let client = self.writer.client_mut()?;
        let result = write_chunk(client, cluster, prefer, chunk);
        result.map_err(|e| self.writer.error(e))
    }

    fn subject_creation_times(&mut self, rows: &[TransitionRow]) -> Result<Vec<i64>, StoreError> {
        let (mut pods, mut nodes): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
        for t in rows {
            match &t.subject {
                SubjectUid::Pod(uid) => pods.push(uid),
                SubjectUid::Node(uid) => nodes.push(uid),
            }
        }
        self.writer.with(|c, cluster| {
            let rows = c.query(
                "SELECT DISTINCT created_at_ms FROM pods WHERE cluster_id = $1 AND uid = ANY($2)
                 UNION
                 SELECT DISTINCT created_at_ms FROM nodes WHERE cluster_id = $1 AND uid = ANY($3)",
                &[&cluster, &pods, &nodes],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
}

/// Writes one chunk in one transaction.
fn write_chunk(
    client: &mut Client,
    cluster: i32,
    prefer: bool,
    chunk: &CopyChunk,
) -> Result<ChunkCounts, postgres::Error> {
    client.batch_execute(STAGING)?;
    let mut tx = client.transaction()?;
    let counts = match chunk {
        CopyChunk::Nodes(rows) => nodes(&mut tx, cluster, prefer, rows)?,
        CopyChunk::Pods(rows) => pods(&mut tx, cluster, prefer, rows)?,
        CopyChunk::Transitions(rows) => transitions(&mut tx, cluster, rows)?,
        CopyChunk::PodResources(rows) => pod_resources(&mut tx, cluster, prefer, rows)?,
        CopyChunk::NodeCapacity(rows) => node_capacity(&mut tx, cluster, prefer, rows)?,
        CopyChunk::NodeUsage(rows) => node_usage(&mut tx, cluster, prefer, rows)?,
        CopyChunk::Rollups(rows) => rollups(&mut tx, cluster, prefer, rows)?,
        CopyChunk::ContainerSamples(rows) => {
            usage_copy::import_samples(&mut tx, cluster, true, rows)?
        }
        CopyChunk::NodeSamples(rows) => usage_copy::import_samples(&mut tx, cluster, false, rows)?,
        CopyChunk::ContainerHours(rows) => usage_copy::import_hours(&mut tx, cluster, true, rows)?,
        CopyChunk::NodeHours(rows) => usage_copy::import_hours(&mut tx, cluster, false, rows)?,
        CopyChunk::Quarantine(rows) => quarantine(&mut tx, cluster, rows)?,
        CopyChunk::Sessions(rows) => sessions(&mut tx, cluster, rows)?,
        CopyChunk::Events(rows) => super::events::import_events(&mut tx, cluster, rows)?,
        CopyChunk::Occurrences(rows) => super::events::import_occurrences(&mut tx, cluster, rows)?,
        CopyChunk::Owners(rows) => super::owners::import_owners(&mut tx, cluster, prefer, rows)?,
        CopyChunk::OwnerScales(rows) => super::owners::import_scales(&mut tx, cluster, rows)?,
    };
    tx.commit()?;
    Ok(counts)
}

/// Binary COPY of `rows` into a staging table.
fn stage<T>(
    tx: &mut Transaction,
    statement: &str,
    types: &[Type],
    rows: &[T],
    mut write: impl FnMut(&mut BinaryCopyInWriter, usize, &T) -> Result<(), postgres::Error>,
) -> Result<(), postgres::Error> {
    let sink = tx.copy_in(statement)?;
    let mut writer = BinaryCopyInWriter::new(sink, types);
    for (i, row) in rows.iter().enumerate() {
        write(&mut writer, i, row)?;
    }
    writer.finish()?;
    Ok(())
}

/// `SET a = s.a, ...` and the test that the row differs, for an `UPDATE t ... FROM s`.
fn set_if_different(columns: &[(&str, &str)]) -> (String, String) {
    let set: Vec<String> = columns.iter().map(|(c, v)| format!("{c} = {v}")).collect();
    let old: Vec<String> = columns.iter().map(|(c, _)| format!("t.{c}")).collect();
    let new: Vec<&str> = columns.iter().map(|(_, v)| *v).collect();
    (
        set.join(", "),
        format!(
            "(ROW({}) IS DISTINCT FROM ROW({}))",
            old.join(", "),
            new.join(", ")
        ),
    )
}

/// Runs `sql`, whose one row is (rows whose subject was found, rows inserted).
fn found_and_new(
    tx: &mut Transaction,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<(u64, u64), postgres::Error> {
    let r = tx.query_one(sql, params)?;
    Ok((r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64))
}

fn nodes(
    tx: &mut Transaction,
    cluster: i32,
    prefer: bool,
    rows: &[NodeRow],
) -> Result<ChunkCounts, postgres::Error> {
    use Type as T;
    let types: Vec<Type> = [&[T::TEXT; 2][..], &[T::INT8; 8][..], &[T::TEXT][..]].concat();
    stage(
        tx,
        "COPY copy_nodes_in FROM STDIN (FORMAT binary)",
        &types,
        rows,
        |w, _, n| {
            w.write(&[
                &n.uid,
                &n.name,
                &n.created_at_ms,
                &n.deleted_at_ms,
                &n.capacity.cpu_millis,
                &n.capacity.memory_bytes,
                &n.capacity.pods,
                &n.allocatable.cpu_millis,
                &n.allocatable.memory_bytes,
                &n.allocatable.pods,
                &n.state_json,
            ])
        },
    )?;
    let columns = [
        "name",
        "deleted_at_ms",
        "cpu_capacity_millis",
        "memory_capacity_bytes",
        "pods_capacity",
        "cpu_allocatable_millis",
        "memory_allocatable_bytes",
        "pods_allocatable",
        "state",
    ];
    let pairs: Vec<(&str, String)> = columns.iter().map(|c| (*c, format!("s.{c}"))).collect();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(c, v)| (*c, v.as_str())).collect();
    let (set, differs) = set_if_different(&pairs);
    // An ended node is never changed; an open one is ended by the file's ended row, and takes
    // the file's view otherwise only when the file's history is the newer one.
    let updated = tx.execute(
        &format!(
            "UPDATE nodes t SET {set} FROM copy_nodes_in s
             WHERE t.cluster_id = $1 AND t.uid = s.uid AND t.deleted_at_ms IS NULL
               AND (s.deleted_at_ms IS NOT NULL OR $2) AND {differs}"
        ),
        &[&cluster, &prefer],
    )?;
    let new = tx.execute(
        "INSERT INTO nodes (cluster_id, uid, name, created_at_ms, deleted_at_ms,
             cpu_capacity_millis, memory_capacity_bytes, pods_capacity, cpu_allocatable_millis,
             memory_allocatable_bytes, pods_allocatable, state)
         SELECT $1, uid, name, created_at_ms, deleted_at_ms, cpu_capacity_millis,
             memory_capacity_bytes, pods_capacity, cpu_allocatable_millis,
             memory_allocatable_bytes, pods_allocatable, state
         FROM copy_nodes_in
         ON CONFLICT (cluster_id, uid) DO NOTHING",
        &[&cluster],
    )?;
    Ok(ChunkCounts {
        new,
        updated,
        skipped: 0,
    })
}

fn pods(
    tx: &mut Transaction,
    cluster: i32,
    prefer: bool,
    rows: &[PodRow],
) -> Result<ChunkCounts, postgres::Error> {
    use Type as T;
    let types: Vec<Type> = [
        &[T::INT4][..],
        &[T::TEXT; 7][..],
        &[T::INT8; 6][..],
        &[T::INT2][..],
        &[T::TEXT][..],
        &[T::INT8; 5][..],
        &[T::BYTEA][..],
    ]
    .concat();
    stage(
        tx,
        "COPY copy_pods_in FROM STDIN (FORMAT binary)",
        &types,
        rows,
        |w, i, p| {
            let ord = i as i32;
            let hash = p.labels_json.as_deref().map(labels_hash);
            let label_set: Option<i64> = None;
            let phase = p.phase.code() as i16;
            w.write(&[
                &ord,
                &p.uid,
                &p.namespace,
                &p.name,
                &p.node,
                &p.owner_kind,
                &p.owner_name,
                &p.labels_json,
                &hash,
                &label_set,
                &p.created_at_ms,
                &p.started_at_ms,
                &p.finished_at_ms,
                &p.deleted_at_ms,
                &phase,
                &p.reason,
                &p.restarts,
                &p.resources.requests.cpu_millis,
                &p.resources.requests.memory_bytes,
                &p.resources.limits.cpu_millis,
                &p.resources.limits.memory_bytes,
                &p.state,
            ])
        },
    )?;
    // Each distinct label set once per cluster, found by its hash as the recorder finds it.
    tx.execute(
        "INSERT INTO label_sets (cluster_id, hash, labels)
         SELECT DISTINCT $1::integer, s.labels_hash, s.labels FROM copy_pods_in s
         WHERE s.labels IS NOT NULL AND NOT EXISTS (
             SELECT 1 FROM label_sets l
             WHERE l.cluster_id = $1 AND l.hash = s.labels_hash AND l.labels = s.labels)",
        &[&cluster],
    )?;
    tx.execute(
        "UPDATE copy_pods_in s SET label_set_id = (
             SELECT min(l.id) FROM label_sets l
             WHERE l.cluster_id = $1 AND l.hash = s.labels_hash AND l.labels = s.labels)
         WHERE s.labels IS NOT NULL",
        &[&cluster],
    )?;
    let mut pairs: Vec<(&str, String)> = [
        "node",
        "owner_kind",
        "owner_name",
        "started_at_ms",
        "finished_at_ms",
        "deleted_at_ms",
        "phase",
        "reason",
        "restarts",
        "cpu_request_millis",
        "memory_request_bytes",
        "cpu_limit_millis",
        "memory_limit_bytes",
    ]
    .iter()
    .map(|c| (*c, format!("s.{c}")))
    .collect();
    // As in the recorder: a row without labels keeps the labels the database has.
    pairs.push((
        "label_set_id",
        "coalesce(s.label_set_id, t.label_set_id)".to_string(),
    ));
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(c, v)| (*c, v.as_str())).collect();
    let (set, differs) = set_if_different(&pairs);
    let updated = tx.execute(
        &format!(
            "UPDATE pods t SET {set} FROM copy_pods_in s
             WHERE t.cluster_id = $1 AND t.uid = s.uid AND t.deleted_at_ms IS NULL
               AND (s.deleted_at_ms IS NOT NULL OR $2) AND {differs}"
        ),
        &[&cluster, &prefer],
    )?;
    // In the file's order, so that pods of the same creation time list in the same order.
    let new = tx.execute(
        "INSERT INTO pods (cluster_id, uid, namespace, name, node, owner_kind, owner_name,
             label_set_id, created_at_ms, started_at_ms, finished_at_ms, deleted_at_ms, phase,
             reason, restarts, cpu_request_millis, memory_request_bytes, cpu_limit_millis,
             memory_limit_bytes)
         SELECT $1, uid, namespace, name, node, owner_kind, owner_name, label_set_id,
             created_at_ms, started_at_ms, finished_at_ms, deleted_at_ms, phase, reason,
             restarts, cpu_request_millis, memory_request_bytes, cpu_limit_millis,
             memory_limit_bytes
         FROM copy_pods_in ORDER BY ord
         ON CONFLICT (cluster_id, uid) DO NOTHING",
        &[&cluster],
    )?;
    // The compact state of a pod open in both, for a recorder that resumes on this database:
    // the file's where its view won (or the database had none), removed once the pod ended.
    let on_conflict = if prefer {
        "ON CONFLICT (pod_id) DO UPDATE SET state = excluded.state
         WHERE pod_state.state IS DISTINCT FROM excluded.state"
    } else {
        "ON CONFLICT (pod_id) DO NOTHING"
    };
    tx.execute(
        &format!(
            "INSERT INTO pod_state (pod_id, state)
             SELECT p.id, s.state FROM copy_pods_in s
             JOIN pods p ON p.cluster_id = $1 AND p.uid = s.uid
             WHERE p.deleted_at_ms IS NULL AND s.deleted_at_ms IS NULL AND length(s.state) > 0
             {on_conflict}"
        ),
        &[&cluster],
    )?;
    tx.execute(
        "DELETE FROM pod_state ps USING copy_pods_in s, pods p
         WHERE p.cluster_id = $1 AND p.uid = s.uid AND ps.pod_id = p.id
           AND p.deleted_at_ms IS NOT NULL",
        &[&cluster],
    )?;
    Ok(ChunkCounts {
        new,
        updated,
        skipped: 0,
    })
}

fn transitions(
    tx: &mut Transaction,
    cluster: i32,
    rows: &[TransitionRow],
) -> Result<ChunkCounts, postgres::Error> {
    use Type as T;
    let types: Vec<Type> = [
        &[T::INT4][..],
        &[T::TEXT][..],
        &[T::BOOL][..],
        &[T::INT2][..],
        &[T::INT8; 3][..],
        &[T::INT2; 2][..],
        &[T::TEXT; 3][..],
        &[T::INT8; 3][..],
        &[T::BOOL][..],
    ]
    .concat();
    stage(
        tx,
        "COPY copy_transitions_in FROM STDIN (FORMAT binary)",
        &types,
        rows,
        |w, i, t| {
            let ord = i as i32;
            let (uid, is_pod) = match &t.subject {
                SubjectUid::Pod(uid) => (uid, true),
                SubjectUid::Node(uid) => (uid, false),
            };
            let kind = t.kind.code() as i16;
            let before = t.phase_before.map(|p| p.code() as i16);
            let after = t.phase_after.map(|p| p.code() as i16);
            w.write(&[
                &ord,
                uid,
                &is_pod,
                &kind,
                &t.seq,
                &t.at_ms,
                &t.observed_at_ms,
                &before,
                &after,
                &t.container,
                &t.reason,
                &t.message,
                &t.exit_code,
                &t.restart_count,
                &t.resource_version,
                &t.inferred,
            ])
        },
    )?;
    // Ids in the file's order (ORDER BY ord), as reports break ties of one millisecond by id.
    let (found, new) = found_and_new(
        tx,
        "WITH src AS (
             SELECT s.ord, p.id AS pod_id, n.id AS node_id, s.kind, s.seq,
                    coalesce(p.created_at_ms, n.created_at_ms) AS created, s.at_ms,
                    s.observed_at_ms, s.phase_before, s.phase_after, s.container, s.reason,
                    s.message, s.exit_code, s.restart_count, s.resource_version, s.inferred
             FROM copy_transitions_in s
             LEFT JOIN pods p ON s.is_pod AND p.cluster_id = $1 AND p.uid = s.subject_uid
             LEFT JOIN nodes n ON NOT s.is_pod AND n.cluster_id = $1 AND n.uid = s.subject_uid
             WHERE p.id IS NOT NULL OR n.id IS NOT NULL),
         ins AS (
             INSERT INTO transitions (cluster_id, pod_id, node_id, kind, seq,
                 subject_created_ms, at_ms, observed_at_ms, phase_before, phase_after,
                 container, reason, message, exit_code, restart_count, resource_version,
                 inferred)
             SELECT $1, pod_id, node_id, kind, seq, created, at_ms, observed_at_ms,
                 phase_before, phase_after, container, reason, message, exit_code,
                 restart_count, resource_version, inferred
             FROM src ORDER BY ord
             ON CONFLICT DO NOTHING
             RETURNING 1)
         SELECT (SELECT count(*) FROM src), (SELECT count(*) FROM ins)",
        &[&cluster],
    )?;
    Ok(ChunkCounts {
        new,
        updated: 0,
        skipped: rows.len() as u64 - found,
    })
}

/// A step table's rows, staged as (subject uid, time, seven numbers, flag).
type Step<'a> = (&'a str, i64, [i64; 7], bool);

/// Stages `rows` and writes them into `table` keyed by (`subject`, `at_ms`), resolving the
/// subject's uid in `subjects` (`pods` or `nodes`). `columns` name a..g (fewer for tables with
/// fewer numbers), `flag` the boolean if the table has one; `node_usage` also has a
/// `cluster_id` (it is partitioned, and retention finds a cluster's rows by it).
#[allow(clippy::too_many_arguments)]
fn steps(
    tx: &mut Transaction,
    cluster: i32,
    prefer: bool,
    rows: &[Step],
    table: &str,
    subjects: &str,
    subject: &str,
    columns: &[&str],
    flag: Option<&str>,
) -> Result<ChunkCounts, postgres::Error> {
    use Type as T;
    let types: Vec<Type> = [&[T::TEXT][..], &[T::INT8; 8][..], &[T::BOOL][..]].concat();
    stage(
        tx,
        "COPY copy_steps_in FROM STDIN (FORMAT binary)",
        &types,
        rows,
        |w, _, (uid, at_ms, v, flag)| {
            w.write(&[
                uid, at_ms, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], flag,
            ])
        },
    )?;
    let letters = ["a", "b", "c", "d", "e", "f", "g"];
    let mut pairs: Vec<(&str, String)> = columns
        .iter()
        .zip(letters)
        .map(|(c, l)| (*c, format!("s.{l}")))
        .collect();
    if let Some(flag) = flag {
        pairs.push((flag, "s.flag".to_string()));
    }
    let names: Vec<&str> = pairs.iter().map(|(c, _)| *c).collect();
    let values: Vec<&str> = pairs.iter().map(|(_, v)| v.as_str()).collect();
    let (cluster_column, cluster_value) = if table == "node_usage" {
        ("cluster_id, ", "$1::integer, ")
    } else {
        ("", "")
    };
    let mut updated = 0;
    if prefer {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(c, v)| (*c, v.as_str())).collect();
        let (set, differs) = set_if_different(&pairs);
        updated = tx.execute(
            &format!(
                "UPDATE {table} t SET {set} FROM copy_steps_in s
                 JOIN {subjects} x ON x.cluster_id = $1 AND x.uid = s.subject_uid
                 WHERE t.{subject} = x.id AND t.at_ms = s.at_ms AND {differs}"
            ),
            &[&cluster],
        )?;
    }
    let (found, new) = found_and_new(
        tx,
        &format!(
            "WITH src AS (
                 SELECT x.id AS subject_id, s.* FROM copy_steps_in s
                 JOIN {subjects} x ON x.cluster_id = $1 AND x.uid = s.subject_uid),
             ins AS (
                 INSERT INTO {table} ({cluster_column}{subject}, at_ms, {names})
                 SELECT {cluster_value}subject_id, at_ms, {values} FROM src s
                 ON CONFLICT ({subject}, at_ms) DO NOTHING
                 RETURNING 1)
             SELECT (SELECT count(*) FROM src), (SELECT count(*) FROM ins)",
            names = names.join(", "),
            values = values.join(", "),
        ),
        &[&cluster],
    )?;
    Ok(ChunkCounts {
        new,
        updated,
        skipped: rows.len() as u64 - found,
    })
}

fn pod_resources(
    tx: &mut Transaction,
    cluster: i32,
    prefer: bool,
    rows: &[PodResourcesRow],
) -> Result<ChunkCounts, postgres::Error> {
    let staged: Vec<Step> = rows
        .iter()
        .map(|r| {
            let e = &r.resources;
            let v = [
                e.requests.cpu_millis,
                e.requests.memory_bytes,
                e.limits.cpu_millis,
                e.limits.memory_bytes,
                0,
                0,
                0,
            ];
            (r.pod_uid.as_str(), r.at_ms, v, false)
        })
        .collect();
    steps(
        tx,
        cluster,
        prefer,
        &staged,
        "pod_resources",
        "pods",
        "pod_id",
        &[
            "cpu_request_millis",
            "memory_request_bytes",
            "cpu_limit_millis",
            "memory_limit_bytes",
        ],
        None,
    )
}

fn node_capacity(
    tx: &mut Transaction,
    cluster: i32,
    prefer: bool,
    rows: &[NodeCapacityRow],
) -> Result<ChunkCounts, postgres::Error> {
    let staged: Vec<Step> = rows
        .iter()
        .map(|c| {
            let (k, a) = (&c.capacity, &c.allocatable);
            let v = [
                k.cpu_millis,
                k.memory_bytes,
                k.pods,
                a.cpu_millis,
                a.memory_bytes,
                a.pods,
                0,
            ];
            (c.node_uid.as_str(), c.at_ms, v, false)
        })
        .collect();
    steps(
        tx,
        cluster,
        prefer,
        &staged,
        "node_capacity",
        "nodes",
        "node_id",
        &[
            "cpu_capacity_millis",
            "memory_capacity_bytes",
            "pods_capacity",
            "cpu_allocatable_millis",
            "memory_allocatable_bytes",
            "pods_allocatable",
        ],
        None,
    )
}

fn node_usage(
    tx: &mut Transaction,
    cluster: i32,
    prefer: bool,
    rows: &[NodeUsageRow],
) -> Result<ChunkCounts, postgres::Error> {
    let staged: Vec<Step> = rows
        .iter()
        .map(|u| {
            let v = [
                u.requested.cpu_millis,
                u.requested.memory_bytes,
                u.limits.cpu_millis,
                u.limits.memory_bytes,
                u.pod_count,
                u.allocatable.cpu_millis,
                u.allocatable.memory_bytes,
            ];
            (u.node_uid.as_str(), u.at_ms, v, u.keyframe)
        })
        .collect();
    steps(
        tx,
        cluster,
        prefer,
        &staged,
        "node_usage",
        "nodes",
        "node_id",
        &[
            "cpu_requested_millis",
            "memory_requested_bytes",
            "cpu_limits_millis",
            "memory_limits_bytes",
            "pod_count",
            "cpu_allocatable_millis",
            "memory_allocatable_bytes",
        ],
        Some("keyframe"),
    )
}

/// The rollup columns after the bucket's start, as in `node_usage_rollup`.
const ROLLUP_VALUES: [&str; 24] = [
    "bucket_ms",
    "covered_ms",
    "pods_avg",
    "pods_peak",
    "cpu_requested_avg_millis",
    "cpu_requested_peak_millis",
    "memory_requested_avg_bytes",
    "memory_requested_peak_bytes",
    "cpu_limits_avg_millis",
    "cpu_limits_peak_millis",
    "memory_limits_avg_bytes",
    "memory_limits_peak_bytes",
    "cpu_allocatable_avg_millis",
    "cpu_allocatable_peak_millis",
    "memory_allocatable_avg_bytes",
    "memory_allocatable_peak_bytes",
    "cpu_requested_ratio_avg",
    "cpu_requested_ratio_peak",
    "memory_requested_ratio_avg",
    "memory_requested_ratio_peak",
    "cpu_limits_ratio_avg",
    "cpu_limits_ratio_peak",
    "memory_limits_ratio_avg",
    "memory_limits_ratio_peak",
];

fn rollups(
    tx: &mut Transaction,
    cluster: i32,
    prefer: bool,
    rows: &[RollupCopy],
) -> Result<ChunkCounts, postgres::Error> {
    use Type as T;
    let mut types = vec![T::TEXT, T::INT8, T::INT8, T::INT8];
    for _ in 0..7 {
        types.extend([T::FLOAT8, T::INT8]);
    }
    types.extend([T::FLOAT8; 8]);
    stage(
        tx,
        "COPY copy_rollups_in FROM STDIN (FORMAT binary)",
        &types,
        rows,
        |w, _, r| {
            let b = &r.usage;
            let width = b.end_ms - b.start_ms;
            w.write(&[
                &r.node_uid,
                &b.start_ms,
                &width,
                &b.present_ms,
                &b.pods.avg,
                &b.pods.peak,
                &b.cpu_requested.avg,
                &b.cpu_requested.peak,
                &b.memory_requested.avg,
                &b.memory_requested.peak,
                &b.cpu_limits.avg,
                &b.cpu_limits.peak,
                &b.memory_limits.avg,
                &b.memory_limits.peak,
                &b.cpu_allocatable.avg,
                &b.cpu_allocatable.peak,
                &b.memory_allocatable.avg,
                &b.memory_allocatable.peak,
                &b.cpu_requested_ratio.avg,
                &b.cpu_requested_ratio.peak,
                &b.memory_requested_ratio.avg,
                &b.memory_requested_ratio.peak,
                &b.cpu_limits_ratio.avg,
                &b.cpu_limits_ratio.peak,
                &b.memory_limits_ratio.avg,
                &b.memory_limits_ratio.peak,
            ])
        },
    )?;
    let mut updated = 0;
    if prefer {
        let pairs: Vec<(&str, String)> = ROLLUP_VALUES
            .iter()
            .map(|c| (*c, format!("s.{c}")))
            .collect();
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(c, v)| (*c, v.as_str())).collect();
        let (set, differs) = set_if_different(&pairs);
        updated = tx.execute(
            &format!(
                "UPDATE node_usage_rollup t SET {set} FROM copy_rollups_in s
                 JOIN nodes x ON x.cluster_id = $1 AND x.uid = s.node_uid
                 WHERE t.node_id = x.id AND t.bucket_start_ms = s.bucket_start_ms AND {differs}"
            ),
            &[&cluster],
        )?;
    }
    let columns = ROLLUP_VALUES.join(", ");
    let (found, new) = found_and_new(
        tx,
        &format!(
            "WITH src AS (
                 SELECT x.id AS node_id, s.* FROM copy_rollups_in s
                 JOIN nodes x ON x.cluster_id = $1 AND x.uid = s.node_uid),
             ins AS (
                 INSERT INTO node_usage_rollup (cluster_id, node_id, bucket_start_ms, {columns})
                 SELECT $1, node_id, bucket_start_ms, {columns} FROM src
                 ON CONFLICT (node_id, bucket_start_ms) DO NOTHING
                 RETURNING 1)
             SELECT (SELECT count(*) FROM src), (SELECT count(*) FROM ins)"
        ),
        &[&cluster],
    )?;
    // An hour is raw steps or one rollup, never both (reports would count it twice): the
    // file's retention rolled up an hour whose steps an earlier copy moved, so the rollup
    // replaces them. The state at the horizon is the keyframe the file wrote there, copied
    // with the steps.
    tx.execute(
        "DELETE FROM node_usage u USING copy_rollups_in s
         JOIN nodes x ON x.cluster_id = $1 AND x.uid = s.node_uid
         WHERE u.cluster_id = $1 AND u.node_id = x.id AND u.at_ms >= s.bucket_start_ms
           AND u.at_ms < s.bucket_start_ms + s.bucket_ms",
        &[&cluster],
    )?;
    Ok(ChunkCounts {
        new,
        updated,
        skipped: rows.len() as u64 - found,
    })
}

/// Quarantined rows have no key but their content: a row identical in every column is the
/// same row. Nothing reads them back into history; they are kept for `stats` and people.
fn quarantine(
    tx: &mut Transaction,
    cluster: i32,
    rows: &[QuarantineRow],
) -> Result<ChunkCounts, postgres::Error> {
    let at: Vec<i64> = rows.iter().map(|q| q.at_ms).collect();
    let kind: Vec<&str> = rows.iter().map(|q| q.kind.as_str()).collect();
    let error: Vec<&str> = rows.iter().map(|q| q.error.as_str()).collect();
    let row: Vec<&str> = rows.iter().map(|q| q.row.as_str()).collect();
    let new = tx.execute(
        "INSERT INTO quarantine (cluster_id, at_ms, kind, error, row)
         SELECT $1, q.at_ms, q.kind, q.error, q.body
         FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[]) AS q (at_ms, kind, error, body)
         WHERE NOT EXISTS (
             SELECT 1 FROM quarantine x
             WHERE x.cluster_id = $1 AND x.at_ms = q.at_ms AND x.kind = q.kind
               AND x.error = q.error AND x.row = q.body)",
        &[&cluster, &at, &kind, &error, &row],
    )?;
    Ok(ChunkCounts {
        new,
        updated: 0,
        skipped: 0,
    })
}

/// A session is known by its start and scope (a cluster has one recorder at a time, so two
/// sessions never start in the same millisecond with the same scope); its covered end only
/// grows. No unique index holds this: the destination's lock keeps other writers out while a
/// copy runs, and an index over nullable scope columns would need a migration for a table of
/// a few rows per recorder start.
fn sessions(
    tx: &mut Transaction,
    cluster: i32,
    rows: &[Session],
) -> Result<ChunkCounts, postgres::Error> {
    let mut counts = ChunkCounts::default();
    for s in rows {
        let found = tx.query_opt(
            "SELECT id FROM recording_sessions
             WHERE cluster_id = $1 AND started_at_ms = $2
               AND namespace IS NOT DISTINCT FROM $3 AND selector IS NOT DISTINCT FROM $4
               AND nodes = $5 AND inferred = $6
             ORDER BY id LIMIT 1",
            &[
                &cluster,
                &s.started_at_ms,
                &s.scope.namespace,
                &s.scope.selector,
                &s.scope.nodes,
                &s.inferred,
            ],
        )?;
        match found {
            Some(row) => {
                let id: i64 = row.get(0);
                // greatest() skips NULLs: a stop the database lacks is taken, and neither end
                // ever moves back.
                counts.updated += tx.execute(
                    "UPDATE recording_sessions
                     SET heartbeat_at_ms = greatest(heartbeat_at_ms, $2),
                         stopped_at_ms = greatest(stopped_at_ms, $3)
                     WHERE id = $1 AND ROW(heartbeat_at_ms, stopped_at_ms) IS DISTINCT FROM
                           ROW(greatest(heartbeat_at_ms, $2), greatest(stopped_at_ms, $3))",
                    &[&id, &s.heartbeat_at_ms, &s.stopped_at_ms],
                )?;
            }
            None => {
                tx.execute(
                    "INSERT INTO recording_sessions (cluster_id, started_at_ms, heartbeat_at_ms,
                         stopped_at_ms, namespace, selector, nodes, inferred)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &cluster,
                        &s.started_at_ms,
                        &s.heartbeat_at_ms,
                        &s.stopped_at_ms,
                        &s.scope.namespace,
                        &s.scope.selector,
                        &s.scope.nodes,
                        &s.inferred,
                    ],
                )?;
                counts.new += 1;
            }
        }
    }
    Ok(counts)
}
