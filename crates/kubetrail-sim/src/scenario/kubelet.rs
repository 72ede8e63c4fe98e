//! The kubelet side of the scenario: what happens to a pod once it is bound, shaped like a real
//! kubelet's status updates (pkg/kubelet: the pod workers, kuberuntime's SyncPod and its
//! back-off, the image puller, the status manager):
//!
//! - admission sets status.startTime; while images are pulled the app containers wait in
//!   `ContainerCreating` (`PodInitializing` while init containers run), phase Pending;
//! - init containers run one at a time, in order, each to `Completed`; a restartable (sidecar)
//!   init container starts in its turn and keeps running; then the app containers start and
//!   the phase becomes Running at their running.startedAt;
//! - a pull that fails shows `ErrImagePull`, then `ImagePullBackOff` for the back-off, then
//!   pulls again; the pod stays Pending;
//! - a crash shows the ended run in state.terminated first; the first crash (or the first after
//!   a healthy spell) restarts at once, later ones wait in `CrashLoopBackOff` (message
//!   "back-off D restarting failed container=C pod=NAME_NAMESPACE(UID)") with lastState holding
//!   the run that just ended and restartCount unchanged; restartCount grows when the next run
//!   (with a new containerID) starts;
//! - readiness probes that fail now and then flip Ready while the containers keep running;
//! - an in-place resize changes the spec and allocatedResources first, with the
//!   PodResizeInProgress condition, and status.containerStatuses[].resources a moment later;
//! - a pod with a finalizer outlives its grace period: the kubelet stops its containers and
//!   gives it a terminal phase, and the object goes only when the finalizer is removed.
//!
//! Time scale: the back-off keeps the kubelet's shape (initial 10 s, doubling, capped at 300 s,
//! forgotten after twice the cap without a restart) but every figure is multiplied by
//! [`BACKOFF_SCALE`] and the scenario's pace, so at pace 1 the waits are 1 s, 2 s, 4 s ... 30 s
//! and a container that runs 60 s counts as healthy again. Messages state the scaled delay, so
//! they agree with the times in the object.

use super::{Action, Detail, Outcome, SEC, Scenario, is_active};
use crate::clock::TICK_MS;
use crate::cluster::*;
use crate::store::{ObjectKey, ResourceKind};
use kubetrail::model::TransitionKind;

/// The kubelet's container and image pull back-off: initial delay and cap (its defaults).
const BACKOFF_INITIAL_MS: i64 = 10 * SEC;
const BACKOFF_MAX_MS: i64 = 300 * SEC;
/// Multiplies the back-off (with the pace) so tests see several rounds in seconds.
pub const BACKOFF_SCALE: f64 = 0.1;

pub const CONTAINER_CREATING: &str = "ContainerCreating";
pub const POD_INITIALIZING: &str = "PodInitializing";
pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";

/// The finalizer some service pods carry (a controller that must clean up before they go).
pub const FINALIZER: &str = "sim.kubetrail.dev/cleanup";
/// The label a relabel flips: a pod quarantined for debugging leaves its app's selector.
pub const RELABEL_KEY: &str = "app.kubernetes.io/name";
const QUARANTINE_SUFFIX: &str = "-quarantined";

/// A Go `time.Duration` as its `String()` prints it (`300ms`, `1.5s`, `1m20s`, `5m0s`), which
/// is how the kubelet's back-off message shows the delay.
pub fn go_duration(ms: i64) -> String {
    if ms < SEC {
        return format!("{ms}ms");
    }
    let (minutes, rest_ms) = (ms / 60_000, ms % 60_000);
    let secs = if rest_ms % 1000 == 0 {
        (rest_ms / 1000).to_string()
    } else {
        format!("{}.{:03}", rest_ms / 1000, rest_ms % 1000)
            .trim_end_matches('0')
            .to_string()
    };
    match (minutes / 60, minutes % 60) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
    }
}

fn bound_pending(p: &PodSim) -> bool {
    p.phase == Phase::Pending && p.node.is_some() && p.deletion.is_none()
}

fn running(p: &PodSim) -> bool {
    p.phase == Phase::Running && p.deletion.is_none()
}

