//! The scenario engine: a deterministic discrete-event simulation of a cluster's control plane
//! and kubelets on a virtual clock quantised in ticks ([`TICK_MS`]).
//!
//! Controllers create pods (ReplicaSets, DaemonSets, Jobs); a scheduler binds them to Ready,
//! uncordoned nodes with room for their effective requests (never overcommitting); kubelets
//! start them, make them Ready, restart crashing containers, finish Jobs, evict; a population
//! controller deletes pods gracefully so the count stays near the target; garbage collection
//! removes finished pods. Nodes are cordoned, go NotReady and come back, change allocatable, and
//! are drained and replaced.
//!
//! Every change is rendered into the [`Store`] and, when it is a lifecycle transition, written
//! to the ground truth, in the same order. All randomness comes from one seeded stream and all
//! times from the tick counter, so a seed, start time and tick count fix the output byte for
//! byte. API requests that change state (deletes) arrive as [`Command`]s between ticks.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

use tokio::sync::oneshot;

use super::clock::{TICK_MS, tick_time_ms};
use super::cluster::*;
use super::objects::{render_namespace, render_node, render_pod};
use super::status::ApiError;
use super::store::{ObjectKey, ResourceKind, SelectableFields, Store};
use super::truth::{TruthLine, TruthWriter};
use super::workload::{self, GI, SimRng, Workload, WorkloadKind};
use crate::model::{Resources, TransitionKind};

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
    Prepare(PodId),
    Start(PodId),
    Ready(PodId),
    Crash(PodId, usize, bool),
    Restart(PodId, usize),
    Finish(PodId, Outcome),
    Evict(PodId),
    Resize(PodId),
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
    next_pod_id: PodId,
    next_node_id: NodeId,
    node_serial: u64,
    job_serial: u64,
}

