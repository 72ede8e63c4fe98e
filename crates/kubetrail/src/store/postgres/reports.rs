//! The reports' reads in PostgreSQL: the same results as SQLite's (`store::sqlite::reports`),
//! over the clusters a reader was opened for. `query` keeps the filters and the logic; this
//! module turns a filter into one SELECT (every value a numbered parameter, never spliced into
//! the SQL) and rows into records.

use std::collections::HashMap;
use std::ops::ControlFlow;

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{ToSql, Type};
use postgres::{Client, Row};

use super::reader::ClusterNames;
use crate::model::report::{
    Incarnation, PodFilter, PodSummary, TransitionFilter, TransitionRecord,
};
use crate::model::time::format_time_ms;
use crate::model::utilisation::{BucketUsage, RatioStat, Stat, UsageSample};
use crate::model::{Effective, Phase, Resources, TransitionKind};
use crate::store::api::{NodeInfo, OpenNode, OpenPod};

/// A value bound as a parameter, with the PostgreSQL type it is sent as. With every type
/// given, a read is one round trip (Parse, Bind and Execute together, `query_typed`) instead of
/// a prepare and then an execute: a `query history` of nine incarnations makes 18 reads.
pub(super) trait Typed: ToSql + Sync + 'static {
    const TYPE: Type;
}

macro_rules! typed {
    ($($rust:ty => $pg:ident),* $(,)?) => {
        $(impl Typed for $rust { const TYPE: Type = Type::$pg; })*
    };
}

typed! {
    i16 => INT2, i32 => INT4, i64 => INT8, String => TEXT,
    Vec<i16> => INT2_ARRAY, Vec<i32> => INT4_ARRAY, Vec<i64> => INT8_ARRAY,
    Vec<String> => TEXT_ARRAY,
}

/// A read's parameters, numbered `$1`, `$2`, ... in the order they are added.
#[derive(Default)]
pub(super) struct Params(Vec<(Box<dyn ToSql + Sync>, Type)>);

impl Params {
    /// Adds a value and returns its placeholder.
    pub(super) fn add<T: Typed>(&mut self, value: T) -> String {
        self.0.push((Box::new(value), T::TYPE));
        format!("${}", self.0.len())
    }

    fn typed(&self) -> impl Iterator<Item = (&(dyn ToSql + Sync), Type)> {
        self.0.iter().map(|(v, t)| (v.as_ref(), t.clone()))
    }
}

/// Conditions joined with AND, each value bound as a numbered parameter (`$N`). The first
/// parameter is always the clusters read.
pub(super) struct Conditions {
    conditions: Vec<String>,
    params: Params,
}

impl Conditions {
    /// Starts with `{alias}.cluster_id = ANY($1)`.
    pub(super) fn for_clusters(alias: &str, clusters: &[i32]) -> Conditions {
        let mut params = Params::default();
        let p = params.add(clusters.to_vec());
        Conditions {
            conditions: vec![format!("{alias}.cluster_id = ANY({p})")],
            params,
        }
    }

    pub(super) fn param(&mut self, value: impl Typed) -> String {
        self.params.add(value)
    }

    pub(super) fn push(&mut self, condition: String) {
        self.conditions.push(condition);
    }

    /// Appends the WHERE clause to `sql` and hands back the parameters.
    pub(super) fn finish(self, sql: &mut String) -> Params {
        sql.push_str(" WHERE ");
        sql.push_str(&self.conditions.join(" AND "));
        self.params
    }
}

fn phase_name(code: Option<i16>) -> Option<&'static str> {
    code.map(|c| Phase::from_code(i64::from(c)).as_str())
}

/// Streams the rows of `sql` as the server sends them (an export of millions of rows never
/// holds them all), stopping early when `each` says so. No transaction of its own: it reads
/// inside the snapshot's.
pub(super) fn stream(
    client: &mut Client,
    sql: &str,
    params: &Params,
    mut each: impl FnMut(&Row) -> bool,
) -> Result<(), postgres::Error> {
    let mut rows = client.query_typed_raw(sql, params.typed())?;
    while let Some(row) = rows.next()? {
        if !each(&row) {
            break;
        }
    }
    Ok(())
}

