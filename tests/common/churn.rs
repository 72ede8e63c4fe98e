//! Shared test helper (also used by examples/soak.rs): a synthetic history of a churning
//! cluster, produced as [`Batch`]es for the real writer (`store::write_batch`), on a fake clock
//! that the caller advances as fast as it likes.
//!
//! Pods live on nodes; each step ends the oldest pods (succeeded, then deleted) and starts as
//! many new ones, and writes what the recorder would: pod rows, transitions, resources, and
//! every node's utilisation step function (a row per change and a keyframe every
//! `keyframe_every_ms`). Deterministic for a given seed.
#![allow(dead_code)]

use std::collections::VecDeque;

use kubetrail::model::{Effective, Phase, Resources, TransitionKind};
use kubetrail::store::{
    Batch, NodeCapacityRow, NodeResources, NodeRow, NodeUsageRow, PodResourcesRow, PodRow,
    SubjectUid, TransitionRow,
};

const GI: i64 = 1 << 30;

/// The recorder's compact projection is a few hundred bytes of JSON; this stands in for it so
/// that sizes on disk are realistic.
const STATE_PADDING: &str = "containers:[{name:app,ready:true,restartCount:0,state:running,startedAt:2024-05-01T00:00:00Z},\
                             {name:sidecar,ready:true,restartCount:0,state:running}],conditions:[PodScheduled,Initialized,\
                             ContainersReady,Ready],qos:Burstable";

struct LivePod {
    uid: String,
    name: String,
    node: usize,
    created_ms: i64,
    resources: Effective,
}

#[derive(Clone, Copy, Default)]
struct Load {
    requested: Resources,
    limits: Resources,
    pods: i64,
}

struct ChurnNode {
    uid: String,
    name: String,
    load: Load,
}

/// A cluster on a fake clock.
pub struct Churn {
    pub now_ms: i64,
    pub keyframe_every_ms: i64,
    nodes: Vec<ChurnNode>,
    live: VecDeque<LivePod>,
    next_pod: u64,
    next_node: u64,
    rng: u64,
}

enum Event {
    Start,
    End,
    Keyframe,
}

impl Churn {
    /// `nodes` nodes with `live_pods` running pods spread over them, all created at `start_ms`.
    pub fn new(start_ms: i64, nodes: usize, live_pods: usize, seed: u64) -> (Churn, Batch) {
        let mut churn = Churn {
            now_ms: start_ms,
            keyframe_every_ms: 30_000,
            nodes: Vec::new(),
            live: VecDeque::new(),
            next_pod: 0,
            next_node: 0,
            rng: seed.max(1),
        };
        let mut batch = Batch::default();
        for _ in 0..nodes {
            churn.add_node(start_ms, &mut batch);
        }
        for _ in 0..live_pods {
            churn.start_pod(start_ms, &mut batch);
        }
        for i in 0..churn.nodes.len() {
            churn.usage_row(i, start_ms, true, &mut batch);
        }
        (churn, batch)
    }

    pub fn live_pod_uids(&self) -> Vec<String> {
        self.live.iter().map(|p| p.uid.clone()).collect()
    }

    pub fn node_uids(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.uid.clone()).collect()
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: deterministic and good enough to spread times and sizes.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn add_node(&mut self, at_ms: i64, batch: &mut Batch) {
        let n = self.next_node;
        self.next_node += 1;
        let uid = format!("node-uid-{n:05}");
        let name = format!("node-{n:05}");
        let resources = NodeResources {
            cpu_millis: 16_000,
            memory_bytes: 64 * GI,
            pods: 110,
        };
        batch.nodes.push(NodeRow {
            uid: uid.clone(),
            name: name.clone(),
            created_at_ms: at_ms,
            deleted_at_ms: None,
            capacity: resources,
            allocatable: resources,
            state_json: r#"{"ready":true,"unschedulable":false}"#.into(),
        });
        batch.node_capacity.push(NodeCapacityRow {
            node_uid: uid.clone(),
            at_ms,
            capacity: resources,
            allocatable: resources,
        });
        batch.transitions.push(TransitionRow::new(
            SubjectUid::Node(uid.clone()),
            TransitionKind::NodeAdded,
            at_ms,
            at_ms,
        ));
        self.nodes.push(ChurnNode {
            uid,
            name,
            load: Load::default(),
        });
    }

