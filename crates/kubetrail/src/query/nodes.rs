//! `query nodes` and `export nodes`: per-node utilisation per time bucket.
//!
//! For each node alive in the window (by name, through `nodes_by_name`) one statement reads its
//! `node_usage` rows in primary-key order `(node_id, at_ms)`: from the last row at or before the
//! window's start (the value in force when the window opens, found by one key seek) to the
//! window's end. The rows stream through [`NodeIntegrator`] in one ordered pass; there is no
//! per-bucket SQL and no sort. Nodes are independent, so two threads integrate different nodes
//! while the calling thread renders them in order. Time that retention has rolled up comes from
//! the hourly rollups (`retention::rollup`), merged onto the same grid.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use rusqlite::Connection;
use rusqlite::types::{Value, ValueRef};
use serde::Serialize;

use super::error::QueryError;
use crate::model::Resources;
use crate::model::quantity::{format_cpu_millis, format_memory_bytes};
use crate::model::time::{Window, format_time_ms, format_time_short};
use crate::model::utilisation::{BucketUsage, Grid, NodeIntegrator, UsageSample};
use crate::output::Record;
use crate::retention::rollup;
use crate::store::Coverage;
use crate::store::ReadPool;

/// Which nodes and buckets to report.
#[derive(Clone, Debug)]
pub struct NodeFilter {
    /// One node name (all its incarnations), or every node.
    pub node: Option<String>,
    /// Without `since_ms`, the report starts at the first recorded usage row; without
    /// `until_ms`, it ends now.
    pub window: Window,
    pub step_ms: i64,
}

/// One node over one bucket, in machine units. Averages are time-weighted over `present_ms`
/// and rounded to whole millicores and bytes; ratios are against allocatable (1.0 = full).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeUsageRecord {
    pub node: String,
    pub node_uid: String,
    pub start: String,
    pub start_ms: i64,
    pub end: String,
    pub end_ms: i64,
    pub present_ms: i64,
    pub pods_avg: f64,
    pub pods_peak: i64,
    pub cpu_requested_avg_millis: i64,
    pub cpu_requested_peak_millis: i64,
    pub cpu_requested_avg_ratio: Option<f64>,
    pub cpu_requested_peak_ratio: Option<f64>,
    pub memory_requested_avg_bytes: i64,
    pub memory_requested_peak_bytes: i64,
    pub memory_requested_avg_ratio: Option<f64>,
    pub memory_requested_peak_ratio: Option<f64>,
    pub cpu_limits_avg_millis: i64,
    pub cpu_limits_peak_millis: i64,
    pub cpu_limits_avg_ratio: Option<f64>,
    pub cpu_limits_peak_ratio: Option<f64>,
    pub memory_limits_avg_bytes: i64,
    pub memory_limits_peak_bytes: i64,
    pub memory_limits_avg_ratio: Option<f64>,
    pub memory_limits_peak_ratio: Option<f64>,
    pub cpu_allocatable_avg_millis: i64,
    pub cpu_allocatable_peak_millis: i64,
    pub memory_allocatable_avg_bytes: i64,
    pub memory_allocatable_peak_bytes: i64,
    /// Some of the bucket was recorded with `-n`/`-l`: the sums count only the pods in that
    /// scope, not every pod on the node.
    pub partial: bool,
}

pub const NODE_USAGE_FIELDS: &[&str] = &[
    "node",
    "node_uid",
    "start",
    "start_ms",
    "end",
    "end_ms",
    "present_ms",
    "pods_avg",
    "pods_peak",
    "cpu_requested_avg_millis",
    "cpu_requested_peak_millis",
    "cpu_requested_avg_ratio",
    "cpu_requested_peak_ratio",
    "memory_requested_avg_bytes",
    "memory_requested_peak_bytes",
    "memory_requested_avg_ratio",
    "memory_requested_peak_ratio",
    "cpu_limits_avg_millis",
    "cpu_limits_peak_millis",
    "cpu_limits_avg_ratio",
    "cpu_limits_peak_ratio",
    "memory_limits_avg_bytes",
    "memory_limits_peak_bytes",
    "memory_limits_avg_ratio",
    "memory_limits_peak_ratio",
    "cpu_allocatable_avg_millis",
    "cpu_allocatable_peak_millis",
    "memory_allocatable_avg_bytes",
    "memory_allocatable_peak_bytes",
    "partial",
];

