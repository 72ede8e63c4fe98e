//! `query history KIND/NAME`: a workload's pods over time with its rollout boundaries, one
//! line per change: each ReplicaSet (or Job) created, scaled up or down (with its revision,
//! pod-template hash and images) and deleted, and each pod created, started, finished and
//! deleted, in time order.

use serde::Serialize;

use super::error::QueryError;
use super::owners::{direct_owners, links_of};
use crate::model::owner::{OwnerRecord, WorkloadRef};
use crate::model::report::{PodFilter, PodSummary};
use crate::model::time::{Window, format_time_ms, format_time_short};
use crate::output::Record;
use crate::store::{Coverage, HistoryReader};

/// One line of a workload's history, in machine units. The field order is the CSV header.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RolloutLine {
    pub at: String,
    pub at_ms: i64,
    pub namespace: String,
    /// `ReplicaSet`, `Job` or `Pod`.
    pub kind: &'static str,
    pub name: String,
    /// created, scaled_up, scaled_down, replicas (the actual count moved), revision (a
    /// rollback re-used the ReplicaSet), deleted; for pods created, started, succeeded,
    /// failed, deleted.
    pub change: &'static str,
    pub revision: Option<i64>,
    pub template_hash: Option<String>,
    pub images: Option<String>,
    pub spec_replicas: Option<i64>,
    pub status_replicas: Option<i64>,
    /// For a pod: its owner (the ReplicaSet or Job), and the final phase's reason.
    pub owner: Option<String>,
    pub reason: Option<String>,
}

pub const ROLLOUT_FIELDS: &[&str] = &[
    "at",
    "at_ms",
    "namespace",
    "kind",
    "name",
    "change",
    "revision",
    "template_hash",
    "images",
    "spec_replicas",
    "status_replicas",
    "owner",
    "reason",
];

impl Record for RolloutLine {
    const FIELDS: &'static [&'static str] = ROLLOUT_FIELDS;
    const TABLE_HEADERS: &'static [&'static str] =
        &["AT", "NAMESPACE", "OBJECT", "CHANGE", "DETAIL"];

    fn table_cells(&self) -> Vec<String> {
        let mut detail = Vec::new();
        if let Some(r) = self.revision {
            detail.push(format!("revision={r}"));
        }
        if let Some(h) = &self.template_hash {
            detail.push(format!("hash={h}"));
        }
        if let Some(i) = &self.images {
            detail.push(format!("images={i}"));
        }
        if let (Some(spec), Some(status)) = (self.spec_replicas, self.status_replicas) {
            detail.push(format!("replicas={status}/{spec}"));
        }
        if let Some(o) = &self.owner {
            detail.push(format!("owner={o}"));
        }
        if let Some(r) = &self.reason {
            detail.push(format!("reason={r}"));
        }
        vec![
            format_time_short(self.at_ms),
            self.namespace.clone(),
            format!("{}/{}", self.kind.to_ascii_lowercase(), self.name),
            self.change.to_string(),
            detail.join(" "),
        ]
    }
}

fn owner_lines(o: &OwnerRecord, out: &mut Vec<RolloutLine>) {
    let images = o.images.join(",");
    let line = |at_ms: i64, change: &'static str| RolloutLine {
        at: format_time_ms(at_ms),
        at_ms,
        namespace: o.namespace.clone(),
        kind: o.kind,
        name: o.name.clone(),
        change,
        revision: o.revision,
        template_hash: o.template_hash.clone(),
        images: Some(images.clone()),
        spec_replicas: None,
        status_replicas: None,
        owner: None,
        reason: None,
    };
    out.push(line(o.created_at_ms, "created"));
    let mut before: Option<&crate::model::owner::ScaleRecord> = None;
    for s in &o.scales {
        let change = match before {
            None => "replicas",
            Some(b) if s.revision != b.revision => "revision",
            Some(b) => match (b.spec_replicas, s.spec_replicas) {
                (Some(x), Some(y)) if y > x => "scaled_up",
                (Some(x), Some(y)) if y < x => "scaled_down",
                _ => "replicas",
            },
        };
        let mut l = line(s.at_ms, change);
        l.revision = s.revision;
        l.spec_replicas = s.spec_replicas;
        l.status_replicas = s.status_replicas;
        out.push(l);
        before = Some(s);
    }
    if let Some(at) = o.deleted_at_ms {
        out.push(line(at, "deleted"));
    }
}

