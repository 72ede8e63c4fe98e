//! What the e2e driver ([`super::Kubelet`]) creates and keeps: [`PodShape`] (which containers a
//! pod has) and the records of each pod, container and node it plays the kubelet for, which it
//! renders into the status it writes.

use super::*;

/// What containers a pod has. Every pod gets requests and limits.
#[derive(Clone, Debug)]
pub struct PodShape {
    /// `spec.nodeName` at creation (bound, as a DaemonSet or a static pod would be); None leaves
    /// the pod Pending until [`Kubelet::bind`].
    pub node: Option<String>,
    /// Plain init containers (run to completion before the app starts).
    pub init: Vec<&'static str>,
    /// Sidecars: init containers with `restartPolicy: Always`.
    pub sidecars: Vec<&'static str>,
    pub apps: Vec<&'static str>,
    /// The pod's restartPolicy.
    pub restart_policy: &'static str,
}

impl PodShape {
    /// A long-running service: an init container, a sidecar and the app; restartPolicy Always.
    pub fn service(node: &str) -> PodShape {
        PodShape {
            node: Some(node.into()),
            init: vec!["setup"],
            sidecars: vec!["proxy"],
            apps: vec!["app"],
            restart_policy: "Always",
        }
    }

    /// A plain pod with one app container; restartPolicy Always.
    pub fn simple(node: &str) -> PodShape {
        PodShape {
            node: Some(node.into()),
            init: vec![],
            sidecars: vec![],
            apps: vec!["app"],
            restart_policy: "Always",
        }
    }

    /// A batch pod: one container that runs to an end; restartPolicy Never.
    pub fn job(node: &str) -> PodShape {
        PodShape {
            node: Some(node.into()),
            init: vec![],
            sidecars: vec![],
            apps: vec!["work"],
            restart_policy: "Never",
        }
    }

    /// The same, not bound to a node (a scheduler binds it later).
    pub fn unbound(mut self) -> PodShape {
        self.node = None;
        self
    }

    /// Requests and limits of each kind of container: (init, sidecar, app).
    pub(super) fn resources(init: bool, sidecar: bool) -> Value {
        let (cpu, mem) = match (init, sidecar) {
            (true, false) => ("200m", "32Mi"),
            (_, true) => ("50m", "32Mi"),
            (false, false) => ("100m", "64Mi"),
        };
        json!({"requests": {"cpu": cpu, "memory": mem}, "limits": {"cpu": "1", "memory": "256Mi"}})
    }

    pub(super) fn spec(&self) -> Value {
        let container = |name: &str, init: bool, sidecar: bool| {
            let mut c = json!({
                "name": name,
                "image": "registry.k8s.io/pause:3.10",
                "resources": Self::resources(init, sidecar),
            });
            if sidecar {
                c["restartPolicy"] = json!("Always");
            }
            c
        };
        let mut init: Vec<Value> = self
            .init
            .iter()
            .map(|n| container(n, true, false))
            .collect();
        init.extend(self.sidecars.iter().map(|n| container(n, true, true)));
        let apps: Vec<Value> = self
            .apps
            .iter()
            .map(|n| container(n, false, false))
            .collect();
        let mut spec = json!({
            "containers": apps,
            "restartPolicy": self.restart_policy,
            "terminationGracePeriodSeconds": 30,
        });
        if !init.is_empty() {
            spec["initContainers"] = json!(init);
        }
        if let Some(node) = &self.node {
            spec["nodeName"] = json!(node);
        }
        spec
    }
}

