//! The reports' SQL: transitions, pods, one pod's incarnations, and the node report's reads
//! (nodes alive in a window, raw usage samples, rollups). `query` keeps the filters, the row
//! types and the logic over them; this module turns a filter into one SELECT (every value a
//! numbered parameter, never spliced into the SQL) and rows into records.

use std::ops::ControlFlow;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension};

use super::rollup;
use crate::model::report::{
    Incarnation, PodFilter, PodSummary, TransitionFilter, TransitionRecord,
};
use crate::model::time::format_time_ms;
use crate::model::utilisation::{BucketUsage, UsageSample};
use crate::model::{Phase, Resources, TransitionKind};
use crate::store::NodeInfo;

/// Conditions joined with AND, each value bound as a numbered parameter.
#[derive(Default)]
struct Conditions {
    conditions: Vec<String>,
    params: Vec<Value>,
}

impl Conditions {
    /// Binds `value` and returns its placeholder (`?N`) for use in a condition.
    fn param(&mut self, value: Value) -> String {
        self.params.push(value);
        format!("?{}", self.params.len())
    }

    fn push(&mut self, condition: String) {
        self.conditions.push(condition);
    }

    /// Appends ` WHERE a AND b ...` (if there is any condition) to `sql`; returns the parameters.
    fn finish(self, sql: &mut String) -> Vec<Value> {
        if !self.conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&self.conditions.join(" AND "));
        }
        self.params
    }
}

/// The labels of the pod row `pod` (a table alias) as a JSON column, or NULL when `wanted` is
/// false: they live in `label_sets` (migration 0004), one lookup per row, so only a label
/// selector pays for them.
fn labels_column(pod: &str, wanted: bool) -> String {
    if wanted {
        format!("(SELECT labels FROM label_sets WHERE id = {pod}.label_set_id)")
    } else {
        "NULL".to_string()
    }
}

