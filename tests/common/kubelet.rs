//! The driver half of the e2e helper: [`Kubelet`] plays the kubelet (and a little of the
//! scheduler and of kubectl) against the real API server of [`super::ControlPlane`], and writes
//! down the ground truth of every transition it causes. [`PodShape`] says what containers a pod
//! has (`pod_records.rs`). See `e2e.rs` for how times are stamped.

use super::pod_records::{ContainerRec, NodeRec, PodRec, Run};
use super::*;

/// Plays the kubelet (and the scheduler, and an operator with kubectl) against a real API
/// server, and writes down in [`Kubelet::truth`] every transition it causes, with the `at` the
/// recorder must find. Each step is one method, so tests read like a script.
pub struct Kubelet {
    rt: tokio::runtime::Runtime,
    client: Client,
    kubeconfig: PathBuf,
    /// Every transition caused so far, in order.
    pub truth: Vec<TruthLine>,
    pods: HashMap<String, PodRec>,
    nodes: HashMap<String, NodeRec>,
    last_stamp_secs: i64,
}

impl Kubelet {
    pub fn connect(cp: &ControlPlane) -> Kubelet {
        Kubelet::connect_to(&cp.kubeconfig)
    }

    pub fn connect_to(kubeconfig: &Path) -> Kubelet {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let client = rt.block_on(client_for(kubeconfig));
        Kubelet {
            rt,
            client,
            kubeconfig: kubeconfig.to_path_buf(),
            truth: Vec::new(),
            pods: HashMap::new(),
            nodes: HashMap::new(),
            last_stamp_secs: 0,
        }
    }

    /// A fresh client (after the API server was restarted, the pooled connections are dead).
    pub fn reconnect(&mut self) {
        self.client = self.rt.block_on(client_for(&self.kubeconfig));
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Runs a future on the driver's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// A raw request to the API server: (HTTP status, body).
    pub fn raw(&self, method: &str, path: &str) -> (u16, String) {
        self.rt.block_on(raw_request(&self.client, method, path))
    }

    /// A time for the next step: now, to the second, and never the same second as the previous
    /// stamp (it waits for the next second when needed), so that second-precision times of
    /// successive steps always differ. (Unix ms, RFC 3339.)
    pub fn stamp(&mut self) -> (i64, String) {
        let mut secs = now_ms().div_euclid(1000);
        if secs <= self.last_stamp_secs {
            let next = self.last_stamp_secs + 1;
            let wait = next * 1000 + 20 - now_ms();
            if wait > 0 {
                std::thread::sleep(Duration::from_millis(wait as u64));
            }
            secs = now_ms().div_euclid(1000).max(next);
        }
        self.last_stamp_secs = secs;
        (secs * 1000, rfc3339_secs(secs))
    }

    pub fn pod_uid(&self, name: &str) -> String {
        self.pod(name).uid.clone()
    }

    pub fn node_uid(&self, name: &str) -> String {
        self.nodes
            .get(name)
            .unwrap_or_else(|| panic!("no node {name}"))
            .uid
            .clone()
    }

    fn pod(&self, name: &str) -> &PodRec {
        self.pods
            .get(name)
            .unwrap_or_else(|| panic!("the driver made no pod {name}"))
    }

    fn pod_truth(&mut self, name: &str, kind: TransitionKind, at_ms: i64) -> &mut TruthLine {
        let p = self.pod(name);
        let line = TruthLine::pod(&p.uid, &p.namespace, &p.name, kind, at_ms);
        self.truth.push(line);
        self.truth.last_mut().expect("just pushed")
    }

    fn node_truth(&mut self, node: &str, kind: TransitionKind, at_ms: i64) {
        let uid = self.node_uid(node);
        self.truth.push(TruthLine::node(&uid, node, kind, at_ms));
    }

    fn container_truth(
        &mut self,
        pod: &str,
        kind: TransitionKind,
        at_ms: i64,
        container: &str,
        reason: &str,
        exit_code: i32,
    ) {
        let line = self.pod_truth(pod, kind, at_ms);
        line.container = Some(container.to_string());
        line.reason = Some(reason.to_string());
        line.exit_code = Some(exit_code);
    }

    /// Runs `f` and returns its result with the middle of the time it took: the recorder's
    /// clock for kinds it times by observation.
    fn timed<T>(&self, f: impl std::future::Future<Output = T>) -> (T, i64) {
        let before = now_ms();
        let out = self.rt.block_on(f);
        let after = now_ms();
        (out, (before + after) / 2)
    }

    // ---- namespaces and nodes ----

    pub fn create_namespace(&mut self, name: &str) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
        self.rt
            .block_on(api.create(&PostParams::default(), &ns))
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    }

