//! The scenario engine: a deterministic discrete-event simulation of a cluster's control plane
//! and kubelets on a virtual clock quantised in ticks ([`TICK_MS`]).
//!
//! Controllers create pods (ReplicaSets, DaemonSets, Jobs); a scheduler binds them to Ready,
//! uncordoned nodes with room for their effective requests (never overcommitting); kubelets
//! ([`kubelet`]) pull images, run init containers in order, start the pods, make them Ready,
//! restart crashing containers with back-off, finish Jobs, evict; a population controller
//! deletes pods gracefully so the count stays near the target (finalizers may hold them);
//! garbage collection removes finished pods; now and then a pod is relabelled out of its app's
//! selector and back. Nodes ([`nodes`]) are cordoned, go NotReady and come back, change
//! allocatable, and are drained and replaced. [`initial`] builds the cluster as it is at the
//! start, with its past.
//!
//! Every change is rendered into the [`Store`] and, when it is a lifecycle transition, written
//! to the ground truth, in the same order. All randomness comes from one seeded stream and all
//! times from the tick counter, so a seed, start time and tick count fix the output byte for
//! byte. API requests that change state (deletes) arrive as [`Command`]s between ticks.

mod events;
mod initial;
mod kubelet;
mod nodes;

pub use kubelet::BACKOFF_SCALE;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::clock::{TICK_MS, tick_time_ms};
use super::cluster::*;
use super::objects::{render_node, render_pod};
use super::status::ApiError;
use super::store::{ObjectKey, ResourceKind, SelectableFields, Store};
use super::truth::{TruthLine, TruthWriter};
use super::workload::{self, SimRng, Workload, WorkloadKind};
use kubetrail::model::{Resources, TransitionKind};

const SEC: i64 = 1000;
const DAY: i64 = 86_400 * SEC;

/// What the scenario simulates.
#[derive(Clone, Debug)]
pub struct ScenarioConfig {
    pub seed: u64,
    /// Virtual time of tick 0, Unix milliseconds.
    pub start_ms: i64,
    pub nodes: usize,
    /// Target pod population (non-terminating, non-finished pods).
    pub pods: usize,
    /// New pods per virtual second.
    pub churn_per_sec: f64,
    /// Multiplies every lifecycle delay: 0.1 runs lifecycles ten times faster, 2 twice slower.
    pub pace: f64,
    /// An Events flood on top of the lifecycle's Events: this many readiness-probe failures a
    /// minute on running pods (see `flood_events`). 0 for none.
    pub event_flood_per_min: f64,
}

impl Default for ScenarioConfig {
    fn default() -> Self {
        ScenarioConfig {
            seed: 1,
            start_ms: 0,
            nodes: 3,
            pods: 30,
            churn_per_sec: 5.0,
            pace: 1.0,
            event_flood_per_min: 0.0,
        }
    }
}

/// The answer to a delete: the object's JSON after the delete was applied.
pub type DeleteReply = oneshot::Sender<Result<Vec<u8>, ApiError>>;

/// A state change asked for through the API.
#[derive(Debug)]
pub enum Command {
    DeletePod {
        namespace: String,
        name: String,
        grace_secs: Option<i64>,
        reply: DeleteReply,
    },
    DeleteNode {
        name: String,
        reply: DeleteReply,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Succeeded,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Schedule(PodId),
    // The kubelet's (see `kubelet`).
    Prepare(PodId),
    InitStep(PodId, usize),
    InitDone(PodId, usize),
    Start(PodId),
    PullBackOff(PodId),
    Ready(PodId),
    Flap(PodId),
    Crash(PodId, usize, bool),
    ShowBackOff(PodId, usize),
    Restart(PodId, usize),
    Finish(PodId, Outcome),
    Evict(PodId),
    Resize(PodId),
    ResizeDone(PodId),
    Relabel(PodId),
    ReleaseFinalizer(PodId),
    // The control plane's.
    Remove(PodId),
    Collect(PodId),
    NodeEvent(NodeId),
    NodeReady(NodeId),
    Uncordon(NodeId),
    DrainCheck(NodeId),
    Heartbeat(NodeId),
    AddNode,
}

/// A queued action; the heap pops the earliest tick, then the earliest queued (FIFO), which
/// keeps the order deterministic.
#[derive(Debug, PartialEq, Eq)]
struct Due {
    tick: u64,
    seq: u64,
    action: Action,
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.tick, other.seq).cmp(&(self.tick, self.seq))
    }
}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Counters for `/_sim/stats`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ScenarioStats {
    pub tick: u64,
    pub virtual_time: String,
    pub pods: usize,
    pub active_pods: usize,
    pub unschedulable_pods: usize,
    pub nodes: usize,
    pub truth_lines: u64,
}