/// The transitions `filter` selects, in `(at_ms, id)` order (the `transitions_by_at` index, so a
/// windowed export streams without a sort), each handed to `each` as it is read, until it
/// breaks. Returns how many were handed over.
pub fn transitions(
    conn: &Connection,
    filter: &TransitionFilter,
    each: &mut dyn FnMut(TransitionRecord) -> ControlFlow<()>,
) -> rusqlite::Result<u64> {
    let pods = filter.includes_pods();
    let nodes = filter.includes_nodes();
    if !pods && !nodes {
        return Ok(0);
    }
    let mut sql = String::from(
        "SELECT t.kind, t.at_ms, t.observed_at_ms, t.phase_before, t.phase_after, t.container,
                t.reason, t.message, t.exit_code, t.restart_count, t.resource_version, t.inferred,",
    );
    let labels = labels_column("p", !filter.selector.is_empty());
    // Inner joins when only one subject is wanted: they drop the other subject's rows for free
    // and leave the planner free to start from `pods` (e.g. for -n).
    match (pods, nodes) {
        (true, false) => sql.push_str(&format!(
            " p.uid, p.namespace, p.name, p.node, {labels}, NULL, NULL
             FROM transitions t JOIN pods p ON p.id = t.pod_id",
        )),
        (false, true) => sql.push_str(
            " NULL, NULL, NULL, NULL, NULL, n.uid, n.name
             FROM transitions t JOIN nodes n ON n.id = t.node_id",
        ),
        _ => sql.push_str(&format!(
            " p.uid, p.namespace, p.name, p.node, {labels}, n.uid, n.name
             FROM transitions t LEFT JOIN pods p ON p.id = t.pod_id
             LEFT JOIN nodes n ON n.id = t.node_id",
        )),
    }
    let mut w = Conditions::default();
    if let Some(pod_ids) = &filter.pod_ids {
        // One parameter however many incarnations: a JSON array, read back by `json_each`.
        let p = w.param(Value::Text(
            serde_json::to_string(pod_ids).expect("integers"),
        ));
        w.push(format!("t.pod_id IN (SELECT value FROM json_each({p}))"));
    }
    if !filter.kinds.is_empty() {
        let list: Vec<String> = filter
            .kinds
            .iter()
            .map(|k| w.param(Value::Integer(k.code())))
            .collect();
        w.push(format!("t.kind IN ({})", list.join(", ")));
    }
    if !filter.reasons.is_empty() {
        let list: Vec<String> = filter
            .reasons
            .iter()
            .map(|r| w.param(Value::Text(r.clone())))
            .collect();
        w.push(format!("t.reason IN ({})", list.join(", ")));
    }
    if let (Some(ns), true) = (&filter.namespace, pods) {
        let p = w.param(Value::Text(ns.clone()));
        // `+` keeps the planner off `pods_by_name` when the window is the smaller set.
        let column = if window_is_narrower(conn, filter, ns)? {
            "+p.namespace"
        } else {
            "p.namespace"
        };
        w.push(if nodes {
            format!("(t.pod_id IS NULL OR {column} = {p})")
        } else {
            format!("{column} = {p}")
        });
    }
    if let Some(node) = &filter.node {
        let p = w.param(Value::Text(node.clone()));
        w.push(match (pods, nodes) {
            (true, false) => format!("p.node = {p}"),
            (false, true) => format!("n.name = {p}"),
            _ => format!("(p.node = {p} OR n.name = {p})"),
        });
    }
    if let Some(since) = filter.window.since_ms {
        let p = w.param(Value::Integer(since));
        w.push(format!("t.at_ms >= {p}"));
    }
    if let Some(until) = filter.window.until_ms {
        let p = w.param(Value::Integer(until));
        w.push(format!("t.at_ms < {p}"));
    }
    let params = w.finish(&mut sql);
    sql.push_str(" ORDER BY t.at_ms, t.id");

    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut count = 0u64;
    while let Some(row) = rows.next()? {
        if filter.limit.is_some_and(|limit| count >= limit) {
            break;
        }
        let pod_uid: Option<String> = row.get(12)?;
        let is_pod = pod_uid.is_some();
        if is_pod && !filter.selector.is_empty() {
            let labels: Option<String> = row.get(16)?;
            if !filter.selector.matches_json(labels.as_deref()) {
                continue;
            }
        }
        let kind_code: i64 = row.get(0)?;
        let at_ms: i64 = row.get(1)?;
        let observed_at_ms: i64 = row.get(2)?;
        let phase = |i: usize| -> rusqlite::Result<Option<&'static str>> {
            Ok(row
                .get::<_, Option<i64>>(i)?
                .map(|c| Phase::from_code(c).as_str()))
        };
        let record = TransitionRecord {
            cluster: None,
            subject: if is_pod { "pod" } else { "node" },
            uid: if is_pod {
                pod_uid.unwrap_or_default()
            } else {
                row.get::<_, Option<String>>(17)?.unwrap_or_default()
            },
            namespace: row.get(13)?,
            pod: row.get(14)?,
            node: if is_pod { row.get(15)? } else { row.get(18)? },
            kind: TransitionKind::from_code(kind_code)
                .map(|k| k.as_str())
                .unwrap_or("unknown"),
            at: format_time_ms(at_ms),
            at_ms,
            observed_at: format_time_ms(observed_at_ms),
            observed_at_ms,
            phase_before: phase(3)?,
            phase_after: phase(4)?,
            container: row.get(5)?,
            reason: row.get(6)?,
            message: row.get(7)?,
            exit_code: row.get(8)?,
            restart_count: row.get(9)?,
            resource_version: row.get(10)?,
            inferred: row.get::<_, i64>(11)? != 0,
        };
        count += 1;
        if each(record).is_break() {
            break;
        }
    }
    Ok(count)
}

