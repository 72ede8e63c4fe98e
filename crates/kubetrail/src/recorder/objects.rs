//! The pod and node types the watchers decode: our own `serde` types implementing
//! `kube::Resource`, which read only the fields kubetrail uses and project them straight into the
//! compact [`PodState`] / [`NodeState`]. Env values, annotations, managedFields, volumes and the
//! rest of the spec are skipped by the parser and never held in memory.
//!
//! The Kubernetes API sends times as RFC 3339 strings; they become milliseconds here (the
//! boundary), and k8s-openapi's object types are not used for pods and nodes at all.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ClusterResourceScope, NamespaceResourceScope};
use serde::Deserialize;

use super::maybe::MaybeI64;
use super::state::{
    ContainerResize, ContainerState, NodeState, PodResize, PodState, ResourceQuad, Termination,
    Text, Waiting, is_ordinary_waiting, run_id,
};
use super::wire_str::{WireStr, owned};
use crate::model::quantity::{parse_cpu_millis, parse_memory_bytes, parse_nanos};
use crate::model::resources::{Exact, StatusResources};
use crate::model::time::parse_rfc3339_ms;
use crate::model::{ContainerResources, Phase, PodResourceSpec, resources};
use crate::store::NodeResources;

/// Longest message kept from a pod's status (kubelet messages can be kilobytes of output).
pub const MESSAGE_LIMIT: usize = 256;

/// A pod as the recorder sees it.
#[derive(Clone, Debug)]
pub struct Pod {
    /// name, namespace, uid and resourceVersion only (what kube's watcher needs).
    pub meta: ObjectMeta,
    /// The labels as a JSON object, kept for `query pods -l` (not cached).
    pub labels_json: Option<String>,
    pub state: PodState,
}

/// A node as the recorder sees it.
#[derive(Clone, Debug)]
pub struct Node {
    pub meta: ObjectMeta,
    pub state: NodeState,
}

// ---- raw wire shapes (only the fields we read) ----

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
    deletion_timestamp: Option<WireStr<'a>>,
    deletion_grace_period_seconds: Option<i64>,
    #[serde(borrow)]
    labels: Option<BTreeMap<WireStr<'a>, WireStr<'a>>>,
    #[serde(borrow)]
    owner_references: Vec<RawOwner<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawOwner<'a> {
    #[serde(borrow)]
    kind: WireStr<'a>,
    #[serde(borrow)]
    name: WireStr<'a>,
    controller: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawResourceList<'a> {
    #[serde(borrow)]
    cpu: Option<WireStr<'a>>,
    #[serde(borrow)]
    memory: Option<WireStr<'a>>,
}

