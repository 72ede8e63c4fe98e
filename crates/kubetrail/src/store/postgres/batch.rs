//! Writing one [`Batch`] into PostgreSQL, in one transaction, with the same results as the
//! SQLite writer (`store::sqlite::batch`): subjects upserted by uid, transitions inserted once
//! per (subject, kind, seq) however often a batch is replayed, the step rows of one node and
//! time replaced by the last one.
//!
//! Rows travel by binary `COPY` into temporary staging tables, then one `INSERT … SELECT` per
//! table moves them in with `ON CONFLICT`. COPY alone cannot skip a replayed row, and one
//! multi-row `VALUES` per table would hit the 65,535-parameter limit at a few thousand rows
//! and need a new plan for every batch size.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::{Client, Transaction};

use crate::model::TransitionKind;
use crate::store::BatchStats;
use crate::store::rows::{Batch, NodeRow, PodRow, SubjectUid, labels_hash};

/// The staging tables, made once per connection. `ON COMMIT DELETE ROWS` empties them at
/// every commit; a rolled-back batch leaves nothing behind either.
///
/// JIT compilation is off for this connection: the planner cannot know how few rows a staging
/// table holds, so its estimates of a batch's statements pass `jit_above_cost`, and compiling
/// them took 50 to 130 ms of every commit (auto_explain during churn) to save nothing on
/// statements that run for milliseconds per thousand rows.
const STAGING: &str = "
SET jit = off;
CREATE TEMP TABLE IF NOT EXISTS nodes_in (
    uid text, name text, created_at_ms bigint, deleted_at_ms bigint,
    cpu_capacity_millis bigint, memory_capacity_bytes bigint, pods_capacity bigint,
    cpu_allocatable_millis bigint, memory_allocatable_bytes bigint, pods_allocatable bigint,
    state text) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS pods_in (
    uid text, namespace text, name text, node text, owner_kind text, owner_name text,
    label_set_id bigint, created_at_ms bigint, started_at_ms bigint, finished_at_ms bigint,
    deleted_at_ms bigint, phase smallint, reason text, restarts bigint,
    cpu_request_millis bigint, memory_request_bytes bigint, cpu_limit_millis bigint,
    memory_limit_bytes bigint) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS transitions_in (
    ord integer, pod_id bigint, node_id bigint, kind smallint, seq bigint,
    subject_created_ms bigint, at_ms bigint, observed_at_ms bigint, phase_before smallint,
    phase_after smallint, container text, reason text, message text, exit_code bigint,
    restart_count bigint, resource_version bigint, inferred boolean) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS steps_in (
    ord integer, subject_id bigint, at_ms bigint,
    a bigint, b bigint, c bigint, d bigint, e bigint, f bigint, g bigint, flag boolean)
    ON COMMIT DELETE ROWS;
";

/// What the writer keeps between batches on one connection.
#[derive(Default)]
pub struct BatchWriter {
    staged: bool,
}

/// uid -> (key, creation time) for the subjects of one batch.
#[derive(Default)]
struct Keys {
    pods: HashMap<String, (i64, i64)>,
    nodes: HashMap<String, (i64, i64)>,
}

impl BatchWriter {
    /// Writes the batch for `cluster` in one transaction, moving the recording session's
    /// heartbeat (`(session_id, now_ms)`) in the same transaction when given. The caller has
    /// created the partitions the batch needs ([`super::partitions`]).
    pub fn write(
        &mut self,
        client: &mut Client,
        cluster: i32,
        batch: &Batch,
        heartbeat: Option<(i64, i64)>,
    ) -> Result<BatchStats, postgres::Error> {
        if !self.staged {
            client.batch_execute(STAGING)?;
            self.staged = true;
        }
        let mut tx = client.transaction()?;
        let mut keys = Keys::default();
        let mut stats = BatchStats {
            rows: batch.len(),
            ..Default::default()
        };
        write_nodes(&mut tx, cluster, &batch.nodes, &mut keys)?;
        write_pods(&mut tx, cluster, &batch.pods, &mut keys)?;
        find_missing_keys(&mut tx, cluster, batch, &mut keys)?;
        write_transitions(&mut tx, cluster, batch, &keys, &mut stats)?;
        write_steps(&mut tx, cluster, batch, &keys, &mut stats)?;
        super::events::write_events(&mut tx, cluster, &batch.events, &mut stats)?;
        super::owners::write_owners(&mut tx, cluster, &batch.owners, &mut stats)?;
        if let Some((session, now_ms)) = heartbeat {
            super::sessions::heartbeat(&mut tx, session, now_ms)?;
        }
        tx.commit()?;
        Ok(stats)
    }
}