/// Optional fields of a truth line.
#[derive(Default)]
struct Detail {
    container: Option<String>,
    reason: Option<String>,
    exit_code: Option<i32>,
    container_id: Option<String>,
    restart_count: Option<u32>,
}

pub struct Scenario {
    config: ScenarioConfig,
    rng: SimRng,
    store: Arc<Store>,
    truth: TruthWriter,
    tick: u64,
    now_ms: i64,
    queue: BinaryHeap<Due>,
    seq: u64,
    workloads: Vec<Workload>,
    pods: BTreeMap<PodId, PodSim>,
    pod_names: HashMap<(String, String), PodId>,
    nodes: BTreeMap<NodeId, NodeSim>,
    node_names: HashMap<String, NodeId>,
    /// Node ids in creation order, for random sampling.
    node_order: Vec<NodeId>,
    unschedulable: BTreeSet<PodId>,
    capacity_freed: bool,
    /// Pods that are neither deleting nor finished.
    active: usize,
    arrivals: f64,
    /// The flood's Events owed, like `arrivals` for new pods.
    flood: f64,
    /// The flood's own random numbers: the pods' lifecycles are the same with and without it,
    /// so a benchmark compares one workload with and without the flood.
    flood_rng: SimRng,
    next_pod_id: PodId,
    next_node_id: NodeId,
    node_serial: u64,
    job_serial: u64,
    /// The Kubernetes Events the cluster's components wrote.
    events: crate::events::Events,
}

impl Scenario {
    /// Builds the initial cluster (namespaces, nodes and pods with histories before the start
    /// time), writes it to the store and its history to the truth.
    pub fn new(config: ScenarioConfig, store: Arc<Store>, truth: TruthWriter) -> Scenario {
        let mut rng = SimRng::new(config.seed);
        let flood_rng = SimRng::new(config.seed ^ 0xf100d);
        let workloads = workload::workloads(&mut rng, config.pods);
        let events = crate::events::Events::new(store.clone(), config.seed);
        let mut scenario = Scenario {
            now_ms: config.start_ms,
            config,
            rng,
            store,
            truth,
            tick: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            workloads,
            pods: BTreeMap::new(),
            pod_names: HashMap::new(),
            nodes: BTreeMap::new(),
            node_names: HashMap::new(),
            node_order: Vec::new(),
            unschedulable: BTreeSet::new(),
            capacity_freed: false,
            active: 0,
            arrivals: 0.0,
            flood: 0.0,
            flood_rng,
            next_pod_id: 1,
            next_node_id: 1,
            node_serial: 0,
            job_serial: 29_000_000,
            events,
        };
        scenario.store.set_virtual_now_ms(scenario.now_ms);
        scenario.build_initial();
        scenario
    }

    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    pub fn tick(&self) -> u64 {
        self.tick
    }

    pub fn flush_truth(&mut self) -> std::io::Result<()> {
        self.truth.flush()
    }

    pub fn stats(&self) -> ScenarioStats {
        ScenarioStats {
            tick: self.tick,
            virtual_time: super::clock::format_millis(self.now_ms),
            pods: self.pods.len(),
            active_pods: self.active,
            unschedulable_pods: self.unschedulable.len(),
            nodes: self.nodes.len(),
            truth_lines: self.truth.lines_written(),
        }
    }

    /// Advances one tick and applies everything due in it.
    pub fn step(&mut self) {
        self.tick += 1;
        self.now_ms = tick_time_ms(self.config.start_ms, self.tick);
        self.store.set_virtual_now_ms(self.now_ms);

        while self.queue.peek().is_some_and(|due| due.tick <= self.tick) {
            if let Some(due) = self.queue.pop() {
                self.run(due.action);
            }
        }

        self.arrivals += self.config.churn_per_sec * TICK_MS as f64 / 1000.0;
        while self.arrivals >= 1.0 {
            self.arrivals -= 1.0;
            let index = self.rng.below(self.workloads.len() as u64) as usize;
            self.create_pod(index);
        }
        self.flood_events();

        self.keep_population();
        if self.capacity_freed {
            self.capacity_freed = false;
            self.retry_unschedulable();
        }
    }