impl Scenario {
    /// A back-off figure scaled to the scenario, on a tick boundary.
    fn backoff_ms(&self, kubelet_ms: i64) -> i64 {
        let scaled = kubelet_ms as f64 * BACKOFF_SCALE * self.config.pace;
        ((scaled / TICK_MS as f64).round() as i64).max(1) * TICK_MS
    }

    fn next_backoff(&mut self, id: PodId, index: usize) -> i64 {
        let (initial, max, now) = (
            self.backoff_ms(BACKOFF_INITIAL_MS),
            self.backoff_ms(BACKOFF_MAX_MS),
            self.now_ms,
        );
        let backoff = &mut self.pod_mut(id).statuses[index].backoff;
        backoff.next(now, initial, max);
        backoff.delay_ms
    }

    fn pod_mut(&mut self, id: PodId) -> &mut PodSim {
        self.pods.get_mut(&id).expect("pod exists")
    }

    /// Runs a pod action that is the kubelet's (or a pod controller's) business.
    pub(super) fn run_pod_action(&mut self, action: Action) {
        let now = self.now_ms;
        match action {
            Action::Prepare(id) => {
                if self.pod_is(id, bound_pending) {
                    self.prepare(id);
                }
            }
            Action::InitStep(id, index) => {
                if self.pod_is(id, bound_pending) {
                    self.init_step(id, index);
                }
            }
            Action::InitDone(id, index) => {
                if self.pod_is(id, |p| {
                    bound_pending(p)
                        && p.init_statuses
                            .get(index)
                            .is_some_and(ContainerStatus::is_running)
                }) {
                    self.init_done(id, index);
                }
            }
            Action::Start(id) => {
                if self.pod_is(id, |p| {
                    bound_pending(p) && p.initialized.as_ref().is_some_and(|c| c.status)
                }) {
                    self.start(id);
                }
            }
            Action::PullBackOff(id) => {
                if self.pod_is(id, |p| {
                    bound_pending(p) && p.statuses[0].waiting_reason() == Some(ERR_IMAGE_PULL)
                }) {
                    self.pull_backoff(id);
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
                        running(p)
                            && !p.is_ready()
                            && p.statuses.iter().all(ContainerStatus::is_running)
                    })
                {
                    self.set_ready(id, true, now);
                    self.publish_pod(id);
                }
            }
            Action::Flap(id) => self.flap(id),
            Action::Crash(id, index, oom) => {
                if self.pod_is(id, |p| {
                    running(p)
                        && p.statuses
                            .get(index)
                            .is_some_and(ContainerStatus::is_running)
                }) {
                    self.crash_container(id, index, oom, now);
                    self.publish_pod(id);
                    self.queue_restart(id, index);
                }
            }
            Action::ShowBackOff(id, index) => {
                if self.pod_is(id, |p| {
                    running(p) && matches!(p.statuses[index].state, ContainerState::Terminated(_))
                }) {
                    self.show_backoff(id, index);
                }
            }
            Action::Restart(id, index) => {
                if self.pod_is(id, |p| {
                    running(p)
                        && match &p.statuses[index].state {
                            ContainerState::Terminated(_) => true,
                            ContainerState::Waiting { reason, .. } => {
                                *reason == CRASH_LOOP_BACK_OFF
                            }
                            ContainerState::Running { .. } => false,
                        }
                }) {
                    self.restart_container(id, index, now);
                    self.publish_pod(id);
                    self.after(1.0, 3.0, Action::Ready(id));
                    self.queue_crash(id, index);
                }
            }
            Action::Finish(id, outcome) => {
                if self.pod_is(id, running) {
                    self.finish(id, outcome, None);
                }
            }
            Action::Evict(id) => {
                if self.pod_is(id, running) {
                    self.finish(id, Outcome::Failed, Some("Evicted"));
                }
            }
            Action::Resize(id) => self.resize(id),
            Action::ResizeDone(id) => self.resize_done(id),
            Action::Relabel(id) => self.relabel(id),
            Action::ReleaseFinalizer(id) => {
                if self.pod_is(id, |p| p.deletion.is_some_and(|d| d.held)) {
                    self.pod_mut(id).finalizers.clear();
                    self.remove_pod(id);
                }
            }
            other => debug_assert!(false, "not a pod action: {other:?}"),
        }
    }

    /// The kubelet admits the pod: startTime, conditions, every container waiting.
    pub(super) fn prepare(&mut self, id: PodId) {
        let now = self.now_ms;
        let pod = self.pod_mut(id);
        pod.start_ms = Some(now);
        let has_init = !pod.init_containers.is_empty();
        pod.initialized = Some(if has_init {
            Condition::new(false, now).with_reason(
                "ContainersNotInitialized",
                Some(format!(
                    "containers with incomplete status: [{}]",
                    pod.init_containers
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                )),
            )
        } else {
            Condition::new(true, now)
        });
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
        pod.init_statuses = pod
            .init_containers
            .iter()
            .map(|_| ContainerStatus::waiting(POD_INITIALIZING))
            .collect();
        let waiting = if has_init {
            POD_INITIALIZING
        } else {
            CONTAINER_CREATING
        };
        pod.statuses = pod
            .containers
            .iter()
            .map(|_| ContainerStatus::waiting(waiting))
            .collect();
        self.publish_pod(id);
        if has_init {
            self.after(0.3, 1.0, Action::InitStep(id, 0));
        } else {
            self.after(1.0, 3.0, Action::Start(id));
        }
    }

    /// Starts init container `index` (a sidecar keeps running and the next one follows), or,
    /// past the last, marks the pod initialized and creates the app containers.
    fn init_step(&mut self, id: PodId, index: usize) {
        let now = self.now_ms;
        let pod = self.pod_mut(id);
        if index >= pod.init_containers.len() {
            pod.initialized = Some(Condition::new(true, now));
            for status in &mut pod.statuses {
                status.state = ContainerState::Waiting {
                    reason: CONTAINER_CREATING,
                    message: None,
                };
            }
            self.publish_pod(id);
            self.after(0.5, 2.0, Action::Start(id));
            return;
        }
        let (uid, name, sidecar) = (
            pod.uid.clone(),
            pod.init_containers[index].name.clone(),
            pod.init_containers[index].sidecar,
        );
        let status = &mut pod.init_statuses[index];
        status.run(&uid, &name, now);
        status.ready = sidecar;
        self.publish_pod(id);
        if sidecar {
            self.after(0.2, 0.6, Action::InitStep(id, index + 1));
        } else {
            self.after(1.0, 3.0, Action::InitDone(id, index));
        }
    }

    fn init_done(&mut self, id: PodId, index: usize) {
        let now = self.now_ms;
        let pod = self.pod_mut(id);
        let name = pod.init_containers[index].name.clone();
        let ended = pod.init_statuses[index].terminate(0, "Completed", now);
        if let Some(t) = ended {
            self.emit_container(id, TransitionKind::ContainerTerminated, &name, &t);
        }
        self.publish_pod(id);
        self.after(0.1, 0.4, Action::InitStep(id, index + 1));
    }

    /// Init containers of a pod that ran before the scenario began, between `from_ms` and
    /// `to_ms`, one after the other; their truth comes before `started`.
    pub(super) fn run_inits_in_the_past(&mut self, id: PodId, from_ms: i64, to_ms: i64) {
        let pod = self.pod_mut(id);
        let uid = pod.uid.clone();
        let count = pod.init_containers.len() as i64;
        let step = ((to_ms - from_ms) / (count + 1)).max(1);
        let mut ended = Vec::new();
        let mut statuses = Vec::new();
        for (i, spec) in pod.init_containers.iter().enumerate() {
            let at = from_ms + step * i as i64;
            let mut status = ContainerStatus::waiting(POD_INITIALIZING);
            status.run(&uid, &spec.name, at);
            if spec.sidecar {
                status.ready = true;
            } else if let Some(t) = status.terminate(0, "Completed", at + step) {
                ended.push((spec.name.clone(), t));
            }
            statuses.push(status);
        }
        pod.init_statuses = statuses;
        pod.initialized = Some(Condition::new(true, from_ms + step * count));
        for (name, t) in &ended {
            self.emit_container(id, TransitionKind::ContainerTerminated, name, t);
        }
    }

    /// Pulls the app images and starts the containers, unless the pull fails.
    fn start(&mut self, id: PodId) {
        let now = self.now_ms;
        if self.pods[&id].trouble == Trouble::PullFailure {
            // The first pull always fails; each retry may find the registry back.
            let retried = self.pods[&id].statuses[0].backoff.delay_ms > 0;
            if retried && self.rng.chance(0.3) {
                self.pod_mut(id).trouble = Trouble::None;
            } else {
                let pod = self.pod_mut(id);
                let image = pod.containers[0].image;
                pod.statuses[0].state = ContainerState::Waiting {
                    reason: ERR_IMAGE_PULL,
                    message: Some(format!(
                        "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": {image}: not found"
                    )),
                };
                let name = pod.containers[0].name.clone();
                self.emit_waiting(id, &name, ERR_IMAGE_PULL);
                self.publish_pod(id);
                self.after(0.2, 0.6, Action::PullBackOff(id));
                return;
            }
        }
        self.begin_run(id, now);
        self.emit_pod(id, TransitionKind::Started, now, Detail::default());
        self.publish_pod(id);
        self.schedule_pod_life(id);
    }

    fn pull_backoff(&mut self, id: PodId) {
        let delay = self.next_backoff(id, 0);
        let pod = self.pod_mut(id);
        let image = pod.containers[0].image;
        pod.statuses[0].state = ContainerState::Waiting {
            reason: IMAGE_PULL_BACK_OFF,
            message: Some(format!("Back-off pulling image \"{image}\"")),
        };
        let name = pod.containers[0].name.clone();
        self.emit_waiting(id, &name, IMAGE_PULL_BACK_OFF);
        self.publish_pod(id);
        self.at_delay_ms(delay, Action::Start(id));
    }

    /// Phase Running: the app containers run from `at_ms` (init containers are done).
    pub(super) fn begin_run(&mut self, id: PodId, at_ms: i64) {
        let ip = format!(
            "10.{}.{}.{}",
            64 + (id >> 16) % 64,
            (id >> 8) % 256,
            id % 256
        );
        let pod = self.pod_mut(id);
        pod.phase = Phase::Running;
        pod.start_ms.get_or_insert(at_ms);
        pod.pod_ip = Some(ip);
        if pod.initialized.is_none() {
            pod.initialized = Some(Condition::new(true, at_ms));
        }
        let uid = pod.uid.clone();
        pod.statuses = pod
            .containers
            .iter()
            .map(|spec| {
                let mut status = ContainerStatus::waiting(CONTAINER_CREATING);
                status.run(&uid, &spec.name, at_ms);
                status
            })
            .collect();
        let not_ready = Condition::new(false, at_ms).with_reason("ContainersNotReady", None);
        if pod.ready.is_none() {
            pod.ready = Some(not_ready.clone());
        }
        if pod.containers_ready.is_none() {
            pod.containers_ready = Some(not_ready);
        }
    }

    /// Flips the Ready (and ContainersReady) condition; a flip is a transition.
    pub(super) fn set_ready(&mut self, id: PodId, ready: bool, at_ms: i64) {
        let pod = self.pod_mut(id);
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

    /// A readiness probe fails for a while; the containers keep running.
    fn flap(&mut self, id: PodId) {
        if !self.pod_is(id, running) {
            return;
        }
        if self.pod_is(id, |p| {
            p.is_ready() && p.statuses.iter().all(ContainerStatus::is_running)
        }) {
            self.set_ready(id, false, self.now_ms);
            self.publish_pod(id);
            self.after(1.0, 3.0, Action::Ready(id));
        }
        self.after(3.0, 8.0, Action::Flap(id));
    }

    pub(super) fn crash_container(&mut self, id: PodId, index: usize, oom: bool, at_ms: i64) {
        let (exit_code, reason) = if oom {
            (137, "OOMKilled")
        } else {
            (1, "Error")
        };
        let pod = self.pod_mut(id);
        let name = pod.containers[index].name.clone();
        let Some(t) = pod.statuses[index].terminate(exit_code, reason, at_ms) else {
            return;
        };
        self.emit_container(id, TransitionKind::ContainerTerminated, &name, &t);
        self.set_ready(id, false, at_ms);
    }

    /// After a crash: in back-off the next sync shows CrashLoopBackOff and the restart waits
    /// out the delay (counted from finishedAt); otherwise the kubelet restarts at once.
    fn queue_restart(&mut self, id: PodId, index: usize) {
        let max = self.backoff_ms(BACKOFF_MAX_MS);
        let backoff = self.pods[&id].statuses[index].backoff;
        if backoff.active(self.now_ms, max) {
            let show = (backoff.delay_ms / 4).clamp(TICK_MS, SEC / 2);
            self.at_delay_ms(show, Action::ShowBackOff(id, index));
            self.at_delay_ms(backoff.delay_ms, Action::Restart(id, index));
        } else {
            self.after(0.3, 1.0, Action::Restart(id, index));
        }
    }

    fn show_backoff(&mut self, id: PodId, index: usize) {
        let pod = self.pod_mut(id);
        let status = &mut pod.statuses[index];
        let ContainerState::Terminated(ended) = status.state.clone() else {
            return;
        };
        let message = format!(
            "back-off {} restarting failed container={} pod={}_{}({})",
            go_duration(status.backoff.delay_ms),
            pod.containers[index].name,
            pod.name,
            pod.namespace,
            pod.uid
        );
        status.last = Some(ended);
        status.state = ContainerState::Waiting {
            reason: CRASH_LOOP_BACK_OFF,
            message: Some(message),
        };
        let name = pod.containers[index].name.clone();
        self.emit_waiting(id, &name, CRASH_LOOP_BACK_OFF);
        self.publish_pod(id);
    }

    /// A new run of a crashed container: a new containerID, restartCount + 1, lastState the
    /// run that ended.
    pub(super) fn restart_container(&mut self, id: PodId, index: usize, at_ms: i64) {
        let ended = {
            let status = &self.pods[&id].statuses[index];
            match &status.state {
                ContainerState::Terminated(t) => t.clone(),
                ContainerState::Waiting { .. } => match &status.last {
                    Some(t) => t.clone(),
                    None => return,
                },
                ContainerState::Running { .. } => return,
            }
        };
        let (initial, max) = (
            self.backoff_ms(BACKOFF_INITIAL_MS),
            self.backoff_ms(BACKOFF_MAX_MS),
        );
        let pod = self.pod_mut(id);
        let (uid, name) = (pod.uid.clone(), pod.containers[index].name.clone());
        let status = &mut pod.statuses[index];
        status.backoff.next(at_ms, initial, max);
        status.last = Some(ended.clone());
        status.restart_count += 1;
        status.run(&uid, &name, at_ms);
        let restart_count = status.restart_count;
        let detail = Detail {
            container: Some(name),
            reason: Some(ended.reason.to_string()),
            exit_code: Some(ended.exit_code),
            container_id: Some(ended.container_id.clone()),
            restart_count: Some(restart_count),
        };
        self.emit_pod(
            id,
            TransitionKind::ContainerRestarted,
            ended.finished_ms,
            detail,
        );
    }

    /// The next crash of a container that just (re)started.
    fn queue_crash(&mut self, id: PodId, index: usize) {
        if self.pods[&id].trouble == Trouble::CrashLoop && index == 0 {
            let oom = self.rng.chance(0.3);
            self.queue_crash_at(1.5, 4.0, id, index, oom);
        } else if self.rng.chance(0.3) {
            let oom = self.rng.chance(0.5);
            self.queue_crash_at(10.0, 40.0, id, index, oom);
        }
    }

    /// Queues what will happen to a pod once it runs.
    pub(super) fn schedule_pod_life(&mut self, id: PodId) {
        let Some(pod) = self.pods.get(&id) else {
            return;
        };
        let containers = pod.containers.len();
        let has_pod_level = pod.pod_resources.is_some();
        let trouble = pod.trouble;
        let replica = pod.owner.kind == "ReplicaSet";
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
                if trouble == Trouble::CrashLoop {
                    let oom = self.rng.chance(0.3);
                    self.queue_crash_at(1.5, 4.0, id, 0, oom);
                } else if self.rng.chance(0.3) {
                    let index = self.rng.below(containers as u64) as usize;
                    let oom = self.rng.chance(0.5);
                    self.queue_crash_at(8.0, 40.0, id, index, oom);
                }
                if trouble == Trouble::FlakyReadiness {
                    self.after(3.0, 8.0, Action::Flap(id));
                }
                if self.rng.chance(0.02) {
                    self.after(20.0, 120.0, Action::Evict(id));
                }
                if !has_pod_level && self.rng.chance(0.08) {
                    self.after(2.0, 20.0, Action::Resize(id));
                }
                if replica && self.rng.chance(0.1) {
                    self.after(1.0, 8.0, Action::Relabel(id));
                }
            }
        }
    }

    /// Ends every running container of the pod (app containers, then sidecars) at `now` with
    /// the exit chosen by `exit`, writing a termination for each; returns them.
    fn stop_containers(
        &mut self,
        id: PodId,
        exit: impl Fn(usize, bool) -> (i32, &'static str),
    ) -> Vec<(String, Terminated)> {
        let now = self.now_ms;
        let pod = self.pod_mut(id);
        let mut ended = Vec::new();
        for (index, (spec, status)) in pod.containers.iter().zip(&mut pod.statuses).enumerate() {
            let (code, reason) = exit(index, false);
            if let Some(t) = status.terminate(code, reason, now) {
                ended.push((spec.name.clone(), t));
            }
        }
        // Sidecars (running init containers) end with the pod; they are containers that
        // terminate like any other, so the truth has a row for each.
        for (spec, status) in pod.init_containers.iter().zip(&mut pod.init_statuses) {
            let (code, reason) = exit(0, true);
            if let Some(t) = status.terminate(code, reason, now) {
                ended.push((spec.name.clone(), t));
            }
        }
        for (name, t) in &ended {
            self.emit_container(id, TransitionKind::ContainerTerminated, name, t);
        }
        ended
    }

    /// The pod reaches a terminal phase: its containers end, then the phase changes.
    pub(super) fn finish(&mut self, id: PodId, outcome: Outcome, reason: Option<&'static str>) {
        let evicted = reason.is_some();
        self.stop_containers(id, |index, sidecar| {
            match (outcome, evicted, index, sidecar) {
                (_, true, _, _) => (137, "Error"),
                (Outcome::Failed, false, 0, false) => (1, "Error"),
                _ => (0, "Completed"),
            }
        });
        self.end_phase(id, outcome);
        let pod = self.pod_mut(id);
        if evicted {
            pod.reason = Some("Evicted");
            pod.message = Some(format!(
                "The node was low on resource: memory. Threshold quantity: 100Mi, available: 91228Ki. Container {} was using 1402364Ki, request is {}.",
                pod.containers[0].name,
                crate::objects::memory_quantity(pod.containers[0].requests.memory_bytes)
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
        self.emit_pod(id, kind, self.now_ms, detail);
        self.publish_pod(id);
        self.after(5.0, 20.0, Action::Collect(id));
    }

    /// Unready, resources given back, conditions and phase terminal (no truth line).
    fn end_phase(&mut self, id: PodId, outcome: Outcome) {
        let now = self.now_ms;
        self.set_ready(id, false, now);
        self.release(id);
        let pod = self.pod_mut(id);
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
    }

    /// A delete whose time has come, of a pod that still has a finalizer: the kubelet stops a
    /// running pod (its containers exit 0 on SIGTERM, and a deleted pod gets a terminal phase,
    /// Failed if a container's last run had failed),
    /// and the object stays, Terminating, until the finalizer is removed. Returns its JSON.
    pub(super) fn hold_for_finalizer(&mut self, id: PodId) -> Vec<u8> {
        let now = self.now_ms;
        let pod = &self.pods[&id];
        let already_held = pod.deletion.is_some_and(|d| d.held);
        if !already_held {
            if pod.deletion.is_none() {
                if is_active(pod) {
                    self.active -= 1;
                }
                self.pod_mut(id).deletion = Some(Deletion {
                    requested_ms: now,
                    grace_secs: 0,
                    held: false,
                });
                self.emit_pod(id, TransitionKind::Terminating, now, Detail::default());
            }
            if self.pods[&id].phase == Phase::Running {
                self.stop_containers(id, |_, _| (0, "Completed"));
                // Succeeded only if every app container's last run exited 0 (one waiting in
                // CrashLoopBackOff did not).
                let clean = self.pods[&id]
                    .statuses
                    .iter()
                    .all(|s| matches!(&s.state, ContainerState::Terminated(t) if t.exit_code == 0));
                let (outcome, kind) = if clean {
                    (Outcome::Succeeded, TransitionKind::Succeeded)
                } else {
                    (Outcome::Failed, TransitionKind::Failed)
                };
                self.end_phase(id, outcome);
                self.emit_pod(id, kind, now, Detail::default());
            }
            if let Some(d) = &mut self.pod_mut(id).deletion {
                d.held = true;
            }
            self.publish_pod(id);
            self.after(2.0, 6.0, Action::ReleaseFinalizer(id));
        }
        let pod = &self.pods[&id];
        self.store
            .get(
                ResourceKind::Pods,
                &ObjectKey::new(&pod.namespace, &pod.name),
            )
            .map(|o| o.json.to_vec())
            .unwrap_or_default()
    }

    /// A pod is quarantined (its app label changed, so it leaves its app's selector), or put
    /// back.
    fn relabel(&mut self, id: PodId) {
        if !self.pod_is(id, |p| p.deletion.is_none() && !p.phase.is_terminal()) {
            return;
        }
        let pod = self.pod_mut(id);
        let Some((_, value)) = pod.labels.iter_mut().find(|(k, _)| k == RELABEL_KEY) else {
            return;
        };
        *value = match value.strip_suffix(QUARANTINE_SUFFIX) {
            Some(app) => app.to_string(),
            None => format!("{value}{QUARANTINE_SUFFIX}"),
        };
        self.emit_relabel(id);
        self.publish_pod(id);
        if self.rng.chance(0.5) {
            self.after(5.0, 20.0, Action::Relabel(id));
        }
    }

    /// In-place resize of the first container's cpu request, only if the node has room.
    pub(super) fn resize(&mut self, id: PodId) {
        if !self.pod_is(id, |p| {
            p.phase == Phase::Running
                && p.deletion.is_none()
                && p.pod_resources.is_none()
                && p.resizing.is_none()
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
        let delta = resized.effective.requests - pod.effective.requests;
        let node_id = pod.node.expect("running pods are bound");
        let node = &self.nodes[&node_id];
        let fits = node.requested.cpu_millis + delta.cpu_millis <= node.allocatable.cpu_millis
            && node.requested.memory_bytes + delta.memory_bytes <= node.allocatable.memory_bytes;
        if !fits {
            return;
        }
        let node = self.nodes.get_mut(&node_id).expect("exists");
        node.requested += delta;
        if delta.cpu_millis < 0 {
            self.capacity_freed = true;
        }
        // The spec and allocatedResources change now; the runtime applies the new values a
        // moment later (PodResizeInProgress meanwhile).
        resized.statuses[0].actuated = Some((old, pod.containers[0].limits));
        resized.resizing = Some(Condition::new(true, self.now_ms));
        self.pods.insert(id, resized);
        self.emit_pod(
            id,
            TransitionKind::ResizeRequested,
            self.now_ms,
            Detail::default(),
        );
        self.publish_pod(id);
        self.after(0.5, 2.0, Action::ResizeDone(id));
    }

    /// The runtime has applied a resize: status resources follow the spec again.
    fn resize_done(&mut self, id: PodId) {
        if !self.pod_is(id, |p| p.resizing.is_some() && running(p)) {
            return;
        }
        let pod = self.pod_mut(id);
        pod.resizing = None;
        for status in &mut pod.statuses {
            status.actuated = None;
        }
        self.emit_pod(id, TransitionKind::Resized, self.now_ms, Detail::default());
        self.publish_pod(id);
    }
}

#[cfg(test)]
mod tests {
    use super::go_duration;

    #[test]
    fn durations_print_as_go_does() {
        assert_eq!(go_duration(300), "300ms");
        assert_eq!(go_duration(1000), "1s");
        assert_eq!(go_duration(1500), "1.5s");
        assert_eq!(go_duration(10_000), "10s");
        assert_eq!(go_duration(80_000), "1m20s");
        assert_eq!(go_duration(300_000), "5m0s");
        assert_eq!(go_duration(3_600_000), "1h0m0s");
    }
}