/// The last row of each uid, in first-seen order: one statement may not upsert a row twice.
/// `merge` folds an earlier row into the later one where the later one is not the whole truth.
/// Rows are borrowed; only a uid that repeats costs a copy (the initial list has none).
fn last_per_uid<'a, T>(
    rows: &'a [T],
    uid: impl Fn(&T) -> &str,
    mut merge: impl FnMut(&T, &mut T),
) -> Vec<Cow<'a, T>>
where
    T: Clone,
{
    let mut at: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    let mut out: Vec<Cow<'a, T>> = Vec::with_capacity(rows.len());
    for row in rows {
        match at.get(uid(row)) {
            Some(&i) => {
                let mut later = row.clone();
                merge(&out[i], &mut later);
                out[i] = Cow::Owned(later);
            }
            None => {
                at.insert(uid(row), out.len());
                out.push(Cow::Borrowed(row));
            }
        }
    }
    out
}

fn copy_in(
    tx: &mut Transaction,
    statement: &str,
    types: &[Type],
    mut rows: impl FnMut(&mut BinaryCopyInWriter) -> Result<(), postgres::Error>,
) -> Result<(), postgres::Error> {
    let sink = tx.copy_in(statement)?;
    let mut writer = BinaryCopyInWriter::new(sink, types);
    rows(&mut writer)?;
    writer.finish()?;
    Ok(())
}

fn write_nodes(
    tx: &mut Transaction,
    cluster: i32,
    nodes: &[NodeRow],
    keys: &mut Keys,
) -> Result<(), postgres::Error> {
    if nodes.is_empty() {
        return Ok(());
    }
    // As in SQLite, the creation time of a node is its first row's.
    let nodes = last_per_uid(
        nodes,
        |n| &n.uid,
        |first, later| later.created_at_ms = first.created_at_ms,
    );
    use Type as T;
    copy_in(
        tx,
        "COPY nodes_in FROM STDIN (FORMAT binary)",
        &[
            T::TEXT,
            T::TEXT,
            T::INT8,
            T::INT8,
            T::INT8,
            T::INT8,
            T::INT8,
            T::INT8,
            T::INT8,
            T::INT8,
            T::TEXT,
        ],
        |w| {
            for n in &nodes {
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
                ])?;
            }
            Ok(())
        },
    )?;
    let rows = tx.query(
        "INSERT INTO nodes (cluster_id, uid, name, created_at_ms, deleted_at_ms,
             cpu_capacity_millis, memory_capacity_bytes, pods_capacity, cpu_allocatable_millis,
             memory_allocatable_bytes, pods_allocatable, state)
         SELECT $1, uid, name, created_at_ms, deleted_at_ms, cpu_capacity_millis,
             memory_capacity_bytes, pods_capacity, cpu_allocatable_millis,
             memory_allocatable_bytes, pods_allocatable, state
         FROM nodes_in
         ON CONFLICT (cluster_id, uid) DO UPDATE SET
             name = excluded.name, deleted_at_ms = excluded.deleted_at_ms,
             cpu_capacity_millis = excluded.cpu_capacity_millis,
             memory_capacity_bytes = excluded.memory_capacity_bytes,
             pods_capacity = excluded.pods_capacity,
             cpu_allocatable_millis = excluded.cpu_allocatable_millis,
             memory_allocatable_bytes = excluded.memory_allocatable_bytes,
             pods_allocatable = excluded.pods_allocatable, state = excluded.state
         RETURNING id, uid, created_at_ms",
        &[&cluster],
    )?;
    for r in rows {
        keys.nodes.insert(r.get(1), (r.get(0), r.get(2)));
    }
    Ok(())
}