/// The transitions `filter` selects, in `(at_ms, id)` order, each handed to `each` until it
/// breaks. Returns how many were handed over.
pub fn transitions(
    client: &mut Client,
    clusters: &[i32],
    names: Option<&ClusterNames>,
    filter: &TransitionFilter,
    each: &mut dyn FnMut(TransitionRecord) -> ControlFlow<()>,
) -> Result<u64, postgres::Error> {
    let pods = filter.includes_pods();
    let nodes = filter.includes_nodes();
    if !pods && !nodes {
        return Ok(0);
    }
    let mut sql = String::from(
        "SELECT t.kind, t.at_ms, t.observed_at_ms, t.phase_before, t.phase_after, t.container,
                t.reason, t.message, t.exit_code, t.restart_count, t.resource_version, t.inferred,",
    );
    let labels = if filter.selector.is_empty() {
        "NULL::text"
    } else {
        "(SELECT labels FROM label_sets WHERE id = p.label_set_id)"
    };
    match (pods, nodes) {
        (true, false) => sql.push_str(&format!(
            " p.uid, p.namespace, p.name, p.node, {labels}, NULL::text, NULL::text, t.cluster_id
             FROM transitions t JOIN pods p ON p.id = t.pod_id",
        )),
        (false, true) => sql.push_str(
            " NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, n.uid, n.name, t.cluster_id
             FROM transitions t JOIN nodes n ON n.id = t.node_id",
        ),
        _ => sql.push_str(&format!(
            " p.uid, p.namespace, p.name, p.node, {labels}, n.uid, n.name, t.cluster_id
             FROM transitions t LEFT JOIN pods p ON p.id = t.pod_id
             LEFT JOIN nodes n ON n.id = t.node_id",
        )),
    }
    let mut w = Conditions::for_clusters("t", clusters);
    if let Some(pod_ids) = &filter.pod_ids {
        let p = w.param(pod_ids.clone());
        w.push(format!("t.pod_id = ANY({p})"));
    }
    if !filter.kinds.is_empty() {
        let codes: Vec<i16> = filter.kinds.iter().map(|k| k.code() as i16).collect();
        let p = w.param(codes);
        w.push(format!("t.kind = ANY({p})"));
    }
    if !filter.reasons.is_empty() {
        let p = w.param(filter.reasons.clone());
        w.push(format!("t.reason = ANY({p})"));
    }
    if let (Some(ns), true) = (&filter.namespace, pods) {
        let p = w.param(ns.clone());
        w.push(if nodes {
            format!("(t.pod_id IS NULL OR p.namespace = {p})")
        } else {
            format!("p.namespace = {p}")
        });
    }
    if let Some(node) = &filter.node {
        let p = w.param(node.clone());
        w.push(match (pods, nodes) {
            (true, false) => format!("p.node = {p}"),
            (false, true) => format!("n.name = {p}"),
            _ => format!("(p.node = {p} OR n.name = {p})"),
        });
    }
    if let Some(since) = filter.window.since_ms {
        let p = w.param(since);
        w.push(format!("t.at_ms >= {p}"));
    }
    if let Some(until) = filter.window.until_ms {
        let p = w.param(until);
        w.push(format!("t.at_ms < {p}"));
    }
    let params = w.finish(&mut sql);
    sql.push_str(" ORDER BY t.at_ms, t.id");

    let mut count = 0u64;
    stream(client, &sql, &params, |row| {
        if filter.limit.is_some_and(|limit| count >= limit) {
            return false;
        }
        let pod_uid: Option<String> = row.get(12);
        let is_pod = pod_uid.is_some();
        if is_pod && !filter.selector.is_empty() {
            let labels: Option<String> = row.get(16);
            if !filter.selector.matches_json(labels.as_deref()) {
                return true;
            }
        }
        let at_ms: i64 = row.get(1);
        let observed_at_ms: i64 = row.get(2);
        let record = TransitionRecord {
            cluster: cluster_name(names, row.get(19)),
            subject: if is_pod { "pod" } else { "node" },
            uid: if is_pod {
                pod_uid.unwrap_or_default()
            } else {
                row.get::<_, Option<String>>(17).unwrap_or_default()
            },
            namespace: row.get(13),
            pod: row.get(14),
            node: if is_pod { row.get(15) } else { row.get(18) },
            kind: TransitionKind::from_code(i64::from(row.get::<_, i16>(0)))
                .map(|k| k.as_str())
                .unwrap_or("unknown"),
            at: format_time_ms(at_ms),
            at_ms,
            observed_at: format_time_ms(observed_at_ms),
            observed_at_ms,
            phase_before: phase_name(row.get(3)),
            phase_after: phase_name(row.get(4)),
            container: row.get(5),
            reason: row.get(6),
            message: row.get(7),
            exit_code: row.get(8),
            restart_count: row.get(9),
            resource_version: row.get(10),
            inferred: row.get(11),
        };
        count += 1;
        each(record).is_continue()
    })?;
    Ok(count)
}