/// Ratios keep 4 decimals (0.01 %), pod averages 3: more is noise, and stable text diffs well.
fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

impl NodeUsageRecord {
    pub fn new(node: &str, node_uid: &str, b: &BucketUsage) -> NodeUsageRecord {
        Self::with_times(
            node,
            node_uid,
            b,
            format_time_ms(b.start_ms),
            format_time_ms(b.end_ms),
        )
    }

    /// [`NodeUsageRecord::new`] with the bucket's bounds already formatted.
    fn with_times(
        node: &str,
        node_uid: &str,
        b: &BucketUsage,
        start: String,
        end: String,
    ) -> NodeUsageRecord {
        let ratio = |r: Option<f64>| r.map(|r| round_to(r, 4));
        let avg = |v: f64| v.round() as i64;
        NodeUsageRecord {
            node: node.to_string(),
            node_uid: node_uid.to_string(),
            start,
            start_ms: b.start_ms,
            end,
            end_ms: b.end_ms,
            present_ms: b.present_ms,
            pods_avg: round_to(b.pods.avg, 3),
            pods_peak: b.pods.peak,
            cpu_requested_avg_millis: avg(b.cpu_requested.avg),
            cpu_requested_peak_millis: b.cpu_requested.peak,
            cpu_requested_avg_ratio: ratio(b.cpu_requested_ratio.avg),
            cpu_requested_peak_ratio: ratio(b.cpu_requested_ratio.peak),
            memory_requested_avg_bytes: avg(b.memory_requested.avg),
            memory_requested_peak_bytes: b.memory_requested.peak,
            memory_requested_avg_ratio: ratio(b.memory_requested_ratio.avg),
            memory_requested_peak_ratio: ratio(b.memory_requested_ratio.peak),
            cpu_limits_avg_millis: avg(b.cpu_limits.avg),
            cpu_limits_peak_millis: b.cpu_limits.peak,
            cpu_limits_avg_ratio: ratio(b.cpu_limits_ratio.avg),
            cpu_limits_peak_ratio: ratio(b.cpu_limits_ratio.peak),
            memory_limits_avg_bytes: avg(b.memory_limits.avg),
            memory_limits_peak_bytes: b.memory_limits.peak,
            memory_limits_avg_ratio: ratio(b.memory_limits_ratio.avg),
            memory_limits_peak_ratio: ratio(b.memory_limits_ratio.peak),
            cpu_allocatable_avg_millis: avg(b.cpu_allocatable.avg),
            cpu_allocatable_peak_millis: b.cpu_allocatable.peak,
            memory_allocatable_avg_bytes: avg(b.memory_allocatable.avg),
            memory_allocatable_peak_bytes: b.memory_allocatable.peak,
            partial: false,
        }
    }
}

fn percent_pair(avg: Option<f64>, peak: Option<f64>) -> String {
    // Half away from zero, like the JSON ratios (format!'s {:.0} would round half to even).
    let pct = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{}%", (r * 100.0).round()));
    format!("{}/{}", pct(avg), pct(peak))
}

impl Record for NodeUsageRecord {
    const FIELDS: &'static [&'static str] = NODE_USAGE_FIELDS;
    const TABLE_HEADERS: &'static [&'static str] = &[
        "NODE",
        "START",
        "PODS",
        "CPU REQ",
        "CPU REQ%",
        "MEM REQ",
        "MEM REQ%",
        "CPU LIM%",
        "MEM LIM%",
        "ALLOCATABLE",
    ];

    fn table_cells(&self) -> Vec<String> {
        vec![
            if self.partial {
                format!("{}~", self.node)
            } else {
                self.node.clone()
            },
            format_time_short(self.start_ms),
            format!("{}/{}", round_to(self.pods_avg, 1), self.pods_peak),
            format!(
                "{}/{}",
                format_cpu_millis(self.cpu_requested_avg_millis),
                format_cpu_millis(self.cpu_requested_peak_millis)
            ),
            percent_pair(self.cpu_requested_avg_ratio, self.cpu_requested_peak_ratio),
            format!(
                "{}/{}",
                format_memory_bytes(self.memory_requested_avg_bytes),
                format_memory_bytes(self.memory_requested_peak_bytes)
            ),
            percent_pair(
                self.memory_requested_avg_ratio,
                self.memory_requested_peak_ratio,
            ),
            percent_pair(self.cpu_limits_avg_ratio, self.cpu_limits_peak_ratio),
            percent_pair(self.memory_limits_avg_ratio, self.memory_limits_peak_ratio),
            format!(
                "{} cpu, {}",
                format_cpu_millis(self.cpu_allocatable_avg_millis),
                format_memory_bytes(self.memory_allocatable_avg_bytes)
            ),
        ]
    }

    fn table_footnote(&self) -> Option<&'static str> {
        Some(
            "values are avg/peak per bucket, time-weighted over the recorded time the node existed; % of allocatable",
        )
    }

    fn table_footnote_extra(&self) -> Option<&'static str> {
        self.partial.then_some(
            "~ partial: recorded with -n/-l, so the sums count only the pods in that scope, not every pod on the node",
        )
    }
}