/// The ids of the label sets of these pods, inserting the new ones.
fn label_set_ids(
    tx: &mut Transaction,
    cluster: i32,
    pods: &[Cow<PodRow>],
) -> Result<HashMap<String, i64>, postgres::Error> {
    let mut wanted: Vec<&str> = pods
        .iter()
        .filter_map(|p| p.labels_json.as_deref())
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut ids = HashMap::new();
    if wanted.is_empty() {
        return Ok(ids);
    }
    let hashes: Vec<i64> = wanted.iter().map(|j| labels_hash(j)).collect();
    for r in tx.query(
        "SELECT id, labels FROM label_sets WHERE cluster_id = $1 AND hash = ANY($2)",
        &[&cluster, &hashes],
    )? {
        ids.insert(r.get::<_, String>(1), r.get::<_, i64>(0));
    }
    let new: Vec<&str> = wanted
        .into_iter()
        .filter(|j| !ids.contains_key(*j))
        .collect();
    if !new.is_empty() {
        let hashes: Vec<i64> = new.iter().map(|j| labels_hash(j)).collect();
        for r in tx.query(
            "INSERT INTO label_sets (cluster_id, hash, labels)
             SELECT $1, h, l FROM unnest($2::bigint[], $3::text[]) AS s (h, l)
             RETURNING id, labels",
            &[&cluster, &hashes, &new],
        )? {
            ids.insert(r.get::<_, String>(1), r.get::<_, i64>(0));
        }
    }
    Ok(ids)
}

fn write_pods(
    tx: &mut Transaction,
    cluster: i32,
    pods: &[PodRow],
    keys: &mut Keys,
) -> Result<(), postgres::Error> {
    if pods.is_empty() {
        return Ok(());
    }
    // As in SQLite: the first row's creation time, and the last labels that were given.
    let pods = last_per_uid(
        pods,
        |p| &p.uid,
        |first, later| {
            later.created_at_ms = first.created_at_ms;
            if later.labels_json.is_none() {
                later.labels_json = first.labels_json.clone();
            }
        },
    );
    let label_sets = label_set_ids(tx, cluster, &pods)?;
    use Type as T;
    copy_in(
        tx,
        "COPY pods_in FROM STDIN (FORMAT binary)",
        &[
            T::TEXT,
            T::TEXT,
            T::TEXT,
            T::TEXT,
            T::TEXT,
            T::TEXT,
            T::INT8,
            T::INT8,
            T::INT8,
            T::INT8,
            T::INT8,
            T::INT2,
            T::TEXT,
            T::INT8,
            T::INT8,
            T::INT8,
            T::INT8,
            T::INT8,
        ],
        |w| {
            for p in &pods {
                let label_set = p.labels_json.as_ref().map(|j| label_sets[j]);
                let phase = p.phase.code() as i16;
                w.write(&[
                    &p.uid,
                    &p.namespace,
                    &p.name,
                    &p.node,
                    &p.owner_kind,
                    &p.owner_name,
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
                ])?;
            }
            Ok(())
        },
    )?;
    let rows = tx.query(
        "INSERT INTO pods (cluster_id, uid, namespace, name, node, owner_kind, owner_name,
             label_set_id, created_at_ms, started_at_ms, finished_at_ms, deleted_at_ms,
             phase, reason, restarts, cpu_request_millis, memory_request_bytes,
             cpu_limit_millis, memory_limit_bytes)
         SELECT $1, uid, namespace, name, node, owner_kind, owner_name, label_set_id,
             created_at_ms, started_at_ms, finished_at_ms, deleted_at_ms, phase, reason,
             restarts, cpu_request_millis, memory_request_bytes, cpu_limit_millis,
             memory_limit_bytes
         FROM pods_in
         ON CONFLICT (cluster_id, uid) DO UPDATE SET
             node = excluded.node, owner_kind = excluded.owner_kind,
             owner_name = excluded.owner_name,
             label_set_id = coalesce(excluded.label_set_id, pods.label_set_id),
             started_at_ms = excluded.started_at_ms,
             finished_at_ms = excluded.finished_at_ms,
             deleted_at_ms = excluded.deleted_at_ms, phase = excluded.phase,
             reason = excluded.reason, restarts = excluded.restarts,
             cpu_request_millis = excluded.cpu_request_millis,
             memory_request_bytes = excluded.memory_request_bytes,
             cpu_limit_millis = excluded.cpu_limit_millis,
             memory_limit_bytes = excluded.memory_limit_bytes
         RETURNING id, uid, created_at_ms",
        &[&cluster],
    )?;
    for r in rows {
        keys.pods.insert(r.get(1), (r.get(0), r.get(2)));
    }
    write_pod_state(tx, &pods, keys)
}

