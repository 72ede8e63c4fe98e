//! The node side of the scenario: nodes join and become Ready, get cordoned, go NotReady (the
//! node lifecycle controller marks their pods not ready), change allocatable, and are drained
//! and replaced.

use std::collections::BTreeSet;

use super::{Action, SEC, Scenario};
use crate::cluster::*;
use crate::objects::render_node;
use crate::store::{ObjectKey, ResourceKind};
use crate::workload::GI;
use kubetrail::model::{Resources, TransitionKind};

impl Scenario {
    pub(super) fn new_node(&mut self, created_ms: i64) -> NodeId {
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

    pub(super) fn schedule_node_life(&mut self, id: NodeId) {
        self.after(30.0, 180.0, Action::NodeEvent(id));
        self.after(1.0, 60.0, Action::Heartbeat(id));
    }

    pub(super) fn node_becomes_ready(&mut self, id: NodeId) {
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

    pub(super) fn node_event(&mut self, id: NodeId) {
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
    pub(super) fn change_capacity(&mut self, id: NodeId) {
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
    pub(super) fn drain(&mut self, id: NodeId) {
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

    pub(super) fn remove_node(&mut self, id: NodeId) -> Vec<u8> {
        let Some(node) = self.nodes.get(&id) else {
            return Vec::new();
        };
        let mut json = Vec::new();
        self.store
            .remove(ResourceKind::Nodes, &ObjectKey::new("", &node.name), |rv| {
                json = render_node(node, rv);
                json.clone()
            });
        self.store.usage.remove_node(&node.name);
        self.emit_node(id, TransitionKind::NodeDeleted, self.now_ms);
        let node = self.nodes.remove(&id).expect("exists");
        self.node_names.remove(&node.name);
        self.node_order.retain(|n| *n != id);
        json
    }
}