    /// A node that is Ready from the start (truth: added at creationTimestamp, ready at the
    /// Ready condition's lastTransitionTime). Nodes may carry status on create.
    pub fn create_node(&mut self, name: &str, cpu: &str, memory: &str) {
        let (_, at) = self.stamp();
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {
                "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
                "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                "conditions": [Self::node_ready_condition(true, &at)],
            },
        }))
        .expect("node");
        let api: Api<Node> = Api::all(self.client.clone());
        let created = self
            .rt
            .block_on(api.create(&PostParams::default(), &node))
            .unwrap_or_else(|e| panic!("create node {name}: {e}"));
        let uid = created.metadata.uid.clone().expect("uid");
        let created_at = time_ms(
            created
                .metadata
                .creation_timestamp
                .as_ref()
                .expect("creationTimestamp"),
        );
        self.nodes
            .insert(name.to_string(), NodeRec { uid, ready: true });
        self.node_truth(name, TransitionKind::NodeAdded, created_at);
        self.node_truth(name, TransitionKind::NodeReady, parse_ms(&at));
    }

    fn node_ready_condition(ready: bool, at: &str) -> Value {
        if ready {
            json!({"type": "Ready", "status": "True", "reason": "KubeletReady",
                   "message": "kubelet is posting ready status", "lastHeartbeatTime": at, "lastTransitionTime": at})
        } else {
            json!({"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                   "message": "container runtime network not ready", "lastHeartbeatTime": at, "lastTransitionTime": at})
        }
    }

    fn patch_node(&self, name: &str, status: bool, patch: Value) -> i64 {
        let api: Api<Node> = Api::all(self.client.clone());
        let params = PatchParams::default();
        let merge = Patch::Merge(&patch);
        let (result, mid) = self.timed(async {
            if status {
                api.patch_status(name, &params, &merge).await
            } else {
                api.patch(name, &params, &merge).await
            }
        });
        result.unwrap_or_else(|e| panic!("patch node {name} with {patch}: {e}"));
        mid
    }

    /// `kubectl cordon` (truth: cordoned, at the recorder's observation).
    pub fn cordon(&mut self, node: &str) {
        let at = self.patch_node(node, false, json!({"spec": {"unschedulable": true}}));
        self.node_truth(node, TransitionKind::Cordoned, at);
    }

    pub fn uncordon(&mut self, node: &str) {
        let at = self.patch_node(node, false, json!({"spec": {"unschedulable": null}}));
        self.node_truth(node, TransitionKind::Uncordoned, at);
    }

    /// The node's Ready condition goes False (truth: not_ready at its lastTransitionTime).
    pub fn node_not_ready(&mut self, node: &str) {
        self.set_node_ready(node, false);
    }

    /// The node's Ready condition goes True again (truth: ready at its lastTransitionTime).
    pub fn node_ready(&mut self, node: &str) {
        self.set_node_ready(node, true);
    }

    fn set_node_ready(&mut self, node: &str, ready: bool) {
        let was = self
            .nodes
            .get(node)
            .unwrap_or_else(|| panic!("no node {node}"))
            .ready;
        assert_ne!(was, ready, "node {node} is already ready={ready}");
        let (at_ms, at) = self.stamp();
        self.patch_node(
            node,
            true,
            json!({"status": {"conditions": [Self::node_ready_condition(ready, &at)]}}),
        );
        self.nodes.get_mut(node).expect("node").ready = ready;
        let kind = if ready {
            TransitionKind::NodeReady
        } else {
            TransitionKind::NodeNotReady
        };
        self.node_truth(node, kind, at_ms);
    }

    /// Allocatable changes, e.g. after a kubelet restart with new reservations (truth:
    /// capacity_changed, at the recorder's observation).
    pub fn set_allocatable(&mut self, node: &str, cpu: &str, memory: &str) {
        let at = self.patch_node(
            node,
            true,
            json!({"status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"}}}),
        );
        self.node_truth(node, TransitionKind::CapacityChanged, at);
    }

    /// Deletes a node (immediate; truth: deleted, at the recorder's observation).
    pub fn delete_node(&mut self, node: &str) {
        let api: Api<Node> = Api::all(self.client.clone());
        let (result, at) = self.timed(api.delete(node, &DeleteParams::default()));
        result.unwrap_or_else(|e| panic!("delete node {node}: {e}"));
        self.node_truth(node, TransitionKind::NodeDeleted, at);
        self.nodes.remove(node);
    }

    // ---- pods ----

    /// Creates a pod (truth: created at creationTimestamp; if bound at creation, also
    /// scheduled, at the recorder's observation, since there is no PodScheduled condition yet).
    pub fn create_pod(&mut self, namespace: &str, name: &str, shape: PodShape) {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
            "spec": shape.spec(),
        }))
        .expect("pod");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let created = self.rt.block_on(api.create(&PostParams::default(), &pod));
        let created = created.unwrap_or_else(|e| panic!("create pod {namespace}/{name}: {e}"));
        let uid = created.metadata.uid.clone().expect("uid");
        let created_at = time_ms(
            created
                .metadata
                .creation_timestamp
                .as_ref()
                .expect("creationTimestamp"),
        );
        let mut containers = Vec::new();
        for n in &shape.init {
            containers.push(ContainerRec {
                name: n.to_string(),
                init: true,
                sidecar: false,
                restart_count: 0,
                ready: false,
                run: Run::Waiting("PodInitializing"),
                last: None,
                resources: PodShape::resources(true, false),
            });
        }
        for n in &shape.sidecars {
            containers.push(ContainerRec {
                name: n.to_string(),
                init: true,
                sidecar: true,
                restart_count: 0,
                ready: false,
                run: Run::Waiting("PodInitializing"),
                last: None,
                resources: PodShape::resources(true, true),
            });
        }
        for n in &shape.apps {
            containers.push(ContainerRec {
                name: n.to_string(),
                init: false,
                sidecar: false,
                restart_count: 0,
                ready: false,
                run: Run::Waiting("PodInitializing"),
                last: None,
                resources: PodShape::resources(false, false),
            });
        }
        self.pods.insert(
            name.to_string(),
            PodRec {
                namespace: namespace.to_string(),
                name: name.to_string(),
                uid,
                phase: "Pending",
                start_time: None,
                conditions: Vec::new(),
                containers,
            },
        );
        self.pod_truth(name, TransitionKind::Created, created_at);
        if shape.node.is_some() {
            // Bound at creation: scheduled when created.
            self.pod_truth(name, TransitionKind::Scheduled, created_at);
        }
    }

    /// Binds a pending pod to a node the way kube-scheduler does (POST pods/NAME/binding); the
    /// API server sets spec.nodeName and PodScheduled=True (truth: scheduled at that
    /// condition's lastTransitionTime, read back from the server).
    pub fn bind(&mut self, pod: &str, node: &str) {
        let (namespace, name) = {
            let p = self.pod(pod);
            (p.namespace.clone(), p.name.clone())
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        self.rt
            .block_on(api.create_subresource::<Value, Value>(
                "binding",
                &name,
                &PostParams::default(),
                &binding,
            ))
            .unwrap_or_else(|e| panic!("bind {pod} to {node}: {e}"));
        let (code, body) = self.raw(
            "GET",
            &format!("/api/v1/namespaces/{namespace}/pods/{name}"),
        );
        assert_eq!(code, 200, "{body}");
        let now: Value = serde_json::from_str(&body).expect("pod JSON");
        assert_eq!(
            now["spec"]["nodeName"], node,
            "binding did not set nodeName: {body}"
        );
        let scheduled = now["status"]["conditions"]
            .as_array()
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c["type"] == "PodScheduled" && c["status"] == "True")
            })
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or_else(|| panic!("binding left no PodScheduled=True condition: {body}"))
            .to_string();
        let rec = self.pods.get_mut(pod).expect("pod");
        rec.set_condition("PodScheduled", "True", &scheduled);
        self.pod_truth(pod, TransitionKind::Scheduled, parse_ms(&scheduled));
    }

    fn patch_pod_status(&self, pod: &str) -> i64 {
        let p = self.pod(pod);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &p.namespace);
        let patch = json!({"status": p.status()});
        let (result, mid) =
            self.timed(api.patch_status(&p.name, &PatchParams::default(), &Patch::Merge(&patch)));
        result.unwrap_or_else(|e| panic!("patch status of pod {pod} with {patch}: {e}"));
        mid
    }

    /// The kubelet admits the pod: startTime, the first init container running (no
    /// transition: the pod is still Pending and its Ready condition starts False).
    pub fn init_started(&mut self, pod: &str) {
        let (_, at) = self.stamp();
        let rec = self.pods.get_mut(pod).expect("pod");
        assert!(rec.start_time.is_none(), "{pod} was already admitted");
        rec.start_time = Some(at.clone());
        rec.set_condition("PodScheduled", "True", &at);
        rec.set_condition("Initialized", "False", &at);
        rec.set_condition("ContainersReady", "False", &at);
        rec.set_condition("Ready", "False", &at);
        if let Some(first) = rec.containers.iter_mut().find(|c| c.init && !c.sidecar) {
            first.run = Run::Running {
                started: at.clone(),
            };
        }
        self.patch_pod_status(pod);
    }

    /// The init containers complete and the sidecars start (truth: container_terminated for
    /// each plain init container, at its finishedAt).
    pub fn init_done(&mut self, pod: &str) {
        if self.pod(pod).start_time.is_none() {
            self.init_started(pod);
        }
        let (at_ms, at) = self.stamp();
        let rec = self.pods.get_mut(pod).expect("pod");
        let mut ended = Vec::new();
        for c in rec.containers.iter_mut().filter(|c| c.init) {
            if c.sidecar {
                c.run = Run::Running {
                    started: at.clone(),
                };
                c.ready = true;
            } else {
                let started = c.started_at().unwrap_or(&at).to_string();
                c.run = Run::Terminated {
                    started,
                    finished: at.clone(),
                    reason: "Completed".into(),
                    exit_code: 0,
                };
                ended.push(c.name.clone());
            }
        }
        rec.set_condition("Initialized", "True", &at);
        self.patch_pod_status(pod);
        for c in ended {
            self.container_truth(
                pod,
                TransitionKind::ContainerTerminated,
                at_ms,
                &c,
                "Completed",
                0,
            );
        }
    }

    /// Phase Running with the app containers running (truth: started at their startedAt).
    /// Runs the init steps first if the pod has init containers that have not run.
    pub fn run(&mut self, pod: &str) {
        let needs_init = self
            .pod(pod)
            .containers
            .iter()
            .any(|c| c.init && matches!(c.run, Run::Waiting(_)));
        if needs_init {
            self.init_done(pod);
        }
        let (_, at) = self.stamp();
        let rec = self.pods.get_mut(pod).expect("pod");
        assert_eq!(rec.phase, "Pending", "{pod} is not pending");
        rec.phase = "Running";
        let start_time = rec.start_time.get_or_insert_with(|| at.clone()).clone();
        rec.set_condition("PodScheduled", "True", &start_time);
        rec.set_condition("Initialized", "True", &at);
        rec.set_condition("ContainersReady", "False", &at);
        rec.set_condition("Ready", "False", &at);
        for c in rec.containers.iter_mut().filter(|c| !c.init) {
            c.run = Run::Running {
                started: at.clone(),
            };
        }
        self.patch_pod_status(pod);
        // The app containers' start, not startTime (admission, before the init containers).
        self.pod_truth(pod, TransitionKind::Started, parse_ms(&at));
    }

    /// Readiness probes pass: Ready=True (truth: ready at its lastTransitionTime).
    pub fn ready(&mut self, pod: &str) {
        assert!(!self.pod(pod).is_ready(), "{pod} is already ready");
        let (at_ms, at) = self.stamp();
        let rec = self.pods.get_mut(pod).expect("pod");
        for c in rec.containers.iter_mut().filter(|c| !c.init || c.sidecar) {
            c.ready = matches!(c.run, Run::Running { .. });
        }
        rec.set_condition("ContainersReady", "True", &at);
        rec.set_condition("Ready", "True", &at);
        self.patch_pod_status(pod);
        self.pod_truth(pod, TransitionKind::Ready, at_ms);
    }

    /// Readiness probes fail: Ready=False (truth: unready at its lastTransitionTime).
    pub fn unready(&mut self, pod: &str) {
        assert!(self.pod(pod).is_ready(), "{pod} is not ready");
        let (at_ms, at) = self.stamp();
        let rec = self.pods.get_mut(pod).expect("pod");
        for c in rec.containers.iter_mut().filter(|c| !c.init) {
            c.ready = false;
        }
        rec.set_condition("ContainersReady", "False", &at);
        rec.set_condition("Ready", "False", &at);
        self.patch_pod_status(pod);
        self.pod_truth(pod, TransitionKind::Unready, at_ms);
    }

    /// The container is OOM-killed (exit 137) and restarted at once: restartCount+1,
    /// lastState.terminated, running again, and the pod loses readiness (truth: unready if it
    /// was ready, container_terminated and container_restarted at finishedAt).
    pub fn oom_kill(&mut self, pod: &str, container: &str) {
        let (at_ms, at) = self.stamp();
        let was_ready = self.pod(pod).is_ready();
        let rec = self.pods.get_mut(pod).expect("pod");
        let c = rec.container_mut(container);
        let started = c
            .started_at()
            .unwrap_or_else(|| panic!("{container} never started"))
            .to_string();
        assert!(
            matches!(c.run, Run::Running { .. }),
            "{container} is not running"
        );
        c.last = Some(json!({
            "exitCode": 137, "reason": "OOMKilled", "startedAt": started, "finishedAt": at,
            "containerID": format!("containerd://{}-{}", c.name, c.restart_count),
        }));
        c.restart_count += 1;
        c.run = Run::Running {
            started: at.clone(),
        };
        c.ready = false;
        rec.set_condition("ContainersReady", "False", &at);
        rec.set_condition("Ready", "False", &at);
        self.patch_pod_status(pod);
        if was_ready {
            self.pod_truth(pod, TransitionKind::Unready, at_ms);
        }
        self.container_truth(
            pod,
            TransitionKind::ContainerTerminated,
            at_ms,
            container,
            "OOMKilled",
            137,
        );
        self.container_truth(
            pod,
            TransitionKind::ContainerRestarted,
            at_ms,
            container,
            "OOMKilled",
            137,
        );
    }

    /// The container exits with `exit_code` and the kubelet reports the back-off the way it
    /// does for a crash loop: `state.waiting` CrashLoopBackOff with its message, `lastState`
    /// holding the run that just ended (with its containerID), restartCount unchanged (it grows
    /// when the next container is created). Truth: unready if ready, container_terminated at
    /// finishedAt, container_waiting when the status was written.
    pub fn crash_into_backoff(&mut self, pod: &str, container: &str, exit_code: i32) {
        let (at_ms, at) = self.stamp();
        let was_ready = self.pod(pod).is_ready();
        let rec = self.pods.get_mut(pod).expect("pod");
        let (namespace, pod_uid) = (rec.namespace.clone(), rec.uid.clone());
        let c = rec.container_mut(container);
        let started = c
            .started_at()
            .unwrap_or_else(|| panic!("{container} is not running"))
            .to_string();
        let container_id = format!("containerd://{}-{}", c.name, c.restart_count);
        c.last = Some(json!({
            "exitCode": exit_code, "reason": "Error", "startedAt": started, "finishedAt": at,
            "containerID": container_id,
        }));
        let backoff_secs = 10_i64 << c.restart_count.min(5);
        c.run = Run::BackOff {
            message: format!(
                "back-off {backoff_secs}s restarting failed container={container} pod={pod}_{namespace}({pod_uid})"
            ),
            container_id,
        };
        c.ready = false;
        rec.set_condition("ContainersReady", "False", &at);
        rec.set_condition("Ready", "False", &at);
        let written = self.patch_pod_status(pod);
        if was_ready {
            self.pod_truth(pod, TransitionKind::Unready, at_ms);
        }
        self.container_truth(
            pod,
            TransitionKind::ContainerTerminated,
            at_ms,
            container,
            "Error",
            exit_code,
        );
        let line = self.pod_truth(pod, TransitionKind::ContainerWaiting, written);
        line.container = Some(container.to_string());
        line.reason = Some("CrashLoopBackOff".into());
    }

    /// The back-off is over: the kubelet creates the next container (restartCount + 1) and it
    /// runs. Truth: container_restarted at the finishedAt of the run that ended.
    pub fn restart_after_backoff(&mut self, pod: &str, container: &str) {
        let (_, at) = self.stamp();
        let rec = self.pods.get_mut(pod).expect("pod");
        let c = rec.container_mut(container);
        assert!(
            matches!(c.run, Run::BackOff { .. }),
            "{container} is not in back-off"
        );
        let last = c.last.clone().expect("the run that ended");
        c.restart_count += 1;
        c.run = Run::Running {
            started: at.clone(),
        };
        self.patch_pod_status(pod);
        let finished = parse_ms(last["finishedAt"].as_str().expect("finishedAt"));
        let code = last["exitCode"].as_i64().expect("exitCode") as i32;
        self.container_truth(
            pod,
            TransitionKind::ContainerRestarted,
            finished,
            container,
            "Error",
            code,
        );
    }

    /// Sets one label of a pod (`kubectl label --overwrite`); returns the middle of the request,
    /// the recorder's clock for what it observes. No truth: what it means depends on the
    /// recorder's selector (see [`Kubelet::note`]).
    pub fn label(&mut self, pod: &str, key: &str, value: &str) -> i64 {
        self.patch_pod_meta(pod, json!({"metadata": {"labels": {key: value}}}))
    }

    /// Adds a finalizer that holds the pod after a delete until [`Kubelet::release`].
    pub fn hold(&mut self, pod: &str) {
        self.patch_pod_meta(
            pod,
            json!({"metadata": {"finalizers": ["kubetrail.test/hold"]}}),
        );
    }

    /// Removes the finalizers; a pod already being deleted goes now (truth: deleted).
    pub fn release(&mut self, pod: &str) {
        let at = self.patch_pod_meta(pod, json!({"metadata": {"finalizers": null}}));
        let (namespace, name) = {
            let p = self.pod(pod);
            (p.namespace.clone(), p.name.clone())
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let now = self
            .rt
            .block_on(api.get_opt(&name))
            .unwrap_or_else(|e| panic!("get pod {pod}: {e}"));
        if now.is_none() {
            self.pod_truth(pod, TransitionKind::Deleted, at);
            self.pods.remove(pod);
        }
    }

    fn patch_pod_meta(&mut self, pod: &str, patch: Value) -> i64 {
        let (namespace, name) = {
            let p = self.pod(pod);
            (p.namespace.clone(), p.name.clone())
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let (result, mid) =
            self.timed(api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)));
        result.unwrap_or_else(|e| panic!("patch pod {pod} with {patch}: {e}"));
        mid
    }

    /// Adds a truth line the driver cannot know by itself (a scope change, say).
    pub fn note(&mut self, pod: &str, kind: TransitionKind, at_ms: i64) {
        self.pod_truth(pod, kind, at_ms);
    }

    /// Every app container exits 0, the sidecars are stopped, phase Succeeded (truth: unready
    /// if ready, container_terminated per container, succeeded at the last finishedAt).
    pub fn succeed(&mut self, pod: &str) {
        self.finish(pod, "Succeeded", "Completed", 0);
    }

    /// The app container exits non-zero, phase Failed (as `succeed`, with failed).
    pub fn fail(&mut self, pod: &str, exit_code: i32) {
        self.finish(pod, "Failed", "Error", exit_code);
    }

    fn finish(&mut self, pod: &str, phase: &'static str, reason: &str, exit_code: i32) {
        let (at_ms, at) = self.stamp();
        let was_ready = self.pod(pod).is_ready();
        let rec = self.pods.get_mut(pod).expect("pod");
        assert_eq!(rec.phase, "Running", "{pod} is not running");
        let mut ended = Vec::new();
        for c in rec.containers.iter_mut() {
            if !matches!(c.run, Run::Running { .. }) {
                continue;
            }
            let started = c.started_at().expect("running").to_string();
            // Sidecars are stopped by the kubelet once the app containers have ended.
            let (reason, code) = if c.sidecar {
                ("Completed", 0)
            } else {
                (reason, exit_code)
            };
            c.run = Run::Terminated {
                started,
                finished: at.clone(),
                reason: reason.to_string(),
                exit_code: code,
            };
            c.ready = false;
            ended.push((c.name.clone(), reason.to_string(), code));
        }
        rec.phase = phase;
        rec.set_condition("ContainersReady", "False", &at);
        rec.set_condition("Ready", "False", &at);
        self.patch_pod_status(pod);
        if was_ready {
            self.pod_truth(pod, TransitionKind::Unready, at_ms);
        }
        for (name, reason, code) in ended {
            self.container_truth(
                pod,
                TransitionKind::ContainerTerminated,
                at_ms,
                &name,
                &reason,
                code,
            );
        }
        let kind = if phase == "Succeeded" {
            TransitionKind::Succeeded
        } else {
            TransitionKind::Failed
        };
        self.pod_truth(pod, kind, at_ms);
    }

    /// In-place resize of a container's CPU request through the `resize` subresource (truth:
    /// resize_requested at the request, then resized when the status reports it applied).
    /// Returns false (and records nothing) if the server refuses in-place resize.
    pub fn resize_cpu(&mut self, pod: &str, container: &str, cpu_request: &str) -> bool {
        self.resize_cpu_with(pod, container, cpu_request, false)
    }

    /// Like [`Kubelet::resize_cpu`], but the kubelet first defers it: the status gets a
    /// PodResizePending condition with reason Deferred (truth: a second resize_requested), and
    /// only then the applied resources.
    pub fn resize_cpu_deferred(&mut self, pod: &str, container: &str, cpu_request: &str) -> bool {
        self.resize_cpu_with(pod, container, cpu_request, true)
    }

    fn resize_cpu_with(
        &mut self,
        pod: &str,
        container: &str,
        cpu_request: &str,
        defer: bool,
    ) -> bool {
        let (namespace, name) = {
            let p = self.pod(pod);
            (p.namespace.clone(), p.name.clone())
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let patch = json!({"spec": {"containers": [{"name": container, "resources": {"requests": {"cpu": cpu_request}}}]}});
        let (result, at) =
            self.timed(api.patch_resize(&name, &PatchParams::default(), &Patch::Strategic(&patch)));
        match result {
            Ok(_) => {
                self.pod_truth(pod, TransitionKind::ResizeRequested, at);
                if defer {
                    // A merge patch replaces the whole list, so the next status patch (from
                    // the record, which has no such condition) clears it again.
                    let mut status = self.pod(pod).status();
                    status["conditions"]
                        .as_array_mut()
                        .expect("conditions")
                        .push(json!({
                        "type": "PodResizePending", "status": "True", "reason": "Deferred",
                        "message": "Node didn't have enough capacity: cpu"}));
                    let patch = json!({"status": status});
                    let (result, deferred) = self.timed(api.patch_status(
                        &name,
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    ));
                    result.unwrap_or_else(|e| panic!("defer the resize of {pod}: {e}"));
                    self.pod_truth(pod, TransitionKind::ResizeRequested, deferred);
                }
                // The kubelet applies it and reports the new figures.
                let rec = self.pods.get_mut(pod).expect("pod");
                rec.container_mut(container).resources["requests"]["cpu"] = json!(cpu_request);
                let applied = self.patch_pod_status(pod);
                self.pod_truth(pod, TransitionKind::Resized, applied);
                true
            }
            Err(e) => {
                eprintln!("e2e: the API server refused an in-place resize of {pod}: {e}");
                false
            }
        }
    }

    /// `kubectl delete pod` with a grace period. The real API server always shows a
    /// deletionTimestamp first (a MODIFIED event), even when the pod then goes at once: with
    /// grace 0, and for a finished or unbound pod (whose grace the server cuts to 0). So the
    /// truth is terminating at deletionTimestamp - deletionGracePeriodSeconds (read back from
    /// the server) unless the pod was already terminating, then, if the pod is gone, deleted at
    /// the recorder's observation.
    pub fn delete_pod(&mut self, pod: &str, grace_secs: i64) {
        let (namespace, name) = {
            let p = self.pod(pod);
            (p.namespace.clone(), p.name.clone())
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
        let was_terminating = self
            .rt
            .block_on(api.get(&name))
            .map(|p| p.metadata.deletion_timestamp.is_some());
        let was_terminating = was_terminating.unwrap_or_else(|e| panic!("get pod {pod}: {e}"));
        let params = DeleteParams {
            grace_period_seconds: Some(grace_secs as u32),
            ..DeleteParams::default()
        };
        let before = now_ms();
        let (result, at) = self.timed(api.delete(&name, &params));
        let answer =
            result.unwrap_or_else(|e| panic!("delete pod {pod} (grace {grace_secs}): {e}"));
        let after = self
            .rt
            .block_on(api.get_opt(&name))
            .unwrap_or_else(|e| panic!("get pod {pod}: {e}"));
        // The pod as the delete left it: still there, or its last state from the answer.
        let last = after.clone().or_else(|| answer.left());
        if !was_terminating {
            let requested_at = match last
                .as_ref()
                .and_then(|p| p.metadata.deletion_timestamp.as_ref().map(|d| (p, d)))
            {
                Some((p, deletion)) => {
                    let grace = p
                        .metadata
                        .deletion_grace_period_seconds
                        .expect("deletionGracePeriodSeconds");
                    time_ms(deletion) - grace * 1000
                }
                // No object in the answer: the deletionTimestamp was the request's second.
                None => before.div_euclid(1000) * 1000,
            };
            self.pod_truth(pod, TransitionKind::Terminating, requested_at);
        }
        match after {
            Some(p) => assert!(
                p.metadata.deletion_timestamp.is_some(),
                "pod {pod} survived a delete without a deletionTimestamp"
            ),
            None => {
                self.pod_truth(pod, TransitionKind::Deleted, at);
                self.pods.remove(pod);
            }
        }
    }

    /// `kubectl delete pod --grace-period=0 --force`: gone at once.
    pub fn force_delete(&mut self, pod: &str) {
        self.delete_pod(pod, 0);
        assert!(
            !self.pods.contains_key(pod),
            "pod {pod} survived a delete with grace 0"
        );
    }

    /// The truth lines of one subject (pod or node uid).
    pub fn truth_of(&self, uid: &str) -> Vec<&TruthLine> {
        self.truth.iter().filter(|l| l.uid == uid).collect()
    }
}