/// Keeps the compact state of the open pods (for reconciliation on restart) and drops that of
/// the ended ones, in one statement, by the ids the upsert returned. Joining the staged rows
/// back to the upsert inside the server instead made the planner, which cannot know how small
/// a batch is, hash all of `pod_state` for the delete: a third of a churn batch's time.
fn write_pod_state(
    tx: &mut Transaction,
    pods: &[Cow<PodRow>],
    keys: &Keys,
) -> Result<(), postgres::Error> {
    let (mut kept_ids, mut states, mut dropped) = (Vec::new(), Vec::new(), Vec::new());
    for p in pods {
        let Some(&(id, _)) = keys.pods.get(&p.uid) else {
            continue;
        };
        if p.deleted_at_ms.is_none() && !p.state.is_empty() {
            kept_ids.push(id);
            states.push(p.state.as_slice());
        } else {
            dropped.push(id);
        }
    }
    // The insert and the delete touch disjoint pods, as data-modifying CTEs must.
    tx.execute(
        "WITH kept AS (
             INSERT INTO pod_state (pod_id, state)
             SELECT * FROM unnest($1::bigint[], $2::bytea[])
             ON CONFLICT (pod_id) DO UPDATE SET state = excluded.state)
         DELETE FROM pod_state WHERE pod_id = ANY($3)",
        &[&kept_ids, &states, &dropped],
    )?;
    Ok(())
}

/// Looks up, once per batch, the subjects that rows point at but the batch did not write.
fn find_missing_keys(
    tx: &mut Transaction,
    cluster: i32,
    batch: &Batch,
    keys: &mut Keys,
) -> Result<(), postgres::Error> {
    let mut pods: Vec<&str> = Vec::new();
    let mut nodes: Vec<&str> = Vec::new();
    for t in &batch.transitions {
        match &t.subject {
            SubjectUid::Pod(uid) if !keys.pods.contains_key(uid) => pods.push(uid),
            SubjectUid::Node(uid) if !keys.nodes.contains_key(uid) => nodes.push(uid),
            _ => {}
        }
    }
    pods.extend(
        batch
            .pod_resources
            .iter()
            .map(|r| r.pod_uid.as_str())
            .filter(|uid| !keys.pods.contains_key(*uid)),
    );
    nodes.extend(
        batch
            .node_capacity
            .iter()
            .map(|c| c.node_uid.as_str())
            .chain(batch.node_usage.iter().map(|u| u.node_uid.as_str()))
            .filter(|uid| !keys.nodes.contains_key(*uid)),
    );
    for (table, uids, map) in [
        ("pods", pods, &mut keys.pods),
        ("nodes", nodes, &mut keys.nodes),
    ] {
        if uids.is_empty() {
            continue;
        }
        let mut uids = uids;
        uids.sort_unstable();
        uids.dedup();
        for r in tx.query(
            &format!(
                "SELECT id, uid, created_at_ms FROM {table} WHERE cluster_id = $1 AND uid = ANY($2)"
            ),
            &[&cluster, &uids],
        )? {
            map.insert(r.get(1), (r.get(0), r.get(2)));
        }
    }
    Ok(())
}

