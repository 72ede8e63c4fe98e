//! Workload owners as kubetrail keeps them: the controller objects between a pod and its
//! workload (ReplicaSets and Jobs, with the Deployment or CronJob above them), their rollout
//! facts (revision, pod-template hash, images) and how their replica counts moved; the
//! workload names a user types (`deployment/frontend`); and the chain rule that turns a pod's
//! direct owner into its workload. Plain data and pure rules, shared by the recorder (which
//! makes the rows), the store (which keeps them) and `query` (which resolves and prints them).

use serde::Serialize;

use super::time::format_time_ms;

/// The controller objects kubetrail watches and keeps: the middle links of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum OwnerKind {
    ReplicaSet,
    Job,
}

impl OwnerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::ReplicaSet => "ReplicaSet",
            OwnerKind::Job => "Job",
        }
    }

    /// The integer a store keeps.
    pub fn code(self) -> i64 {
        match self {
            OwnerKind::ReplicaSet => 1,
            OwnerKind::Job => 2,
        }
    }

    pub fn from_code(code: i64) -> Option<OwnerKind> {
        match code {
            1 => Some(OwnerKind::ReplicaSet),
            2 => Some(OwnerKind::Job),
            _ => None,
        }
    }

    /// The controller kind that owns this kind in a chain (a Deployment owns ReplicaSets, a
    /// CronJob owns Jobs).
    pub fn parent(self) -> WorkloadKind {
        match self {
            OwnerKind::ReplicaSet => WorkloadKind::Deployment,
            OwnerKind::Job => WorkloadKind::CronJob,
        }
    }
}

/// The kinds a workload can be named by (`query pods --owner KIND/NAME`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum WorkloadKind {
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    CronJob,
    Job,
    /// A pod with no owner is its own workload.
    Pod,
}

/// How the known kinds are listed in a usage error.
pub const KNOWN_WORKLOAD_KINDS: &str =
    "deployment, replicaset, statefulset, daemonset, cronjob, job, pod";

impl WorkloadKind {
    /// The Kubernetes kind, as ownerReferences spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::CronJob => "CronJob",
            WorkloadKind::Job => "Job",
            WorkloadKind::Pod => "Pod",
        }
    }

    /// A kind as a user types it: the kind in any case, its plural, or kubectl's short name.
    pub fn parse(s: &str) -> Option<WorkloadKind> {
        let lower = s.to_ascii_lowercase();
        Some(match lower.as_str() {
            "deployment" | "deployments" | "deploy" => WorkloadKind::Deployment,
            "replicaset" | "replicasets" | "rs" => WorkloadKind::ReplicaSet,
            "statefulset" | "statefulsets" | "sts" => WorkloadKind::StatefulSet,
            "daemonset" | "daemonsets" | "ds" => WorkloadKind::DaemonSet,
            "cronjob" | "cronjobs" | "cj" => WorkloadKind::CronJob,
            "job" | "jobs" => WorkloadKind::Job,
            "pod" | "pods" | "po" => WorkloadKind::Pod,
            _ => return None,
        })
    }

    /// The kind an ownerReference names exactly (the chain's own spelling).
    pub fn from_kind(kind: &str) -> Option<WorkloadKind> {
        [
            WorkloadKind::Deployment,
            WorkloadKind::ReplicaSet,
            WorkloadKind::StatefulSet,
            WorkloadKind::DaemonSet,
            WorkloadKind::CronJob,
            WorkloadKind::Job,
            WorkloadKind::Pod,
        ]
        .into_iter()
        .find(|k| k.as_str() == kind)
    }
}

/// A workload as a user names it: `deployment/frontend`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub name: String,
}

impl WorkloadRef {
    /// Parses `KIND/NAME`; an unknown kind is refused with the list of known ones.
    pub fn parse(s: &str) -> Result<WorkloadRef, String> {
        let Some((kind, name)) = s.trim().split_once('/') else {
            return Err(format!(
                "{s:?} is not KIND/NAME, e.g. deployment/frontend (kinds: {KNOWN_WORKLOAD_KINDS})"
            ));
        };
        if name.is_empty() || name.contains('/') {
            return Err(format!(
                "{s:?} is not KIND/NAME: the name is empty or has a '/', e.g. deployment/frontend"
            ));
        }
        match WorkloadKind::parse(kind) {
            Some(kind) => Ok(WorkloadRef {
                kind,
                name: name.to_string(),
            }),
            None => Err(format!(
                "unknown owner kind {kind:?} in {s:?}; known kinds: {KNOWN_WORKLOAD_KINDS}"
            )),
        }
    }
}

impl std::fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}",
            self.kind.as_str().to_ascii_lowercase(),
            self.name
        )
    }
}

/// A pod's direct owner: what the pods table holds (`owner_kind`, `owner_name`), in a
/// namespace (None: any).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DirectOwner {
    pub namespace: Option<String>,
    pub kind: String,
    pub name: String,
}

/// The controller above a ReplicaSet or Job, as the store found it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Parent {
    pub kind: String,
    pub name: String,
}

