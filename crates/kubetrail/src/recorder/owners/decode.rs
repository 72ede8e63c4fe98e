//! The slim ReplicaSet (`apps/v1`) and Job (`batch/v1`) types the owners watch decodes: our
//! own `serde` types implementing `kube::Resource` that read only what an owner row keeps
//! (the controller ownerReference, the `pod-template-hash` label, the
//! `deployment.kubernetes.io/revision` annotation, the template's images, the replica counts)
//! and project it straight into an [`OwnerRow`]. Everything else in the object (the whole pod
//! template, env values included) is skipped by the parser and never held.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::NamespaceResourceScope;
use serde::Deserialize;

use crate::model::owner::{OwnerKind, join_images};
use crate::model::time::parse_rfc3339_ms;
use crate::recorder::wire_str::{WireStr, non_empty, owned};
use crate::store::OwnerRow;

/// A ReplicaSet or Job as the recorder sees it: what kube's watcher needs, and the row (None
/// when the object lacks what a row needs: a uid, a namespace, a creation time).
#[derive(Clone, Debug)]
pub struct KubeOwner {
    pub meta: ObjectMeta,
    pub row: Option<OwnerRow>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawLabels<'a> {
    #[serde(rename = "pod-template-hash", borrow)]
    pod_template_hash: Option<WireStr<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawAnnotations<'a> {
    #[serde(rename = "deployment.kubernetes.io/revision", borrow)]
    revision: Option<WireStr<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawOwnerRef<'a> {
    #[serde(borrow)]
    kind: WireStr<'a>,
    #[serde(borrow)]
    name: WireStr<'a>,
    controller: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawMeta<'a> {
    #[serde(borrow)]
    name: Option<WireStr<'a>>,
    #[serde(borrow)]
    namespace: Option<WireStr<'a>>,
    #[serde(borrow)]
    uid: Option<WireStr<'a>>,
    #[serde(borrow)]
    resource_version: Option<WireStr<'a>>,
    #[serde(borrow)]
    creation_timestamp: Option<WireStr<'a>>,
    #[serde(borrow)]
    labels: RawLabels<'a>,
    #[serde(borrow)]
    annotations: RawAnnotations<'a>,
    #[serde(borrow)]
    owner_references: Vec<RawOwnerRef<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawContainer<'a> {
    #[serde(borrow)]
    image: Option<WireStr<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawPodSpec<'a> {
    #[serde(borrow)]
    containers: Vec<RawContainer<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawTemplate<'a> {
    #[serde(borrow)]
    spec: RawPodSpec<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSpec<'a> {
    replicas: Option<i64>,
    parallelism: Option<i64>,
    #[serde(borrow)]
    template: RawTemplate<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawStatus {
    replicas: Option<i64>,
    active: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawOwner<'a> {
    #[serde(borrow)]
    metadata: RawMeta<'a>,
    #[serde(borrow)]
    spec: RawSpec<'a>,
    status: RawStatus,
}

impl RawOwner<'_> {
    fn into_owner(self, kind: OwnerKind, observed_at_ms: i64) -> KubeOwner {
        let row = self.row(kind, observed_at_ms);
        let m = self.metadata;
        KubeOwner {
            meta: ObjectMeta {
                name: owned(&m.name),
                namespace: owned(&m.namespace),
                uid: owned(&m.uid),
                resource_version: owned(&m.resource_version),
                ..ObjectMeta::default()
            },
            row,
        }
    }

    fn row(&self, kind: OwnerKind, observed_at_ms: i64) -> Option<OwnerRow> {
        let m = &self.metadata;
        let uid = non_empty(&m.uid)?;
        let namespace = non_empty(&m.namespace)?;
        let name = non_empty(&m.name)?;
        let created_at_ms = m.creation_timestamp.as_deref().and_then(parse_rfc3339_ms)?;
        // The controller reference names the chain's next link; a bare one has none.
        let controller = m
            .owner_references
            .iter()
            .find(|o| o.controller == Some(true))
            .filter(|o| !o.kind.is_empty() && !o.name.is_empty());
        let images = join_images(
            self.spec
                .template
                .spec
                .containers
                .iter()
                .filter_map(|c| c.image.as_deref()),
        );
        let (spec_replicas, status_replicas) = match kind {
            // An unset spec.replicas means 1 (the API server defaults it; be safe anyway).
            OwnerKind::ReplicaSet => (
                Some(self.spec.replicas.unwrap_or(1)),
                Some(self.status.replicas.unwrap_or(0)),
            ),
            OwnerKind::Job => (self.spec.parallelism, Some(self.status.active.unwrap_or(0))),
        };
        Some(OwnerRow {
            uid,
            kind,
            namespace,
            name,
            controller_kind: controller.map(|o| o.kind.to_string()),
            controller_name: controller.map(|o| o.name.to_string()),
            revision: m
                .annotations
                .revision
                .as_deref()
                .and_then(|r| r.parse().ok()),
            template_hash: non_empty(&m.labels.pod_template_hash),
            images,
            created_at_ms,
            deleted_at_ms: None,
            spec_replicas,
            status_replicas,
            observed_at_ms,
        })
    }
}