fn pod_lines(p: &PodSummary, out: &mut Vec<RolloutLine>) {
    let owner = match (&p.owner_kind, &p.owner_name) {
        (Some(k), Some(n)) => Some(format!("{}/{n}", k.to_ascii_lowercase())),
        _ => None,
    };
    let line = |at_ms: i64, change: &'static str| RolloutLine {
        at: format_time_ms(at_ms),
        at_ms,
        namespace: p.namespace.clone(),
        kind: "Pod",
        name: p.name.clone(),
        change,
        revision: None,
        template_hash: None,
        images: None,
        spec_replicas: None,
        status_replicas: None,
        owner: owner.clone(),
        reason: None,
    };
    out.push(line(p.created_at_ms, "created"));
    if let Some(at) = p.started_at_ms {
        out.push(line(at, "started"));
    }
    if let Some(at) = p.finished_at_ms {
        let change = if p.phase == "Failed" {
            "failed"
        } else {
            "succeeded"
        };
        let mut l = line(at, change);
        l.reason = p.reason.clone();
        out.push(l);
    }
    if let Some(at) = p.deleted_at_ms {
        out.push(line(at, "deleted"));
    }
}

/// The workload's lines in time order (inside `window`), or NotFound when nothing of it was
/// recorded.
pub fn rollout(
    reader: &dyn HistoryReader,
    workload: &WorkloadRef,
    namespace: Option<&str>,
    window: Window,
    now_ms: i64,
) -> Result<Vec<RolloutLine>, QueryError> {
    let mut read = reader.snapshot()?;
    let open_until_ms = Coverage::from_sessions(read.sessions()?).open_until_ms(now_ms);
    let links = links_of(&mut *read, workload, namespace)?;
    let owners = direct_owners(&mut *read, workload, namespace)?;
    let bare = owners.is_none();
    let filter = PodFilter {
        namespace: namespace.map(str::to_string),
        owners,
        ..PodFilter::default()
    };
    let mut lines = Vec::new();
    let mut pods = 0;
    read.pods(&filter, open_until_ms, &mut |p| {
        if !bare || (p.owner_kind.is_none() && p.name == workload.name) {
            pods += 1;
            pod_lines(&p, &mut lines);
        }
        std::ops::ControlFlow::Continue(())
    })?;
    if links.is_empty() && pods == 0 {
        return Err(QueryError::NotFound(format!(
            "nothing recorded of {workload}{}: no ReplicaSet, Job or pod of it (owners are \
             recorded unless `record --no-owners`)",
            namespace
                .map(|n| format!(" in namespace {n}"))
                .unwrap_or_default()
        )));
    }
    for o in &links {
        owner_lines(o, &mut lines);
    }
    lines.retain(|l| {
        window.since_ms.is_none_or(|s| l.at_ms >= s) && window.until_ms.is_none_or(|u| l.at_ms < u)
    });
    // Stable: at equal times a ReplicaSet's line comes before its pods' (pushed later, but
    // ranked first).
    lines.sort_by_key(|l| (l.at_ms, l.kind == "Pod"));
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::owner::ScaleRecord;

    #[test]
    fn scale_rows_say_up_down_or_revision() {
        let o = OwnerRecord {
            cluster: None,
            uid: "u".into(),
            kind: "ReplicaSet",
            namespace: "shop".into(),
            name: "web-1".into(),
            controller_kind: Some("Deployment".into()),
            controller_name: Some("web".into()),
            revision: Some(3),
            template_hash: Some("1".into()),
            images: vec!["nginx:1".into()],
            created: String::new(),
            created_at_ms: 0,
            deleted: None,
            deleted_at_ms: Some(50),
            scales: vec![
                ScaleRecord::new(1, Some(2), Some(0), Some(1)),
                ScaleRecord::new(2, Some(2), Some(2), Some(1)),
                ScaleRecord::new(10, Some(0), Some(2), Some(1)),
                ScaleRecord::new(20, Some(3), Some(0), Some(1)),
                ScaleRecord::new(30, Some(3), Some(0), Some(3)),
            ],
        };
        let mut lines = Vec::new();
        owner_lines(&o, &mut lines);
        let changes: Vec<&str> = lines.iter().map(|l| l.change).collect();
        assert_eq!(
            changes,
            [
                "created",
                "replicas",
                "replicas",
                "scaled_down",
                "scaled_up",
                "revision",
                "deleted"
            ]
        );
        assert_eq!(crate::output::json_keys(&lines[0]), ROLLOUT_FIELDS);
    }
}