impl RawResourceList<'_> {
    /// Exact amounts, so that sums round like Kubernetes' (see model::resources).
    fn to_exact(&self) -> Exact {
        // The API server validates quantities, so a bad one here means a broken server; count
        // it as unset rather than dropping the whole pod.
        let nanos = |q: &Option<WireStr>| q.as_deref().and_then(|q| parse_nanos(q).ok());
        Exact {
            cpu_nanos: nanos(&self.cpu).unwrap_or(0),
            memory_nanos: nanos(&self.memory).unwrap_or(0),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawRequirements<'a> {
    #[serde(borrow)]
    requests: RawResourceList<'a>,
    #[serde(borrow)]
    limits: RawResourceList<'a>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawContainer<'a> {
    #[serde(borrow)]
    name: WireStr<'a>,
    #[serde(borrow)]
    resources: RawRequirements<'a>,
    #[serde(borrow)]
    restart_policy: Option<WireStr<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawPodSpec<'a> {
    #[serde(borrow)]
    node_name: Option<WireStr<'a>>,
    #[serde(borrow)]
    containers: Vec<RawContainer<'a>>,
    #[serde(borrow)]
    init_containers: Vec<RawContainer<'a>>,
    #[serde(borrow)]
    resources: Option<RawRequirements<'a>>,
    #[serde(borrow)]
    overhead: Option<RawResourceList<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawCondition<'a> {
    #[serde(rename = "type", borrow)]
    type_: WireStr<'a>,
    #[serde(borrow)]
    status: WireStr<'a>,
    #[serde(borrow)]
    reason: Option<WireStr<'a>>,
    #[serde(borrow)]
    message: Option<WireStr<'a>>,
    #[serde(borrow)]
    last_transition_time: Option<WireStr<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawTerminated<'a> {
    exit_code: Option<i64>,
    #[serde(borrow)]
    reason: Option<WireStr<'a>>,
    #[serde(borrow)]
    started_at: Option<WireStr<'a>>,
    #[serde(borrow)]
    finished_at: Option<WireStr<'a>>,
    #[serde(rename = "containerID", borrow)]
    container_id: Option<WireStr<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawWaiting<'a> {
    #[serde(borrow)]
    reason: Option<WireStr<'a>>,
    #[serde(borrow)]
    message: Option<WireStr<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawRunning<'a> {
    #[serde(borrow)]
    started_at: Option<WireStr<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawContainerStateWire<'a> {
    #[serde(borrow)]
    waiting: Option<RawWaiting<'a>>,
    #[serde(borrow)]
    running: Option<RawRunning<'a>>,
    #[serde(borrow)]
    terminated: Option<RawTerminated<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawContainerStatus<'a> {
    #[serde(borrow)]
    name: WireStr<'a>,
    restart_count: i64,
    /// The newest container's ID (in back-off, the one that just ended).
    #[serde(rename = "containerID", borrow)]
    container_id: Option<WireStr<'a>>,
    #[serde(borrow)]
    state: RawContainerStateWire<'a>,
    #[serde(borrow)]
    last_state: RawContainerStateWire<'a>,
    /// What the kubelet applied (in-place resize).
    #[serde(borrow)]
    resources: Option<RawRequirements<'a>>,
    #[serde(borrow)]
    allocated_resources: Option<RawResourceList<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawPodStatus<'a> {
    #[serde(borrow)]
    phase: Option<WireStr<'a>>,
    #[serde(borrow)]
    reason: Option<WireStr<'a>>,
    #[serde(borrow)]
    message: Option<WireStr<'a>>,
    #[serde(borrow)]
    start_time: Option<WireStr<'a>>,
    #[serde(borrow)]
    conditions: Vec<RawCondition<'a>>,
    #[serde(borrow)]
    container_statuses: Vec<RawContainerStatus<'a>>,
    #[serde(borrow)]
    init_container_statuses: Vec<RawContainerStatus<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawPod<'a> {
    #[serde(borrow)]
    metadata: RawMeta<'a>,
    #[serde(borrow)]
    spec: RawPodSpec<'a>,
    #[serde(borrow)]
    status: RawPodStatus<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawNodeSpec {
    unschedulable: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawNodeResources<'a> {
    #[serde(borrow)]
    cpu: Option<WireStr<'a>>,
    #[serde(borrow)]
    memory: Option<WireStr<'a>>,
    #[serde(borrow)]
    pods: Option<WireStr<'a>>,
}

impl RawNodeResources<'_> {
    fn to_node_resources(&self) -> NodeResources {
        NodeResources {
            cpu_millis: self
                .cpu
                .as_deref()
                .and_then(|q| parse_cpu_millis(q).ok())
                .unwrap_or(0),
            memory_bytes: self
                .memory
                .as_deref()
                .and_then(|q| parse_memory_bytes(q).ok())
                .unwrap_or(0),
            pods: self
                .pods
                .as_deref()
                .and_then(|q| parse_memory_bytes(q).ok())
                .unwrap_or(0),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawNodeStatus<'a> {
    #[serde(borrow)]
    capacity: RawNodeResources<'a>,
    #[serde(borrow)]
    allocatable: RawNodeResources<'a>,
    #[serde(borrow)]
    conditions: Vec<RawCondition<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawNode<'a> {
    #[serde(borrow)]
    metadata: RawMeta<'a>,
    spec: RawNodeSpec,
    #[serde(borrow)]
    status: RawNodeStatus<'a>,
}

// ---- projection ----

fn ms(s: &Option<WireStr>) -> Option<i64> {
    s.as_deref().and_then(parse_rfc3339_ms)
}

fn text(s: &Option<WireStr>) -> Option<Text> {
    s.as_deref().map(Text::from)
}

fn truncate(s: Option<&str>) -> Option<Text> {
    s.map(|s| {
        if s.len() <= MESSAGE_LIMIT {
            return Text::from(s);
        }
        Text::from(format!("{}…", &s[..s.floor_char_boundary(MESSAGE_LIMIT)]))
    })
}

fn slim_meta(raw: &RawMeta) -> ObjectMeta {
    ObjectMeta {
        name: owned(&raw.name),
        namespace: owned(&raw.namespace),
        uid: owned(&raw.uid),
        resource_version: owned(&raw.resource_version),
        ..Default::default()
    }
}

fn termination(raw: &RawTerminated, run: i64, fallback_id: Option<&str>) -> Termination {
    Termination {
        finished_at_ms: ms(&raw.finished_at),
        exit_code: raw.exit_code,
        reason: text(&raw.reason),
        started_at_ms: ms(&raw.started_at),
        run: run.max(0),
        id: raw
            .container_id
            .as_deref()
            .or(fallback_id)
            .filter(|id| !id.is_empty())
            .map_or(0, run_id),
    }
}

fn container_state(status: &RawContainerStatus, init: bool) -> ContainerState {
    let state = &status.state;
    let started_at_ms = match (&state.terminated, &state.running) {
        (Some(t), _) => ms(&t.started_at),
        (None, Some(r)) => ms(&r.started_at),
        (None, None) => None,
    };
    let current_id = status.container_id.as_deref().filter(|id| !id.is_empty());
    let has_current_run = state.terminated.is_some() || state.running.is_some();
    let waiting = state
        .waiting
        .as_ref()
        .filter(|_| !has_current_run)
        .and_then(|w| w.reason.as_deref().map(|r| (r, w)))
        .filter(|(reason, _)| !is_ordinary_waiting(reason))
        .map(|(reason, w)| {
            Box::new(Waiting {
                reason: Text::from(reason),
                message: truncate(w.message.as_deref()),
            })
        });
    let count = status.restart_count;
    // Which run lastState describes (see ContainerState::last_terminated): in back-off (an
    // unusual waiting reason) the newest container is the one that ended, so its own number;
    // otherwise the run before the current one.
    let last_run = if waiting.is_some() { count } else { count - 1 };
    ContainerState {
        name: Text::from(&*status.name),
        init,
        run_id: current_id.filter(|_| has_current_run).map_or(0, run_id),
        restart_count: count,
        started_at_ms,
        terminated: state
            .terminated
            .as_ref()
            .map(|t| Box::new(termination(t, count, current_id))),
        last_terminated: status
            .last_state
            .terminated
            .as_ref()
            .map(|t| Box::new(termination(t, last_run, None))),
        waiting,
    }
}

/// A container's spec resources, with its status resources when the kubelet reports them.
fn container_resources(c: &RawContainer, status: &RawPodStatus) -> ContainerResources {
    let reported = status
        .container_statuses
        .iter()
        .chain(&status.init_container_statuses)
        .find(|s| s.name == c.name)
        .and_then(|s| Some((s.resources.as_ref()?, s)));
    ContainerResources {
        requests: c.resources.requests.to_exact(),
        limits: c.resources.limits.to_exact(),
        restartable: c.restart_policy.as_deref() == Some("Always"),
        status: reported.map(|(actuated, s)| StatusResources {
            actuated_requests: actuated.requests.to_exact(),
            actuated_limits: actuated.limits.to_exact(),
            allocated_requests: s
                .allocated_resources
                .as_ref()
                .map(RawResourceList::to_exact)
                .unwrap_or_default(),
        }),
    }
}

/// The in-place resize state: each container's desired and applied resources, and the resize
/// conditions. None for a pod that declares and reports no resources.
fn pod_resize(
    spec: &RawPodSpec,
    resources: &PodResourceSpec,
    status: &RawPodStatus,
) -> Option<Arc<PodResize>> {
    let quad = |requests: Exact, limits: Exact| -> ResourceQuad {
        let (r, l) = (requests.round_up(), limits.round_up());
        [r.cpu_millis, r.memory_bytes, l.cpu_millis, l.memory_bytes]
    };
    let containers: Vec<ContainerResize> = spec
        .init_containers
        .iter()
        .zip(&resources.init_containers)
        .chain(spec.containers.iter().zip(&resources.containers))
        .map(|(raw, c)| {
            let desired = quad(c.requests, c.limits);
            let actuated = c
                .status
                .map(|s| quad(s.actuated_requests, s.actuated_limits));
            ContainerResize {
                name: Text::from(&*raw.name),
                desired,
                reported: actuated.is_some(),
                actuated_other: actuated.filter(|a| *a != desired).map(Box::new),
            }
        })
        .collect();
    let pending = status
        .conditions
        .iter()
        .find(|c| c.type_ == "PodResizePending");
    let in_progress = status
        .conditions
        .iter()
        .any(|c| c.type_ == "PodResizeInProgress");
    let declared = containers
        .iter()
        .any(|c| c.reported || c.desired != ResourceQuad::default());
    (declared || pending.is_some() || in_progress).then(|| {
        Arc::new(PodResize {
            containers,
            pending_reason: pending.and_then(|c| text(&c.reason)),
            pending_message: pending.and_then(|c| truncate(c.message.as_deref())),
            in_progress,
        })
    })
}

impl From<RawPod<'_>> for Pod {
    fn from(raw: RawPod<'_>) -> Pod {
        let meta = &raw.metadata;
        let spec = &raw.spec;
        let status = raw.status;
        let condition = |kind: &str| status.conditions.iter().find(|c| c.type_ == kind);
        let scheduled = condition("PodScheduled").filter(|c| c.status == "True");
        let ready = condition("Ready");
        let owner = meta
            .owner_references
            .iter()
            .find(|o| o.controller == Some(true))
            .or_else(|| meta.owner_references.first());
        let resource_spec = PodResourceSpec {
            containers: spec
                .containers
                .iter()
                .map(|c| container_resources(c, &status))
                .collect(),
            init_containers: spec
                .init_containers
                .iter()
                .map(|c| container_resources(c, &status))
                .collect(),
            pod_level: spec
                .resources
                .as_ref()
                .map(|r| (r.requests.to_exact(), r.limits.to_exact())),
            overhead: spec
                .overhead
                .as_ref()
                .map(|o| o.to_exact())
                .unwrap_or_default(),
            // component-helpers looks at the first PodResizePending condition only.
            resize_infeasible: condition("PodResizePending")
                .is_some_and(|c| c.reason.as_deref() == Some("Infeasible")),
        };
        // A node's requested sum counts a pod being resized the way the scheduler does.
        let resources = resources::effective_for_scheduler(&resource_spec);
        let resize = pod_resize(spec, &resource_spec, &status);
        // One collect over both lists, into a slice of exactly their length (the cache keeps
        // it for the pod's life).
        let containers: Box<[ContainerState]> = status
            .init_container_statuses
            .iter()
            .map(|s| container_state(s, true))
            .chain(
                status
                    .container_statuses
                    .iter()
                    .map(|s| container_state(s, false)),
            )
            .collect();
        let mut state = PodState {
            uid: Text::from(meta.uid.as_deref().unwrap_or_default()),
            namespace: Text::from(meta.namespace.as_deref().unwrap_or_default()),
            name: Text::from(meta.name.as_deref().unwrap_or_default()),
            node: spec
                .node_name
                .as_deref()
                .filter(|n| !n.is_empty())
                .map(Text::from),
            phase: status
                .phase
                .as_deref()
                .map(Phase::parse)
                .unwrap_or(Phase::Pending),
            reason: text(&status.reason),
            message: truncate(status.message.as_deref()),
            created_at_ms: ms(&meta.creation_timestamp).unwrap_or(0),
            deletion_at_ms: ms(&meta.deletion_timestamp).into(),
            deletion_grace_secs: meta.deletion_grace_period_seconds.into(),
            scheduled_at_ms: scheduled.and_then(|c| ms(&c.last_transition_time)).into(),
            start_time_ms: ms(&status.start_time).into(),
            ready: ready.is_some_and(|c| c.status == "True"),
            ready_changed_at_ms: ready.and_then(|c| ms(&c.last_transition_time)).into(),
            containers,
            resources,
            owner_kind: owner.map(|o| Text::from(&*o.kind)),
            owner_name: owner.map(|o| Text::from(&*o.name)),
            resource_version: meta
                .resource_version
                .as_deref()
                .and_then(|rv| rv.parse().ok())
                .into(),
            finished_at_ms: MaybeI64::NONE,
            resize_kept: None,
            resize_reported: false,
        };
        state.set_resize(resize);
        let labels_json = meta
            .labels
            .as_ref()
            .and_then(|l| serde_json::to_string(l).ok());
        Pod {
            meta: slim_meta(meta),
            labels_json,
            state,
        }
    }
}

impl From<RawNode<'_>> for Node {
    fn from(raw: RawNode<'_>) -> Node {
        let meta = &raw.metadata;
        let ready = raw.status.conditions.iter().find(|c| c.type_ == "Ready");
        let state = NodeState {
            uid: Text::from(meta.uid.as_deref().unwrap_or_default()),
            name: Text::from(meta.name.as_deref().unwrap_or_default()),
            created_at_ms: ms(&meta.creation_timestamp).unwrap_or(0),
            ready: ready.is_some_and(|c| c.status == "True"),
            ready_changed_at_ms: ready.and_then(|c| ms(&c.last_transition_time)),
            unschedulable: raw.spec.unschedulable,
            capacity: raw.status.capacity.to_node_resources(),
            allocatable: raw.status.allocatable.to_node_resources(),
            resource_version: meta
                .resource_version
                .as_deref()
                .and_then(|rv| rv.parse().ok()),
        };
        Node {
            meta: slim_meta(meta),
            state,
        }
    }
}

impl<'de> Deserialize<'de> for Pod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawPod::deserialize(d).map(Pod::from)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawNode::deserialize(d).map(Node::from)
    }
}