/// An `apps/v1` ReplicaSet.
#[derive(Clone, Debug)]
pub struct SlimReplicaSet(pub KubeOwner);

/// A `batch/v1` Job.
#[derive(Clone, Debug)]
pub struct SlimJob(pub KubeOwner);

impl<'de> Deserialize<'de> for SlimReplicaSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let now = crate::model::time::now_ms();
        RawOwner::deserialize(d).map(|r| SlimReplicaSet(r.into_owner(OwnerKind::ReplicaSet, now)))
    }
}

impl<'de> Deserialize<'de> for SlimJob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let now = crate::model::time::now_ms();
        RawOwner::deserialize(d).map(|r| SlimJob(r.into_owner(OwnerKind::Job, now)))
    }
}

/// Both wrappers hand the loop the same [`KubeOwner`].
pub trait AnyOwner: Send + 'static {
    fn into_inner(self) -> KubeOwner;
}

impl AnyOwner for SlimReplicaSet {
    fn into_inner(self) -> KubeOwner {
        self.0
    }
}

impl AnyOwner for SlimJob {
    fn into_inner(self) -> KubeOwner {
        self.0
    }
}

macro_rules! owner_resource {
    ($type:ty, $kind:literal, $group:literal, $plural:literal) => {
        impl kube::Resource for $type {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                $group.into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                "v1".into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.0.meta
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.0.meta
            }
        }
    };
}

owner_resource!(SlimReplicaSet, "ReplicaSet", "apps", "replicasets");
owner_resource!(SlimJob, "Job", "batch", "jobs");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployments_replicaset_keeps_its_chain_revision_hash_images_and_replicas() {
        let rs: SlimReplicaSet = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-5d8f9c7b4", "namespace": "shop", "uid": "rs-1",
                "resourceVersion": "42", "creationTimestamp": "2026-12-01T00:00:00Z",
                "labels": {"app": "web", "pod-template-hash": "5d8f9c7b4"},
                "annotations": {"deployment.kubernetes.io/revision": "3",
                    "deployment.kubernetes.io/desired-replicas": "2"},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "o"},
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                     "uid": "d-1", "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "app", "image": "nginx:1.27", "env": [{"name": "SECRET", "value": "s"}]},
                {"name": "side", "image": "envoy:1.30"}]}}},
            "status": {"replicas": 1, "readyReplicas": 1}
        }))
        .unwrap();
        let row = rs.0.row.unwrap();
        assert_eq!(rs.0.meta.resource_version.as_deref(), Some("42"));
        assert_eq!(row.kind, OwnerKind::ReplicaSet);
        assert_eq!(
            (
                row.controller_kind.as_deref(),
                row.controller_name.as_deref()
            ),
            (Some("Deployment"), Some("web"))
        );
        assert_eq!(row.revision, Some(3));
        assert_eq!(row.template_hash.as_deref(), Some("5d8f9c7b4"));
        assert_eq!(row.images, "nginx:1.27,envoy:1.30");
        assert_eq!((row.spec_replicas, row.status_replicas), (Some(2), Some(1)));
        assert_eq!(row.created_at_ms, 1_796_083_200_000);
    }

    #[test]
    fn a_cronjobs_job_names_its_cronjob_and_a_bare_job_none() {
        let job: SlimJob = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "backup-29100", "namespace": "ops", "uid": "j-1",
                "creationTimestamp": "2026-12-01T00:00:00Z",
                "ownerReferences": [{"kind": "CronJob", "name": "backup", "controller": true}]},
            "spec": {"parallelism": 1, "template": {"spec": {"containers": [{"image": "busybox"}]}}},
            "status": {"active": 1}
        }))
        .unwrap();
        let row = job.0.row.unwrap();
        assert_eq!(row.kind, OwnerKind::Job);
        assert_eq!(row.controller_name.as_deref(), Some("backup"));
        assert_eq!((row.spec_replicas, row.status_replicas), (Some(1), Some(1)));
        assert_eq!(row.revision, None);
        let bare: SlimJob = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "once", "namespace": "ops", "uid": "j-2",
                "creationTimestamp": "2026-12-01T00:00:00Z",
                "ownerReferences": [{"kind": "CronJob", "name": "not-the-controller"}]},
            "spec": {}, "status": {}
        }))
        .unwrap();
        let row = bare.0.row.unwrap();
        assert_eq!(row.controller_kind, None);
        assert_eq!(row.images, "");
    }

    #[test]
    fn an_object_without_uid_or_creation_time_makes_no_row() {
        let rs: SlimReplicaSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x", "namespace": "a"}
        }))
        .unwrap();
        assert!(rs.0.row.is_none());
    }
}
