//! What a policy would remove, computed without changing anything: `kubetrail prune --dry-run`
//! and the last section of `kubetrail stats`: what a plan says. The store computes it
//! (`Snapshot::plan`), reading only.
//!
//! The age rules are counted exactly (the same cutoffs and conditions as the pass uses). The
//! size budget is an estimate: the bytes a row takes are averaged per table from SQLite's
//! `dbstat` (page bytes of the table and its indexes over its rows), and the oldest ended
//! history is walked forward until the estimate fits. A real pass measures pages after every
//! step instead, so it removes what is needed, not what was estimated.

use serde::Serialize;

use crate::model::bytes::format_size;
use crate::model::time::format_time_short;
use crate::store::FileSize;

/// Rows and page bytes of one table, its indexes included.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableSize {
    pub table: String,
    pub rows: u64,
    /// None when SQLite was built without the `dbstat` table.
    pub bytes: Option<u64>,
}

/// The tables that hold history, in the order reports list them.
pub const HISTORY_TABLES: &[&str] = &[
    "pods",
    "label_sets",
    "pod_state",
    "transitions",
    "pod_resources",
    "nodes",
    "node_capacity",
    "node_usage",
    "node_usage_rollup",
];

/// What the age rules would remove.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AgedOut {
    /// Pods deleted before this (`--max-age`).
    pub cutoff_ms: Option<i64>,
    pub pods: u64,
    pub pod_transitions: u64,
    pub pod_resources: u64,
    /// Deleted nodes whose transitions and capacity rows go (their rows stay while rollups
    /// name them).
    pub deleted_nodes: u64,
    pub node_transitions: u64,
    pub node_capacity: u64,
}

/// What `--raw-usage-age` and `--rollup-age` would do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UsageOutlook {
    /// Raw rows before this are rolled up (aligned to the hour).
    pub raw_horizon_ms: Option<i64>,
    pub raw_rows_rolled_up: u64,
    /// Rollup rows that would be written: one per node and hour covered.
    pub rollups_written: u64,
    /// Rollups ending before this go.
    pub rollup_cutoff_ms: Option<i64>,
    pub rollups_expired: u64,
}

/// What `--max-db-size` would do, estimated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SizeOutlook {
    pub budget_bytes: u64,
    /// The used pages the pass aims for: the budget less room for the write-ahead log.
    pub target_used_bytes: u64,
    pub used_bytes_now: u64,
    /// After the age rules, estimated.
    pub used_bytes_after_age_rules: u64,
    /// Ended history (and raw utilisation, rolled up) older than this would go early; None when
    /// the age rules are enough.
    pub early_cutoff_ms: Option<i64>,
    pub early_pods: u64,
    pub early_raw_rows: u64,
    /// Rollups that would go early (the newest 7 days never do).
    pub early_rollups: u64,
    /// The budget cannot hold what may never be deleted.
    pub cannot_fit: bool,
}

/// Everything a policy would do to a database now.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub now_ms: i64,
    pub policy: String,
    /// The file's size and free pages; None for a store without a file (a server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSize>,
    pub aged_out: AgedOut,
    pub usage: UsageOutlook,
    pub size: Option<SizeOutlook>,
}

impl Plan {
    /// The plan for people, one line per rule.
    pub fn lines(&self) -> Vec<String> {
        let time = |ms: Option<i64>| ms.map_or_else(|| "-".to_string(), format_time_short);
        let mut lines = Vec::new();
        let a = &self.aged_out;
        lines.push(match a.cutoff_ms {
            Some(cutoff) => format!(
                "max-age: pods deleted before {}: {} pods with {} transitions and {} resource rows; \
                 {} nodes deleted before then: {} transitions, {} capacity rows",
                time(Some(cutoff)),
                a.pods,
                a.pod_transitions,
                a.pod_resources,
                a.deleted_nodes,
                a.node_transitions,
                a.node_capacity
            ),
            None => "max-age: off (ended pods are kept forever)".to_string(),
        });
        let u = &self.usage;
        lines.push(match u.raw_horizon_ms {
            Some(horizon) => format!(
                "raw-usage-age: raw node usage before {}: {} rows rolled up into about {} hourly rows",
                time(Some(horizon)),
                u.raw_rows_rolled_up,
                u.rollups_written
            ),
            None => "raw-usage-age: off (raw node usage is kept forever)".to_string(),
        });
        lines.push(match u.rollup_cutoff_ms {
            Some(cutoff) => {
                format!(
                    "rollup-age: hourly rollups ending before {}: {} rows",
                    time(Some(cutoff)),
                    u.rollups_expired
                )
            }
            None => "rollup-age: off (rollups are kept forever)".to_string(),
        });
        match &self.size {
            None => lines.push("max-db-size: none (no size cap)".to_string()),
            Some(s) => {
                let mut line = format!(
                    "max-db-size {}: rows use {} now, about {} after the age rules (aim: {} with \
                     room for the write-ahead log)",
                    format_size(s.budget_bytes),
                    format_size(s.used_bytes_now),
                    format_size(s.used_bytes_after_age_rules),
                    format_size(s.target_used_bytes)
                );
                match s.early_cutoff_ms {
                    None => line.push_str("; that fits, nothing more goes"),
                    Some(cutoff) => line.push_str(&format!(
                        "; it would also remove, estimated: ended history and raw usage (rolled up) \
                         older than {}: {} pods, {} raw usage rows; {} rollup rows",
                        time(Some(cutoff)),
                        s.early_pods,
                        s.early_raw_rows,
                        s.early_rollups
                    )),
                }
                lines.push(line);
                if s.cannot_fit {
                    lines.push(format!(
                        "warning: --max-db-size {} looks too small to hold what is never deleted \
                         (open pods and nodes with their history, the last hour of node usage, the \
                         newest 7 days of rollups); a pass would stop there and warn",
                        format_size(s.budget_bytes)
                    ));
                }
            }
        }
        lines
    }
}

/// How many hourly rollups rolling up a node's raw rows from `first_ms` to the horizon writes
/// (its deletion ends them early).
pub fn rollup_hours(first_ms: i64, deleted_ms: Option<i64>, horizon_ms: i64) -> u64 {
    use crate::model::rollup::{ROLLUP_BUCKET_MS, floor_to_bucket};
    let end = deleted_ms.map_or(horizon_ms, |d| d.min(horizon_ms));
    if first_ms >= end {
        return 0;
    }
    ((floor_to_bucket(end - 1) - floor_to_bucket(first_ms)) / ROLLUP_BUCKET_MS + 1) as u64
}
