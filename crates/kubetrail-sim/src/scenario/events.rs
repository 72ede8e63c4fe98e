//! Which Kubernetes Events the scenario's components write, from the transitions it makes:
//! the scheduler's Scheduled and FailedScheduling, the kubelet's Pulling, Pulled, Created,
//! Started, Killing, BackOff and Failed, the node controller's and kubelet's node events.
//! [`crate::events`] turns them into Event objects in both API groups.

use super::{Detail, Scenario};
use crate::clock::TICK_MS;
use crate::cluster::*;
use crate::events::{Occurrence, Regarding, Reporter};
use kubetrail::model::TransitionKind;

impl Scenario {
    fn pod_regarding(&self, id: PodId, container: Option<&str>) -> Option<Regarding> {
        let pod = self.pods.get(&id)?;
        Some(Regarding {
            kind: "Pod",
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            container: container.map(str::to_string),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn pod_event(
        &mut self,
        id: PodId,
        container: Option<&str>,
        reason: &'static str,
        warning: bool,
        note: String,
        reporter: Reporter,
        at_ms: i64,
    ) {
        let Some(regarding) = self.pod_regarding(id, container) else {
            return;
        };
        let host = self.pods[&id].node_name.clone();
        self.events.record(Occurrence {
            regarding,
            reason,
            warning,
            note,
            reporter,
            host: host.as_deref(),
            at_ms,
        });
    }

    /// The Events flood of [`ScenarioConfig::event_flood_per_min`](super::ScenarioConfig):
    /// readiness probes failing on random running pods, as when a dependency of many pods goes
    /// down. A pod hit again grows its Unhealthy series, as the kubelet's repeats do. Owed
    /// events that find no running pod are dropped, not saved up for a burst.
    pub(super) fn flood_events(&mut self) {
        self.flood += self.config.event_flood_per_min * TICK_MS as f64 / 60_000.0;
        while self.flood >= 1.0 {
            self.flood -= 1.0;
            let probe = self.flood_rng.range(1, self.next_pod_id as i64) as PodId;
            let hit = self
                .pods
                .range(probe..)
                .chain(self.pods.range(..probe))
                // Far enough that a cluster with 1% of its pods running still finds one
                // (all but never fails), near enough to bound a tick's work.
                .take(4096)
                .find(|(_, p)| p.phase == Phase::Running && p.deletion.is_none())
                .and_then(|(id, p)| Some((*id, p.containers.first()?.name.clone())));
            let Some((id, container)) = hit else {
                self.flood = 0.0;
                return;
            };
            let note = "Readiness probe failed: HTTP probe failed with statuscode: 503";
            let (k, now) = (Reporter::Kubelet, self.now_ms);
            self.pod_event(id, Some(&container), "Unhealthy", true, note.into(), k, now);
        }
    }

    /// The scheduler found no node: one FailedScheduling series per pod, grown at each try.
    pub(super) fn failed_scheduling_event(&mut self, id: PodId, message: String) {
        let now = self.now_ms;
        self.pod_event(
            id,
            None,
            "FailedScheduling",
            true,
            message,
            Reporter::Scheduler,
            now,
        );
    }

    /// The events that come with a pod transition.
    pub(super) fn pod_events(&mut self, id: PodId, kind: TransitionKind, at_ms: i64, d: &Detail) {
        let Some(pod) = self.pods.get(&id) else {
            return;
        };
        let (ns, name) = (pod.namespace.clone(), pod.name.clone());
        let node = pod.node_name.clone().unwrap_or_default();
        let containers: Vec<(String, &'static str)> = pod
            .containers
            .iter()
            .map(|c| (c.name.clone(), c.image))
            .collect();
        let container = d.container.as_deref();
        match kind {
            TransitionKind::Scheduled => self.pod_event(
                id,
                None,
                "Scheduled",
                false,
                format!("Successfully assigned {ns}/{name} to {node}"),
                Reporter::Scheduler,
                at_ms,
            ),
            TransitionKind::Started => {
                for (name, image) in containers {
                    let c = Some(name.as_str());
                    let k = Reporter::Kubelet;
                    let pulling = format!("Pulling image \"{image}\"");
                    self.pod_event(id, c, "Pulling", false, pulling, k, at_ms);
                    let pulled = format!("Successfully pulled image \"{image}\"");
                    self.pod_event(id, c, "Pulled", false, pulled, k, at_ms);
                    let created = format!("Created container: {name}");
                    self.pod_event(id, c, "Created", false, created, k, at_ms);
                    let started = format!("Started container {name}");
                    self.pod_event(id, c, "Started", false, started, k, at_ms);
                }
            }
            TransitionKind::ContainerRestarted => {
                let c = container.unwrap_or_default().to_string();
                let k = Reporter::Kubelet;
                let image = containers
                    .iter()
                    .find(|(n, _)| *n == c)
                    .map_or("", |(_, i)| i);
                let pulled = format!("Container image \"{image}\" already present on machine");
                self.pod_event(id, Some(&c), "Pulled", false, pulled, k, at_ms);
                let created = format!("Created container: {c}");
                self.pod_event(id, Some(&c), "Created", false, created, k, at_ms);
                let started = format!("Started container {c}");
                self.pod_event(id, Some(&c), "Started", false, started, k, at_ms);
            }
            TransitionKind::ContainerWaiting => {
                let c = container.unwrap_or_default().to_string();
                let k = Reporter::Kubelet;
                let (reason, note) = match d.reason.as_deref() {
                    Some("CrashLoopBackOff") => (
                        "BackOff",
                        format!("Back-off restarting failed container {c} in pod {name}_{ns}"),
                    ),
                    Some("ImagePullBackOff") => ("BackOff", "Back-off pulling image".to_string()),
                    Some("ErrImagePull") => (
                        "Failed",
                        "Failed to pull image: rpc error: code = NotFound".to_string(),
                    ),
                    _ => return,
                };
                self.pod_event(id, Some(&c), reason, true, note, k, at_ms);
            }
            // The readiness probe is what turns a running pod unready.
            TransitionKind::Unready => {
                let Some((c, _)) = containers.first() else {
                    return;
                };
                let note = "Readiness probe failed: HTTP probe failed with statuscode: 503";
                let k = Reporter::Kubelet;
                self.pod_event(id, Some(c), "Unhealthy", true, note.to_string(), k, at_ms);
            }
            TransitionKind::Failed if d.reason.as_deref() == Some("Evicted") => {
                let note = "The node was low on resource: memory.".to_string();
                self.pod_event(id, None, "Evicted", true, note, Reporter::Kubelet, at_ms);
            }
            TransitionKind::Terminating => {
                for (c, _) in containers {
                    let note = format!("Stopping container {c}");
                    let k = Reporter::Kubelet;
                    self.pod_event(id, Some(&c), "Killing", false, note, k, at_ms);
                }
            }
            _ => {}
        }
    }

    /// The events that come with a node transition.
    pub(super) fn node_events(&mut self, id: NodeId, kind: TransitionKind, at_ms: i64) {
        let Some(node) = self.nodes.get(&id) else {
            return;
        };
        let (reason, reporter) = match kind {
            TransitionKind::NodeReady => ("NodeReady", Reporter::Kubelet),
            TransitionKind::NodeNotReady => ("NodeNotReady", Reporter::NodeController),
            TransitionKind::Cordoned => ("NodeNotSchedulable", Reporter::Kubelet),
            TransitionKind::Uncordoned => ("NodeSchedulable", Reporter::Kubelet),
            _ => return,
        };
        let regarding = Regarding {
            kind: "Node",
            // Node events live in the default namespace, as a real cluster's do.
            namespace: "default".into(),
            name: node.name.clone(),
            uid: node.name.clone(),
            container: None,
        };
        let note = format!("Node {} status is now: {reason}", node.name);
        let host = node.name.clone();
        self.events.record(Occurrence {
            regarding,
            reason,
            warning: false,
            note,
            reporter,
            host: Some(&host),
            at_ms,
        });
    }
}
