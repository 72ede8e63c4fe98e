//! Writing one [`Batch`] in one transaction. This is the only code that inserts history, used
//! by the recorder's writer task, by `retention` tests and by the synthetic-database generator.
//!
//! Idempotency lives here: transitions are `INSERT OR IGNORE` against the unique key
//! (subject, kind, seq), so a replayed event or a restarted recorder never duplicates a row.

use foldhash::HashMap;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::labels::label_set_id;
pub use crate::store::rows::BatchStats;
use crate::store::rows::{Batch, SubjectUid};

/// uid -> integer key, for the subjects touched by one batch. Not kept across batches: the
/// recorder must not grow a second copy of its pod cache here.
#[derive(Default)]
struct Keys {
    pods: HashMap<String, i64>,
    nodes: HashMap<String, i64>,
    /// Label set JSON -> id: the pods of one ReplicaSet in a batch look their set up once.
    label_sets: HashMap<String, i64>,
}

impl Keys {
    fn label_set(&mut self, tx: &Transaction, json: &str) -> rusqlite::Result<i64> {
        if let Some(id) = self.label_sets.get(json) {
            return Ok(*id);
        }
        let id = label_set_id(tx, json)?;
        self.label_sets.insert(json.to_string(), id);
        Ok(id)
    }

    fn pod(&mut self, tx: &Transaction, uid: &str) -> rusqlite::Result<Option<i64>> {
        if let Some(id) = self.pods.get(uid) {
            return Ok(Some(*id));
        }
        let id = tx
            .prepare_cached("SELECT id FROM pods WHERE uid = ?1")?
            .query_row([uid], |r| r.get(0))
            .optional()?;
        if let Some(id) = id {
            self.pods.insert(uid.to_string(), id);
        }
        Ok(id)
    }

    fn node(&mut self, tx: &Transaction, uid: &str) -> rusqlite::Result<Option<i64>> {
        if let Some(id) = self.nodes.get(uid) {
            return Ok(Some(*id));
        }
        let id = tx
            .prepare_cached("SELECT id FROM nodes WHERE uid = ?1")?
            .query_row([uid], |r| r.get(0))
            .optional()?;
        if let Some(id) = id {
            self.nodes.insert(uid.to_string(), id);
        }
        Ok(id)
    }
}

/// A pod row's columns, in the order of [`write_batch`]'s parameters.
const INSERT_POD: &str = "INSERT INTO pods (uid, namespace, name, node, owner_kind, owner_name,
         label_set_id, created_at_ms, started_at_ms, finished_at_ms, deleted_at_ms, phase,
         reason, restarts, cpu_request_millis, memory_request_bytes, cpu_limit_millis,
         memory_limit_bytes)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";

/// What an update of a stored pod sets besides its indexed columns (node, labels, deletion).
/// Its uid, namespace, name and creation never change.
const SET_STATUS: &str = "owner_kind = excluded.owner_kind, owner_name = excluded.owner_name,
         started_at_ms = excluded.started_at_ms, finished_at_ms = excluded.finished_at_ms,
         phase = excluded.phase, reason = excluded.reason, restarts = excluded.restarts,
         cpu_request_millis = excluded.cpu_request_millis,
         memory_request_bytes = excluded.memory_request_bytes,
         cpu_limit_millis = excluded.cpu_limit_millis,
         memory_limit_bytes = excluded.memory_limit_bytes";

/// Writes the batch in one transaction. Rows that point at a pod or node the database has never
/// seen are skipped with a warning (the recorder always sends the pod or node row first).
pub fn write_batch(conn: &mut Connection, batch: &Batch) -> rusqlite::Result<BatchStats> {
    write_batch_in_session(conn, batch, None)
}

