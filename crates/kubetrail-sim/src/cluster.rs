//! The simulated cluster's own state: pods and nodes as the scenario engine models them (what a
//! kubelet, scheduler and controllers would hold), from which [`super::objects`] renders the API
//! objects. Kept as plain typed data so the engine's rules are easy to check.

use std::collections::BTreeSet;

use kubetrail::model::resources::{
    self, ContainerResources, Effective, PodResourceSpec, Resources,
};

pub type PodId = u64;
pub type NodeId = u64;

/// One container of a pod spec.
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    pub name: String,
    pub image: &'static str,
    pub requests: Resources,
    pub limits: Resources,
    /// Environment variables. Some values look like secrets on purpose: the recorder must prove
    /// that it never stores them.
    pub env: Vec<(String, String)>,
    pub port: Option<u16>,
    /// An init container with `restartPolicy: Always` (a sidecar).
    pub sidecar: bool,
}

/// How one run of a container ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: &'static str,
    pub started_ms: i64,
    pub finished_ms: i64,
    /// The runtime id of the run that ended.
    pub container_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    Waiting {
        reason: &'static str,
        message: Option<String>,
    },
    Running {
        started_ms: i64,
    },
    Terminated(Terminated),
}

/// The kubelet's per-container restart back-off (client-go's `flowcontrol.Backoff` entry): the
/// current delay (0: no entry yet) and when it was last advanced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    pub delay_ms: i64,
    pub updated_ms: i64,
}

impl Backoff {
    /// Whether a container that ended at `at_ms` waits out the delay before its next run. An
    /// entry untouched for twice the cap has expired: the container ran long enough to be
    /// treated as healthy, and its next crash restarts at once.
    pub fn active(&self, at_ms: i64, max_ms: i64) -> bool {
        self.delay_ms > 0 && at_ms - self.updated_ms <= 2 * max_ms
    }

    /// Advances the entry when a run starts: the first (or first after expiry) gets the
    /// initial delay, later ones double it up to the cap.
    pub fn next(&mut self, at_ms: i64, initial_ms: i64, max_ms: i64) {
        self.delay_ms = if self.active(at_ms, max_ms) {
            (self.delay_ms * 2).min(max_ms)
        } else {
            initial_ms
        };
        self.updated_ms = at_ms;
    }
}

#[derive(Clone, Debug)]
pub struct ContainerStatus {
    pub state: ContainerState,
    pub last: Option<Terminated>,
    pub restart_count: u32,
    pub ready: bool,
    /// The latest run's runtime id (kept while the container waits to run again).
    pub container_id: Option<String>,
    /// Restart back-off (app containers) or image pull back-off (before the first run).
    pub backoff: Backoff,
    /// While an in-place resize is in progress: the (requests, limits) the runtime still
    /// applies (status.containerStatuses[].resources); None when they equal the spec.
    pub actuated: Option<(Resources, Resources)>,
    /// When the current run is due to be OOMKilled (the metrics API's memory climbs to the
    /// limit by then); None for a run that ends otherwise or not at all.
    pub oom_at_ms: Option<i64>,
}

impl ContainerStatus {
    pub fn waiting(reason: &'static str) -> Self {
        ContainerStatus {
            state: ContainerState::Waiting {
                reason,
                message: None,
            },
            last: None,
            restart_count: 0,
            ready: false,
            container_id: None,
            backoff: Backoff::default(),
            actuated: None,
            oom_at_ms: None,
        }
    }

    /// Starts a new run with its own runtime id.
    pub fn run(&mut self, pod_uid: &str, name: &str, at_ms: i64) {
        self.state = ContainerState::Running { started_ms: at_ms };
        self.container_id = Some(container_id(pod_uid, name, at_ms));
    }

    /// Ends the current run (if it is running); returns how it ended.
    pub fn terminate(
        &mut self,
        exit_code: i32,
        reason: &'static str,
        at_ms: i64,
    ) -> Option<Terminated> {
        let started_ms = self.started_ms()?;
        let t = Terminated {
            exit_code,
            reason,
            started_ms,
            finished_ms: at_ms,
            container_id: self.container_id.clone().unwrap_or_default(),
        };
        self.state = ContainerState::Terminated(t.clone());
        self.ready = false;
        // A kill planned for this run is over (a crash queued for the next run sets its own).
        self.oom_at_ms = None;
        Some(t)
    }

    pub fn is_running(&self) -> bool {
        matches!(self.state, ContainerState::Running { .. })
    }

    pub fn waiting_reason(&self) -> Option<&'static str> {
        match self.state {
            ContainerState::Waiting { reason, .. } => Some(reason),
            _ => None,
        }
    }

    pub fn started_ms(&self) -> Option<i64> {
        match self.state {
            ContainerState::Running { started_ms } => Some(started_ms),
            _ => None,
        }
    }
}

/// A stable, unique-looking runtime id for one run of a container: a hash of the pod uid (drawn
/// from the seeded stream), the container name and the run's start, so a seed fixes every id
/// and no two runs share one.
pub fn container_id(pod_uid: &str, name: &str, started_ms: i64) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in pod_uid
        .bytes()
        .chain(name.bytes())
        .chain(started_ms.to_le_bytes())
    {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    format!(
        "containerd://{h:016x}{:016x}",
        h.rotate_left(29) ^ 0x9e3779b97f4a7c15
    )
}

/// A pod condition (status "True"/"False").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub status: bool,
    pub at_ms: i64,
    pub reason: Option<&'static str>,
    pub message: Option<String>,
}

impl Condition {
    pub fn new(status: bool, at_ms: i64) -> Self {
        Condition {
            status,
            at_ms,
            reason: None,
            message: None,
        }
    }

