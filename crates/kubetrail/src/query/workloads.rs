//! `query workloads` and `export workloads`: one line per workload (a pod's controller chain
//! followed to its top: Deployment, StatefulSet, DaemonSet, CronJob, Job, a bare ReplicaSet,
//! or the pod itself) with what its pods went through in the window: how many pods, restarts,
//! OOMKills, failures, evictions, and the time they spent Pending.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::error::QueryError;
use super::owners::Chains;
use crate::model::owner::workload_of;
use crate::model::report::{PodFilter, TransitionFilter};
use crate::model::time::{Window, format_duration_ms};
use crate::model::{Phase, TransitionKind};
use crate::output::Record;
use crate::store::{Coverage, HistoryReader};

/// One workload's figures over the window, in machine units. The field order is the CSV header.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkloadRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub namespace: String,
    pub kind: String,
    pub name: String,
    /// Pod incarnations alive at some point in the window.
    pub pods: u64,
    /// Container restarts in the window.
    pub restarts: u64,
    /// Containers terminated with reason OOMKilled in the window.
    pub oom_kills: u64,
    /// Pods that failed in the window for a reason other than eviction.
    pub failures: u64,
    /// Pods that failed in the window with reason Evicted.
    pub evictions: u64,
    /// Time the pods spent Pending (created, not yet running) inside the window, summed.
    pub pending_ms: i64,
}

pub const WORKLOAD_FIELDS: &[&str] = &[
    "namespace",
    "kind",
    "name",
    "pods",
    "restarts",
    "oom_kills",
    "failures",
    "evictions",
    "pending_ms",
];

impl Record for WorkloadRecord {
    const FIELDS: &'static [&'static str] = WORKLOAD_FIELDS;
    const TABLE_HEADERS: &'static [&'static str] = &[
        "NAMESPACE",
        "WORKLOAD",
        "PODS",
        "RESTARTS",
        "OOMKILLS",
        "FAILURES",
        "EVICTIONS",
        "PENDING",
    ];

    fn table_cells(&self) -> Vec<String> {
        vec![
            self.namespace.clone(),
            format!("{}/{}", self.kind.to_ascii_lowercase(), self.name),
            self.pods.to_string(),
            self.restarts.to_string(),
            self.oom_kills.to_string(),
            self.failures.to_string(),
            self.evictions.to_string(),
            format_duration_ms(self.pending_ms),
        ]
    }

    fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }
}

/// Which workloads to report.
#[derive(Clone, Debug, Default)]
pub struct WorkloadFilter {
    pub namespace: Option<String>,
    pub window: Window,
}

/// The time inside `[since, until)` of the interval `[from, to)`.
fn overlap(from: i64, to: i64, since: Option<i64>, until: Option<i64>) -> i64 {
    let from = since.map_or(from, |s| from.max(s));
    let to = until.map_or(to, |u| to.min(u));
    (to - from).max(0)
}

/// The workloads the pods in the window belong to, sorted by namespace, kind and name.
pub fn workloads(
    reader: &dyn HistoryReader,
    filter: &WorkloadFilter,
    now_ms: i64,
) -> Result<Vec<WorkloadRecord>, QueryError> {
    let mut read = reader.snapshot()?;
    let open_until_ms = Coverage::from_sessions(read.sessions()?).open_until_ms(now_ms);
    let chains = Chains::load(&mut *read, filter.namespace.as_deref())?;
    // Restarts and OOMKills by pod uid, from the transitions in the window.
    let mut restarts: HashMap<String, u64> = HashMap::new();
    let mut oom_kills: HashMap<String, u64> = HashMap::new();
    let tf = TransitionFilter {
        kinds: vec![
            TransitionKind::ContainerRestarted,
            TransitionKind::ContainerTerminated,
        ],
        namespace: filter.namespace.clone(),
        window: filter.window,
        ..TransitionFilter::default()
    };
    read.transitions(&tf, &mut |t| {
        if t.kind == TransitionKind::ContainerRestarted.as_str() {
            *restarts.entry(t.uid).or_default() += 1;
        } else if t.reason.as_deref() == Some("OOMKilled") {
            *oom_kills.entry(t.uid).or_default() += 1;
        }
        std::ops::ControlFlow::Continue(())
    })?;
    let pf = PodFilter {
        namespace: filter.namespace.clone(),
        window: filter.window,
        ..PodFilter::default()
    };
    let (since, until) = (filter.window.since_ms, filter.window.until_ms);
    let mut by_workload: BTreeMap<(Option<String>, String, String, String), WorkloadRecord> =
        BTreeMap::new();
    read.pods(&pf, open_until_ms, &mut |p| {
        let parent = match (&p.owner_kind, &p.owner_name) {
            (Some(k), Some(n)) => chains.parent(p.cluster.as_deref(), &p.namespace, k, n),
            _ => None,
        };
        let (kind, name) = workload_of(
            p.owner_kind.as_deref(),
            p.owner_name.as_deref(),
            &p.name,
            parent,
        );
        let key = (
            p.cluster.clone(),
            p.namespace.clone(),
            kind.clone(),
            name.clone(),
        );
        let w = by_workload.entry(key).or_insert_with(|| WorkloadRecord {
            cluster: p.cluster.clone(),
            namespace: p.namespace.clone(),
            kind,
            name,
            pods: 0,
            restarts: 0,
            oom_kills: 0,
            failures: 0,
            evictions: 0,
            pending_ms: 0,
        });
        w.pods += 1;
        w.restarts += restarts.get(&p.uid).copied().unwrap_or(0);
        w.oom_kills += oom_kills.get(&p.uid).copied().unwrap_or(0);
        let in_window = |at: i64| since.is_none_or(|s| at >= s) && until.is_none_or(|u| at < u);
        if p.phase == Phase::Failed.as_str() && p.finished_at_ms.is_none_or(in_window) {
            if p.reason.as_deref() == Some("Evicted") {
                w.evictions += 1;
            } else {
                w.failures += 1;
            }
        }
        // Pending from creation until it ran, else until it ended or was deleted (or now).
        let end_of_life = p.deleted_at_ms.unwrap_or(p.created_at_ms + p.lifetime_ms);
        let pending_until = p
            .started_at_ms
            .or(p.finished_at_ms)
            .unwrap_or(end_of_life)
            .min(end_of_life);
        w.pending_ms += overlap(p.created_at_ms, pending_until, since, until);
        std::ops::ControlFlow::Continue(())
    })?;
    Ok(by_workload.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_time_is_clipped_to_the_window() {
        assert_eq!(overlap(0, 100, None, None), 100);
        assert_eq!(overlap(0, 100, Some(40), None), 60);
        assert_eq!(overlap(0, 100, Some(40), Some(50)), 10);
        assert_eq!(overlap(0, 100, Some(200), None), 0);
    }

    #[test]
    fn fields_match_the_serialized_row() {
        let row = WorkloadRecord {
            cluster: None,
            namespace: "shop".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            pods: 3,
            restarts: 2,
            oom_kills: 1,
            failures: 0,
            evictions: 1,
            pending_ms: 61_000,
        };
        assert_eq!(crate::output::json_keys(&row), WORKLOAD_FIELDS);
        assert_eq!(row.table_cells()[1], "deployment/web");
        assert_eq!(row.table_cells()[7], "1m1s");
    }
}
