//! What a policy would remove, computed without changing anything: `kubetrail prune --dry-run`
//! and the last section of `kubetrail stats`. The store computes the plan (`Snapshot::plan`,
//! reading only) and holds its types (`store::plan`); this module says it for people
//! ([`Plan::lines`]). What is exact in a plan and what is estimated: see `store::plan`.

use crate::model::bytes::format_size;
use crate::model::time::format_time_short;
pub use crate::store::plan::{
    AgedOut, HISTORY_TABLES, Plan, SizeOutlook, TableSize, UsageOutlook, rollup_hours,
};

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
        if let Some(cutoff) = a.cutoff_ms {
            lines.push(format!(
                "max-age: events last seen before {}: {} events with {} occurrences",
                time(Some(cutoff)),
                a.events,
                a.event_occurrences
            ));
            lines.push(format!(
                "max-age: ReplicaSets and Jobs deleted before {} that no kept pod names: {} with {} scale rows",
                time(Some(cutoff)),
                a.owners,
                a.owner_scales
            ));
        }
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