/// With both `-n` and a window, SQLite (without statistics) always starts from the namespace:
/// right for a small namespace over a month, but for "the busiest namespace in the last hour" it
/// reads and sorts millions of rows to return a thousand. Two capped index counts decide instead:
/// the rows in the window, and the namespace's pods times a typical ten transitions each.
fn window_is_narrower(
    conn: &Connection,
    filter: &TransitionFilter,
    namespace: &str,
) -> rusqlite::Result<bool> {
    const CAP: i64 = 100_000;
    const TRANSITIONS_PER_POD: i64 = 10;
    let (since, until) = (filter.window.since_ms, filter.window.until_ms);
    if since.is_none() && until.is_none() {
        return Ok(false);
    }
    let in_window: i64 = conn.query_row(
        "SELECT count(*) FROM (SELECT 1 FROM transitions WHERE at_ms >= ?1 AND at_ms < ?2 LIMIT ?3)",
        rusqlite::params![since.unwrap_or(i64::MIN), until.unwrap_or(i64::MAX), CAP],
        |r| r.get(0),
    )?;
    let pods_in_namespace: i64 = conn.query_row(
        "SELECT count(*) FROM (SELECT 1 FROM pods WHERE namespace = ?1 LIMIT ?2)",
        rusqlite::params![namespace, CAP / TRANSITIONS_PER_POD],
        |r| r.get(0),
    )?;
    Ok(in_window < pods_in_namespace * TRANSITIONS_PER_POD)
}

/// The pods `filter` selects, oldest first (by creation), each handed to `each` until it
/// breaks; an open pod's lifetime ends at `open_until_ms`. Returns how many were handed over.
pub fn pods(
    conn: &Connection,
    filter: &PodFilter,
    open_until_ms: i64,
    each: &mut dyn FnMut(PodSummary) -> ControlFlow<()>,
) -> rusqlite::Result<u64> {
    let mut sql = format!(
        "SELECT namespace, name, uid, node, owner_kind, owner_name, created_at_ms, started_at_ms,
                finished_at_ms, deleted_at_ms, phase, reason, restarts, cpu_request_millis,
                memory_request_bytes, cpu_limit_millis, memory_limit_bytes, {}
         FROM pods",
        labels_column("pods", !filter.selector.is_empty())
    );
    let mut w = Conditions::default();
    if let Some(ns) = &filter.namespace {
        let p = w.param(Value::Text(ns.clone()));
        w.push(format!("namespace = {p}"));
    }
    if let Some(node) = &filter.node {
        let p = w.param(Value::Text(node.clone()));
        w.push(format!("node = {p}"));
    }
    if let Some(phase) = filter.phase {
        let p = w.param(Value::Integer(phase.code()));
        w.push(format!("phase = {p}"));
    }
    if let Some(until) = filter.window.until_ms {
        let p = w.param(Value::Integer(until));
        w.push(format!("created_at_ms < {p}"));
    }
    if let Some(owners) = &filter.owners {
        let mut any = vec!["0".to_string()];
        for o in owners {
            let k = w.param(Value::Text(o.kind.clone()));
            let n = w.param(Value::Text(o.name.clone()));
            let ns = match &o.namespace {
                Some(ns) => format!(" AND namespace = {}", w.param(Value::Text(ns.clone()))),
                None => String::new(),
            };
            any.push(format!("(owner_kind = {k} AND owner_name = {n}{ns})"));
        }
        w.push(format!("({})", any.join(" OR ")));
    }
    if let Some(since) = filter.window.since_ms {
        // "Alive after `since`" = open, or deleted after it. Written as a union of the two
        // partial indexes (`pods_open`, `pods_by_deleted`), so "the last hour" reads the tens of
        // thousands of pods alive then instead of every pod ever created.
        let p = w.param(Value::Integer(since));
        w.push(format!(
            "id IN (SELECT id FROM pods WHERE deleted_at_ms IS NULL
                    UNION ALL SELECT id FROM pods WHERE deleted_at_ms > {p})"
        ));
    }
    let params = w.finish(&mut sql);
    sql.push_str(" ORDER BY created_at_ms, id");

    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let mut count = 0u64;
    while let Some(row) = rows.next()? {
        if filter.limit.is_some_and(|limit| count >= limit) {
            break;
        }
        if !filter.selector.is_empty() {
            let labels: Option<String> = row.get(17)?;
            if !filter.selector.matches_json(labels.as_deref()) {
                continue;
            }
        }
        let created_at_ms: i64 = row.get(6)?;
        let started_at_ms: Option<i64> = row.get(7)?;
        let finished_at_ms: Option<i64> = row.get(8)?;
        let deleted_at_ms: Option<i64> = row.get(9)?;
        let summary = PodSummary {
            cluster: None,
            namespace: row.get(0)?,
            name: row.get(1)?,
            uid: row.get(2)?,
            node: row.get(3)?,
            owner_kind: row.get(4)?,
            owner_name: row.get(5)?,
            created: format_time_ms(created_at_ms),
            created_at_ms,
            started: started_at_ms.map(format_time_ms),
            started_at_ms,
            finished: finished_at_ms.map(format_time_ms),
            finished_at_ms,
            deleted: deleted_at_ms.map(format_time_ms),
            deleted_at_ms,
            lifetime_ms: (deleted_at_ms.unwrap_or(open_until_ms) - created_at_ms).max(0),
            open: deleted_at_ms.is_none(),
            phase: Phase::from_code(row.get(10)?).as_str(),
            reason: row.get(11)?,
            restarts: row.get(12)?,
            cpu_request_millis: row.get(13)?,
            memory_request_bytes: row.get(14)?,
            cpu_limit_millis: row.get(15)?,
            memory_limit_bytes: row.get(16)?,
        };
        count += 1;
        if each(summary).is_break() {
            break;
        }
    }
    Ok(count)
}