/// One container as the kubelet would describe it.
#[derive(Clone, Debug)]
pub(super) enum Run {
    Waiting(&'static str),
    /// The run `restart_count` ended (it is `last`) and the kubelet waits before the next.
    BackOff {
        message: String,
        container_id: String,
    },
    Running {
        started: String,
    },
    Terminated {
        started: String,
        finished: String,
        reason: String,
        exit_code: i32,
    },
}

#[derive(Clone, Debug)]
pub(super) struct ContainerRec {
    pub(super) name: String,
    /// A plain init container or a sidecar.
    pub(super) init: bool,
    pub(super) sidecar: bool,
    pub(super) restart_count: i64,
    pub(super) ready: bool,
    pub(super) run: Run,
    /// `lastState.terminated`.
    pub(super) last: Option<Value>,
    /// The resources the kubelet reports as applied (`status.containerStatuses[].resources`;
    /// the API server allows an in-place resize only when running containers report them).
    pub(super) resources: Value,
}

impl ContainerRec {
    pub(super) fn status(&self) -> Value {
        let state = match &self.run {
            Run::Waiting(reason) => json!({"waiting": {"reason": reason}}),
            Run::BackOff { message, .. } => {
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": message}})
            }
            Run::Running { started } => json!({"running": {"startedAt": started}}),
            Run::Terminated {
                started,
                finished,
                reason,
                exit_code,
            } => json!({"terminated": {
                "exitCode": exit_code, "reason": reason, "startedAt": started, "finishedAt": finished,
                "containerID": format!("containerd://{}-{}", self.name, self.restart_count),
            }}),
        };
        let mut s = json!({
            "name": self.name,
            "image": "registry.k8s.io/pause:3.10",
            "imageID": "",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": matches!(self.run, Run::Running { .. }),
            "state": state,
        });
        if let Some(last) = &self.last {
            s["lastState"] = json!({"terminated": last});
        }
        if let Run::BackOff { container_id, .. } = &self.run {
            s["containerID"] = json!(container_id);
        }
        if !self.init {
            s["resources"] = self.resources.clone();
        }
        s
    }

    pub(super) fn started_at(&self) -> Option<&str> {
        match &self.run {
            Run::Running { started } | Run::Terminated { started, .. } => Some(started),
            Run::Waiting(_) | Run::BackOff { .. } => None,
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct PodRec {
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) uid: String,
    pub(super) phase: &'static str,
    pub(super) start_time: Option<String>,
    /// (type, status, lastTransitionTime), in the kubelet's order.
    pub(super) conditions: Vec<(String, String, String)>,
    pub(super) containers: Vec<ContainerRec>,
}

impl PodRec {
    pub(super) fn condition(&self, kind: &str) -> Option<&(String, String, String)> {
        self.conditions.iter().find(|c| c.0 == kind)
    }

    pub(super) fn is_ready(&self) -> bool {
        self.condition("Ready").is_some_and(|c| c.1 == "True")
    }

    /// Sets a condition; its lastTransitionTime moves only when its status changes.
    pub(super) fn set_condition(&mut self, kind: &str, status: &str, at: &str) {
        match self.conditions.iter_mut().find(|c| c.0 == kind) {
            Some(c) if c.1 == status => {}
            Some(c) => {
                c.1 = status.to_string();
                c.2 = at.to_string();
            }
            None => self
                .conditions
                .push((kind.to_string(), status.to_string(), at.to_string())),
        }
    }

    pub(super) fn status(&self) -> Value {
        let conditions: Vec<Value> = self
            .conditions
            .iter()
            .map(|(t, s, at)| json!({"type": t, "status": s, "lastTransitionTime": at, "lastProbeTime": null}))
            .collect();
        let init: Vec<Value> = self
            .containers
            .iter()
            .filter(|c| c.init)
            .map(ContainerRec::status)
            .collect();
        let apps: Vec<Value> = self
            .containers
            .iter()
            .filter(|c| !c.init)
            .map(ContainerRec::status)
            .collect();
        let mut status = json!({
            "phase": self.phase,
            "conditions": conditions,
            "containerStatuses": apps,
            "hostIP": "10.0.0.1",
            "podIP": "10.244.0.10",
        });
        if !init.is_empty() {
            status["initContainerStatuses"] = json!(init);
        }
        if let Some(t) = &self.start_time {
            status["startTime"] = json!(t);
        }
        status
    }

    pub(super) fn container_mut(&mut self, name: &str) -> &mut ContainerRec {
        let pod = self.name.clone();
        self.containers
            .iter_mut()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("pod {pod} has no container {name}"))
    }
}

#[derive(Clone, Debug)]
pub(super) struct NodeRec {
    pub(super) uid: String,
    pub(super) ready: bool,
}