/// The row's cluster name, when the report reads several clusters.
pub(super) fn cluster_name(names: Option<&ClusterNames>, id: i32) -> Option<String> {
    names.and_then(|n| n.get(&id).cloned())
}

/// Where an open pod's life ends, by its cluster: `open_until_ms` is where the coverage of all
/// the clusters read ends (or now), and each cluster's own recording may have ended earlier
/// (its recorder stopped, or committed last a moment before another's). Over one cluster the
/// two are the same.
fn open_until_per_cluster(
    client: &mut Client,
    clusters: &[i32],
    open_until_ms: i64,
) -> Result<impl Fn(i32) -> i64 + use<>, postgres::Error> {
    let mut ends: HashMap<i32, i64> = HashMap::new();
    if clusters.len() > 1 {
        for r in client.query(
            // As `Coverage` ends a session: a clean stop, else the last commit; an empty
            // session covers nothing.
            "SELECT cluster_id, max(coalesce(stopped_at_ms, heartbeat_at_ms))
             FROM recording_sessions
             WHERE cluster_id = ANY($1) AND coalesce(stopped_at_ms, heartbeat_at_ms) > started_at_ms
             GROUP BY cluster_id",
            &[&clusters],
        )? {
            ends.insert(r.get(0), r.get::<_, i64>(1).min(open_until_ms));
        }
    }
    Ok(move |cluster: i32| ends.get(&cluster).copied().unwrap_or(open_until_ms))
}

