//! The simulated pods' owners, served read-only and minimal as `apps/v1` Deployments and
//! ReplicaSets and `batch/v1` Jobs, so that `kubectl get deploy|rs|jobs` work and a recorder
//! can follow a pod's chain: each ReplicaSet workload is a ReplicaSet (its uid is the one its
//! pods' ownerReferences name, its `pod-template-hash` theirs) controlled by a Deployment of the
//! ReplicaSet's name without the hash; each Job a pod's ownerReference names is a Job
//! controlled by a CronJob of the workload's name. CronJobs themselves are not served. The
//! replica counts are those of the initial cluster; the simulator does not roll out.

use serde_json::{Value, json};

use crate::clock::format_secs;
use crate::store::{ObjectKey, ResourceKind, SelectableFields, Store};
use crate::workload::Workload;

fn images(w: &Workload) -> Value {
    Value::Array(
        w.template
            .containers
            .iter()
            .map(|c| json!({"name": c.name, "image": c.image}))
            .collect(),
    )
}

/// The Deployment a ReplicaSet workload belongs to: its name without `-HASH`.
pub fn deployment_name(w: &Workload) -> String {
    w.name
        .strip_suffix(&format!("-{}", w.template_hash))
        .unwrap_or(&w.name)
        .to_string()
}

/// A uid for the Deployment, derived from the ReplicaSet's (the scenario's random stream is
/// not drawn from, so the rest of the scenario is the same with or without owners).
fn deployment_uid(w: &Workload) -> String {
    format!("d{}", &w.uid[1..])
}

fn render_replicaset(w: &Workload, replicas: i64, created_ms: i64, rv: u64) -> Vec<u8> {
    let deployment = deployment_name(w);
    serde_json::to_vec(&json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": w.name, "namespace": w.namespace, "uid": w.uid,
            "resourceVersion": rv.to_string(), "creationTimestamp": format_secs(created_ms),
            "labels": {"app.kubernetes.io/name": w.app, "pod-template-hash": w.template_hash},
            "annotations": {"deployment.kubernetes.io/revision": "1",
                "deployment.kubernetes.io/desired-replicas": replicas.to_string()},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                "name": deployment, "uid": deployment_uid(w), "controller": true,
                "blockOwnerDeletion": true}]
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": w.app,
                "pod-template-hash": w.template_hash}},
            "template": {"metadata": {"labels": {"app.kubernetes.io/name": w.app}},
                "spec": {"containers": images(w)}}
        },
        "status": {"replicas": replicas, "readyReplicas": replicas,
            "availableReplicas": replicas, "fullyLabeledReplicas": replicas,
            "observedGeneration": 1}
    }))
    .unwrap_or_default()
}

fn render_deployment(w: &Workload, replicas: i64, created_ms: i64, rv: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "name": deployment_name(w), "namespace": w.namespace, "uid": deployment_uid(w),
            "resourceVersion": rv.to_string(), "creationTimestamp": format_secs(created_ms),
            "generation": 1,
            "annotations": {"deployment.kubernetes.io/revision": "1"}
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/name": w.app}},
            "template": {"metadata": {"labels": {"app.kubernetes.io/name": w.app}},
                "spec": {"containers": images(w)}}
        },
        "status": {"replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas,
            "availableReplicas": replicas, "observedGeneration": 1}
    }))
    .unwrap_or_default()
}

/// Serves a ReplicaSet workload's ReplicaSet and Deployment with `replicas` pods.
pub fn publish_replicaset(store: &Store, w: &Workload, replicas: i64, created_ms: i64) {
    store.put(
        ResourceKind::Deployments,
        ObjectKey::new(&w.namespace, &deployment_name(w)),
        SelectableFields::default(),
        |rv| render_deployment(w, replicas, created_ms, rv),
    );
    store.put(
        ResourceKind::ReplicaSets,
        ObjectKey::new(&w.namespace, &w.name),
        SelectableFields {
            labels: vec![
                ("app.kubernetes.io/name".into(), w.app.clone()),
                ("pod-template-hash".into(), w.template_hash.clone()),
            ],
            ..SelectableFields::default()
        },
        |rv| render_replicaset(w, replicas, created_ms, rv),
    );
}

/// Serves the Job `name` (uid `uid`) of a Job workload, created at `created_ms`.
pub fn publish_job(store: &Store, w: &Workload, name: &str, uid: &str, created_ms: i64) {
    let render = |rv: u64| {
        serde_json::to_vec(&json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {
                "name": name, "namespace": w.namespace, "uid": uid,
                "resourceVersion": rv.to_string(), "creationTimestamp": format_secs(created_ms),
                "labels": {"batch.kubernetes.io/job-name": name, "job-name": name},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                    "name": w.name, "uid": w.uid, "controller": true,
                    "blockOwnerDeletion": true}]
            },
            "spec": {
                "parallelism": 1, "completions": 1, "backoffLimit": 6,
                "template": {"spec": {"restartPolicy": w.template.restart_policy,
                    "containers": images(w)}}
            },
            "status": {"active": 1, "succeeded": 0, "startTime": format_secs(created_ms)}
        }))
        .unwrap_or_default()
    };
    store.put(
        ResourceKind::Jobs,
        ObjectKey::new(&w.namespace, name),
        SelectableFields {
            labels: vec![("job-name".into(), name.to_string())],
            ..SelectableFields::default()
        },
        render,
    );
}