impl Scenario {
    /// Builds the initial cluster (namespaces, nodes and pods with histories before the start
    /// time), writes it to the store and its history to the truth.
    pub fn new(config: ScenarioConfig, store: Arc<Store>, truth: TruthWriter) -> Scenario {
        let mut rng = SimRng::new(config.seed);
        let workloads = workload::workloads(&mut rng, config.pods);
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
            next_pod_id: 1,
            next_node_id: 1,
            node_serial: 0,
            job_serial: 29_000_000,
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
                entry.0.cpu_millis += pod.effective.requests.cpu_millis;
                entry.0.memory_bytes += pod.effective.requests.memory_bytes;
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

    /// Queues `action` after a random delay in `[lo_secs, hi_secs)`, scaled by the pace.
    fn after(&mut self, lo_secs: f64, hi_secs: f64, action: Action) {
        let lo = (lo_secs * 1000.0 * self.config.pace) as i64;
        let hi = (hi_secs * 1000.0 * self.config.pace) as i64;
        let delay_ms = self.rng.range(lo, hi.max(lo + 1));
        self.at_delay_ms(delay_ms, action);
    }

    /// Queues `action` after exactly `delay_ms` (not scaled: e.g. a grace period).
    fn at_delay_ms(&mut self, delay_ms: i64, action: Action) {
        let ticks = (delay_ms / TICK_MS).max(1) as u64;
        self.seq += 1;
        self.queue.push(Due {
            tick: self.tick + ticks,
            seq: self.seq,
            action,
        });
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
    }

    fn emit_pod(&mut self, id: PodId, kind: TransitionKind, at_ms: i64, detail: Detail) {
        let Some(pod) = self.pods.get(&id) else {
            return;
        };
        let mut line = TruthLine::pod(&pod.uid, &pod.namespace, &pod.name, kind, at_ms);
        line.container = detail.container;
        line.reason = detail.reason;
        line.exit_code = detail.exit_code;
        self.truth.write(&line);
    }

    fn emit_node(&mut self, id: NodeId, kind: TransitionKind, at_ms: i64) {
        let Some(node) = self.nodes.get(&id) else {
            return;
        };
        let line = TruthLine::node(&node.uid, &node.name, kind, at_ms);
        self.truth.write(&line);
    }

    fn emit_container(&mut self, id: PodId, kind: TransitionKind, container: &str, t: &Terminated) {
        let detail = Detail {
            container: Some(container.to_string()),
            reason: Some(t.reason.to_string()),
            exit_code: Some(t.exit_code),
        };
        self.emit_pod(id, kind, t.finished_ms, detail);
    }

    // ----- the initial cluster -----

    fn build_initial(&mut self) {
        let start = self.now_ms;
        for name in workload::NAMESPACES {
            let uid = self.rng.uid();
            let created = start - 40 * DAY;
            self.store.put(
                ResourceKind::Namespaces,
                ObjectKey::new("", name),
                SelectableFields {
                    labels: vec![("kubernetes.io/metadata.name".into(), name.to_string())],
                    node_name: String::new(),
                    phase: "Active".into(),
                },
                |rv| render_namespace(name, &uid, created, rv),
            );
        }
        for _ in 0..self.config.nodes {
            let created = start - self.rng.range(DAY, 30 * DAY);
            let id = self.new_node(created);
            let ready_at = created + 30 * SEC + self.rng.range(0, 5000);
            let node = self.nodes.get_mut(&id).expect("just added");
            node.readiness = NodeReadiness::Ready;
            node.ready_since_ms = ready_at;
            node.heartbeat_ms = start - self.rng.range(0, 40 * SEC);
            self.emit_node(id, TransitionKind::NodeAdded, created);
            self.emit_node(id, TransitionKind::NodeReady, ready_at);
            if self.rng.chance(0.03) {
                let cordoned_at = start - self.rng.range(SEC, (start - ready_at).max(2 * SEC));
                self.nodes.get_mut(&id).expect("exists").unschedulable = true;
                self.emit_node(id, TransitionKind::Cordoned, cordoned_at.max(ready_at));
            }
            self.publish_node(id);
            self.schedule_node_life(id);
        }
        for _ in 0..self.config.pods {
            let index = self.rng.below(self.workloads.len() as u64) as usize;
            self.build_initial_pod(index);
        }
    }

    /// A pod that already existed at the start, with its past written to the truth.
    fn build_initial_pod(&mut self, workload: usize) {
        let start = self.now_ms;
        let batch = self.workloads[workload].kind == WorkloadKind::Job;
        let age = if batch {
            self.rng.range(10 * SEC, 25 * SEC)
        } else {
            self.rng.range(60 * SEC, 2 * DAY)
        };
        let mut pod = self.new_pod(workload, start - age);
        let node = self.find_node(pod.effective.requests);
        if let Some(node) = node {
            // A pod is younger than the node it runs on.
            pod.created_ms = pod.created_ms.max(self.nodes[&node].created_ms + 120 * SEC);
        }
        let id = pod.id;
        let Some(node_id) = node else {
            // No room: it is still waiting for the scheduler.
            pod.created_ms = start - self.rng.range(SEC, 10 * SEC);
            self.insert_pod(pod);
            self.emit_pod(
                id,
                TransitionKind::Created,
                self.pods[&id].created_ms,
                Detail::default(),
            );
            self.publish_pod(id);
            self.after(0.0, 0.5, Action::Schedule(id));
            return;
        };
        let created = pod.created_ms;
        let scheduled_at = created + self.rng.range(100, 1500);
        let started_at = scheduled_at + self.rng.range(1000, 3000);
        let ready_at = started_at + self.rng.range(1000, 4000);
        self.insert_pod(pod);
        self.bind(id, node_id, scheduled_at);
        self.emit_pod(id, TransitionKind::Created, created, Detail::default());
        self.emit_pod(
            id,
            TransitionKind::Scheduled,
            scheduled_at,
            Detail::default(),
        );
        let completed = self.begin_run(id, started_at);
        self.emit_pod(id, TransitionKind::Started, started_at, Detail::default());
        self.emit_init_completions(id, &completed);
        self.set_ready(id, true, ready_at);
        // Some long-running pods restarted in the past.
        if !batch && self.rng.chance(0.1) && started_at + 60 * SEC < start {
            let restarts = self.rng.range(1, 4);
            let mut t = ready_at;
            for _ in 0..restarts {
                let crash_at = self
                    .rng
                    .range(t + 5 * SEC, (t + 10 * SEC).max(start - 20 * SEC));
                if crash_at + 10 * SEC >= start {
                    break;
                }
                let oom = self.rng.chance(0.5);
                self.crash_container(id, 0, oom, crash_at);
                let restart_at = crash_at + self.rng.range(1000, 3000);
                self.restart_container(id, 0, restart_at);
                t = restart_at + self.rng.range(1000, 3000);
                self.set_ready(id, true, t);
            }
        }
        self.publish_pod(id);
        self.schedule_pod_life(id);
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
        let t = w.template;
        let mut pod = PodSim {
            id,
            uid: self.rng.uid(),
            namespace: w.namespace,
            name,
            labels,
            owner,
            role: if w.kind == WorkloadKind::Job {
                Role::Batch
            } else {
                Role::Service
            },
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
            Action::Prepare(id) => self.prepare(id),
            Action::Start(id) => {
                if self.pod_is(id, |p| {
                    p.phase == Phase::Pending && p.node.is_some() && p.deletion.is_none()
                }) {
                    let completed = self.begin_run(id, now);
                    self.emit_pod(id, TransitionKind::Started, now, Detail::default());
                    self.emit_init_completions(id, &completed);
                    self.publish_pod(id);
                    self.schedule_pod_life(id);
                }
            }
            Action::Ready(id) => {
                let node_ready = self
                    .pods
                    .get(&id)
                    .and_then(|p| p.node)
                    .and_then(|n| self.nodes.get(&n))
                    .is_some_and(|n| n.readiness == NodeReadiness::Ready);
                if node_ready
                    && self.pod_is(id, |p| {
                        p.phase == Phase::Running
                            && p.deletion.is_none()
                            && !p.is_ready()
                            && p.statuses.iter().all(ContainerStatus::is_running)
                    })
                {
                    self.set_ready(id, true, now);
                    self.publish_pod(id);
                }
            }
            Action::Crash(id, index, oom) => {
                if self.pod_is(id, |p| {
                    p.phase == Phase::Running
                        && p.deletion.is_none()
                        && p.statuses
                            .get(index)
                            .is_some_and(ContainerStatus::is_running)
                }) {
                    self.crash_container(id, index, oom, now);
                    self.publish_pod(id);
                    self.after(1.0, 4.0, Action::Restart(id, index));
                }
            }
            Action::Restart(id, index) => {
                if self.pod_is(id, |p| {
                    p.phase == Phase::Running
                        && p.deletion.is_none()
                        && p.statuses
                            .get(index)
                            .is_some_and(|s| matches!(s.state, ContainerState::Terminated(_)))
                }) {
                    self.restart_container(id, index, now);
                    self.publish_pod(id);
                    self.after(1.0, 3.0, Action::Ready(id));
                    if self.rng.chance(0.3) {
                        let oom = self.rng.chance(0.5);
                        self.after(10.0, 40.0, Action::Crash(id, index, oom));
                    }
                }
            }
            Action::Finish(id, outcome) => {
                if self.pod_is(id, |p| p.phase == Phase::Running && p.deletion.is_none()) {
                    self.finish(id, outcome, None);
                }
            }
            Action::Evict(id) => {
                if self.pod_is(id, |p| p.phase == Phase::Running && p.deletion.is_none()) {
                    self.finish(id, Outcome::Failed, Some("Evicted"));
                }
            }
            Action::Resize(id) => self.resize(id),
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
                if pod.scheduled.is_none() {
                    pod.scheduled = Some(Condition::new(false, now).with_reason(
                        "Unschedulable",
                        Some(format!(
                            "0/{nodes} nodes are available: {nodes} Insufficient cpu, memory or pods, or node(s) were unschedulable. preemption: 0/{nodes} nodes are available: {nodes} No preemption victims found for incoming pod."
                        )),
                    ));
                    self.publish_pod(id);
                }
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
        node.requested = add(node.requested, pod.effective.requests);
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
            node.requested = sub(node.requested, request);
            node.pod_count -= 1;
        }
        self.capacity_freed = true;
    }

    /// The kubelet has the pod: init containers run, app containers wait.
    fn prepare(&mut self, id: PodId) {
        if !self.pod_is(id, |p| {
            p.phase == Phase::Pending && p.node.is_some() && p.deletion.is_none()
        }) {
            return;
        }
        let now = self.now_ms;
        let pod = self.pods.get_mut(&id).expect("checked");
        let has_init = pod.init_containers.iter().any(|c| !c.sidecar);
        pod.initialized = Some(if has_init {
            Condition::new(false, now).with_reason(
                "ContainersNotInitialized",
                Some("containers with incomplete status: [init-config]".into()),
            )
        } else {
            Condition::new(true, now)
        });
        let waiting = if pod.init_containers.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let not_ready = Condition::new(false, now).with_reason(
            "ContainersNotReady",
            Some(format!(
                "containers with unready status: [{}]",
                pod.containers
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
        );
        pod.ready = Some(not_ready.clone());
        pod.containers_ready = Some(not_ready);
        let mut first = true;
        pod.init_statuses = pod
            .init_containers
            .iter()
            .map(|_| {
                if std::mem::take(&mut first) {
                    ContainerStatus {
                        state: ContainerState::Running { started_ms: now },
                        ..ContainerStatus::waiting("")
                    }
                } else {
                    ContainerStatus::waiting("PodInitializing")
                }
            })
            .collect();
        pod.statuses = pod
            .containers
            .iter()
            .map(|_| ContainerStatus::waiting(waiting))
            .collect();
        self.publish_pod(id);
        self.after(1.0, 3.0, Action::Start(id));
    }

    /// Phase Running: init containers done, sidecars and app containers running.
    /// Returns the plain init containers that completed, for the caller to emit after
    /// `started` (the truth lists a pod's start before its containers' ends).
    #[must_use]
    fn begin_run(&mut self, id: PodId, at_ms: i64) -> Vec<(String, Terminated)> {
        let ip = format!(
            "10.{}.{}.{}",
            64 + (id >> 16) % 64,
            (id >> 8) % 256,
            id % 256
        );
        let pod = self.pods.get_mut(&id).expect("pod exists");
        pod.phase = Phase::Running;
        pod.start_ms = Some(at_ms);
        pod.pod_ip = Some(ip);
        let init_started = pod.scheduled.as_ref().map_or(at_ms, |c| c.at_ms).min(at_ms);
        pod.init_statuses = pod
            .init_containers
            .iter()
            .map(|c| {
                if c.sidecar {
                    ContainerStatus {
                        state: ContainerState::Running { started_ms: at_ms },
                        last: None,
                        restart_count: 0,
                        ready: true,
                    }
                } else {
                    ContainerStatus {
                        state: ContainerState::Terminated(Terminated {
                            exit_code: 0,
                            reason: "Completed",
                            started_ms: init_started,
                            finished_ms: at_ms,
                        }),
                        last: None,
                        restart_count: 0,
                        ready: false,
                    }
                }
            })
            .collect();
        pod.statuses = pod
            .containers
            .iter()
            .map(|_| ContainerStatus {
                state: ContainerState::Running { started_ms: at_ms },
                last: None,
                restart_count: 0,
                ready: false,
            })
            .collect();
        pod.initialized = Some(Condition::new(true, at_ms));
        // Plain init containers ran to completion before the app containers started.
        let completed: Vec<(String, Terminated)> = pod
            .init_containers
            .iter()
            .zip(&pod.init_statuses)
            .filter_map(|(spec, status)| match &status.state {
                ContainerState::Terminated(t) => Some((spec.name.to_string(), t.clone())),
                _ => None,
            })
            .collect();
        let not_ready = Condition::new(false, at_ms).with_reason("ContainersNotReady", None);
        if pod.ready.is_none() {
            pod.ready = Some(not_ready.clone());
        }
        if pod.containers_ready.is_none() {
            pod.containers_ready = Some(not_ready);
        }
        completed
    }

    fn emit_init_completions(&mut self, id: PodId, completed: &[(String, Terminated)]) {
        for (name, t) in completed {
            self.emit_container(id, TransitionKind::ContainerTerminated, name, t);
        }
    }

    /// Flips the Ready (and ContainersReady) condition; a flip is a transition.
    fn set_ready(&mut self, id: PodId, ready: bool, at_ms: i64) {
        let pod = self.pods.get_mut(&id).expect("pod exists");
        let was = pod.is_ready();
        for status in &mut pod.statuses {
            status.ready = ready && status.is_running();
        }
        if was == ready {
            return;
        }
        let condition = if ready {
            Condition::new(true, at_ms)
        } else {
            Condition::new(false, at_ms).with_reason("ContainersNotReady", None)
        };
        pod.ready = Some(condition.clone());
        pod.containers_ready = Some(condition);
        let kind = if ready {
            TransitionKind::Ready
        } else {
            TransitionKind::Unready
        };
        self.emit_pod(id, kind, at_ms, Detail::default());
    }

    fn crash_container(&mut self, id: PodId, index: usize, oom: bool, at_ms: i64) {
        let pod = self.pods.get_mut(&id).expect("pod exists");
        let status = &mut pod.statuses[index];
        let started_ms = status.started_ms().unwrap_or(at_ms);
        let (exit_code, reason) = if oom {
            (137, "OOMKilled")
        } else {
            (1, "Error")
        };
        let t = Terminated {
            exit_code,
            reason,
            started_ms,
            finished_ms: at_ms,
        };
        status.state = ContainerState::Terminated(t.clone());
        status.ready = false;
        let name = pod.containers[index].name.clone();
        self.emit_container(id, TransitionKind::ContainerTerminated, &name, &t);
        self.set_ready(id, false, at_ms);
    }

    fn restart_container(&mut self, id: PodId, index: usize, at_ms: i64) {
        let pod = self.pods.get_mut(&id).expect("pod exists");
        let status = &mut pod.statuses[index];
        let ContainerState::Terminated(t) = status.state.clone() else {
            return;
        };
        status.last = Some(t.clone());
        status.restart_count += 1;
        status.state = ContainerState::Running { started_ms: at_ms };
        let name = pod.containers[index].name.clone();
        self.emit_container(id, TransitionKind::ContainerRestarted, &name, &t);
    }

    /// Queues what will happen to a pod once it runs.
    fn schedule_pod_life(&mut self, id: PodId) {
        let Some(pod) = self.pods.get(&id) else {
            return;
        };
        let containers = pod.containers.len();
        let has_pod_level = pod.pod_resources.is_some();
        match pod.role {
            Role::Batch => {
                self.after(1.0, 4.0, Action::Ready(id));
                let roll = self.rng.unit();
                let outcome = if roll < 0.8 {
                    Outcome::Succeeded
                } else {
                    Outcome::Failed
                };
                if roll > 0.95 {
                    self.after(6.0, 20.0, Action::Evict(id));
                } else {
                    self.after(6.0, 30.0, Action::Finish(id, outcome));
                }
            }
            Role::Service => {
                self.after(1.0, 4.0, Action::Ready(id));
                if self.rng.chance(0.3) {
                    let index = self.rng.below(containers as u64) as usize;
                    let oom = self.rng.chance(0.5);
                    self.after(8.0, 40.0, Action::Crash(id, index, oom));
                }
                if self.rng.chance(0.02) {
                    self.after(20.0, 120.0, Action::Evict(id));
                }
                if !has_pod_level && self.rng.chance(0.05) {
                    self.after(10.0, 60.0, Action::Resize(id));
                }
            }
        }
    }

    /// The pod reaches a terminal phase: its containers end, then the phase changes.
    fn finish(&mut self, id: PodId, outcome: Outcome, reason: Option<&'static str>) {
        let now = self.now_ms;
        let evicted = reason.is_some();
        let mut ended = Vec::new();
        {
            let pod = self.pods.get_mut(&id).expect("pod exists");
            for (index, (spec, status)) in pod
                .containers
                .iter()
                .zip(pod.statuses.iter_mut())
                .enumerate()
            {
                let Some(started_ms) = status.started_ms() else {
                    continue;
                };
                let (exit_code, why) = match (outcome, evicted, index) {
                    (_, true, _) => (137, "Error"),
                    (Outcome::Failed, false, 0) => (1, "Error"),
                    _ => (0, "Completed"),
                };
                let t = Terminated {
                    exit_code,
                    reason: why,
                    started_ms,
                    finished_ms: now,
                };
                status.state = ContainerState::Terminated(t.clone());
                status.ready = false;
                ended.push((spec.name.clone(), t));
            }
            // Sidecars (running init containers) end with the pod; they are containers that
            // terminate like any other, so the truth has a row for each.
            for (spec, status) in pod.init_containers.iter().zip(pod.init_statuses.iter_mut()) {
                if let Some(started_ms) = status.started_ms() {
                    let t = Terminated {
                        exit_code: if evicted { 137 } else { 0 },
                        reason: if evicted { "Error" } else { "Completed" },
                        started_ms,
                        finished_ms: now,
                    };
                    status.state = ContainerState::Terminated(t.clone());
                    status.ready = false;
                    ended.push((spec.name.clone(), t));
                }
            }
        }
        for (name, t) in &ended {
            self.emit_container(id, TransitionKind::ContainerTerminated, name, t);
        }
        self.set_ready(id, false, now);
        self.release(id);
        let pod = self.pods.get_mut(&id).expect("pod exists");
        for condition in [&mut pod.ready, &mut pod.containers_ready]
            .into_iter()
            .flatten()
        {
            if condition.status {
                continue;
            }
            condition.reason = Some("PodCompleted");
            condition.message = None;
        }
        pod.phase = if outcome == Outcome::Succeeded {
            Phase::Succeeded
        } else {
            Phase::Failed
        };
        if evicted {
            pod.reason = Some("Evicted");
            pod.message = Some(format!(
                "The node was low on resource: memory. Threshold quantity: 100Mi, available: 91228Ki. Container {} was using 1402364Ki, request is {}.",
                pod.containers[0].name,
                super::objects::memory_quantity(pod.containers[0].requests.memory_bytes)
            ));
        }
        self.active -= 1;
        let kind = if outcome == Outcome::Succeeded {
            TransitionKind::Succeeded
        } else {
            TransitionKind::Failed
        };
        let detail = Detail {
            reason: reason.map(str::to_string),
            ..Detail::default()
        };
        self.emit_pod(id, kind, now, detail);
        self.publish_pod(id);
        self.after(5.0, 20.0, Action::Collect(id));
    }

    /// In-place resize of the first container's cpu request, only if the node has room.
    fn resize(&mut self, id: PodId) {
        if !self.pod_is(id, |p| {
            p.phase == Phase::Running && p.deletion.is_none() && p.pod_resources.is_none()
        }) {
            return;
        }
        let factor_up = self.rng.chance(0.5);
        let pod = &self.pods[&id];
        let old = pod.containers[0].requests;
        let cpu = if factor_up {
            old.cpu_millis * 2
        } else {
            (old.cpu_millis / 2).max(10)
        };
        if cpu == old.cpu_millis {
            return;
        }
        let mut resized = pod.clone();
        resized.containers[0].requests.cpu_millis = cpu;
        let limits = &mut resized.containers[0].limits;
        if limits.cpu_millis != 0 && limits.cpu_millis < cpu {
            limits.cpu_millis = cpu;
        }
        if old == pod.containers[0].limits {
            // Keep a Guaranteed pod Guaranteed.
            resized.containers[0].limits.cpu_millis = cpu;
        }
        resized.recompute_effective();
        let delta = sub(resized.effective.requests, pod.effective.requests);
        let node_id = pod.node.expect("running pods are bound");
        let node = &self.nodes[&node_id];
        let fits = node.requested.cpu_millis + delta.cpu_millis <= node.allocatable.cpu_millis
            && node.requested.memory_bytes + delta.memory_bytes <= node.allocatable.memory_bytes;
        if !fits {
            return;
        }
        let node = self.nodes.get_mut(&node_id).expect("exists");
        node.requested = add(node.requested, delta);
        if delta.cpu_millis < 0 {
            self.capacity_freed = true;
        }
        self.pods.insert(id, resized);
        // The spec change and the kubelet's report of it arrive in one update here.
        let container = Some(self.pods[&id].containers[0].name.clone());
        let detail = || Detail {
            container: container.clone(),
            ..Detail::default()
        };
        self.emit_pod(id, TransitionKind::ResizeRequested, self.now_ms, detail());
        self.emit_pod(id, TransitionKind::Resized, self.now_ms, detail());
        self.publish_pod(id);
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

    /// Removes a pod object; returns its final JSON.
    fn remove_pod(&mut self, id: PodId) -> Vec<u8> {
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

    // ----- nodes -----

    fn new_node(&mut self, created_ms: i64) -> NodeId {
        const TYPES: &[(&str, i64, i64)] = &[
            ("m5.xlarge", 4, 16),
            ("m5.2xlarge", 8, 32),
            ("c5.4xlarge", 16, 32),
            ("r5.2xlarge", 8, 64),
        ];
        const ZONES: &[&str] = &["us-east-1a", "us-east-1b", "us-east-1c"];
        let (instance_type, cpus, mem_gi) = *self.rng.pick(TYPES);
        let zone = *self.rng.pick(ZONES);
        self.node_serial += 1;
        let serial = self.node_serial;
        let (a, b) = (serial / 250, serial % 250 + 4);
        let name = format!("ip-10-0-{a}-{b}.ec2.internal");
        let capacity = NodeCapacity {
            cpu_millis: cpus * 1000,
            memory_bytes: mem_gi * GI - 3 * 1024 * 1024,
            pods: 110,
        };
        let allocatable = NodeCapacity {
            cpu_millis: capacity.cpu_millis - 80 - 10 * cpus,
            memory_bytes: capacity.memory_bytes - (mem_gi / 16 + 1) * 700 * 1024 * 1024,
            pods: 110,
        };
        let id = self.next_node_id;
        self.next_node_id += 1;
        let node = NodeSim {
            id,
            uid: self.rng.uid(),
            name: name.clone(),
            created_ms,
            instance_type,
            zone,
            internal_ip: format!("10.0.{a}.{b}"),
            pod_cidr: format!("100.{}.{}.0/24", 64 + serial / 256 % 64, serial % 256),
            capacity,
            allocatable,
            unschedulable: false,
            readiness: NodeReadiness::NotReady,
            ready_since_ms: created_ms,
            heartbeat_ms: created_ms,
            draining: false,
            pods: BTreeSet::new(),
            requested: Resources::default(),
            pod_count: 0,
        };
        self.nodes.insert(id, node);
        self.node_names.insert(name, id);
        self.node_order.push(id);
        id
    }

    fn schedule_node_life(&mut self, id: NodeId) {
        self.after(30.0, 180.0, Action::NodeEvent(id));
        self.after(1.0, 60.0, Action::Heartbeat(id));
    }

    fn node_becomes_ready(&mut self, id: NodeId) {
        let now = self.now_ms;
        let Some(node) = self.nodes.get_mut(&id) else {
            return;
        };
        if node.readiness == NodeReadiness::Ready {
            return;
        }
        let first_time = node.heartbeat_ms == node.created_ms;
        node.readiness = NodeReadiness::Ready;
        node.ready_since_ms = now;
        node.heartbeat_ms = now;
        let pods: Vec<PodId> = node.pods.iter().copied().collect();
        self.emit_node(id, TransitionKind::NodeReady, now);
        self.publish_node(id);
        self.capacity_freed = true;
        for pod in pods {
            self.after(0.5, 2.0, Action::Ready(pod));
        }
        if first_time {
            self.schedule_node_life(id);
        }
    }

    fn node_event(&mut self, id: NodeId) {
        let now = self.now_ms;
        let Some(node) = self.nodes.get(&id) else {
            return;
        };
        if node.draining || node.readiness != NodeReadiness::Ready {
            self.after(30.0, 180.0, Action::NodeEvent(id));
            return;
        }
        let roll = self.rng.unit();
        if roll < 0.35 {
            if !node.unschedulable {
                self.nodes.get_mut(&id).expect("exists").unschedulable = true;
                self.emit_node(id, TransitionKind::Cordoned, now);
                self.publish_node(id);
                self.after(5.0, 20.0, Action::Uncordon(id));
            }
        } else if roll < 0.7 {
            let unknown = self.rng.chance(0.5);
            let node = self.nodes.get_mut(&id).expect("exists");
            node.readiness = if unknown {
                NodeReadiness::Unknown
            } else {
                NodeReadiness::NotReady
            };
            node.ready_since_ms = now;
            let pods: Vec<PodId> = node.pods.iter().copied().collect();
            self.emit_node(id, TransitionKind::NodeNotReady, now);
            self.publish_node(id);
            // The node lifecycle controller marks the node's pods not ready.
            for pod in pods {
                if self.pod_is(pod, |p| p.is_ready() && p.deletion.is_none()) {
                    self.set_ready(pod, false, now);
                    self.publish_pod(pod);
                }
            }
            self.after(5.0, 20.0, Action::NodeReady(id));
        } else if roll < 0.85 {
            self.change_capacity(id);
        } else if self.nodes.len() > 1 {
            self.drain(id);
            return;
        }
        self.after(30.0, 180.0, Action::NodeEvent(id));
    }

    /// Allocatable (and capacity) grow or shrink by a core and a few GiB, never below what is
    /// already requested.
    fn change_capacity(&mut self, id: NodeId) {
        let grow = self.rng.chance(0.5);
        let node = self.nodes.get_mut(&id).expect("exists");
        let sign = if grow { 1 } else { -1 };
        let cpu = node.allocatable.cpu_millis + sign * 1000;
        let memory = node.allocatable.memory_bytes + sign * 2 * GI;
        if cpu < node.requested.cpu_millis.max(1000)
            || memory < node.requested.memory_bytes.max(2 * GI)
        {
            return;
        }
        node.capacity.cpu_millis += sign * 1000;
        node.capacity.memory_bytes += sign * 2 * GI;
        node.allocatable.cpu_millis = cpu;
        node.allocatable.memory_bytes = memory;
        if grow {
            self.capacity_freed = true;
        }
        self.emit_node(id, TransitionKind::CapacityChanged, self.now_ms);
        self.publish_node(id);
    }

    /// Cordons the node and evicts its pods; the node is deleted once they are gone.
    fn drain(&mut self, id: NodeId) {
        let now = self.now_ms;
        let node = self.nodes.get_mut(&id).expect("exists");
        node.draining = true;
        let was_cordoned = std::mem::replace(&mut node.unschedulable, true);
        let pods: Vec<PodId> = node.pods.iter().copied().collect();
        if !was_cordoned {
            self.emit_node(id, TransitionKind::Cordoned, now);
        }
        self.publish_node(id);
        for pod in pods {
            if self.pod_is(pod, |p| p.deletion.is_none()) {
                let grace = self.pods[&pod].grace_secs;
                self.delete_pod(pod, grace);
            }
        }
        self.at_delay_ms(SEC, Action::DrainCheck(id));
    }

    fn remove_node(&mut self, id: NodeId) -> Vec<u8> {
        let Some(node) = self.nodes.get(&id) else {
            return Vec::new();
        };
        let mut json = Vec::new();
        self.store
            .remove(ResourceKind::Nodes, &ObjectKey::new("", &node.name), |rv| {
                json = render_node(node, rv);
                json.clone()
            });
        self.emit_node(id, TransitionKind::NodeDeleted, self.now_ms);
        let node = self.nodes.remove(&id).expect("exists");
        self.node_names.remove(&node.name);
        self.node_order.retain(|n| *n != id);
        json
    }
}

fn is_active(pod: &PodSim) -> bool {
    pod.deletion.is_none() && !pod.phase.is_terminal()
}

fn add(a: Resources, b: Resources) -> Resources {
    Resources::new(a.cpu_millis + b.cpu_millis, a.memory_bytes + b.memory_bytes)
}

fn sub(a: Resources, b: Resources) -> Resources {
    Resources::new(a.cpu_millis - b.cpu_millis, a.memory_bytes - b.memory_bytes)
}