    fn pod_row(&self, pod: &LivePod, phase: Phase, ended_ms: Option<i64>) -> PodRow {
        PodRow {
            uid: pod.uid.clone(),
            namespace: "churn".into(),
            name: pod.name.clone(),
            node: Some(self.nodes[pod.node].name.clone()),
            owner_kind: Some("ReplicaSet".into()),
            owner_name: Some("worker-6d4cf56db6".into()),
            labels_json: Some(r#"{"app":"worker","tier":"batch"}"#.into()),
            created_at_ms: pod.created_ms,
            started_at_ms: Some(pod.created_ms + 2_000),
            finished_at_ms: ended_ms,
            deleted_at_ms: ended_ms.map(|t| t + 1_000),
            phase,
            reason: ended_ms.map(|_| "Completed".into()),
            restarts: 0,
            resources: pod.resources,
            state: format!("{{\"uid\":\"{}\",{STATE_PADDING}}}", pod.uid).into_bytes(),
        }
    }

    fn start_pod(&mut self, at_ms: i64, batch: &mut Batch) {
        let id = self.next_pod;
        self.next_pod += 1;
        let node = (self.random() % self.nodes.len() as u64) as usize;
        let cpu = 100 + (self.random() % 20) as i64 * 50;
        let memory = (128 + (self.random() % 16) as i64 * 64) << 20;
        let pod = LivePod {
            uid: format!("pod-uid-{id:09}-{:016x}", self.random()),
            name: format!("worker-{id}"),
            node,
            created_ms: at_ms,
            resources: Effective {
                requests: Resources::new(cpu, memory),
                limits: Resources::new(2 * cpu, 2 * memory),
            },
        };
        batch.pods.push(self.pod_row(&pod, Phase::Running, None));
        batch.pod_resources.push(PodResourcesRow {
            pod_uid: pod.uid.clone(),
            at_ms,
            resources: pod.resources,
        });
        let subject = SubjectUid::Pod(pod.uid.clone());
        let t = |kind, at| TransitionRow::new(subject.clone(), kind, at, at + 150);
        batch.transitions.push(TransitionRow {
            phase_after: Some(Phase::Pending),
            resource_version: Some(id as i64 * 10),
            ..t(TransitionKind::Created, at_ms)
        });
        batch.transitions.push(t(TransitionKind::Scheduled, at_ms));
        batch.transitions.push(TransitionRow {
            phase_before: Some(Phase::Pending),
            phase_after: Some(Phase::Running),
            ..t(TransitionKind::Started, at_ms + 2_000)
        });
        batch
            .transitions
            .push(t(TransitionKind::Ready, at_ms + 5_000));
        let load = &mut self.nodes[node].load;
        load.requested = Resources::new(
            load.requested.cpu_millis + cpu,
            load.requested.memory_bytes + memory,
        );
        load.limits = Resources::new(
            load.limits.cpu_millis + 2 * cpu,
            load.limits.memory_bytes + 2 * memory,
        );
        load.pods += 1;
        self.live.push_back(pod);
    }

    fn end_pod(&mut self, pod: LivePod, at_ms: i64, batch: &mut Batch) {
        batch
            .pods
            .push(self.pod_row(&pod, Phase::Succeeded, Some(at_ms)));
        let subject = SubjectUid::Pod(pod.uid.clone());
        let t = |kind, at| TransitionRow::new(subject.clone(), kind, at, at + 150);
        batch.transitions.push(TransitionRow {
            container: Some("app".into()),
            reason: Some("Completed".into()),
            exit_code: Some(0),
            ..t(TransitionKind::ContainerTerminated, at_ms)
        });
        batch.transitions.push(TransitionRow {
            phase_before: Some(Phase::Running),
            phase_after: Some(Phase::Succeeded),
            reason: Some("Completed".into()),
            ..t(TransitionKind::Succeeded, at_ms)
        });
        batch.transitions.push(TransitionRow {
            phase_before: Some(Phase::Succeeded),
            phase_after: Some(Phase::Succeeded),
            ..t(TransitionKind::Deleted, at_ms + 1_000)
        });
        let load = &mut self.nodes[pod.node].load;
        let r = pod.resources;
        load.requested = Resources::new(
            load.requested.cpu_millis - r.requests.cpu_millis,
            load.requested.memory_bytes - r.requests.memory_bytes,
        );
        load.limits = Resources::new(
            load.limits.cpu_millis - r.limits.cpu_millis,
            load.limits.memory_bytes - r.limits.memory_bytes,
        );
        load.pods -= 1;
    }

    fn usage_row(&self, node: usize, at_ms: i64, keyframe: bool, batch: &mut Batch) {
        let n = &self.nodes[node];
        batch.node_usage.push(NodeUsageRow {
            node_uid: n.uid.clone(),
            at_ms,
            requested: n.load.requested,
            limits: n.load.limits,
            pod_count: n.load.pods,
            allocatable: Resources::new(16_000, 64 * GI),
            keyframe,
        });
    }

    /// Advances the clock by `step_ms`: `turnover` of the oldest pods end and as many start, at
    /// random times within the step, and every node gets its keyframes.
    pub fn advance(&mut self, step_ms: i64, turnover: usize) -> Batch {
        let from = self.now_ms;
        let mut events: Vec<(i64, Event)> = Vec::new();
        for _ in 0..turnover {
            events.push((
                from + 1 + (self.random() % step_ms as u64) as i64,
                Event::End,
            ));
            events.push((
                from + 1 + (self.random() % step_ms as u64) as i64,
                Event::Start,
            ));
        }
        let mut tick = (from / self.keyframe_every_ms + 1) * self.keyframe_every_ms;
        while tick <= from + step_ms {
            events.push((tick, Event::Keyframe));
            tick += self.keyframe_every_ms;
        }
        events.sort_by_key(|(t, _)| *t);
        let mut batch = Batch::default();
        for (at, event) in events {
            match event {
                Event::Start => {
                    self.start_pod(at, &mut batch);
                    let node = self.live.back().map_or(0, |p| p.node);
                    self.usage_row(node, at, false, &mut batch);
                }
                Event::End => {
                    if let Some(pod) = self.live.pop_front() {
                        let node = pod.node;
                        self.end_pod(pod, at, &mut batch);
                        self.usage_row(node, at, false, &mut batch);
                    }
                }
                Event::Keyframe => {
                    for node in 0..self.nodes.len() {
                        self.usage_row(node, at, true, &mut batch);
                    }
                }
            }
        }
        self.now_ms = from + step_ms;
        batch
    }

    /// Replaces the oldest node: its pods end, it is deleted, a new node joins.
    pub fn replace_node(&mut self) -> Batch {
        let at = self.now_ms;
        let mut batch = Batch::default();
        let doomed: Vec<LivePod> = {
            let (gone, kept): (Vec<_>, Vec<_>) = self.live.drain(..).partition(|p| p.node == 0);
            self.live = kept.into();
            gone
        };
        for pod in doomed {
            self.end_pod(pod, at, &mut batch);
        }
        self.usage_row(0, at, false, &mut batch);
        let old = self.nodes.remove(0);
        for pod in self.live.iter_mut() {
            pod.node -= 1;
        }
        batch.nodes.push(NodeRow {
            uid: old.uid.clone(),
            name: old.name.clone(),
            created_at_ms: at,
            deleted_at_ms: Some(at),
            capacity: NodeResources {
                cpu_millis: 16_000,
                memory_bytes: 64 * GI,
                pods: 110,
            },
            allocatable: NodeResources {
                cpu_millis: 16_000,
                memory_bytes: 64 * GI,
                pods: 110,
            },
            state_json: "{}".into(),
        });
        batch.transitions.push(TransitionRow::new(
            SubjectUid::Node(old.uid),
            TransitionKind::NodeDeleted,
            at,
            at,
        ));
        self.add_node(at, &mut batch);
        let last = self.nodes.len() - 1;
        self.usage_row(last, at, false, &mut batch);
        batch
    }
}