/// A pod's workload by the chain rule: a ReplicaSet's or Job's controller when one is known
/// (`parent`), else the direct owner itself (StatefulSet, DaemonSet, a bare ReplicaSet or
/// Job, ...), else the pod itself.
pub fn workload_of(
    owner_kind: Option<&str>,
    owner_name: Option<&str>,
    pod_name: &str,
    parent: Option<&Parent>,
) -> (String, String) {
    match (owner_kind, owner_name, parent) {
        (Some(_), Some(_), Some(p)) => (p.kind.clone(), p.name.clone()),
        (Some(k), Some(n), None) => (k.to_string(), n.to_string()),
        _ => ("Pod".to_string(), pod_name.to_string()),
    }
}

/// One ReplicaSet or Job as last seen, with how its replica counts moved
/// ([`ScaleRecord`]), in machine units.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OwnerRecord {
    /// The cluster, when the report reads several (PostgreSQL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub uid: String,
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// The Deployment or CronJob above it, when it has one.
    pub controller_kind: Option<String>,
    pub controller_name: Option<String>,
    /// `deployment.kubernetes.io/revision` (a ReplicaSet of a Deployment).
    pub revision: Option<i64>,
    /// The `pod-template-hash` label (ReplicaSet) or `controller-uid` (Job).
    pub template_hash: Option<String>,
    /// The pod template's container images, in spec order.
    pub images: Vec<String>,
    pub created: String,
    pub created_at_ms: i64,
    pub deleted: Option<String>,
    pub deleted_at_ms: Option<i64>,
    /// Every change of the replica counts (or revision), oldest first.
    pub scales: Vec<ScaleRecord>,
}

/// One change of a ReplicaSet's replicas (a Job's parallelism and active pods), or of its
/// revision (a rollback reuses an old ReplicaSet under a new revision).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScaleRecord {
    pub at: String,
    pub at_ms: i64,
    /// `spec.replicas` (Job: `spec.parallelism`): what the controller asked for.
    pub spec_replicas: Option<i64>,
    /// `status.replicas` (Job: `status.active`): what there was.
    pub status_replicas: Option<i64>,
    pub revision: Option<i64>,
}

impl ScaleRecord {
    pub fn new(at_ms: i64, spec: Option<i64>, status: Option<i64>, rev: Option<i64>) -> Self {
        ScaleRecord {
            at: format_time_ms(at_ms),
            at_ms,
            spec_replicas: spec,
            status_replicas: status,
            revision: rev,
        }
    }
}

impl OwnerRecord {
    /// The Kubernetes-time fields filled in from the machine ones.
    pub fn with_times(mut self) -> Self {
        self.created = format_time_ms(self.created_at_ms);
        self.deleted = self.deleted_at_ms.map(format_time_ms);
        self
    }

    pub fn parent(&self) -> Option<Parent> {
        Some(Parent {
            kind: self.controller_kind.clone()?,
            name: self.controller_name.clone()?,
        })
    }
}

/// Images as a store keeps them: comma-joined in spec order (an image reference has no comma).
pub fn join_images<'a>(images: impl IntoIterator<Item = &'a str>) -> String {
    images.into_iter().collect::<Vec<_>>().join(",")
}

/// The stored `images` text as a list.
pub fn split_images(images: &str) -> Vec<String> {
    images
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Which owners to read.
#[derive(Clone, Debug, Default)]
pub struct OwnerFilter {
    pub namespace: Option<String>,
    /// Owned by this controller (`Deployment`, `frontend`).
    pub controller: Option<(String, String)>,
    /// Only this kind.
    pub kind: Option<OwnerKind>,
    /// Only this name.
    pub name: Option<String>,
    /// Not deleted (for a recorder that resumes).
    pub open_only: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_parse_as_kubectl_spells_them_and_unknown_kinds_list_the_known_ones() {
        let w = WorkloadRef::parse("deployment/frontend").unwrap();
        assert_eq!(
            (w.kind, w.name.as_str()),
            (WorkloadKind::Deployment, "frontend")
        );
        assert_eq!(
            WorkloadRef::parse("STS/db").unwrap().kind,
            WorkloadKind::StatefulSet
        );
        assert_eq!(
            WorkloadRef::parse("cronjobs/x").unwrap().kind,
            WorkloadKind::CronJob
        );
        let err = WorkloadRef::parse("rollout/frontend").unwrap_err();
        assert!(
            err.contains("\"rollout\"") && err.contains(KNOWN_WORKLOAD_KINDS),
            "{err}"
        );
        assert!(WorkloadRef::parse("frontend").is_err());
        assert!(WorkloadRef::parse("deployment/").is_err());
        assert_eq!(w.to_string(), "deployment/frontend");
    }

    #[test]
    fn the_chain_goes_to_the_controller_else_the_owner_else_the_pod() {
        let dep = Parent {
            kind: "Deployment".into(),
            name: "web".into(),
        };
        let rs = (Some("ReplicaSet"), Some("web-abc"));
        assert_eq!(
            workload_of(rs.0, rs.1, "web-abc-1", Some(&dep)),
            ("Deployment".into(), "web".into())
        );
        assert_eq!(
            workload_of(rs.0, rs.1, "web-abc-1", None),
            ("ReplicaSet".into(), "web-abc".into())
        );
        assert_eq!(
            workload_of(Some("StatefulSet"), Some("db"), "db-0", None),
            ("StatefulSet".into(), "db".into())
        );
        assert_eq!(
            workload_of(None, None, "bare", None),
            ("Pod".into(), "bare".into())
        );
    }
}