fn write_transitions(
    tx: &mut Transaction,
    cluster: i32,
    batch: &Batch,
    keys: &Keys,
    stats: &mut BatchStats,
) -> Result<(), postgres::Error> {
    if batch.transitions.is_empty() {
        return Ok(());
    }
    let mut staged = 0usize;
    use Type as T;
    copy_in(
        tx,
        "COPY transitions_in FROM STDIN (FORMAT binary)",
        &[
            T::INT4,
            T::INT8,
            T::INT8,
            T::INT2,
            T::INT8,
            T::INT8,
            T::INT8,
            T::INT8,
            T::INT2,
            T::INT2,
            T::TEXT,
            T::TEXT,
            T::TEXT,
            T::INT8,
            T::INT8,
            T::INT8,
            T::BOOL,
        ],
        |w| {
            for (ord, t) in batch.transitions.iter().enumerate() {
                let (pod_id, node_id, created) = match &t.subject {
                    SubjectUid::Pod(uid) => match keys.pods.get(uid) {
                        Some(&(id, created)) => (Some(id), None, created),
                        None => (None, None, 0),
                    },
                    SubjectUid::Node(uid) => match keys.nodes.get(uid) {
                        Some(&(id, created)) => (None, Some(id), created),
                        None => (None, None, 0),
                    },
                };
                if pod_id.is_none() && node_id.is_none() {
                    tracing::warn!(subject = ?t.subject, kind = %t.kind, "transition for an unknown subject skipped");
                    stats.skipped_unknown_subject += 1;
                    continue;
                }
                staged += 1;
                let ord = ord as i32;
                let kind = t.kind.code() as i16;
                let before = t.phase_before.map(|p| p.code() as i16);
                let after = t.phase_after.map(|p| p.code() as i16);
                w.write(&[
                    &ord,
                    &pod_id,
                    &node_id,
                    &kind,
                    &t.seq,
                    &created,
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
                ])?;
            }
            Ok(())
        },
    )?;
    // ORDER BY ord: ids follow the batch's order, as in SQLite (resume compares max(id)).
    let inserted = tx.query(
        "INSERT INTO transitions (cluster_id, pod_id, node_id, kind, seq, subject_created_ms,
             at_ms, observed_at_ms, phase_before, phase_after, container, reason, message,
             exit_code, restart_count, resource_version, inferred)
         SELECT $1, pod_id, node_id, kind, seq, subject_created_ms, at_ms, observed_at_ms,
             phase_before, phase_after, container, reason, message, exit_code, restart_count,
             resource_version, inferred
         FROM transitions_in ORDER BY ord
         ON CONFLICT DO NOTHING
         RETURNING kind",
        &[&cluster],
    )?;
    let mut by_kind: BTreeMap<TransitionKind, u64> = BTreeMap::new();
    for r in &inserted {
        if let Some(kind) = TransitionKind::from_code(i64::from(r.get::<_, i16>(0))) {
            *by_kind.entry(kind).or_default() += 1;
        }
    }
    stats.transitions_inserted = inserted.len();
    stats.transitions_ignored = staged - inserted.len();
    stats.inserted_by_kind = by_kind;
    Ok(())
}