/// The pods `filter` selects, oldest first, each handed to `each` until it breaks; an open
/// pod's lifetime ends at `open_until_ms`. Returns how many were handed over.
pub fn pods(
    client: &mut Client,
    clusters: &[i32],
    names: Option<&ClusterNames>,
    filter: &PodFilter,
    open_until_ms: i64,
    each: &mut dyn FnMut(PodSummary) -> ControlFlow<()>,
) -> Result<u64, postgres::Error> {
    let labels = if filter.selector.is_empty() {
        "NULL::text"
    } else {
        "(SELECT labels FROM label_sets WHERE id = p.label_set_id)"
    };
    let mut sql = format!(
        "SELECT namespace, name, uid, node, owner_kind, owner_name, created_at_ms, started_at_ms,
                finished_at_ms, deleted_at_ms, phase, reason, restarts, cpu_request_millis,
                memory_request_bytes, cpu_limit_millis, memory_limit_bytes, {labels}, cluster_id
         FROM pods p"
    );
    let mut w = Conditions::for_clusters("p", clusters);
    if let Some(ns) = &filter.namespace {
        let p = w.param(ns.clone());
        w.push(format!("namespace = {p}"));
    }
    if let Some(node) = &filter.node {
        let p = w.param(node.clone());
        w.push(format!("node = {p}"));
    }
    if let Some(phase) = filter.phase {
        let p = w.param(phase.code() as i16);
        w.push(format!("phase = {p}"));
    }
    if let Some(until) = filter.window.until_ms {
        let p = w.param(until);
        w.push(format!("created_at_ms < {p}"));
    }
    if let Some(owners) = &filter.owners {
        let mut any = vec!["false".to_string()];
        for o in owners {
            let k = w.param(o.kind.clone());
            let n = w.param(o.name.clone());
            let ns = match &o.namespace {
                Some(ns) => format!(" AND namespace = {}", w.param(ns.clone())),
                None => String::new(),
            };
            any.push(format!("(owner_kind = {k} AND owner_name = {n}{ns})"));
        }
        w.push(format!("({})", any.join(" OR ")));
    }
    if let Some(since) = filter.window.since_ms {
        let p = w.param(since);
        w.push(format!("(deleted_at_ms IS NULL OR deleted_at_ms > {p})"));
    }
    let params = w.finish(&mut sql);
    sql.push_str(" ORDER BY created_at_ms, id");
    let open_until = open_until_per_cluster(client, clusters, open_until_ms)?;

    let mut count = 0u64;
    stream(client, &sql, &params, |row| {
        if filter.limit.is_some_and(|limit| count >= limit) {
            return false;
        }
        if !filter.selector.is_empty() {
            let labels: Option<String> = row.get(17);
            if !filter.selector.matches_json(labels.as_deref()) {
                return true;
            }
        }
        let created_at_ms: i64 = row.get(6);
        let started_at_ms: Option<i64> = row.get(7);
        let finished_at_ms: Option<i64> = row.get(8);
        let deleted_at_ms: Option<i64> = row.get(9);
        let summary = PodSummary {
            cluster: cluster_name(names, row.get(18)),
            namespace: row.get(0),
            name: row.get(1),
            uid: row.get(2),
            node: row.get(3),
            owner_kind: row.get(4),
            owner_name: row.get(5),
            created: format_time_ms(created_at_ms),
            created_at_ms,
            started: started_at_ms.map(format_time_ms),
            started_at_ms,
            finished: finished_at_ms.map(format_time_ms),
            finished_at_ms,
            deleted: deleted_at_ms.map(format_time_ms),
            deleted_at_ms,
            lifetime_ms: (deleted_at_ms.unwrap_or_else(|| open_until(row.get(18))) - created_at_ms)
                .max(0),
            open: deleted_at_ms.is_none(),
            phase: Phase::from_code(i64::from(row.get::<_, i16>(10))).as_str(),
            reason: row.get(11),
            restarts: row.get(12),
            cpu_request_millis: row.get(13),
            memory_request_bytes: row.get(14),
            cpu_limit_millis: row.get(15),
            memory_limit_bytes: row.get(16),
        };
        count += 1;
        each(summary).is_continue()
    })?;
    Ok(count)
}

const INCARNATION_COLUMNS: &str =
    "id, uid, namespace, name, node, created_at_ms, deleted_at_ms, phase, reason";

fn incarnation(row: &Row) -> Incarnation {
    let created_at_ms: i64 = row.get(5);
    let deleted_at_ms: Option<i64> = row.get(6);
    Incarnation {
        pod_id: row.get(0),
        uid: row.get(1),
        namespace: row.get(2),
        name: row.get(3),
        node: row.get(4),
        created: format_time_ms(created_at_ms),
        created_at_ms,
        deleted: deleted_at_ms.map(format_time_ms),
        deleted_at_ms,
        phase: Phase::from_code(i64::from(row.get::<_, i16>(7))).as_str(),
        reason: row.get(8),
        transitions: Vec::new(),
        events: Vec::new(),
    }
}

/// The incarnation with this uid (a uid is unique in practice; across clusters, the oldest).
pub fn pod_by_uid(
    client: &mut Client,
    clusters: &[i32],
    uid: &str,
) -> Result<Option<Incarnation>, postgres::Error> {
    let sql = format!(
        "SELECT {INCARNATION_COLUMNS} FROM pods WHERE cluster_id = ANY($1) AND uid = $2
         ORDER BY created_at_ms, id LIMIT 1"
    );
    // Typed parameters: one round trip, no separate prepare (as every read here).
    let clusters = clusters.to_vec();
    Ok(client
        .query_typed(&sql, &[(&clusters, Type::INT4_ARRAY), (&uid, Type::TEXT)])?
        .first()
        .map(incarnation))
}