    pub fn with_reason(mut self, reason: &'static str, message: Option<String>) -> Self {
        self.reason = Some(reason);
        self.message = message;
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// The controller that owns a pod.
#[derive(Clone, Debug)]
pub struct Owner {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub name: String,
    pub uid: String,
}

/// What the pod is for, which decides how it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Long-running (ReplicaSet, DaemonSet): restarts containers, ends only by deletion or
    /// eviction.
    Service,
    /// Runs to completion (Job).
    Batch,
}

/// What goes wrong with a pod, chosen when it is created: the lifecycles that fill incident
/// timelines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trouble {
    None,
    /// The main container crashes on every run: CrashLoopBackOff with a growing back-off.
    CrashLoop,
    /// The main container's image cannot be pulled (ErrImagePull, ImagePullBackOff) until the
    /// registry answers again, if ever; the pod stays Pending meanwhile.
    PullFailure,
    /// The readiness probe fails now and then: Ready flips while the containers keep running.
    FlakyReadiness,
}

/// A graceful deletion in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deletion {
    pub requested_ms: i64,
    pub grace_secs: i64,
    /// The grace period is over but a finalizer keeps the object.
    pub held: bool,
}

#[derive(Clone, Debug)]
pub struct PodSim {
    pub id: PodId,
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub owner: Owner,
    pub role: Role,
    pub created_ms: i64,
    pub grace_secs: i64,
    pub restart_policy: &'static str,
    pub init_containers: Vec<ContainerSpec>,
    pub containers: Vec<ContainerSpec>,
    /// Pod-level `spec.resources` (requests, limits).
    pub pod_resources: Option<(Resources, Resources)>,
    pub overhead: Option<Resources>,
    pub runtime_class: Option<&'static str>,
    pub node: Option<NodeId>,
    pub node_name: Option<String>,
    pub host_ip: Option<String>,
    pub pod_ip: Option<String>,
    pub phase: Phase,
    pub reason: Option<&'static str>,
    pub message: Option<String>,
    pub scheduled: Option<Condition>,
    pub initialized: Option<Condition>,
    pub containers_ready: Option<Condition>,
    pub ready: Option<Condition>,
    pub start_ms: Option<i64>,
    pub init_statuses: Vec<ContainerStatus>,
    pub statuses: Vec<ContainerStatus>,
    pub deletion: Option<Deletion>,
    /// metadata.finalizers: while any is left, a deleted pod stays (Terminating).
    pub finalizers: Vec<&'static str>,
    pub trouble: Trouble,
    /// The PodResizeInProgress condition while an in-place resize is being actuated.
    pub resizing: Option<Condition>,
    /// Cached effective requests and limits (recomputed on resize).
    pub effective: Effective,
}

impl PodSim {
    pub fn resource_spec(&self) -> PodResourceSpec {
        let container = |c: &ContainerSpec| ContainerResources {
            requests: c.requests.into(),
            limits: c.limits.into(),
            restartable: c.sidecar,
            status: None,
        };
        PodResourceSpec {
            containers: self.containers.iter().map(container).collect(),
            init_containers: self.init_containers.iter().map(container).collect(),
            pod_level: self
                .pod_resources
                .map(|(requests, limits)| (requests.into(), limits.into())),
            overhead: self.overhead.unwrap_or_default().into(),
            resize_infeasible: false,
        }
    }

    pub fn recompute_effective(&mut self) {
        self.effective = resources::effective(&self.resource_spec());
    }

    /// Counts against its node's allocatable: bound and not finished (the scheduler's and
    /// `kubectl describe node`'s rule).
    pub fn holds_resources(&self) -> bool {
        self.node.is_some() && !self.phase.is_terminal()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.as_ref().is_some_and(|c| c.status)
    }
}

/// Node readiness as the Ready condition shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeReadiness {
    Ready,
    NotReady,
    Unknown,
}

impl NodeReadiness {
    pub fn status(self) -> &'static str {
        match self {
            NodeReadiness::Ready => "True",
            NodeReadiness::NotReady => "False",
            NodeReadiness::Unknown => "Unknown",
        }
    }
}

/// What the scheduler checks: cpu, memory and the pod count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeCapacity {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub pods: i64,
}

#[derive(Clone, Debug)]
pub struct NodeSim {
    pub id: NodeId,
    pub uid: String,
    pub name: String,
    pub created_ms: i64,
    pub instance_type: &'static str,
    pub zone: &'static str,
    pub internal_ip: String,
    pub pod_cidr: String,
    pub capacity: NodeCapacity,
    pub allocatable: NodeCapacity,
    pub unschedulable: bool,
    pub readiness: NodeReadiness,
    pub ready_since_ms: i64,
    pub heartbeat_ms: i64,
    /// Being drained before deletion: no new pods, pods are being evicted.
    pub draining: bool,
    /// Pods bound to this node (any phase) until they are removed.
    pub pods: BTreeSet<PodId>,
    /// Sum of effective requests of the bound, non-terminal pods.
    pub requested: Resources,
    /// Number of bound, non-terminal pods.
    pub pod_count: i64,
}

impl NodeSim {
    pub fn schedulable(&self) -> bool {
        self.readiness == NodeReadiness::Ready && !self.unschedulable && !self.draining
    }

    /// Whether `request` fits in what is left of the allocatable.
    pub fn fits(&self, request: Resources) -> bool {
        self.pod_count < self.allocatable.pods
            && self.requested.cpu_millis + request.cpu_millis <= self.allocatable.cpu_millis
            && self.requested.memory_bytes + request.memory_bytes <= self.allocatable.memory_bytes
    }

    pub fn overcommitted(&self) -> bool {
        self.pod_count > self.allocatable.pods
            || self.requested.cpu_millis > self.allocatable.cpu_millis
            || self.requested.memory_bytes > self.allocatable.memory_bytes
    }
}