    /// Runs `ticks` ticks (headless use: tests and benchmarks).
    pub fn run_ticks(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.step();
        }
    }

    /// Applies an API request between ticks, at the current virtual time.
    pub fn apply(&mut self, command: Command) {
        match command {
            Command::DeletePod {
                namespace,
                name,
                grace_secs,
                reply,
            } => {
                let result = match self.pod_names.get(&(namespace, name.clone())).copied() {
                    None => Err(ApiError::not_found("pods", &name)),
                    Some(id) => {
                        let grace = grace_secs.unwrap_or(self.pods[&id].grace_secs).max(0);
                        Ok(self.delete_pod(id, grace))
                    }
                };
                let _ = reply.send(result);
            }
            Command::DeleteNode { name, reply } => {
                let result = match self.node_names.get(&name).copied() {
                    None => Err(ApiError::not_found("nodes", &name)),
                    Some(id) => {
                        let pods: Vec<PodId> = self.nodes[&id].pods.iter().copied().collect();
                        for pod in pods {
                            self.remove_pod(pod);
                        }
                        Ok(self.remove_node(id))
                    }
                };
                let _ = reply.send(result);
            }
        }
    }

    /// Checks the scheduler's promise: no node holds more than its allocatable, and the cached
    /// per-node sums agree with the pods. For tests; O(pods).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut sums: BTreeMap<NodeId, (Resources, i64)> = BTreeMap::new();
        for pod in self.pods.values() {
            if pod.holds_resources()
                && let Some(node) = pod.node
            {
                let entry = sums.entry(node).or_default();
                entry.0 += pod.effective.requests;
                entry.1 += 1;
            }
        }
        for node in self.nodes.values() {
            let (requested, count) = sums.get(&node.id).copied().unwrap_or_default();
            if requested != node.requested || count != node.pod_count {
                return Err(format!(
                    "node {} caches {:?}/{} but its pods sum to {requested:?}/{count}",
                    node.name, node.requested, node.pod_count
                ));
            }
            if node.overcommitted() {
                return Err(format!(
                    "node {} is overcommitted: requested {:?} ({} pods), allocatable {:?}",
                    node.name, node.requested, node.pod_count, node.allocatable
                ));
            }
        }
        let active = self.pods.values().filter(|p| is_active(p)).count();
        if active != self.active {
            return Err(format!("active pod counter {} != {active}", self.active));
        }
        Ok(())
    }

    // ----- time and randomness -----

    /// Queues `action` after a random delay in `[lo_secs, hi_secs)`, scaled by the pace;
    /// returns the virtual time it is due.
    fn after(&mut self, lo_secs: f64, hi_secs: f64, action: Action) -> i64 {
        let lo = (lo_secs * 1000.0 * self.config.pace) as i64;
        let hi = (hi_secs * 1000.0 * self.config.pace) as i64;
        let delay_ms = self.rng.range(lo, hi.max(lo + 1));
        self.at_delay_ms(delay_ms, action)
    }

    /// Queues `action` after exactly `delay_ms` (not scaled: e.g. a grace period); returns the
    /// virtual time it is due.
    fn at_delay_ms(&mut self, delay_ms: i64, action: Action) -> i64 {
        let ticks = (delay_ms / TICK_MS).max(1) as u64;
        self.seq += 1;
        self.queue.push(Due {
            tick: self.tick + ticks,
            seq: self.seq,
            action,
        });
        self.now_ms + ticks as i64 * TICK_MS
    }

    /// Queues a container's crash; an OOMKill is remembered on the container, so that its
    /// memory in the metrics API climbs to the limit by then.
    fn queue_crash_at(&mut self, lo_secs: f64, hi_secs: f64, id: PodId, index: usize, oom: bool) {
        let due = self.after(lo_secs, hi_secs, Action::Crash(id, index, oom));
        if oom
            && let Some(status) = self
                .pods
                .get_mut(&id)
                .and_then(|p| p.statuses.get_mut(index))
        {
            status.oom_at_ms = Some(due);
        }
    }

    // ----- output -----

    fn publish_pod(&self, id: PodId) {
        let Some(pod) = self.pods.get(&id) else {
            return;
        };
        let fields = SelectableFields {
            labels: pod.labels.clone(),
            node_name: pod.node_name.clone().unwrap_or_default(),
            phase: pod.phase.as_str().to_string(),
        };
        self.store.put(
            ResourceKind::Pods,
            ObjectKey::new(&pod.namespace, &pod.name),
            fields,
            |rv| render_pod(pod, rv),
        );
        self.store
            .usage
            .set_pod(&pod.namespace, &pod.name, super::metrics::PodPlan::of(pod));
    }

    fn publish_node(&self, id: NodeId) {
        let Some(node) = self.nodes.get(&id) else {
            return;
        };
        let fields = SelectableFields {
            labels: super::objects::node_labels(node),
            node_name: String::new(),
            phase: String::new(),
        };
        self.store.put(
            ResourceKind::Nodes,
            ObjectKey::new("", &node.name),
            fields,
            |rv| render_node(node, rv),
        );
        self.store.usage.set_node(
            &node.name,
            super::metrics::NodePlan::of(node, super::objects::node_labels(node)),
        );
    }

    fn emit_pod(&mut self, id: PodId, kind: TransitionKind, at_ms: i64, detail: Detail) {
        let Some(pod) = self.pods.get(&id) else {
            return;
        };
        let mut line = TruthLine::pod(&pod.uid, &pod.namespace, &pod.name, kind, at_ms);
        line.container = detail.container;
        line.reason = detail.reason;
        line.exit_code = detail.exit_code;
        line.container_id = detail.container_id;
        line.restart_count = detail.restart_count;
        if kind == TransitionKind::Created {
            line.labels = Some(pod.labels.iter().cloned().collect());
        }
        self.truth.write(&line);
        let detail = Detail {
            container: line.container,
            reason: line.reason,
            ..Detail::default()
        };
        self.pod_events(id, kind, at_ms, &detail);
    }

    fn emit_waiting(&mut self, id: PodId, container: &str, reason: &str) {
        let detail = Detail {
            container: Some(container.to_string()),
            reason: Some(reason.to_string()),
            ..Detail::default()
        };
        self.emit_pod(id, TransitionKind::ContainerWaiting, self.now_ms, detail);
    }

    fn emit_relabel(&mut self, id: PodId) {
        let Some(pod) = self.pods.get(&id) else {
            return;
        };
        let line = TruthLine::relabeled(
            &pod.uid,
            &pod.namespace,
            &pod.name,
            &pod.labels,
            self.now_ms,
        );
        self.truth.write(&line);
    }

    fn emit_node(&mut self, id: NodeId, kind: TransitionKind, at_ms: i64) {
        let Some(node) = self.nodes.get(&id) else {
            return;
        };
        let line = TruthLine::node(&node.uid, &node.name, kind, at_ms);
        self.truth.write(&line);
        self.node_events(id, kind, at_ms);
    }

    fn emit_container(&mut self, id: PodId, kind: TransitionKind, container: &str, t: &Terminated) {
        let detail = Detail {
            container: Some(container.to_string()),
            reason: Some(t.reason.to_string()),
            exit_code: Some(t.exit_code),
            container_id: Some(t.container_id.clone()),
            restart_count: None,
        };
        self.emit_pod(id, kind, t.finished_ms, detail);
    }

    // ----- pods -----

    fn new_pod(&mut self, workload: usize, created_ms: i64) -> PodSim {
        let w = self.workloads[workload].clone();
        let (owner, labels, base) = match w.kind {
            WorkloadKind::ReplicaSet => (
                Owner {
                    kind: "ReplicaSet",
                    api_version: "apps/v1",
                    name: w.name.clone(),
                    uid: w.uid.clone(),
                },
                vec![
                    ("app.kubernetes.io/name".to_string(), w.app.clone()),
                    ("pod-template-hash".to_string(), w.template_hash.clone()),
                ],
                w.name.clone(),
            ),
            WorkloadKind::DaemonSet => (
                Owner {
                    kind: "DaemonSet",
                    api_version: "apps/v1",
                    name: w.name.clone(),
                    uid: w.uid.clone(),
                },
                vec![
                    ("app.kubernetes.io/name".to_string(), w.app.clone()),
                    (
                        "controller-revision-hash".to_string(),
                        w.template_hash.clone(),
                    ),
                    ("pod-template-generation".to_string(), "1".to_string()),
                ],
                w.name.clone(),
            ),
            WorkloadKind::Job => {
                self.job_serial += 1;
                let job = format!("{}-{}", w.name, self.job_serial);
                let uid = self.rng.uid();
                crate::owners::publish_job(&self.store, &w, &job, &uid, created_ms);
                (
                    Owner {
                        kind: "Job",
                        api_version: "batch/v1",
                        name: job.clone(),
                        uid: uid.clone(),
                    },
                    vec![
                        (
                            "batch.kubernetes.io/controller-uid".to_string(),
                            uid.clone(),
                        ),
                        ("batch.kubernetes.io/job-name".to_string(), job.clone()),
                        ("controller-uid".to_string(), uid),
                        ("job-name".to_string(), job.clone()),
                    ],
                    job,
                )
            }
        };
        let name = loop {
            let candidate = format!("{base}-{}", self.rng.name_suffix(5));
            if !self
                .pod_names
                .contains_key(&(w.namespace.clone(), candidate.clone()))
            {
                break candidate;
            }
        };
        let id = self.next_pod_id;
        self.next_pod_id += 1;
        let role = w.role();
        let t = w.template;
        let (roll, hold) = (self.rng.unit(), self.rng.chance(0.08));
        let trouble = match role {
            Role::Batch => Trouble::None,
            _ if roll < 0.06 => Trouble::CrashLoop,
            // A pod with one app container, so Pending is the whole pod's state.
            _ if roll < 0.10 && t.containers.len() == 1 => Trouble::PullFailure,
            _ if roll < 0.18 => Trouble::FlakyReadiness,
            _ => Trouble::None,
        };
        let mut pod = PodSim {
            id,
            uid: self.rng.uid(),
            namespace: w.namespace,
            name,
            labels,
            owner,
            role,
            created_ms,
            grace_secs: t.grace_secs,
            restart_policy: t.restart_policy,
            init_containers: t.init_containers,
            containers: t.containers,
            pod_resources: t.pod_resources,
            overhead: t.overhead,
            runtime_class: t.runtime_class,
            node: None,
            node_name: None,
            host_ip: None,
            pod_ip: None,
            phase: Phase::Pending,
            reason: None,
            message: None,
            scheduled: None,
            initialized: None,
            containers_ready: None,
            ready: None,
            start_ms: None,
            init_statuses: Vec::new(),
            statuses: Vec::new(),
            deletion: None,
            finalizers: if role == Role::Service && hold {
                vec![kubelet::FINALIZER]
            } else {
                Vec::new()
            },
            trouble,
            resizing: None,
            effective: Default::default(),
        };
        pod.recompute_effective();
        pod
    }

    fn insert_pod(&mut self, pod: PodSim) {
        self.pod_names
            .insert((pod.namespace.clone(), pod.name.clone()), pod.id);
        self.active += 1;
        self.pods.insert(pod.id, pod);
    }

    fn create_pod(&mut self, workload: usize) {
        let pod = self.new_pod(workload, self.now_ms);
        let id = pod.id;
        self.insert_pod(pod);
        self.emit_pod(id, TransitionKind::Created, self.now_ms, Detail::default());
        self.publish_pod(id);
        self.after(0.3, 1.5, Action::Schedule(id));
    }

    fn run(&mut self, action: Action) {
        let now = self.now_ms;
        match action {
            Action::Schedule(id) => self.schedule(id),
            Action::Remove(id) => {
                if self.pod_is(id, |p| p.deletion.is_some()) {
                    self.remove_pod(id);
                }
            }
            Action::Collect(id) => {
                if self.pod_is(id, |p| p.phase.is_terminal() && p.deletion.is_none()) {
                    self.remove_pod(id);
                }
            }
            Action::NodeEvent(id) => self.node_event(id),
            Action::NodeReady(id) => self.node_becomes_ready(id),
            Action::Uncordon(id) => {
                if let Some(node) = self.nodes.get_mut(&id)
                    && node.unschedulable
                    && !node.draining
                {
                    node.unschedulable = false;
                    self.emit_node(id, TransitionKind::Uncordoned, now);
                    self.publish_node(id);
                    self.capacity_freed = true;
                }
            }
            Action::DrainCheck(id) => {
                if let Some(node) = self.nodes.get(&id) {
                    if node.pods.is_empty() {
                        self.remove_node(id);
                        self.after(5.0, 15.0, Action::AddNode);
                    } else {
                        self.at_delay_ms(SEC, Action::DrainCheck(id));
                    }
                }
            }
            Action::Heartbeat(id) => {
                if let Some(node) = self.nodes.get_mut(&id) {
                    if node.readiness == NodeReadiness::Ready {
                        node.heartbeat_ms = now;
                        self.publish_node(id);
                    }
                    self.after(40.0, 60.0, Action::Heartbeat(id));
                }
            }
            Action::AddNode => {
                let id = self.new_node(now);
                self.emit_node(id, TransitionKind::NodeAdded, now);
                self.publish_node(id);
                self.after(2.0, 5.0, Action::NodeReady(id));
            }
            pod_action => self.run_pod_action(pod_action),
        }
    }

    fn pod_is(&self, id: PodId, check: impl Fn(&PodSim) -> bool) -> bool {
        self.pods.get(&id).is_some_and(check)
    }

    fn schedule(&mut self, id: PodId) {
        if !self.pod_is(id, |p| p.node.is_none() && p.deletion.is_none()) {
            return;
        }
        let request = self.pods[&id].effective.requests;
        match self.find_node(request) {
            Some(node) => {
                self.unschedulable.remove(&id);
                let now = self.now_ms;
                self.bind(id, node, now);
                self.emit_pod(id, TransitionKind::Scheduled, now, Detail::default());
                self.publish_pod(id);
                self.after(0.3, 1.0, Action::Prepare(id));
            }
            None => {
                self.unschedulable.insert(id);
                let nodes = self.nodes.len();
                let now = self.now_ms;
                let pod = self.pods.get_mut(&id).expect("checked above");
                let message = format!(
                    "0/{nodes} nodes are available: {nodes} Insufficient cpu, memory or pods, or node(s) were unschedulable. preemption: 0/{nodes} nodes are available: {nodes} No preemption victims found for incoming pod."
                );
                if pod.scheduled.is_none() {
                    pod.scheduled = Some(
                        Condition::new(false, now)
                            .with_reason("Unschedulable", Some(message.clone())),
                    );
                    self.publish_pod(id);
                }
                self.failed_scheduling_event(id, message);
            }
        }
    }

    /// Finds a Ready, uncordoned node with room: the least-allocated of a random sample, or the
    /// first fit of a scan on small clusters.
    fn find_node(&mut self, request: Resources) -> Option<NodeId> {
        if self.node_order.is_empty() {
            return None;
        }
        let fits = |node: &NodeSim| node.schedulable() && node.fits(request);
        let mut best: Option<(i64, NodeId)> = None;
        for _ in 0..8.min(self.node_order.len()) {
            let id = *self.rng.pick(&self.node_order);
            let node = &self.nodes[&id];
            if fits(node) {
                let load = node.requested.cpu_millis * 1000 / node.allocatable.cpu_millis.max(1);
                if best.is_none_or(|(b, _)| load < b) {
                    best = Some((load, id));
                }
            }
        }
        if let Some((_, id)) = best {
            return Some(id);
        }
        // Small clusters: a full scan is cheap and avoids false "unschedulable".
        let n = self.node_order.len();
        let scan = if n <= 256 { n } else { 64 };
        let offset = self.rng.below(n as u64) as usize;
        (0..scan)
            .map(|i| self.node_order[(offset + i) % n])
            .find(|id| fits(&self.nodes[id]))
    }

    fn bind(&mut self, id: PodId, node_id: NodeId, at_ms: i64) {
        let pod = self.pods.get_mut(&id).expect("pod exists");
        let node = self.nodes.get_mut(&node_id).expect("node exists");
        node.requested += pod.effective.requests;
        node.pod_count += 1;
        node.pods.insert(id);
        pod.node = Some(node_id);
        pod.node_name = Some(node.name.clone());
        pod.host_ip = Some(node.internal_ip.clone());
        pod.scheduled = Some(Condition::new(true, at_ms));
    }

    /// Gives back the pod's share of its node (it finished or is gone).
    fn release(&mut self, id: PodId) {
        let Some(pod) = self.pods.get(&id) else {
            return;
        };
        if !pod.holds_resources() {
            return;
        }
        let request = pod.effective.requests;
        if let Some(node) = pod.node.and_then(|n| self.nodes.get_mut(&n)) {
            node.requested -= request;
            node.pod_count -= 1;
        }
        self.capacity_freed = true;
    }

    /// A delete request: graceful for a pod running on a node, at once otherwise (the
    /// apiserver's rule for unscheduled and finished pods). Like the real apiserver, even a
    /// delete that takes effect at once first updates the object with a deletionTimestamp and
    /// a grace period of 0 (a MODIFIED event, hence `terminating`), then removes it.
    /// Returns the pod's JSON.
    fn delete_pod(&mut self, id: PodId, grace_secs: i64) -> Vec<u8> {
        let now = self.now_ms;
        let pod = &self.pods[&id];
        if let Some(deletion) = pod.deletion {
            // Already terminating: a shorter grace period only matters if it is zero.
            if grace_secs > 0 || deletion.grace_secs == 0 {
                let key = ObjectKey::new(&pod.namespace, &pod.name);
                return self
                    .store
                    .get(ResourceKind::Pods, &key)
                    .map(|o| o.json.to_vec())
                    .unwrap_or_default();
            }
            return self.remove_pod(id);
        }
        let grace_secs = if pod.node.is_none() || pod.phase.is_terminal() {
            0
        } else {
            grace_secs.max(0)
        };
        let was_active = is_active(pod);
        let pod = self.pods.get_mut(&id).expect("exists");
        pod.deletion = Some(Deletion {
            requested_ms: now,
            grace_secs,
            held: false,
        });
        if was_active {
            self.active -= 1;
        }
        self.emit_pod(id, TransitionKind::Terminating, now, Detail::default());
        self.publish_pod(id);
        if grace_secs == 0 {
            return self.remove_pod(id);
        }
        self.at_delay_ms(grace_secs * SEC, Action::Remove(id));
        self.store
            .get(
                ResourceKind::Pods,
                &ObjectKey::new(&self.pods[&id].namespace, &self.pods[&id].name),
            )
            .map(|o| o.json.to_vec())
            .unwrap_or_default()
    }

    /// Removes a pod object (unless a finalizer holds it); returns its final JSON.
    fn remove_pod(&mut self, id: PodId) -> Vec<u8> {
        if self.pod_is(id, |p| !p.finalizers.is_empty()) {
            return self.hold_for_finalizer(id);
        }
        self.release(id);
        let Some(pod) = self.pods.get(&id) else {
            return Vec::new();
        };
        if is_active(pod) {
            self.active -= 1;
        }
        let key = ObjectKey::new(&pod.namespace, &pod.name);
        let mut json = Vec::new();
        self.store.remove(ResourceKind::Pods, &key, |rv| {
            json = render_pod(pod, rv);
            json.clone()
        });
        self.store.usage.remove_pod(&pod.namespace, &pod.name);
        self.emit_pod(id, TransitionKind::Deleted, self.now_ms, Detail::default());
        let pod = self.pods.remove(&id).expect("exists");
        self.pod_names.remove(&(pod.namespace, pod.name));
        self.unschedulable.remove(&id);
        if let Some(node) = pod.node.and_then(|n| self.nodes.get_mut(&n)) {
            node.pods.remove(&id);
        }
        json
    }

    /// Deletes pods beyond the target population, like a scale-down.
    fn keep_population(&mut self) {
        let mut excess = self.active.saturating_sub(self.config.pods);
        let mut attempts = excess * 4;
        while excess > 0 && attempts > 0 {
            attempts -= 1;
            let probe = self.rng.range(1, self.next_pod_id as i64) as PodId;
            let victim = self
                .pods
                .range(probe..)
                .chain(self.pods.range(..probe))
                .take(64)
                .find(|(_, p)| p.role == Role::Service && is_active(p))
                .map(|(id, _)| *id);
            let Some(id) = victim else { break };
            let grace = self.pods[&id].grace_secs;
            self.delete_pod(id, grace);
            excess -= 1;
        }
    }

    fn retry_unschedulable(&mut self) {
        let waiting: Vec<PodId> = self.unschedulable.iter().copied().take(512).collect();
        let mut misses = 0;
        for id in waiting {
            let before = self.unschedulable.len();
            self.schedule(id);
            if self.unschedulable.len() == before {
                misses += 1;
                // The cluster is full: stop scanning until more room appears.
                if misses >= 16 {
                    break;
                }
            }
        }
    }
}

fn is_active(pod: &PodSim) -> bool {
    pod.deletion.is_none() && !pod.phase.is_terminal()
}