const INCARNATION_COLUMNS: &str = "id, uid, namespace, name, node, created_at_ms, deleted_at_ms, \
                                   phase, reason";

fn incarnation(row: &rusqlite::Row) -> rusqlite::Result<Incarnation> {
    let created_at_ms: i64 = row.get(5)?;
    let deleted_at_ms: Option<i64> = row.get(6)?;
    Ok(Incarnation {
        pod_id: row.get(0)?,
        uid: row.get(1)?,
        namespace: row.get(2)?,
        name: row.get(3)?,
        node: row.get(4)?,
        created: format_time_ms(created_at_ms),
        created_at_ms,
        deleted: deleted_at_ms.map(format_time_ms),
        deleted_at_ms,
        phase: Phase::from_code(row.get(7)?).as_str(),
        reason: row.get(8)?,
        transitions: Vec::new(),
        events: Vec::new(),
    })
}

/// The incarnation with this uid (without transitions).
pub fn pod_by_uid(conn: &Connection, uid: &str) -> rusqlite::Result<Option<Incarnation>> {
    let sql = format!("SELECT {INCARNATION_COLUMNS} FROM pods WHERE uid = ?1");
    conn.query_row(&sql, [uid], incarnation).optional()
}

/// The incarnations of `ns/name`, oldest first (without transitions).
pub fn pods_named(conn: &Connection, ns: &str, name: &str) -> rusqlite::Result<Vec<Incarnation>> {
    let sql = format!(
        "SELECT {INCARNATION_COLUMNS} FROM pods WHERE namespace = ?1 AND name = ?2
         ORDER BY created_at_ms, id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([ns, name], incarnation)?;
    rows.collect()
}

/// The namespaces that have (or had) a pod with this name, sorted.
///
/// The `pods_by_name` index starts with the namespace, so a lookup by bare name would scan
/// every pod. Instead this skips from one distinct namespace to the next through the index and
/// probes each: two index seeks per namespace, well under a millisecond for the tens to hundreds
/// of namespaces of a real cluster, and no extra index to store.
pub fn namespaces_with(conn: &Connection, name: &str) -> rusqlite::Result<Vec<String>> {
    let mut next_ns = conn.prepare_cached(
        "SELECT namespace FROM pods WHERE namespace > ?1 ORDER BY namespace LIMIT 1",
    )?;
    let mut has_name =
        conn.prepare_cached("SELECT 1 FROM pods WHERE namespace = ?1 AND name = ?2 LIMIT 1")?;
    let mut found = Vec::new();
    // Every namespace sorts after the empty string (Kubernetes namespaces are never empty).
    let mut current = String::new();
    while let Some(ns) = next_ns
        .query_row([&current], |r| r.get::<_, String>(0))
        .optional()?
    {
        if has_name.exists([ns.as_str(), name])? {
            found.push(ns.clone());
        }
        current = ns;
    }
    Ok(found)
}

/// The first usage row or rollup of any node (one primary-key seek per node and table, so no
/// index on `at_ms` is needed).
pub fn first_usage_ms(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let raw: Option<i64> = conn.query_row(
        "SELECT min((SELECT u.at_ms FROM node_usage u WHERE u.node_id = n.id ORDER BY u.at_ms LIMIT 1))
         FROM nodes n",
        [],
        |r| r.get(0),
    )?;
    let rolled_up = rollup::oldest_rollup_ms(conn)?;
    Ok(match (raw, rolled_up) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// The node incarnations alive in `[since, until)`, by name then creation (`nodes_by_name`).
pub fn nodes_alive(
    conn: &Connection,
    node: Option<&str>,
    since_ms: i64,
    until_ms: i64,
) -> rusqlite::Result<Vec<NodeInfo>> {
    let mut params: Vec<Value> = vec![Value::Integer(since_ms), Value::Integer(until_ms)];
    let node_condition = match node {
        Some(name) => {
            params.push(Value::Text(name.to_string()));
            "AND name = ?3"
        }
        None => "",
    };
    let sql = format!(
        "SELECT id, uid, name, created_at_ms, deleted_at_ms FROM nodes
         WHERE created_at_ms < ?2 AND (deleted_at_ms IS NULL OR deleted_at_ms > ?1) {node_condition}
         ORDER BY name, created_at_ms, id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| {
        Ok(NodeInfo {
            cluster: None,
            id: r.get(0)?,
            uid: r.get(1)?,
            name: r.get(2)?,
            created_ms: r.get(3)?,
            deleted_ms: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// One node's usage rows from the one in force at `since_ms` (found by a primary-key seek) to
/// `until_ms`, in primary-key order.
pub fn node_samples(
    conn: &Connection,
    node_id: i64,
    since_ms: i64,
    until_ms: i64,
    each: &mut dyn FnMut(UsageSample),
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT at_ms, cpu_requested_millis, memory_requested_bytes, cpu_limits_millis,
                memory_limits_bytes, pod_count, cpu_allocatable_millis, memory_allocatable_bytes
         FROM node_usage
         WHERE node_id = ?1
           AND at_ms >= coalesce((SELECT max(at_ms) FROM node_usage WHERE node_id = ?1 AND at_ms <= ?2), ?2)
           AND at_ms < ?3
         ORDER BY at_ms",
    )?;
    let mut rows = stmt.query(rusqlite::params![node_id, since_ms, until_ms])?;
    while let Some(row) = rows.next()? {
        // The hot loop of the node report: read the STRICT INTEGER columns without Row::get's
        // per-call bounds and conversion checks.
        let int = |i: usize| match row.get_ref_unwrap(i) {
            ValueRef::Integer(v) => v,
            _ => 0,
        };
        each(UsageSample {
            at_ms: int(0),
            requested: Resources::new(int(1), int(2)),
            limits: Resources::new(int(3), int(4)),
            pod_count: int(5),
            allocatable: Resources::new(int(6), int(7)),
        });
    }
    Ok(())
}

/// One node's rollups overlapping `[since_ms, until_ms)`, in time order (through the node's
/// name, which the rollup read is indexed by).
pub fn node_rollups(
    conn: &Connection,
    node: &NodeInfo,
    since_ms: i64,
    until_ms: i64,
) -> rusqlite::Result<Vec<BucketUsage>> {
    let mut rollups = Vec::new();
    rollup::for_each_rollup(conn, Some(&node.name), since_ms, until_ms, |row| {
        if row.node_id == node.id {
            rollups.push(row.usage);
        }
        Ok(())
    })?;
    Ok(rollups)
}