/// `kube::Resource` for a slim core/v1 type with a `meta` field, so kube's `Api` and watcher
/// can list and watch it like the k8s-openapi type it stands in for.
macro_rules! core_v1_resource {
    ($type:ty, $kind:literal, $plural:literal, $scope:ty) => {
        impl kube::Resource for $type {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                "".into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                "v1".into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.meta
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.meta
            }
        }
    };
}

core_v1_resource!(Pod, "Pod", "pods", NamespaceResourceScope);
core_v1_resource!(Node, "Node", "nodes", ClusterResourceScope);

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::Resources;

    /// A pod with a sidecar, a restarted app container, an owner and resources.
    pub(crate) const POD: &str = r#"{
      "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "resourceVersion": "42",
        "creationTimestamp": "2026-11-29T02:00:00Z", "labels": {"app": "web"},
        "annotations": {"big": "ignored"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
          "uid": "o-1", "controller": true}]},
      "spec": {"nodeName": "node-1",
        "initContainers": [{"name": "proxy", "restartPolicy": "Always",
          "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}],
        "containers": [{"name": "app", "image": "x", "env": [{"name": "SECRET", "value": "hunter2"}],
          "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}}]},
      "status": {"phase": "Running", "startTime": "2026-11-29T02:00:05Z",
        "conditions": [
          {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-29T02:00:01Z"},
          {"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-29T02:00:09Z"}],
        "containerStatuses": [{"name": "app", "restartCount": 1, "ready": true,
          "state": {"running": {"startedAt": "2026-11-29T02:00:08Z"}},
          "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
            "startedAt": "2026-11-29T02:00:05Z", "finishedAt": "2026-11-29T02:00:07Z"}}}]}
    }"#;

    #[test]
    fn projects_a_pod_to_its_compact_state() {
        let pod: Pod = serde_json::from_str(POD).unwrap();
        let s = &pod.state;
        assert_eq!((&*s.namespace, &*s.name, &*s.uid), ("shop", "web-1", "u-1"));
        assert_eq!(s.node.as_deref(), Some("node-1"));
        assert_eq!(s.phase, Phase::Running);
        assert_eq!(s.resource_version, Some(42).into());
        assert_eq!(
            s.scheduled_at_ms,
            parse_rfc3339_ms("2026-11-29T02:00:01Z").into()
        );
        assert!(s.ready);
        assert_eq!(s.owner_kind.as_deref(), Some("ReplicaSet"));
        // Sidecar adds to the app sum.
        assert_eq!(
            s.resources.requests,
            Resources::new(300, (1 << 30) + (64 << 20))
        );
        assert_eq!(s.resources.limits, Resources::new(1000, 2 << 30));
        let app = &s.containers[0];
        assert_eq!(app.restart_count, 1);
        assert_eq!(
            app.last_terminated.as_ref().unwrap().reason.as_deref(),
            Some("OOMKilled")
        );
        assert_eq!(pod.labels_json.as_deref(), Some(r#"{"app":"web"}"#));
        assert_eq!(pod.meta.resource_version.as_deref(), Some("42"));
    }

    #[test]
    fn the_projection_never_holds_env_values_or_annotations() {
        let pod: Pod = serde_json::from_str(POD).unwrap();
        let stored = serde_json::to_string(&pod.state).unwrap();
        assert!(
            !stored.contains("hunter2") && !stored.contains("SECRET"),
            "{stored}"
        );
        assert!(!stored.contains("ignored"), "{stored}");
        // And it is compact: what the pods row holds (identity, node, owner, phase, creation,
        // resources) is left out.
        assert!(stored.len() < 300, "{} bytes: {stored}", stored.len());
        for column in ["web-1", "node-1", "web-abc", "ReplicaSet", "Running"] {
            assert!(!stored.contains(column), "{column} in {stored}");
        }
        let back: PodState = serde_json::from_str(&stored).unwrap();
        assert!(back.uid.is_empty() && back.node.is_none() && back.created_at_ms == 0);
        assert_eq!(back.containers, pod.state.containers);
    }

    #[test]
    fn decodes_an_in_place_resize_and_counts_it_like_the_scheduler() {
        let pod: Pod = serde_json::from_str(
            r#"{"metadata": {"uid": "u"},
               "spec": {"nodeName": "n", "containers": [{"name": "app",
                 "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                               "limits": {"cpu": "1", "memory": "1Gi"}}}]},
               "status": {"phase": "Running",
                 "conditions": [{"type": "PodResizePending", "status": "True",
                   "reason": "Deferred", "message": "Node didn't have enough capacity: cpu"}],
                 "containerStatuses": [{"name": "app", "restartCount": 0,
                   "state": {"running": {"startedAt": "2026-11-29T02:00:08Z"}},
                   "allocatedResources": {"cpu": "250m", "memory": "1Gi"},
                   "resources": {"requests": {"cpu": "250m", "memory": "2Gi"},
                                 "limits": {"cpu": "500m", "memory": "2Gi"}}}]}}"#,
        )
        .unwrap();
        let s = &pod.state;
        // Per resource the largest of desired, allocated and actuated.
        assert_eq!(s.resources.requests, Resources::new(500, 2 << 30));
        assert_eq!(s.resources.limits, Resources::new(1000, 2 << 30));
        let rz = s.resize().unwrap();
        assert_eq!(rz.pending_reason.as_deref(), Some("Deferred"));
        assert!(!rz.in_progress);
        let app = &rz.containers[0];
        assert_eq!(&*app.name, "app");
        assert_eq!(app.desired, [500, 1 << 30, 1000, 1 << 30]);
        assert_eq!(app.actuated(), Some([250, 2 << 30, 500, 2 << 30]));
    }

    #[test]
    fn the_resize_state_costs_one_pointer_per_pod_plus_a_small_heap_block() {
        use super::super::state::{ContainerResize, PodResize};
        assert_eq!(std::mem::size_of::<Option<Arc<PodResize>>>(), 8);
        assert!(std::mem::size_of::<PodResize>() <= 64);
        assert!(std::mem::size_of::<ContainerResize>() <= 64);
    }

    #[test]
    fn a_plain_running_pod_keeps_no_resize_state() {
        let pod: Pod = serde_json::from_str(
            r#"{"metadata": {"uid": "u"},
               "spec": {"nodeName": "n", "containers": [{"name": "app",
                 "resources": {"requests": {"cpu": "50m", "memory": "128Mi"},
                               "limits": {"cpu": "100m", "memory": "256Mi"}}}]},
               "status": {"phase": "Running",
                 "containerStatuses": [{"name": "app", "restartCount": 0,
                   "state": {"running": {"startedAt": "2026-11-29T02:00:08Z"}},
                   "allocatedResources": {"cpu": "50m", "memory": "128Mi"},
                   "resources": {"requests": {"cpu": "50m", "memory": "128Mi"},
                                 "limits": {"cpu": "100m", "memory": "256Mi"}}}]}}"#,
        )
        .unwrap();
        let s = &pod.state;
        assert!(s.resize_kept.is_none(), "{:?}", s.resize_kept);
        let rz = s.resize().expect("rebuilt from the effective resources");
        assert_eq!(rz.containers[0].desired, [50, 128 << 20, 100, 256 << 20]);
        assert_eq!(
            rz.containers[0].actuated(),
            Some([50, 128 << 20, 100, 256 << 20])
        );
    }

    #[test]
    fn a_pod_without_resources_keeps_no_resize_state() {
        let pod: Pod = serde_json::from_str(
            r#"{"metadata": {"uid": "u"}, "spec": {"containers": [{"name": "app"}]}}"#,
        )
        .unwrap();
        assert!(pod.state.resize().is_none() && pod.state.resize_kept.is_none());
    }

    #[test]
    fn long_messages_are_truncated() {
        let json = format!(
            r#"{{"metadata":{{"uid":"u"}},"status":{{"phase":"Failed","message":"{}"}}}}"#,
            "é".repeat(1000)
        );
        let pod: Pod = serde_json::from_str(&json).unwrap();
        assert!(pod.state.message.unwrap().len() <= MESSAGE_LIMIT + 3);
    }

    #[test]
    fn projects_a_node() {
        let node: Node = serde_json::from_str(
            r#"{"metadata": {"name": "n1", "uid": "nu", "resourceVersion": "7",
                 "creationTimestamp": "2026-11-29T01:00:00Z"},
               "spec": {"unschedulable": true},
               "status": {"capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                 "allocatable": {"cpu": "3800m", "memory": "15Gi", "pods": "110"},
                 "conditions": [{"type": "Ready", "status": "True",
                   "lastTransitionTime": "2026-11-29T01:00:10Z"}]}}"#,
        )
        .unwrap();
        let s = node.state;
        assert!(s.ready && s.unschedulable);
        assert_eq!(
            s.allocatable,
            NodeResources {
                cpu_millis: 3800,
                memory_bytes: 15 << 30,
                pods: 110
            }
        );
        assert_eq!(s.capacity.cpu_millis, 4000);
    }

    #[test]
    fn a_crash_looping_container_in_back_off_is_run_k_waiting_with_run_k_in_last_state() {
        let pod: Pod = serde_json::from_str(
            r#"{"metadata": {"uid": "u"}, "status": {"phase": "Running",
                "containerStatuses": [{"name": "app", "restartCount": 3,
                  "containerID": "containerd://c3",
                  "state": {"waiting": {"reason": "CrashLoopBackOff",
                    "message": "back-off 40s restarting failed container=app pod=p"}},
                  "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                    "containerID": "containerd://c3",
                    "startedAt": "2026-11-29T02:00:05Z", "finishedAt": "2026-11-29T02:00:07Z"}}},
                 {"name": "side", "restartCount": 0,
                  "state": {"waiting": {"reason": "ContainerCreating"}}}]}}"#,
        )
        .unwrap();
        let app = &pod.state.containers[0];
        let last = app.last_terminated.as_ref().unwrap();
        assert_eq!((last.run, last.id), (3, run_id("containerd://c3")));
        assert_eq!(last.started_at_ms, parse_rfc3339_ms("2026-11-29T02:00:05Z"));
        let waiting = app.waiting.as_ref().unwrap();
        assert_eq!(&*waiting.reason, "CrashLoopBackOff");
        assert!(
            waiting
                .message
                .as_deref()
                .unwrap()
                .starts_with("back-off 40s")
        );
        assert_eq!(app.waiting_for_run(), 4);
        // The ordinary waiting reasons are not kept at all.
        assert!(pod.state.containers[1].waiting.is_none());
    }

    #[test]
    fn a_running_container_numbers_last_state_as_the_run_before() {
        let pod: Pod = serde_json::from_str(POD).unwrap();
        let app = &pod.state.containers[0];
        assert_eq!(app.last_terminated.as_ref().unwrap().run, 0);
    }
}