/// The incarnations of `ns/name`, oldest first.
pub fn pods_named(
    client: &mut Client,
    clusters: &[i32],
    namespace: &str,
    name: &str,
) -> Result<Vec<Incarnation>, postgres::Error> {
    let sql = format!(
        "SELECT {INCARNATION_COLUMNS} FROM pods
         WHERE cluster_id = ANY($1) AND namespace = $2 AND name = $3
         ORDER BY created_at_ms, id"
    );
    let clusters = clusters.to_vec();
    let params: [(&(dyn ToSql + Sync), Type); 3] = [
        (&clusters, Type::INT4_ARRAY),
        (&namespace, Type::TEXT),
        (&name, Type::TEXT),
    ];
    Ok(client
        .query_typed(&sql, &params)?
        .iter()
        .map(incarnation)
        .collect())
}

/// The namespaces that have (or had) a pod with this name, sorted.
pub fn namespaces_with(
    client: &mut Client,
    clusters: &[i32],
    name: &str,
) -> Result<Vec<String>, postgres::Error> {
    // `pods_by_name` leads with (cluster, namespace), and PostgreSQL has no skip scan (SQLite
    // does): a plain `WHERE name = $2` read all of a cluster's pods (150 ms for 1.1M). So walk
    // the namespaces one index probe each (there are few), and probe each for the name.
    let mut found = std::collections::BTreeSet::new();
    for cluster in clusters {
        for r in client.query_typed(
            "WITH RECURSIVE ns (namespace) AS (
                 (SELECT namespace FROM pods WHERE cluster_id = $1 ORDER BY namespace LIMIT 1)
                 UNION ALL
                 SELECT (SELECT p.namespace FROM pods p
                         WHERE p.cluster_id = $1 AND p.namespace > ns.namespace
                         ORDER BY p.namespace LIMIT 1)
                 FROM ns WHERE ns.namespace IS NOT NULL)
             SELECT namespace FROM ns
             WHERE namespace IS NOT NULL
               AND EXISTS (SELECT 1 FROM pods p
                           WHERE p.cluster_id = $1 AND p.namespace = ns.namespace AND p.name = $2)",
            &[(cluster, Type::INT4), (&name, Type::TEXT)],
        )? {
            found.insert(r.get::<_, String>(0));
        }
    }
    Ok(found.into_iter().collect())
}

/// The first usage row or rollup of any node.
pub fn first_usage_ms(
    client: &mut Client,
    clusters: &[i32],
) -> Result<Option<i64>, postgres::Error> {
    // least() skips NULLs.
    Ok(client
        .query_one(
            "SELECT least((SELECT min(at_ms) FROM node_usage WHERE cluster_id = ANY($1)),
                          (SELECT min(bucket_start_ms) FROM node_usage_rollup
                           WHERE cluster_id = ANY($1)))",
            &[&clusters],
        )?
        .get(0))
}

/// The node incarnations alive in `[since, until)`, by name then creation.
pub fn nodes_alive(
    client: &mut Client,
    clusters: &[i32],
    names: Option<&ClusterNames>,
    node: Option<&str>,
    since_ms: i64,
    until_ms: i64,
) -> Result<Vec<NodeInfo>, postgres::Error> {
    Ok(client
        .query(
            "SELECT id, uid, name, created_at_ms, deleted_at_ms, cluster_id FROM nodes
             WHERE cluster_id = ANY($1) AND created_at_ms < $3
               AND (deleted_at_ms IS NULL OR deleted_at_ms > $2)
               AND ($4::text IS NULL OR name = $4)
             ORDER BY name, created_at_ms, id",
            &[&clusters, &since_ms, &until_ms, &node],
        )?
        .iter()
        .map(|r| NodeInfo {
            cluster: cluster_name(names, r.get(5)),
            id: r.get(0),
            uid: r.get(1),
            name: r.get(2),
            created_ms: r.get(3),
            deleted_ms: r.get(4),
        })
        .collect())
}