/// The three step tables (pod resources, node capacity, node usage): keyed by (subject, time),
/// the last row of a key wins (SQLite's `INSERT OR REPLACE`).
fn write_steps(
    tx: &mut Transaction,
    cluster: i32,
    batch: &Batch,
    keys: &Keys,
    stats: &mut BatchStats,
) -> Result<(), postgres::Error> {
    // Each table's rows as (subject uid, is a pod, at, seven numbers, flag).
    type Step<'a> = (&'a str, bool, i64, [i64; 7], bool);
    let resources = batch.pod_resources.iter().map(|r| -> Step {
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
        (&r.pod_uid, true, r.at_ms, v, false)
    });
    let capacity = batch.node_capacity.iter().map(|c| -> Step {
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
        (&c.node_uid, false, c.at_ms, v, false)
    });
    let usage = batch.node_usage.iter().map(|u| -> Step {
        let v = [
            u.requested.cpu_millis,
            u.requested.memory_bytes,
            u.limits.cpu_millis,
            u.limits.memory_bytes,
            u.pod_count,
            u.allocatable.cpu_millis,
            u.allocatable.memory_bytes,
        ];
        (&u.node_uid, false, u.at_ms, v, u.keyframe)
    });
    // (rows, statement, whether the statement takes the cluster as $1)
    let tables: [(Vec<Step>, &str, bool); 3] = [
        (
            resources.collect(),
            "INSERT INTO pod_resources (pod_id, at_ms, cpu_request_millis, memory_request_bytes,
                 cpu_limit_millis, memory_limit_bytes)
             SELECT DISTINCT ON (subject_id, at_ms) subject_id, at_ms, a, b, c, d
             FROM steps_in ORDER BY subject_id, at_ms, ord DESC
             ON CONFLICT (pod_id, at_ms) DO UPDATE SET
                 cpu_request_millis = excluded.cpu_request_millis,
                 memory_request_bytes = excluded.memory_request_bytes,
                 cpu_limit_millis = excluded.cpu_limit_millis,
                 memory_limit_bytes = excluded.memory_limit_bytes",
            false,
        ),
        (
            capacity.collect(),
            "INSERT INTO node_capacity (node_id, at_ms, cpu_capacity_millis,
                 memory_capacity_bytes, pods_capacity, cpu_allocatable_millis,
                 memory_allocatable_bytes, pods_allocatable)
             SELECT DISTINCT ON (subject_id, at_ms) subject_id, at_ms, a, b, c, d, e, f
             FROM steps_in ORDER BY subject_id, at_ms, ord DESC
             ON CONFLICT (node_id, at_ms) DO UPDATE SET
                 cpu_capacity_millis = excluded.cpu_capacity_millis,
                 memory_capacity_bytes = excluded.memory_capacity_bytes,
                 pods_capacity = excluded.pods_capacity,
                 cpu_allocatable_millis = excluded.cpu_allocatable_millis,
                 memory_allocatable_bytes = excluded.memory_allocatable_bytes,
                 pods_allocatable = excluded.pods_allocatable",
            false,
        ),
        (
            usage.collect(),
            "INSERT INTO node_usage (cluster_id, node_id, at_ms, cpu_requested_millis,
                 memory_requested_bytes, cpu_limits_millis, memory_limits_bytes, pod_count,
                 cpu_allocatable_millis, memory_allocatable_bytes, keyframe)
             SELECT DISTINCT ON (subject_id, at_ms) $1::integer, subject_id, at_ms, a, b, c, d,
                 e, f, g, flag
             FROM steps_in ORDER BY subject_id, at_ms, ord DESC
             ON CONFLICT (node_id, at_ms) DO UPDATE SET
                 cpu_requested_millis = excluded.cpu_requested_millis,
                 memory_requested_bytes = excluded.memory_requested_bytes,
                 cpu_limits_millis = excluded.cpu_limits_millis,
                 memory_limits_bytes = excluded.memory_limits_bytes,
                 pod_count = excluded.pod_count,
                 cpu_allocatable_millis = excluded.cpu_allocatable_millis,
                 memory_allocatable_bytes = excluded.memory_allocatable_bytes,
                 keyframe = excluded.keyframe",
            true,
        ),
    ];
    use Type as T;
    for (rows, insert, with_cluster) in tables {
        if rows.is_empty() {
            continue;
        }
        copy_in(
            tx,
            "COPY steps_in FROM STDIN (FORMAT binary)",
            &[
                T::INT4,
                T::INT8,
                T::INT8,
                T::INT8,
                T::INT8,
                T::INT8,
                T::INT8,
                T::INT8,
                T::INT8,
                T::INT8,
                T::BOOL,
            ],
            |w| {
                for (ord, (uid, is_pod, at_ms, v, flag)) in rows.iter().enumerate() {
                    let key = if *is_pod {
                        keys.pods.get(*uid)
                    } else {
                        keys.nodes.get(*uid)
                    };
                    let Some(&(id, _)) = key else {
                        stats.skipped_unknown_subject += 1;
                        continue;
                    };
                    let ord = ord as i32;
                    w.write(&[
                        &ord, &id, at_ms, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], flag,
                    ])?;
                }
                Ok(())
            },
        )?;
        if with_cluster {
            tx.execute(insert, &[&cluster])?;
        } else {
            tx.execute(insert, &[])?;
        }
        tx.execute("TRUNCATE steps_in", &[])?;
    }
    Ok(())
}
