//! Renders the cluster state as Kubernetes API objects (v1 Pod, Node, Namespace JSON), shaped
//! like a real apiserver's output: metav1.Time at second precision, quantities in canonical form,
//! the usual defaulted fields, and ownerReferences, conditions and container statuses filled the
//! way a kubelet and the controllers fill them.
//!
//! Serialisation goes through borrowed `serde` structs rather than `serde_json::Value` or
//! k8s-openapi types: building 100k pods at start-up and thousands of updates per second is then
//! a straight write with no intermediate allocations.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::clock::format_secs;
use super::cluster::{
    Condition, ContainerSpec, ContainerState, ContainerStatus, NodeSim, PodSim, Terminated,
    container_id,
};
use kubetrail::model::Resources;
use kubetrail::model::quantity::format_cpu_millis;

/// A quantity string that round-trips exactly: the simulator only generates memory in whole
/// Ki, so nothing is rounded (unlike a display format).
pub fn memory_quantity(bytes: i64) -> String {
    const GI: i64 = 1 << 30;
    const MI: i64 = 1 << 20;
    const KI: i64 = 1 << 10;
    if bytes != 0 && bytes % GI == 0 {
        format!("{}Gi", bytes / GI)
    } else if bytes != 0 && bytes % MI == 0 {
        format!("{}Mi", bytes / MI)
    } else if bytes != 0 && bytes % KI == 0 {
        format!("{}Ki", bytes / KI)
    } else {
        bytes.to_string()
    }
}

/// Serialises `[(k, v)]` as a JSON object.
struct Pairs<'a>(&'a [(String, String)]);

impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// `{"cpu": .., "memory": ..}` with unset (0) values left out.
struct ResourceList(Resources);