/// One node's usage rows from the one in force at `since_ms` to `until_ms`, in time order.
///
/// The rows come as one row of eight arrays (a column each): a month-long report of 1000
/// nodes reads millions of rows, and one protocol message per row, each decoded into a `Row`
/// of its own, cost more than the rows themselves. `array_agg` promises no order, so the
/// samples are put in time order here (they nearly always arrive in it, and a sort of sorted
/// input is one pass).
pub fn node_samples(
    client: &mut Client,
    node_id: i64,
    since_ms: i64,
    until_ms: i64,
    each: &mut dyn FnMut(UsageSample),
) -> Result<(), postgres::Error> {
    let row = client.query_one(
        "SELECT array_agg(at_ms), array_agg(cpu_requested_millis),
                array_agg(memory_requested_bytes), array_agg(cpu_limits_millis),
                array_agg(memory_limits_bytes), array_agg(pod_count),
                array_agg(cpu_allocatable_millis), array_agg(memory_allocatable_bytes)
         FROM node_usage
         WHERE node_id = $1
           AND at_ms >= coalesce((SELECT max(at_ms) FROM node_usage
                                  WHERE node_id = $1 AND at_ms <= $2), $2)
           AND at_ms < $3",
        &[&node_id, &since_ms, &until_ms],
    )?;
    let column = |i: usize| -> Result<Vec<i64>, postgres::Error> {
        Ok(row.try_get::<_, Option<Vec<i64>>>(i)?.unwrap_or_default())
    };
    let columns: Vec<Vec<i64>> = (0..8).map(column).collect::<Result<_, _>>()?;
    let mut samples: Vec<UsageSample> = (0..columns[0].len())
        .map(|k| {
            let v = |i: usize| columns[i].get(k).copied().unwrap_or(0);
            UsageSample {
                at_ms: v(0),
                requested: Resources::new(v(1), v(2)),
                limits: Resources::new(v(3), v(4)),
                pod_count: v(5),
                allocatable: Resources::new(v(6), v(7)),
            }
        })
        .collect();
    samples.sort_by_key(|s| s.at_ms);
    samples.into_iter().for_each(each);
    Ok(())
}

/// A `node_usage` row read as `at_ms` and the seven quantities, in table order.
pub fn sample_from_row(r: &Row) -> UsageSample {
    UsageSample {
        at_ms: r.get(0),
        requested: Resources::new(r.get(1), r.get(2)),
        limits: Resources::new(r.get(3), r.get(4)),
        pod_count: r.get(5),
        allocatable: Resources::new(r.get(6), r.get(7)),
    }
}

/// The columns of a rollup, in the order [`bucket_from_row`] reads them.
pub const ROLLUP_COLUMNS: &str = "bucket_start_ms, bucket_ms, covered_ms, pods_avg, pods_peak,
    cpu_requested_avg_millis, cpu_requested_peak_millis, memory_requested_avg_bytes,
    memory_requested_peak_bytes, cpu_limits_avg_millis, cpu_limits_peak_millis,
    memory_limits_avg_bytes, memory_limits_peak_bytes, cpu_allocatable_avg_millis,
    cpu_allocatable_peak_millis, memory_allocatable_avg_bytes, memory_allocatable_peak_bytes,
    cpu_requested_ratio_avg, cpu_requested_ratio_peak, memory_requested_ratio_avg,
    memory_requested_ratio_peak, cpu_limits_ratio_avg, cpu_limits_ratio_peak,
    memory_limits_ratio_avg, memory_limits_ratio_peak";

/// Decodes the [`ROLLUP_COLUMNS`] starting at column `at`.
pub fn bucket_from_row(row: &Row, at: usize) -> BucketUsage {
    let stat = |i: usize| Stat {
        avg: row.get(at + i),
        peak: row.get(at + i + 1),
    };
    let ratio = |i: usize| RatioStat {
        avg: row.get(at + i),
        peak: row.get(at + i + 1),
    };
    let start_ms: i64 = row.get(at);
    let bucket_ms: i64 = row.get(at + 1);
    BucketUsage {
        start_ms,
        end_ms: start_ms + bucket_ms,
        present_ms: row.get(at + 2),
        pods: stat(3),
        cpu_requested: stat(5),
        memory_requested: stat(7),
        cpu_limits: stat(9),
        memory_limits: stat(11),
        cpu_allocatable: stat(13),
        memory_allocatable: stat(15),
        cpu_requested_ratio: ratio(17),
        memory_requested_ratio: ratio(19),
        cpu_limits_ratio: ratio(21),
        memory_limits_ratio: ratio(23),
    }
}

