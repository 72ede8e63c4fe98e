//! The cluster as it is when the scenario begins: namespaces, nodes and pods that already
//! existed, each with a past (created, scheduled, init containers, started, ready, a few
//! restarts) written to the truth with times before the start.

use super::{Action, DAY, Detail, SEC, Scenario};
use crate::cluster::*;
use crate::objects::render_namespace;
use crate::store::{ObjectKey, ResourceKind, SelectableFields};
use crate::workload::{self, WorkloadKind};
use kubetrail::model::TransitionKind;

impl Scenario {
    pub(super) fn build_initial(&mut self) {
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
        // The ReplicaSets (and their Deployments) with the pods they hold at the start.
        let mut replicas: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
        for pod in self.pods.values() {
            *replicas.entry(pod.owner.uid.as_str()).or_default() += 1;
        }
        for w in &self.workloads {
            if w.kind == workload::WorkloadKind::ReplicaSet {
                let n = replicas.get(w.uid.as_str()).copied().unwrap_or(0);
                crate::owners::publish_replicaset(&self.store, w, n, start - 40 * DAY);
            }
        }
    }

    /// A pod that already existed at the start, with its past written to the truth.
    pub(super) fn build_initial_pod(&mut self, workload: usize) {
        let start = self.now_ms;
        let batch = self.workloads[workload].kind == WorkloadKind::Job;
        let age = if batch {
            self.rng.range(10 * SEC, 25 * SEC)
        } else {
            self.rng.range(60 * SEC, 2 * DAY)
        };
        let mut pod = self.new_pod(workload, start - age);
        if pod.trouble == Trouble::PullFailure {
            // Its image was pulled long ago.
            pod.trouble = Trouble::None;
        }
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
        let admitted_at = scheduled_at + self.rng.range(100, 500);
        let started_at = admitted_at + self.rng.range(1000, 3000);
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
        self.pods.get_mut(&id).expect("inserted").start_ms = Some(admitted_at);
        self.run_inits_in_the_past(id, admitted_at, started_at);
        self.begin_run(id, started_at);
        self.emit_pod(id, TransitionKind::Started, started_at, Detail::default());
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
}