/// One node incarnation alive in the window.
#[derive(Clone, Debug)]
struct NodeInfo {
    id: i64,
    uid: String,
    name: String,
    created_ms: i64,
    deleted_ms: Option<i64>,
}

/// What a node report read besides its rows: notes for stderr on the resolution (rollups),
/// the coverage (gaps in recording) and partial sums (a scoped recorder).
#[derive(Clone, Debug, Default)]
pub struct NodeReport {
    pub rows: u64,
    pub notes: Vec<String>,
}

/// Reads and integrates node usage, handing each (node, bucket) to `each`, nodes by name and
/// buckets in time order. `now_ms` ends an open window.
///
/// Each connection reads in one transaction: the setup (window, nodes, coverage, resolution)
/// in one, and each worker all of its nodes' raw rows and rollups in one, so a retention step
/// that commits meanwhile can never make a node's hour count twice (as raw rows and again as
/// a rollup) or not at all.
///
/// Nodes are independent, so up to [`WORKERS`] threads integrate different nodes at once, each
/// on its own pooled connection, while this thread renders finished nodes in order. The pool
/// should allow `WORKERS + 1` connections; with fewer, fewer workers run (one is enough).
pub fn for_each_node_bucket(
    pool: &ReadPool,
    filter: &NodeFilter,
    now_ms: i64,
    mut each: impl FnMut(NodeUsageRecord) -> Result<(), QueryError>,
) -> Result<NodeReport, QueryError> {
    let conn = pool.get().map_err(|e| QueryError::Pool(e.to_string()))?;
    let read = conn.unchecked_transaction()?;
    let Some(since_ms) = (match filter.window.since_ms {
        Some(since) => Some(since),
        None => first_usage_ms(&read)?,
    }) else {
        return Ok(NodeReport::default());
    };
    let until_ms = filter.window.until_ms.unwrap_or(now_ms);
    if until_ms <= since_ms {
        return Ok(NodeReport::default());
    }
    let grid = Grid::new(since_ms, until_ms, filter.step_ms).map_err(QueryError::Usage)?;
    let nodes = nodes_in_window(&read, filter.node.as_deref(), since_ms, until_ms)?;
    let coverage = Coverage::read(&read)?;
    let notes: Vec<String> = resolution_note(&read, filter, since_ms)?
        .into_iter()
        .chain(coverage.note(since_ms, until_ms))
        .chain(coverage.partial_note(since_ms, until_ms))
        .collect();
    read.finish()?;
    drop(conn);
    let covered = coverage.intervals();

    // A Cell, because `emit` (which counts) is still borrowed by the parallel path below.
    let count = Cell::new(0u64);
    let labels = TimeLabels::new(&grid);
    let mut emit = |node: &NodeInfo, buckets: Vec<BucketUsage>| -> Result<(), QueryError> {
        for b in &buckets {
            let (start, end) = (labels.get(b.start_ms), labels.get(b.end_ms));
            let mut record = NodeUsageRecord::with_times(&node.name, &node.uid, b, start, end);
            record.partial = coverage.partial_in(b.start_ms, b.end_ms);
            each(record)?;
            count.set(count.get() + 1);
        }
        Ok(())
    };
    let report = |rows: u64| NodeReport {
        rows,
        notes: notes.clone(),
    };
    let workers = WORKERS
        .min(nodes.len())
        .min(pool.max_size().saturating_sub(1) as usize);
    if workers <= 1 {
        let conn = pool.get().map_err(|e| QueryError::Pool(e.to_string()))?;
        let read = conn.unchecked_transaction()?;
        for node in &nodes {
            emit(node, integrate_node(&read, &grid, node, &covered)?)?;
        }
        return Ok(report(count.get()));
    }

    // Workers take the next node from a shared counter and send (index, buckets) back over a
    // bounded channel; this thread emits them in index order. `stop` ends the workers early
    // when the output fails (e.g. a closed pipe).
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| -> Result<NodeReport, QueryError> {
        let (sender, receiver) =
            mpsc::sync_channel::<(usize, Result<Vec<BucketUsage>, QueryError>)>(4 * workers);
        for _ in 0..workers {
            let sender = sender.clone();
            let (next, stop, nodes, grid, covered) = (&next, &stop, &nodes, &grid, &covered);
            scope.spawn(move || {
                let conn = match pool.get() {
                    Ok(conn) => conn,
                    Err(e) => {
                        let _ = sender.send((usize::MAX, Err(QueryError::Pool(e.to_string()))));
                        return;
                    }
                };
                // One read transaction for all of this worker's nodes.
                let read = match conn.unchecked_transaction() {
                    Ok(read) => read,
                    Err(e) => {
                        let _ = sender.send((usize::MAX, Err(e.into())));
                        return;
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(node) = nodes.get(index) else { break };
                    if sender
                        .send((index, integrate_node(&read, grid, node, covered)))
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
        drop(sender);
        let mut pending: BTreeMap<usize, Vec<BucketUsage>> = BTreeMap::new();
        let mut wanted = 0;
        let result = (|| {
            for (index, buckets) in receiver.iter() {
                pending.insert(index, buckets?);
                while let Some(buckets) = pending.remove(&wanted) {
                    emit(&nodes[wanted], buckets)?;
                    wanted += 1;
                }
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        drop(receiver);
        result.map(|()| report(count.get()))
    })
}

/// Says which resolution answered which part of the window: retention replaces raw usage older
/// than `--raw-usage-age` by hourly rollups, so a finer `--step` there shows hours.
fn resolution_note(
    conn: &Connection,
    filter: &NodeFilter,
    since_ms: i64,
) -> Result<Option<String>, QueryError> {
    let Some(rolled_up_until) = rollup::rolled_up_until_ms(conn)? else {
        return Ok(None);
    };
    if since_ms >= rolled_up_until {
        return Ok(None);
    }
    let finer = if filter.step_ms < rollup::ROLLUP_BUCKET_MS {
        " (a step under 1h shows whole hours there)"
    } else {
        ""
    };
    Ok(Some(format!(
        "resolution: hourly rollups before {}{finer}; the exact recorded step function from then on",
        format_time_ms(rolled_up_until)
    )))
}

/// The RFC 3339 form of every bucket boundary of the grid, formatted once: every node has the
/// same boundaries, and formatting them per row was a third of a month-long report's time.
struct TimeLabels {
    grid: Grid,
    first_index: i64,
    /// (boundary, its label), in time order: the window's start, each step, the window's end.
    labels: Vec<(i64, String)>,
}

impl TimeLabels {
    fn new(grid: &Grid) -> TimeLabels {
        let first_index = grid.since_ms.div_euclid(grid.step_ms);
        let labels = (0..=grid.bucket_count())
            .map(|k| {
                let at = if k == 0 {
                    grid.since_ms
                } else {
                    ((first_index + k) * grid.step_ms).min(grid.until_ms)
                };
                (at, format_time_ms(at))
            })
            .collect();
        TimeLabels {
            grid: *grid,
            first_index,
            labels,
        }
    }

    /// The label of a bucket boundary (any other time is formatted on the spot).
    fn get(&self, at_ms: i64) -> String {
        let k = if at_ms <= self.grid.since_ms {
            0
        } else if at_ms >= self.grid.until_ms {
            self.labels.len() - 1
        } else {
            (at_ms.div_euclid(self.grid.step_ms) - self.first_index) as usize
        };
        match self.labels.get(k) {
            Some((at, label)) if *at == at_ms => label.clone(),
            _ => format_time_ms(at_ms),
        }
    }
}

/// How many threads integrate nodes at once. Two matches the 2-core machines the budget is set
/// on; more only adds contention there.
pub const WORKERS: usize = 2;

/// Where the report starts without `--since`: the first usage row or rollup of any node (one
/// primary-key seek per node and table, so no index on `at_ms` is needed).
fn first_usage_ms(conn: &Connection) -> Result<Option<i64>, QueryError> {
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
fn nodes_in_window(
    conn: &Connection,
    node: Option<&str>,
    since_ms: i64,
    until_ms: i64,
) -> Result<Vec<NodeInfo>, QueryError> {
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
            id: r.get(0)?,
            uid: r.get(1)?,
            name: r.get(2)?,
            created_ms: r.get(3)?,
            deleted_ms: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One node's buckets: hourly rollups for the time retention has rolled up, then the exact
/// integration of the raw rows.
///
/// Retention replaces raw rows older than its horizon by hourly rollups and keeps a keyframe at
/// the horizon, so the two ranges never overlap: rollups end where the node's first raw row
/// starts. Rollups are placed on the grid (merged when the step is a multiple of an hour, kept
/// hourly when it is finer), and a grid bucket that holds both is merged the same way.
fn integrate_node(
    conn: &Connection,
    grid: &Grid,
    node: &NodeInfo,
    covered: &Option<Arc<[(i64, i64)]>>,
) -> Result<Vec<BucketUsage>, QueryError> {
    // Raw rows and rollups from one snapshot even for a caller without a transaction: a
    // savepoint opens one (or nests inside the caller's).
    conn.execute_batch("SAVEPOINT node_read")?;
    let result = integrate_node_in_snapshot(conn, grid, node, covered);
    conn.execute_batch("RELEASE node_read")?;
    result
}

fn integrate_node_in_snapshot(
    conn: &Connection,
    grid: &Grid,
    node: &NodeInfo,
    covered: &Option<Arc<[(i64, i64)]>>,
) -> Result<Vec<BucketUsage>, QueryError> {
    let raw = integrate_raw(conn, grid, node, covered)?;
    let mut rollups = Vec::new();
    rollup::for_each_rollup(
        conn,
        Some(&node.name),
        grid.since_ms,
        grid.until_ms,
        |row| {
            if row.node_id == node.id {
                rollups.push(row.usage);
            }
            Ok(())
        },
    )?;
    if rollups.is_empty() {
        return Ok(raw);
    }
    let mut merged: Vec<BucketUsage> = Vec::with_capacity(rollups.len() + raw.len());
    for bucket in rollup::regrid(grid, rollups).into_iter().chain(raw) {
        match merged.last_mut() {
            Some(last) if last.start_ms == bucket.start_ms => rollup::merge(last, &bucket),
            _ => merged.push(bucket),
        }
    }
    Ok(merged)
}

/// One node's raw buckets: its usage rows from the one in force at the window's start (found by
/// a primary-key seek) to the window's end, in primary-key order, through the integrator.
fn integrate_raw(
    conn: &Connection,
    grid: &Grid,
    node: &NodeInfo,
    covered: &Option<Arc<[(i64, i64)]>>,
) -> Result<Vec<BucketUsage>, QueryError> {
    let mut stmt = conn.prepare_cached(
        "SELECT at_ms, cpu_requested_millis, memory_requested_bytes, cpu_limits_millis,
                memory_limits_bytes, pod_count, cpu_allocatable_millis, memory_allocatable_bytes
         FROM node_usage
         WHERE node_id = ?1
           AND at_ms >= coalesce((SELECT max(at_ms) FROM node_usage WHERE node_id = ?1 AND at_ms <= ?2), ?2)
           AND at_ms < ?3
         ORDER BY at_ms",
    )?;
    let mut rows = stmt.query(rusqlite::params![node.id, grid.since_ms, grid.until_ms])?;
    let mut integrator =
        NodeIntegrator::new(*grid, node.created_ms, node.deleted_ms).covering(covered.clone());
    let mut out = Vec::new();
    let mut emit = |bucket| out.push(bucket);
    while let Some(row) = rows.next()? {
        // The hot loop of the report: read the STRICT INTEGER columns without Row::get's
        // per-call bounds and conversion checks.
        let int = |i: usize| match row.get_ref_unwrap(i) {
            ValueRef::Integer(v) => v,
            _ => 0,
        };
        let sample = UsageSample {
            at_ms: int(0),
            requested: Resources::new(int(1), int(2)),
            limits: Resources::new(int(3), int(4)),
            pod_count: int(5),
            allocatable: Resources::new(int(6), int(7)),
        };
        integrator.push(sample, &mut emit);
    }
    integrator.finish(&mut emit);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::utilisation::{RatioStat, Stat};

    #[test]
    fn fields_match_the_serialized_row() {
        let bucket = BucketUsage {
            start_ms: 0,
            end_ms: 3_600_000,
            present_ms: 3_600_000,
            pods: Stat { avg: 2.5, peak: 3 },
            cpu_requested: Stat {
                avg: 1499.6,
                peak: 2000,
            },
            memory_requested: Stat {
                avg: 1_610_612_736.0,
                peak: 1 << 31,
            },
            cpu_requested_ratio: RatioStat {
                avg: Some(0.374_96),
                peak: Some(0.5),
            },
            ..Default::default()
        };
        let row = NodeUsageRecord::new("n1", "uid-1", &bucket);
        assert_eq!(crate::output::json_keys(&row), NODE_USAGE_FIELDS);
        assert_eq!(row.cpu_requested_avg_millis, 1500);
        assert_eq!(row.cpu_requested_avg_ratio, Some(0.375));
        let cells = row.table_cells();
        assert_eq!(
            cells[2..5],
            [
                "2.5/3".to_string(),
                "1500m/2".to_string(),
                "38%/50%".to_string()
            ]
        );
        assert_eq!(cells[5], "1.5Gi/2Gi");
    }

    /// A retention step that commits while a node is being read (after its raw rows, before its
    /// rollups) must not make an hour count twice. The hook: in this test's file `node_usage` is
    /// a view over the real table that calls a function, which commits the step (raw rows of the
    /// first hour replaced by its rollup) from another connection at the first raw row read.
    #[test]
    fn a_retention_step_committing_mid_report_never_counts_an_hour_twice() {
        use crate::store::{NodeResources, NodeRow, NodeUsageRow, write_batch};
        const H: i64 = 3_600_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut handle = crate::store::open_for_writing(&path).unwrap();
        let mut batch = crate::store::Batch::default();
        batch.nodes.push(NodeRow {
            uid: "n".into(),
            name: "n".into(),
            created_at_ms: -H,
            deleted_at_ms: None,
            capacity: NodeResources::default(),
            allocatable: NodeResources::default(),
            state_json: "{}".into(),
        });
        for (at_ms, cpu) in [(0, 100), (H / 2, 300), (H, 500), (3 * H / 2, 700)] {
            batch.node_usage.push(NodeUsageRow {
                node_uid: "n".into(),
                at_ms,
                requested: Resources::new(cpu, 0),
                limits: Resources::default(),
                pod_count: 1,
                allocatable: Resources::new(1000, 0),
                keyframe: false,
            });
        }
        write_batch(&mut handle.conn, &batch).unwrap();
        handle
            .conn
            .execute_batch(
                "ALTER TABLE node_usage RENAME TO node_usage_real;
                 CREATE VIEW node_usage AS
                     SELECT * FROM node_usage_real WHERE retention_hook() = 0;",
            )
            .unwrap();
        drop(handle);

        let reader =
            Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
                .unwrap();
        // Fn, not FnMut: the step runs once, from whichever call comes first.
        let writer = std::sync::Mutex::new(Some(Connection::open(&path).unwrap()));
        reader
            .create_scalar_function(
                "retention_hook",
                0,
                rusqlite::functions::FunctionFlags::SQLITE_UTF8,
                move |_| {
                    if let Some(w) = writer.lock().unwrap().take() {
                        // What retention's roll-up step commits for the first hour.
                        w.execute_batch(
                            "BEGIN IMMEDIATE;
                             DELETE FROM node_usage_real WHERE at_ms < 3600000;
                             INSERT INTO node_usage_rollup VALUES (1, 0, 3600000, 3600000,
                                 1, 1, 200, 300, 0, 0, 0, 0, 0, 0, 1000, 1000, 0, 0,
                                 0.2, 0.3, NULL, NULL, 0, 0, NULL, NULL);
                             COMMIT;",
                        )
                        .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))?;
                    }
                    Ok(0)
                },
            )
            .unwrap();
        let node = NodeInfo {
            id: 1,
            uid: "n".into(),
            name: "n".into(),
            created_ms: -H,
            deleted_ms: None,
        };
        let grid = Grid::new(0, 2 * H, H).unwrap();
        let buckets = integrate_node(&reader, &grid, &node, &None).unwrap();
        let present: Vec<(i64, i64)> = buckets.iter().map(|b| (b.start_ms, b.present_ms)).collect();
        assert_eq!(
            present,
            vec![(0, H), (H, H)],
            "one snapshot, each hour once"
        );
        assert_eq!(buckets[0].cpu_requested.avg, 200.0);
    }
}