/// One node's rollups overlapping `[since_ms, until_ms)`, in time order.
pub fn node_rollups(
    client: &mut Client,
    node: &NodeInfo,
    since_ms: i64,
    until_ms: i64,
) -> Result<Vec<BucketUsage>, postgres::Error> {
    let sql = format!(
        "SELECT {ROLLUP_COLUMNS} FROM node_usage_rollup
         WHERE node_id = $1 AND bucket_start_ms < $3 AND bucket_start_ms + bucket_ms > $2
         ORDER BY bucket_start_ms"
    );
    Ok(client
        .query(&sql, &[&node.id, &since_ms, &until_ms])?
        .iter()
        .map(|r| bucket_from_row(r, 0))
        .collect())
}

/// Open pods (in `namespace`, or all) that have a compact state.
pub fn open_pods(
    client: &mut Client,
    clusters: &[i32],
    namespace: Option<&str>,
    each: &mut dyn FnMut(OpenPod),
) -> Result<(), postgres::Error> {
    for r in client.query(
        "SELECT p.uid, p.namespace, p.name, l.labels, s.state, p.node, p.owner_kind,
                 p.owner_name, p.created_at_ms, p.finished_at_ms, p.phase, p.cpu_request_millis,
                 p.memory_request_bytes, p.cpu_limit_millis, p.memory_limit_bytes
             FROM pods p JOIN pod_state s ON s.pod_id = p.id
             LEFT JOIN label_sets l ON l.id = p.label_set_id
             WHERE p.cluster_id = ANY($1) AND p.deleted_at_ms IS NULL
               AND ($2::text IS NULL OR p.namespace = $2)",
        &[&clusters, &namespace],
    )? {
        each(OpenPod {
            uid: r.get(0),
            namespace: r.get(1),
            name: r.get(2),
            labels_json: r.get(3),
            state: r.get(4),
            node: r.get(5),
            owner_kind: r.get(6),
            owner_name: r.get(7),
            created_at_ms: r.get(8),
            finished_at_ms: r.get(9),
            phase: Phase::from_code(i64::from(r.get::<_, i16>(10))),
            resources: Effective {
                requests: Resources::new(r.get(11), r.get(12)),
                limits: Resources::new(r.get(13), r.get(14)),
            },
        });
    }
    Ok(())
}

pub fn open_nodes(
    client: &mut Client,
    clusters: &[i32],
    each: &mut dyn FnMut(OpenNode),
) -> Result<(), postgres::Error> {
    for r in client.query(
        "SELECT uid, state FROM nodes WHERE cluster_id = ANY($1) AND deleted_at_ms IS NULL",
        &[&clusters],
    )? {
        each(OpenNode {
            uid: r.get(0),
            state_json: r.get(1),
        });
    }
    Ok(())
}

/// Uids of open pods whose latest scope transition is `left_scope`.
pub fn pods_left_scope(
    client: &mut Client,
    clusters: &[i32],
    namespace: Option<&str>,
) -> Result<Vec<String>, postgres::Error> {
    let left = TransitionKind::LeftScope.code() as i16;
    let entered = TransitionKind::EnteredScope.code() as i16;
    Ok(client
        .query(
            "SELECT p.uid FROM pods p JOIN transitions t ON t.pod_id = p.id
             WHERE p.cluster_id = ANY($1) AND p.deleted_at_ms IS NULL
               AND ($2::text IS NULL OR p.namespace = $2)
               AND t.kind IN ($3, $4)
             GROUP BY p.id, p.uid
             HAVING max(CASE WHEN t.kind = $3 THEN t.id END)
                  > coalesce(max(CASE WHEN t.kind = $4 THEN t.id END), 0)",
            &[&clusters, &namespace, &left, &entered],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}