impl Serialize for ResourceList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if self.0.cpu_millis != 0 {
            map.serialize_entry("cpu", &format_cpu_millis(self.0.cpu_millis))?;
        }
        if self.0.memory_bytes != 0 {
            map.serialize_entry("memory", &memory_quantity(self.0.memory_bytes))?;
        }
        map.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OwnerReference<'a> {
    api_version: &'a str,
    kind: &'a str,
    name: &'a str,
    uid: &'a str,
    controller: bool,
    block_owner_deletion: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectMeta<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    generate_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    uid: &'a str,
    resource_version: String,
    creation_timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    deletion_timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deletion_grace_period_seconds: Option<i64>,
    labels: Pairs<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<Pairs<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner_references: Option<[OwnerReference<'a>; 1]>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    finalizers: &'a [&'static str],
}

#[derive(Serialize)]
struct EnvVar<'a> {
    name: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerPort {
    container_port: u16,
    protocol: &'static str,
}

#[derive(Serialize)]
struct ResourceRequirements {
    requests: ResourceList,
    limits: ResourceList,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Container<'a> {
    name: &'a str,
    image: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env: Vec<EnvVar<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<ContainerPort>,
    resources: ResourceRequirements,
    #[serde(skip_serializing_if = "Option::is_none")]
    restart_policy: Option<&'static str>,
    termination_message_path: &'static str,
    termination_message_policy: &'static str,
    image_pull_policy: &'static str,
}

fn container(c: &ContainerSpec) -> Container<'_> {
    Container {
        name: &c.name,
        image: c.image,
        env: c
            .env
            .iter()
            .map(|(name, value)| EnvVar { name, value })
            .collect(),
        ports: c
            .port
            .map(|p| ContainerPort {
                container_port: p,
                protocol: "TCP",
            })
            .into_iter()
            .collect(),
        resources: ResourceRequirements {
            requests: ResourceList(c.requests),
            limits: ResourceList(c.limits),
        },
        restart_policy: c.sidecar.then_some("Always"),
        termination_message_path: "/dev/termination-log",
        termination_message_policy: "File",
        image_pull_policy: "IfNotPresent",
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Toleration {
    key: &'static str,
    operator: &'static str,
    effect: &'static str,
    toleration_seconds: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    init_containers: Vec<Container<'a>>,
    containers: Vec<Container<'a>>,
    restart_policy: &'a str,
    termination_grace_period_seconds: i64,
    dns_policy: &'static str,
    service_account_name: &'static str,
    service_account: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    node_name: Option<&'a str>,
    security_context: Empty,
    scheduler_name: &'static str,
    tolerations: [Toleration; 2],
    priority: i32,
    enable_service_links: bool,
    preemption_policy: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime_class_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    overhead: Option<ResourceList>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<ResourceRequirements>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PodCondition<'a> {
    #[serde(rename = "type")]
    type_: &'static str,
    status: &'static str,
    last_probe_time: Option<()>,
    last_transition_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

fn condition<'a>(type_: &'static str, c: &'a Condition) -> PodCondition<'a> {
    PodCondition {
        type_,
        status: if c.status { "True" } else { "False" },
        last_probe_time: None,
        last_transition_time: format_secs(c.at_ms),
        reason: c.reason,
        message: c.message.as_deref(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TerminatedJson {
    exit_code: i32,
    reason: &'static str,
    started_at: String,
    finished_at: String,
    #[serde(rename = "containerID")]
    container_id: String,
}

fn terminated(t: &Terminated) -> TerminatedJson {
    TerminatedJson {
        exit_code: t.exit_code,
        reason: t.reason,
        started_at: format_secs(t.started_ms),
        finished_at: format_secs(t.finished_ms),
        container_id: t.container_id.clone(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunningJson {
    started_at: String,
}

#[derive(Serialize)]
struct WaitingJson<'a> {
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StateJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting: Option<WaitingJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    running: Option<RunningJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    terminated: Option<TerminatedJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStatusJson<'a> {
    name: &'a str,
    state: StateJson<'a>,
    last_state: StateJson<'a>,
    ready: bool,
    restart_count: u32,
    image: &'a str,
    #[serde(rename = "imageID")]
    image_id: String,
    #[serde(rename = "containerID", skip_serializing_if = "Option::is_none")]
    container_id: Option<String>,
    started: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<ResourceRequirements>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allocated_resources: Option<ResourceList>,
}

fn container_status<'a>(
    spec: &'a ContainerSpec,
    status: &'a ContainerStatus,
    with_resources: bool,
) -> ContainerStatusJson<'a> {
    let state = match &status.state {
        ContainerState::Waiting { reason, message } => StateJson {
            waiting: Some(WaitingJson {
                reason,
                message: message.as_deref(),
            }),
            running: None,
            terminated: None,
        },
        ContainerState::Running { started_ms } => StateJson {
            waiting: None,
            running: Some(RunningJson {
                started_at: format_secs(*started_ms),
            }),
            terminated: None,
        },
        ContainerState::Terminated(t) => StateJson {
            waiting: None,
            running: None,
            terminated: Some(terminated(t)),
        },
    };
    ContainerStatusJson {
        name: &spec.name,
        state,
        last_state: StateJson {
            waiting: None,
            running: None,
            terminated: status.last.as_ref().map(terminated),
        },
        ready: status.ready,
        restart_count: status.restart_count,
        image: spec.image,
        image_id: format!(
            "{}@sha256:{}",
            spec.image.split(':').next().unwrap_or(spec.image),
            &container_id(spec.image, "", 0)[13..]
        ),
        started: status.is_running(),
        container_id: status.container_id.clone(),
        resources: with_resources.then(|| {
            let (requests, limits) = status.actuated.unwrap_or((spec.requests, spec.limits));
            ResourceRequirements {
                requests: ResourceList(requests),
                limits: ResourceList(limits),
            }
        }),
        // The kubelet allocates a feasible resize at once; the runtime actuates it later.
        allocated_resources: with_resources.then_some(ResourceList(spec.requests)),
    }
}

#[derive(Serialize)]
struct PodIp<'a> {
    ip: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PodStatus<'a> {
    phase: &'static str,
    conditions: Vec<PodCondition<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(rename = "hostIP", skip_serializing_if = "Option::is_none")]
    host_ip: Option<&'a str>,
    #[serde(rename = "podIP", skip_serializing_if = "Option::is_none")]
    pod_ip: Option<&'a str>,
    #[serde(rename = "podIPs", skip_serializing_if = "Option::is_none")]
    pod_ips: Option<[PodIp<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    init_container_statuses: Vec<ContainerStatusJson<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    container_statuses: Vec<ContainerStatusJson<'a>>,
    qos_class: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pod<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: ObjectMeta<'a>,
    spec: PodSpec<'a>,
    status: PodStatus<'a>,
}

fn qos_class(pod: &PodSim) -> &'static str {
    let all: Vec<&ContainerSpec> = pod.containers.iter().chain(&pod.init_containers).collect();
    let any_set = all
        .iter()
        .any(|c| c.requests != Resources::default() || c.limits != Resources::default());
    if !any_set {
        return "BestEffort";
    }
    let guaranteed = pod
        .containers
        .iter()
        .all(|c| c.limits.cpu_millis != 0 && c.limits.memory_bytes != 0 && c.requests == c.limits);
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// The pod's JSON at resourceVersion `rv`.
pub fn render_pod(pod: &PodSim, rv: u64) -> Vec<u8> {
    let owner = &pod.owner;
    let mut conditions = Vec::with_capacity(4);
    if let Some(c) = &pod.initialized {
        conditions.push(condition("Initialized", c));
    }
    if let Some(c) = &pod.ready {
        conditions.push(condition("Ready", c));
    }
    if let Some(c) = &pod.containers_ready {
        conditions.push(condition("ContainersReady", c));
    }
    if let Some(c) = &pod.scheduled {
        conditions.push(condition("PodScheduled", c));
    }
    if let Some(c) = &pod.resizing {
        conditions.push(condition("PodResizeInProgress", c));
    }
    // The kubelet reports container resources once the containers run.
    let resized = pod.phase != super::cluster::Phase::Pending;
    let object = Pod {
        api_version: "v1",
        kind: "Pod",
        metadata: ObjectMeta {
            name: &pod.name,
            generate_name: Some(format!("{}-", owner.name)),
            namespace: Some(&pod.namespace),
            uid: &pod.uid,
            resource_version: rv.to_string(),
            creation_timestamp: format_secs(pod.created_ms),
            deletion_timestamp: pod
                .deletion
                .map(|d| format_secs(d.requested_ms + d.grace_secs * 1000)),
            deletion_grace_period_seconds: pod.deletion.map(|d| d.grace_secs),
            labels: Pairs(&pod.labels),
            annotations: None,
            owner_references: Some([OwnerReference {
                api_version: owner.api_version,
                kind: owner.kind,
                name: &owner.name,
                uid: &owner.uid,
                controller: true,
                block_owner_deletion: true,
            }]),
            finalizers: &pod.finalizers,
        },
        spec: PodSpec {
            init_containers: pod.init_containers.iter().map(container).collect(),
            containers: pod.containers.iter().map(container).collect(),
            restart_policy: pod.restart_policy,
            termination_grace_period_seconds: pod.grace_secs,
            dns_policy: "ClusterFirst",
            service_account_name: "default",
            service_account: "default",
            node_name: pod.node_name.as_deref(),
            security_context: Empty {},
            scheduler_name: "default-scheduler",
            tolerations: [
                Toleration {
                    key: "node.kubernetes.io/not-ready",
                    operator: "Exists",
                    effect: "NoExecute",
                    toleration_seconds: 300,
                },
                Toleration {
                    key: "node.kubernetes.io/unreachable",
                    operator: "Exists",
                    effect: "NoExecute",
                    toleration_seconds: 300,
                },
            ],
            priority: 0,
            enable_service_links: true,
            preemption_policy: "PreemptLowerPriority",
            runtime_class_name: pod.runtime_class,
            overhead: pod.overhead.map(ResourceList),
            resources: pod
                .pod_resources
                .map(|(requests, limits)| ResourceRequirements {
                    requests: ResourceList(requests),
                    limits: ResourceList(limits),
                }),
        },
        status: PodStatus {
            phase: pod.phase.as_str(),
            conditions,
            reason: pod.reason,
            message: pod.message.as_deref(),
            host_ip: pod.host_ip.as_deref(),
            pod_ip: pod.pod_ip.as_deref(),
            pod_ips: pod.pod_ip.as_deref().map(|ip| [PodIp { ip }]),
            start_time: pod.start_ms.map(format_secs),
            init_container_statuses: pod
                .init_containers
                .iter()
                .zip(&pod.init_statuses)
                .map(|(spec, status)| container_status(spec, status, false))
                .collect(),
            container_statuses: pod
                .containers
                .iter()
                .zip(&pod.statuses)
                .map(|(spec, status)| container_status(spec, status, resized))
                .collect(),
            qos_class: qos_class(pod),
        },
    };
    serde_json::to_vec(&object).unwrap_or_default()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Taint {
    key: &'static str,
    effect: &'static str,
    time_added: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeSpec<'a> {
    #[serde(rename = "podCIDR")]
    pod_cidr: &'a str,
    #[serde(rename = "podCIDRs")]
    pod_cidrs: [&'a str; 1],
    #[serde(rename = "providerID")]
    provider_id: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    unschedulable: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    taints: Vec<Taint>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeCondition<'a> {
    #[serde(rename = "type")]
    type_: &'static str,
    status: &'static str,
    last_heartbeat_time: String,
    last_transition_time: String,
    reason: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct Address<'a> {
    #[serde(rename = "type")]
    type_: &'static str,
    address: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeInfo<'a> {
    #[serde(rename = "machineID")]
    machine_id: &'a str,
    #[serde(rename = "systemUUID")]
    system_uuid: &'a str,
    #[serde(rename = "bootID")]
    boot_id: &'a str,
    kernel_version: &'static str,
    os_image: &'static str,
    container_runtime_version: &'static str,
    kubelet_version: &'static str,
    kube_proxy_version: &'static str,
    operating_system: &'static str,
    architecture: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeStatus<'a> {
    capacity: NodeResources,
    allocatable: NodeResources,
    conditions: Vec<NodeCondition<'a>>,
    addresses: [Address<'a>; 2],
    node_info: NodeInfo<'a>,
}

/// Node quantities as a kubelet reports them (memory in Ki).
struct NodeResources(super::cluster::NodeCapacity);

impl Serialize for NodeResources {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(6))?;
        map.serialize_entry("cpu", &format_cpu_millis(self.0.cpu_millis))?;
        map.serialize_entry("ephemeral-storage", "101430960Ki")?;
        map.serialize_entry("hugepages-1Gi", "0")?;
        map.serialize_entry("hugepages-2Mi", "0")?;
        map.serialize_entry("memory", &format!("{}Ki", self.0.memory_bytes / 1024))?;
        map.serialize_entry("pods", &self.0.pods.to_string())?;
        map.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Node<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: ObjectMeta<'a>,
    spec: NodeSpec<'a>,
    status: NodeStatus<'a>,
}

/// The labels a kubelet and cloud provider put on a node.
pub fn node_labels(node: &NodeSim) -> Vec<(String, String)> {
    vec![
        ("beta.kubernetes.io/arch".into(), "amd64".into()),
        ("beta.kubernetes.io/os".into(), "linux".into()),
        ("kubernetes.io/arch".into(), "amd64".into()),
        ("kubernetes.io/hostname".into(), node.name.clone()),
        ("kubernetes.io/os".into(), "linux".into()),
        (
            "node.kubernetes.io/instance-type".into(),
            node.instance_type.into(),
        ),
        ("topology.kubernetes.io/zone".into(), node.zone.into()),
    ]
}

/// The node's JSON at resourceVersion `rv`.
pub fn render_node(node: &NodeSim, rv: u64) -> Vec<u8> {
    let labels = node_labels(node);
    let annotations = vec![
        ("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string()),
        (
            "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
            "true".to_string(),
        ),
    ];
    let heartbeat = format_secs(node.heartbeat_ms);
    let since_created = format_secs(node.created_ms);
    let pressure = |type_, reason, message| NodeCondition {
        type_,
        status: "False",
        last_heartbeat_time: heartbeat.clone(),
        last_transition_time: since_created.clone(),
        reason,
        message,
    };
    let (ready_reason, ready_message) = match node.readiness {
        super::cluster::NodeReadiness::Ready => ("KubeletReady", "kubelet is posting ready status"),
        super::cluster::NodeReadiness::NotReady => (
            "KubeletNotReady",
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady",
        ),
        super::cluster::NodeReadiness::Unknown => {
            ("NodeStatusUnknown", "Kubelet stopped posting node status.")
        }
    };
    let object = Node {
        api_version: "v1",
        kind: "Node",
        metadata: ObjectMeta {
            name: &node.name,
            generate_name: None,
            namespace: None,
            uid: &node.uid,
            resource_version: rv.to_string(),
            creation_timestamp: format_secs(node.created_ms),
            deletion_timestamp: None,
            deletion_grace_period_seconds: None,
            labels: Pairs(&labels),
            annotations: Some(Pairs(&annotations)),
            owner_references: None,
            finalizers: &[],
        },
        spec: NodeSpec {
            pod_cidr: &node.pod_cidr,
            pod_cidrs: [&node.pod_cidr],
            provider_id: format!("kubetrail-sim://{}/{}", node.zone, node.name),
            unschedulable: node.unschedulable,
            taints: node
                .unschedulable
                .then(|| Taint {
                    key: "node.kubernetes.io/unschedulable",
                    effect: "NoSchedule",
                    time_added: heartbeat.clone(),
                })
                .into_iter()
                .collect(),
        },
        status: NodeStatus {
            capacity: NodeResources(node.capacity),
            allocatable: NodeResources(node.allocatable),
            conditions: vec![
                pressure(
                    "MemoryPressure",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                pressure(
                    "DiskPressure",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                pressure(
                    "PIDPressure",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                NodeCondition {
                    type_: "Ready",
                    status: node.readiness.status(),
                    last_heartbeat_time: heartbeat.clone(),
                    last_transition_time: format_secs(node.ready_since_ms),
                    reason: ready_reason,
                    message: ready_message,
                },
            ],
            addresses: [
                Address {
                    type_: "InternalIP",
                    address: &node.internal_ip,
                },
                Address {
                    type_: "Hostname",
                    address: &node.name,
                },
            ],
            node_info: NodeInfo {
                machine_id: &node.uid,
                system_uuid: &node.uid,
                boot_id: &node.uid,
                kernel_version: "6.1.0-28-cloud-amd64",
                os_image: "Debian GNU/Linux 12 (bookworm)",
                container_runtime_version: "containerd://1.7.24",
                kubelet_version: "v1.32.0",
                kube_proxy_version: "v1.32.0",
                operating_system: "linux",
                architecture: "amd64",
            },
        },
    };
    serde_json::to_vec(&object).unwrap_or_default()
}

#[derive(Serialize)]
struct NamespaceSpec {
    finalizers: [&'static str; 1],
}

#[derive(Serialize)]
struct NamespaceStatus {
    phase: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Namespace<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: ObjectMeta<'a>,
    spec: NamespaceSpec,
    status: NamespaceStatus,
}

/// A namespace's JSON at resourceVersion `rv`.
pub fn render_namespace(name: &str, uid: &str, created_ms: i64, rv: u64) -> Vec<u8> {
    let labels = vec![("kubernetes.io/metadata.name".to_string(), name.to_string())];
    let object = Namespace {
        api_version: "v1",
        kind: "Namespace",
        metadata: ObjectMeta {
            name,
            generate_name: None,
            namespace: None,
            uid,
            resource_version: rv.to_string(),
            creation_timestamp: format_secs(created_ms),
            deletion_timestamp: None,
            deletion_grace_period_seconds: None,
            labels: Pairs(&labels),
            annotations: None,
            owner_references: None,
            finalizers: &[],
        },
        spec: NamespaceSpec {
            finalizers: ["kubernetes"],
        },
        status: NamespaceStatus { phase: "Active" },
    };
    serde_json::to_vec(&object).unwrap_or_default()
}
