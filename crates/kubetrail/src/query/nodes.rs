//! `query nodes` and `export nodes`: per-node utilisation per time bucket.
//!
//! For each node alive in the window (by name, through `nodes_by_name`) one statement reads its
//! `node_usage` rows in primary-key order `(node_id, at_ms)`: from the last row at or before the
//! window's start (the value in force when the window opens, found by one key seek) to the
//! window's end. The rows stream through [`NodeIntegrator`] in one ordered pass; there is no
//! per-bucket SQL and no sort. Nodes are independent, so two threads integrate different nodes
//! while the calling thread renders them in order. Time that retention has rolled up comes from
//! the hourly rollups (`model::rollup`), merged onto the same grid. Measured usage (the metrics
//! API's samples) comes beside the requests, per bucket ([`super::node_used`]).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use serde::Serialize;

use super::error::QueryError;
use super::node_used::{Used, UsedByBucket};
use crate::model::quantity::{format_cpu_millis, format_memory_bytes};
use crate::model::rollup;
use crate::model::time::{Window, format_time_ms, format_time_short};
use crate::model::utilisation::{BucketUsage, Grid, NodeIntegrator};
use crate::output::Record;
use crate::store::{Coverage, HistoryReader, NodeInfo, Snapshot};

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
    /// The node's cluster, only when the report reads more than one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
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
    /// Measured usage (metrics API) in the bucket: how many samples, their average and peak,
    /// and those over the bucket's average allocatable. None where nothing was measured.
    pub used_samples: i64,
    pub cpu_used_avg_millis: Option<i64>,
    pub cpu_used_peak_millis: Option<i64>,
    pub cpu_used_avg_ratio: Option<f64>,
    pub cpu_used_peak_ratio: Option<f64>,
    pub memory_used_avg_bytes: Option<i64>,
    pub memory_used_peak_bytes: Option<i64>,
    pub memory_used_avg_ratio: Option<f64>,
    pub memory_used_peak_ratio: Option<f64>,
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
    "used_samples",
    "cpu_used_avg_millis",
    "cpu_used_peak_millis",
    "cpu_used_avg_ratio",
    "cpu_used_peak_ratio",
    "memory_used_avg_bytes",
    "memory_used_peak_bytes",
    "memory_used_avg_ratio",
    "memory_used_peak_ratio",
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
            cluster: None,
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
            used_samples: 0,
            cpu_used_avg_millis: None,
            cpu_used_peak_millis: None,
            cpu_used_avg_ratio: None,
            cpu_used_peak_ratio: None,
            memory_used_avg_bytes: None,
            memory_used_peak_bytes: None,
            memory_used_avg_ratio: None,
            memory_used_peak_ratio: None,
            partial: false,
        }
    }

    /// Fills in the measured usage of the bucket, against its average allocatable.
    pub fn set_used(&mut self, used: &Used) {
        let ratio =
            |v: Option<f64>, of: i64| v.filter(|_| of > 0).map(|v| round_to(v / of as f64, 4));
        let (cpu_avg, mem_avg) = (used.cpu_avg(), used.memory_avg());
        let (cpu_of, mem_of) = (
            self.cpu_allocatable_avg_millis,
            self.memory_allocatable_avg_bytes,
        );
        self.used_samples = used.samples;
        self.cpu_used_avg_millis = cpu_avg.map(|v| v.round() as i64);
        self.cpu_used_peak_millis = cpu_avg.map(|_| used.cpu_max);
        self.cpu_used_avg_ratio = ratio(cpu_avg, cpu_of);
        self.cpu_used_peak_ratio = ratio(cpu_avg.map(|_| used.cpu_max as f64), cpu_of);
        self.memory_used_avg_bytes = mem_avg.map(|v| v.round() as i64);
        self.memory_used_peak_bytes = mem_avg.map(|_| used.memory_max);
        self.memory_used_avg_ratio = ratio(mem_avg, mem_of);
        self.memory_used_peak_ratio = ratio(mem_avg.map(|_| used.memory_max as f64), mem_of);
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
        "CPU USED%",
        "MEM USED%",
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
            percent_pair(self.cpu_used_avg_ratio, self.cpu_used_peak_ratio),
            percent_pair(self.memory_used_avg_ratio, self.memory_used_peak_ratio),
            format!(
                "{} cpu, {}",
                format_cpu_millis(self.cpu_allocatable_avg_millis),
                format_memory_bytes(self.memory_allocatable_avg_bytes)
            ),
        ]
    }

    fn table_footnote(&self) -> Option<&'static str> {
        Some(
            "values are avg/peak per bucket, time-weighted over the recorded time the node existed; % of allocatable; USED: measured (metrics API), avg/peak of the samples",
        )
    }

    fn table_footnote_extra(&self) -> Option<&'static str> {
        self.partial.then_some(
            "~ partial: recorded with -n/-l, so the sums count only the pods in that scope, not every pod on the node",
        )
    }

    fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }
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
    reader: &dyn HistoryReader,
    filter: &NodeFilter,
    now_ms: i64,
    mut each: impl FnMut(NodeUsageRecord) -> Result<(), QueryError>,
) -> Result<NodeReport, QueryError> {
    let mut read = reader.snapshot()?;
    let Some(since_ms) = (match filter.window.since_ms {
        Some(since) => Some(since),
        None => read.first_usage_ms()?,
    }) else {
        return Ok(NodeReport::default());
    };
    let until_ms = filter.window.until_ms.unwrap_or(now_ms);
    if until_ms <= since_ms {
        return Ok(NodeReport::default());
    }
    let grid = Grid::new(since_ms, until_ms, filter.step_ms).map_err(QueryError::Usage)?;
    let nodes = read.nodes_alive(filter.node.as_deref(), since_ms, until_ms)?;
    let coverage = Coverage::from_sessions(read.sessions()?);
    let notes: Vec<String> = resolution_note(read.rolled_up_until_ms()?, filter, since_ms)
        .into_iter()
        .chain(coverage.note(since_ms, until_ms))
        .chain(coverage.partial_note(since_ms, until_ms))
        .collect();
    let used = read_used(&mut *read, &grid, filter.node.as_deref())?;
    drop(read);
    let covered = coverage.intervals();

    // A Cell, because `emit` (which counts) is still borrowed by the parallel path below.
    let count = Cell::new(0u64);
    let labels = TimeLabels::new(&grid);
    let mut emit = |node: &NodeInfo, buckets: Vec<BucketUsage>| -> Result<(), QueryError> {
        for b in &buckets {
            let (start, end) = (labels.get(b.start_ms), labels.get(b.end_ms));
            let mut record = NodeUsageRecord::with_times(&node.name, &node.uid, b, start, end);
            record.cluster.clone_from(&node.cluster);
            record.partial = coverage.partial_in(b.start_ms, b.end_ms);
            if let Some(u) = used.get(&node.uid, b.start_ms) {
                record.set_used(u);
            }
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
        .min(reader.max_snapshots().saturating_sub(1));
    if workers <= 1 {
        let mut read = reader.snapshot()?;
        for node in &nodes {
            emit(node, integrate_node(&mut *read, &grid, node, &covered)?)?;
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
                // One read transaction for all of this worker's nodes.
                let mut read = match reader.snapshot() {
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
                        .send((index, integrate_node(&mut *read, grid, node, covered)))
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

/// The nodes' measured usage in the window (of `node` only, when named), raw samples and
/// hourly rollups from the same snapshot.
fn read_used(
    read: &mut dyn Snapshot,
    grid: &Grid,
    node: Option<&str>,
) -> Result<UsedByBucket, QueryError> {
    let mut samples = Vec::new();
    read.node_samples_measured(node, Some(grid.since_ms), Some(grid.until_ms), &mut |s| {
        samples.push(s)
    })?;
    let mut hours = Vec::new();
    // Only the window's hours: a year of rollups of 1000 nodes is millions of rows.
    read.node_hours(node, grid.since_ms, grid.until_ms, &mut |h| hours.push(h))?;
    Ok(UsedByBucket::collect(grid, samples, hours))
}

/// Says which resolution answered which part of the window: retention replaces raw usage older
/// than `--raw-usage-age` by hourly rollups, so a finer `--step` there shows hours.
fn resolution_note(
    rolled_up_until_ms: Option<i64>,
    filter: &NodeFilter,
    since_ms: i64,
) -> Option<String> {
    let rolled_up_until = rolled_up_until_ms?;
    if since_ms >= rolled_up_until {
        return None;
    }
    let finer = if filter.step_ms < rollup::ROLLUP_BUCKET_MS {
        " (a step under 1h shows whole hours there)"
    } else {
        ""
    };
    Some(format!(
        "resolution: hourly rollups before {}{finer}; the exact recorded step function from then on",
        format_time_ms(rolled_up_until)
    ))
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

/// One node's buckets: hourly rollups for the time retention has rolled up, then the exact
/// integration of the raw rows, all from the caller's snapshot (so a retention step that
/// commits meanwhile can never make an hour count twice, or not at all).
///
/// Retention replaces raw rows older than its horizon by hourly rollups and keeps a keyframe at
/// the horizon, so the two ranges never overlap: rollups end where the node's first raw row
/// starts. Rollups are placed on the grid (merged when the step is a multiple of an hour, kept
/// hourly when it is finer), and a grid bucket that holds both is merged the same way.
fn integrate_node(
    read: &mut dyn Snapshot,
    grid: &Grid,
    node: &NodeInfo,
    covered: &Option<Arc<[(i64, i64)]>>,
) -> Result<Vec<BucketUsage>, QueryError> {
    let raw = integrate_raw(read, grid, node, covered)?;
    let rollups = read.node_rollups(node, grid.since_ms, grid.until_ms)?;
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

/// One node's raw buckets: its usage samples from the one in force at the window's start to
/// the window's end, in time order, through the integrator.
fn integrate_raw(
    read: &mut dyn Snapshot,
    grid: &Grid,
    node: &NodeInfo,
    covered: &Option<Arc<[(i64, i64)]>>,
) -> Result<Vec<BucketUsage>, QueryError> {
    let mut integrator =
        NodeIntegrator::new(*grid, node.created_ms, node.deleted_ms).covering(covered.clone());
    let mut out = Vec::new();
    let mut emit = |bucket| out.push(bucket);
    read.node_samples(node.id, grid.since_ms, grid.until_ms, &mut |sample| {
        integrator.push(sample, &mut emit)
    })?;
    integrator.finish(&mut emit);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Resources;
    use crate::model::utilisation::{RatioStat, Stat};
    use rusqlite::Connection;

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
        use crate::store::sqlite::write_batch;
        use crate::store::{NodeResources, NodeRow, NodeUsageRow};
        const H: i64 = 3_600_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut handle = crate::store::sqlite::open_for_writing(&path).unwrap();
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
            cluster: None,
            id: 1,
            uid: "n".into(),
            name: "n".into(),
            created_ms: -H,
            deleted_ms: None,
        };
        let grid = Grid::new(0, 2 * H, H).unwrap();
        let mut snapshot = crate::store::sqlite::SqliteSnapshot::begin(&reader).unwrap();
        let buckets = integrate_node(&mut snapshot, &grid, &node, &None).unwrap();
        let present: Vec<(i64, i64)> = buckets.iter().map(|b| (b.start_ms, b.present_ms)).collect();
        assert_eq!(
            present,
            vec![(0, H), (H, H)],
            "one snapshot, each hour once"
        );
        assert_eq!(buckets[0].cpu_requested.avg, 200.0);
    }
}