/// [`write_batch`], also moving the recording session's heartbeat to `(session_id, now_ms)` in
/// the same transaction: the covered time ends exactly where the committed rows do.
pub fn write_batch_in_session(
    conn: &mut Connection,
    batch: &Batch,
    heartbeat: Option<(i64, i64)>,
) -> rusqlite::Result<BatchStats> {
    // IMMEDIATE takes the write lock up front: a deferred transaction that starts with a read
    // can fail with SQLITE_BUSY mid-way when `kubetrail prune` writes at the same time.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut keys = Keys::default();
    let mut stats = BatchStats {
        rows: batch.len(),
        ..Default::default()
    };
    {
        let mut upsert_node = tx.prepare_cached(
            "INSERT INTO nodes (uid, name, created_at_ms, deleted_at_ms,
                 cpu_capacity_millis, memory_capacity_bytes, pods_capacity,
                 cpu_allocatable_millis, memory_allocatable_bytes, pods_allocatable, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (uid) DO UPDATE SET
                 name = excluded.name, deleted_at_ms = excluded.deleted_at_ms,
                 cpu_capacity_millis = excluded.cpu_capacity_millis,
                 memory_capacity_bytes = excluded.memory_capacity_bytes,
                 pods_capacity = excluded.pods_capacity,
                 cpu_allocatable_millis = excluded.cpu_allocatable_millis,
                 memory_allocatable_bytes = excluded.memory_allocatable_bytes,
                 pods_allocatable = excluded.pods_allocatable, state = excluded.state
             RETURNING id",
        )?;
        for n in &batch.nodes {
            let id: i64 = upsert_node.query_row(
                params![
                    n.uid,
                    n.name,
                    n.created_at_ms,
                    n.deleted_at_ms,
                    n.capacity.cpu_millis,
                    n.capacity.memory_bytes,
                    n.capacity.pods,
                    n.allocatable.cpu_millis,
                    n.allocatable.memory_bytes,
                    n.allocatable.pods,
                    n.state_json
                ],
                |r| r.get(0),
            )?;
            keys.nodes.insert(n.uid.clone(), id);
        }

        // Most updates of a stored pod change only its status columns. SQLite rewrites every
        // index on a column an UPDATE sets, whether the value changed or not, so one statement
        // setting all columns would delete and re-insert the pod's entries in `pods_by_node`,
        // `pods_by_label_set` and `pods_open` on every watch event. This one inserts a new pod,
        // or sets only the unindexed columns of a stored pod whose indexed ones (node, labels,
        // deletion) are unchanged; it returns no id when they changed, and the full upsert
        // below runs instead.
        let mut upsert_pod_status = tx.prepare_cached(&format!(
            "{INSERT_POD}
             ON CONFLICT (uid) DO UPDATE SET {SET_STATUS}
             WHERE node IS excluded.node AND deleted_at_ms IS excluded.deleted_at_ms
                 AND (excluded.label_set_id IS NULL OR label_set_id IS excluded.label_set_id)
             RETURNING id"
        ))?;
        let mut upsert_pod = tx.prepare_cached(&format!(
            "{INSERT_POD}
             ON CONFLICT (uid) DO UPDATE SET {SET_STATUS},
                 node = excluded.node, deleted_at_ms = excluded.deleted_at_ms,
                 label_set_id = coalesce(excluded.label_set_id, label_set_id)
             RETURNING id"
        ))?;
        // An open pod's state is kept for reconciliation; a deleted pod's is dropped. An upsert,
        // not INSERT OR REPLACE: REPLACE deletes the old row and inserts a new one, checking
        // the foreign key into `pods` again, where an update of the state column rewrites the
        // row in place and checks nothing (the key does not change).
        let mut put_state = tx.prepare_cached(
            "INSERT INTO pod_state (pod_id, state) VALUES (?1, ?2)
             ON CONFLICT (pod_id) DO UPDATE SET state = excluded.state",
        )?;
        let mut drop_state = tx.prepare_cached("DELETE FROM pod_state WHERE pod_id = ?1")?;
        for p in &batch.pods {
            let label_set = match &p.labels_json {
                Some(json) => Some(keys.label_set(&tx, json)?),
                None => None,
            };
            let values = params![
                p.uid,
                p.namespace,
                p.name,
                p.node,
                p.owner_kind,
                p.owner_name,
                label_set,
                p.created_at_ms,
                p.started_at_ms,
                p.finished_at_ms,
                p.deleted_at_ms,
                p.phase.code(),
                p.reason,
                p.restarts,
                p.resources.requests.cpu_millis,
                p.resources.requests.memory_bytes,
                p.resources.limits.cpu_millis,
                p.resources.limits.memory_bytes
            ];
            let id: i64 = match upsert_pod_status
                .query_row(values, |r| r.get(0))
                .optional()?
            {
                Some(id) => id,
                None => upsert_pod.query_row(values, |r| r.get(0))?,
            };
            if p.deleted_at_ms.is_some() || p.state.is_empty() {
                drop_state.execute([id])?;
            } else {
                put_state.execute(params![id, p.state])?;
            }
            keys.pods.insert(p.uid.clone(), id);
        }

        let mut insert_transition = tx.prepare_cached(
            "INSERT OR IGNORE INTO transitions (pod_id, node_id, kind, seq, at_ms, observed_at_ms,
                 phase_before, phase_after, container, reason, message, exit_code, restart_count,
                 resource_version, inferred)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?;
        for t in &batch.transitions {
            let (pod_id, node_id) = match &t.subject {
                SubjectUid::Pod(uid) => (keys.pod(&tx, uid)?, None),
                SubjectUid::Node(uid) => (None, keys.node(&tx, uid)?),
            };
            if pod_id.is_none() && node_id.is_none() {
                tracing::warn!(subject = ?t.subject, kind = %t.kind, "transition for an unknown subject skipped");
                stats.skipped_unknown_subject += 1;
                continue;
            }
            let inserted = insert_transition.execute(params![
                pod_id,
                node_id,
                t.kind.code(),
                t.seq,
                t.at_ms,
                t.observed_at_ms,
                t.phase_before.map(|p| p.code()),
                t.phase_after.map(|p| p.code()),
                t.container,
                t.reason,
                t.message,
                t.exit_code,
                t.restart_count,
                t.resource_version,
                t.inferred
            ])?;
            if inserted == 1 {
                stats.transitions_inserted += 1;
                *stats.inserted_by_kind.entry(t.kind).or_default() += 1;
            } else {
                stats.transitions_ignored += 1;
            }
        }

        let mut insert_resources = tx.prepare_cached(
            "INSERT OR REPLACE INTO pod_resources (pod_id, at_ms, cpu_request_millis,
                 memory_request_bytes, cpu_limit_millis, memory_limit_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for r in &batch.pod_resources {
            let Some(pod_id) = keys.pod(&tx, &r.pod_uid)? else {
                stats.skipped_unknown_subject += 1;
                continue;
            };
            insert_resources.execute(params![
                pod_id,
                r.at_ms,
                r.resources.requests.cpu_millis,
                r.resources.requests.memory_bytes,
                r.resources.limits.cpu_millis,
                r.resources.limits.memory_bytes
            ])?;
        }

        let mut insert_capacity = tx.prepare_cached(
            "INSERT OR REPLACE INTO node_capacity (node_id, at_ms, cpu_capacity_millis,
                 memory_capacity_bytes, pods_capacity, cpu_allocatable_millis,
                 memory_allocatable_bytes, pods_allocatable)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for c in &batch.node_capacity {
            let Some(node_id) = keys.node(&tx, &c.node_uid)? else {
                stats.skipped_unknown_subject += 1;
                continue;
            };
            insert_capacity.execute(params![
                node_id,
                c.at_ms,
                c.capacity.cpu_millis,
                c.capacity.memory_bytes,
                c.capacity.pods,
                c.allocatable.cpu_millis,
                c.allocatable.memory_bytes,
                c.allocatable.pods
            ])?;
        }

        // Two changes of one node in the same millisecond: the later one is the step's value.
        let mut insert_usage = tx.prepare_cached(
            "INSERT OR REPLACE INTO node_usage (node_id, at_ms, cpu_requested_millis,
                 memory_requested_bytes, cpu_limits_millis, memory_limits_bytes, pod_count,
                 cpu_allocatable_millis, memory_allocatable_bytes, keyframe)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for u in &batch.node_usage {
            let Some(node_id) = keys.node(&tx, &u.node_uid)? else {
                stats.skipped_unknown_subject += 1;
                continue;
            };
            insert_usage.execute(params![
                node_id,
                u.at_ms,
                u.requested.cpu_millis,
                u.requested.memory_bytes,
                u.limits.cpu_millis,
                u.limits.memory_bytes,
                u.pod_count,
                u.allocatable.cpu_millis,
                u.allocatable.memory_bytes,
                u.keyframe
            ])?;
        }
        super::events::write_events(&tx, &batch.events, &mut stats)?;
        super::owners::write_owners(&tx, &batch.owners, &mut stats)?;
    }
    if let Some((session_id, now_ms)) = heartbeat {
        super::sessions::heartbeat(&tx, session_id, now_ms)?;
    }
    tx.commit()?;
    Ok(stats)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::model::{Effective, Phase, TransitionKind};
    use crate::store::rows::{PodRow, TransitionRow};

    pub(crate) fn pod_row(uid: &str) -> PodRow {
        PodRow {
            uid: uid.into(),
            namespace: "ns".into(),
            name: format!("pod-{uid}"),
            node: None,
            owner_kind: None,
            owner_name: None,
            labels_json: None,
            created_at_ms: 1000,
            started_at_ms: None,
            finished_at_ms: None,
            deleted_at_ms: None,
            phase: Phase::Pending,
            reason: None,
            restarts: 0,
            resources: Effective::default(),
            state: b"{}".to_vec(),
        }
    }

    #[test]
    fn replayed_transitions_are_ignored_not_duplicated() {
        let dir = tempfile::tempdir().unwrap();
        let mut handle = crate::store::sqlite::open_for_writing(&dir.path().join("t.db")).unwrap();
        let mut batch = Batch::default();
        batch.pods.push(pod_row("u1"));
        batch.transitions.push(TransitionRow::new(
            SubjectUid::Pod("u1".into()),
            TransitionKind::Created,
            1000,
            1001,
        ));
        let first = write_batch(&mut handle.conn, &batch).unwrap();
        assert_eq!(
            (first.transitions_inserted, first.transitions_ignored),
            (1, 0)
        );
        assert_eq!(
            first.inserted_by_kind,
            BTreeMap::from([(TransitionKind::Created, 1)])
        );
        let again = write_batch(&mut handle.conn, &batch).unwrap();
        assert_eq!(
            (again.transitions_inserted, again.transitions_ignored),
            (0, 1)
        );
        assert!(again.inserted_by_kind.is_empty(), "a replay is not counted");
        let rows: i64 = handle
            .conn
            .query_row("SELECT count(*) FROM transitions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
        let pods: i64 = handle
            .conn
            .query_row("SELECT count(*) FROM pods", [], |r| r.get(0))
            .unwrap();
        assert_eq!(pods, 1);
    }

    #[test]
    fn pods_with_the_same_labels_share_one_label_set() {
        let dir = tempfile::tempdir().unwrap();
        let mut handle = crate::store::sqlite::open_for_writing(&dir.path().join("t.db")).unwrap();
        let labelled = |uid: &str, labels: Option<&str>| PodRow {
            labels_json: labels.map(str::to_string),
            ..pod_row(uid)
        };
        let mut batch = Batch::default();
        batch.pods.push(labelled("u1", Some(r#"{"app":"web"}"#)));
        batch.pods.push(labelled("u2", Some(r#"{"app":"web"}"#)));
        write_batch(&mut handle.conn, &batch).unwrap();
        let mut later = Batch::default();
        later.pods.push(labelled("u3", Some(r#"{"app":"web"}"#)));
        later.pods.push(labelled("u4", Some(r#"{"app":"db"}"#)));
        // An update without labels keeps the ones the pod has.
        later.pods.push(labelled("u1", None));
        write_batch(&mut handle.conn, &later).unwrap();
        let sets: i64 = handle
            .conn
            .query_row("SELECT count(*) FROM label_sets", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sets, 2);
        let web: i64 = handle
            .conn
            .query_row(
                r#"SELECT count(*) FROM pod_labels WHERE labels = '{"app":"web"}'"#,
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(web, 3, "u1 kept its labels through an update without them");
    }

    /// Every way a stored pod changes, each alone and then all in one batch: the row read back
    /// is the row written (labels kept when an update has none), whichever statement wrote it,
    /// and the indexes agree with the table.
    #[test]
    fn a_pods_row_is_what_was_last_written_whichever_columns_changed() {
        use crate::model::Resources;
        let dir = tempfile::tempdir().unwrap();
        let mut handle = crate::store::sqlite::open_for_writing(&dir.path().join("t.db")).unwrap();
        let created = PodRow {
            labels_json: Some(r#"{"app":"web"}"#.into()),
            ..pod_row("u1")
        };
        let running = PodRow {
            started_at_ms: Some(2000),
            phase: Phase::Running,
            ..created.clone()
        };
        let scheduled = PodRow {
            node: Some("node-a".into()),
            ..running.clone()
        };
        let restarted = PodRow {
            restarts: 3,
            reason: Some("OOMKilled".into()),
            owner_kind: Some("ReplicaSet".into()),
            owner_name: Some("web-1".into()),
            resources: Effective {
                requests: Resources::new(250, 1 << 20),
                limits: Resources::new(500, 1 << 21),
            },
            state: vec![1, 0, 0],
            ..scheduled.clone()
        };
        let relabelled = PodRow {
            labels_json: Some(r#"{"app":"db"}"#.into()),
            ..restarted.clone()
        };
        let without_labels = PodRow {
            labels_json: None,
            restarts: 4,
            ..relabelled.clone()
        };
        let finished = PodRow {
            finished_at_ms: Some(9000),
            phase: Phase::Succeeded,
            ..without_labels.clone()
        };
        let deleted = PodRow {
            deleted_at_ms: Some(9500),
            state: Vec::new(),
            ..finished.clone()
        };
        let steps = [
            created,
            running,
            scheduled,
            restarted,
            relabelled,
            without_labels,
            finished,
            deleted,
        ];
        let read_back = |conn: &Connection, uid: &str| -> PodRow {
            let sql = format!(
                "SELECT * FROM ({}) WHERE uid = ?1",
                super::super::export::PODS
            );
            conn.query_row(&sql, [uid], super::super::export::pod)
                .unwrap()
        };
        let integrity = |conn: &Connection| -> String {
            conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap()
        };
        for step in &steps {
            let mut batch = Batch::default();
            batch.pods.push(step.clone());
            write_batch(&mut handle.conn, &batch).unwrap();
            let expected = PodRow {
                labels_json: step
                    .labels_json
                    .clone()
                    .or_else(|| Some(r#"{"app":"db"}"#.into())),
                ..step.clone()
            };
            assert_eq!(read_back(&handle.conn, "u1"), expected);
            assert_eq!(integrity(&handle.conn), "ok");
        }
        let all_at_once = Batch {
            pods: steps
                .iter()
                .map(|s| PodRow {
                    uid: "u2".into(),
                    ..s.clone()
                })
                .collect(),
            ..Batch::default()
        };
        write_batch(&mut handle.conn, &all_at_once).unwrap();
        let u2 = read_back(&handle.conn, "u2");
        assert_eq!(
            u2,
            PodRow {
                uid: "u2".into(),
                labels_json: Some(r#"{"app":"db"}"#.into()),
                ..steps[7].clone()
            }
        );
        let open_by_index: i64 = handle
            .conn
            .query_row(
                "SELECT count(*) FROM pods INDEXED BY pods_open WHERE deleted_at_ms IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(open_by_index, 0, "both pods are deleted");
        assert_eq!(integrity(&handle.conn), "ok");
    }

    #[test]
    fn rows_for_unknown_subjects_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut handle = crate::store::sqlite::open_for_writing(&dir.path().join("t.db")).unwrap();
        let mut batch = Batch::default();
        batch.transitions.push(TransitionRow::new(
            SubjectUid::Pod("nobody".into()),
            TransitionKind::Created,
            1,
            1,
        ));
        let stats = write_batch(&mut handle.conn, &batch).unwrap();
        assert_eq!(stats.transitions_inserted, 0);
    }
}
