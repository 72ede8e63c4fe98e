//! The compact projection of pods and nodes that the recorder caches, diffs and persists.
//!
//! This is what the design calls "state": only what transitions and utilisation need, never the
//! whole object (no env values, no specs, no annotations). A node's projection is stored as a
//! short JSON string in `nodes.state`, an open pod's in `pod_state` in the binary encoding of
//! [`codec`](super::codec) (JSON before migration 0013, still read), so a restarted recorder
//! diffs the first list against exactly what it last committed. The serde field names are
//! short on purpose: they were repeated in every row, and are in the nodes' rows still.

use std::borrow::Cow;
use std::sync::Arc;

use foldhash::HashSet;
use serde::{Deserialize, Serialize};

pub use super::maybe::MaybeI64;
use crate::model::{Effective, Phase};
use crate::store::NodeResources;

/// Shared immutable text. Namespaces, node names, container names and reasons repeat across
/// thousands of pods; the cache stores one copy of each (see [`Interner`]), and a uid is shared
/// between the cache's key, the state and the node index.
pub type Text = Arc<str>;

/// Deduplicates the strings the cache keeps, and the resize states of pods with nothing in
/// flight. Grows with the number of distinct values (namespaces, nodes, container names,
/// owners, reasons, pod templates' resources), not with the number of pods.
#[derive(Default)]
pub struct Interner {
    set: HashSet<Text>,
    resizes: HashSet<Arc<PodResize>>,
}

impl Interner {
    pub fn intern(&mut self, text: &mut Text) {
        match self.set.get(&**text) {
            Some(shared) => *text = shared.clone(),
            None => {
                self.set.insert(text.clone());
            }
        }
    }

    fn intern_opt(&mut self, text: &mut Option<Text>) {
        if let Some(text) = text {
            self.intern(text);
        }
    }

    /// A settled resize state (nothing pending or in progress, applied as asked) is the same
    /// for every replica of a pod template: one shared copy instead of ~200 bytes a pod. A
    /// state in flight is the pod's own and is not kept here, so the set cannot fill up with
    /// states that pass.
    fn intern_resize(&mut self, resize: &mut Arc<PodResize>) {
        let settled = resize.pending_reason.is_none()
            && !resize.in_progress
            && resize.containers.iter().all(|c| c.actuated_other.is_none());
        if settled && let Some(shared) = self.resizes.get(&**resize) {
            *resize = shared.clone();
            return;
        }
        let own = Arc::make_mut(resize);
        own.containers.shrink_to_fit();
        self.intern_opt(&mut own.pending_reason);
        for c in &mut own.containers {
            self.intern(&mut c.name);
        }
        if settled {
            self.resizes.insert(resize.clone());
        }
    }

    /// Drops the values only the interner still holds. Without it the set would grow with
    /// every value ever seen: each Job a CronJob creates is an owner name of its own, and
    /// every resize of a template a settled state.
    pub fn forget_unused(&mut self) {
        self.set.retain(|text| Arc::strong_count(text) > 1);
        self.resizes.retain(|resize| Arc::strong_count(resize) > 1);
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// How a container run ended. Boxed where it is held: most containers are running, and an
/// empty `Option<Box<_>>` costs 8 bytes where the inline struct costs 64.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Termination {
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Text>,
    /// When the run that ended had started.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    /// Which run of the container this was (0 = the first), as the kubelet numbers them: a new
    /// container gets the previous one's restartCount + 1. See [`ContainerState::last_terminated`].
    #[serde(rename = "n", default, skip_serializing_if = "is_zero")]
    pub run: i64,
    /// [`run_id`] of the run's containerID (0 when the kubelet gave none).
    #[serde(rename = "i", default, skip_serializing_if = "is_zero_u32")]
    pub id: u32,
}

/// `state.waiting` with a reason worth recording (not the ordinary ContainerCreating or
/// PodInitializing, which are not kept at all). Boxed where held: it is rare.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    #[serde(rename = "r")]
    pub reason: Text,
    /// Truncated like every status message.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Text>,
}

/// The waiting reasons every container goes through on its way to running; they are not
/// transitions worth a row (`started` covers them).
pub fn is_ordinary_waiting(reason: &str) -> bool {
    matches!(reason, "" | "ContainerCreating" | "PodInitializing")
}

/// A 32-bit FNV-1a hash of a containerID: identifies a run in 4 bytes instead of the ~77 of
/// `containerd://<64 hex>`. Two runs of one container colliding is a 1 in 4 billion chance.
pub fn run_id(container_id: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in container_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash.max(1)
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    #[serde(rename = "n")]
    pub name: Text,
    /// An init container (plain or sidecar); app containers are false.
    #[serde(rename = "i", default, skip_serializing_if = "is_false")]
    pub init: bool,
    /// [`run_id`] of the current (running or terminated) run's containerID; 0 if none.
    #[serde(rename = "id", default, skip_serializing_if = "is_zero_u32")]
    pub run_id: u32,
    /// The kubelet's restartCount: the run number of the newest container it created.
    #[serde(rename = "c", default)]
    pub restart_count: i64,
    /// When the current (or last, if terminated) run started.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    /// `state.terminated`: the current run (number `restart_count`) has ended.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<Box<Termination>>,
    /// `lastState.terminated`. Which run it describes depends on the state: while the
    /// container runs (or has terminated again) it is the run before the current one; while it
    /// waits in back-off it is the newest run, the one that just ended (the kubelet moves
    /// `state.terminated` to `lastState` when it reports the back-off, and restartCount only
    /// grows when the next container is created).
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub last_terminated: Option<Box<Termination>>,
    /// `state.waiting` with an unusual reason (CrashLoopBackOff, ImagePullBackOff, ...).
    #[serde(rename = "w", default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Box<Waiting>>,
}

impl ContainerState {
    /// Whether the current run is running or has ended (not waiting for a container).
    pub fn has_current_run(&self) -> bool {
        self.terminated.is_some() || self.started_at_ms.is_some()
    }

    /// Every termination the status describes, oldest first.
    pub fn terminations(&self) -> impl Iterator<Item = &Termination> {
        let mut both = [self.last_terminated.as_deref(), self.terminated.as_deref()];
        if let [Some(a), Some(b)] = both
            && a.run > b.run
        {
            both.swap(0, 1);
        }
        both.into_iter().flatten()
    }

    /// The run a waiting container waits for: the one after the newest that ended, if the
    /// newest container has ended; else the newest (it never got to run).
    pub fn waiting_for_run(&self) -> i64 {
        match &self.last_terminated {
            Some(t) if t.run >= self.restart_count && !self.has_current_run() => t.run + 1,
            _ => self.restart_count,
        }
    }
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A container's resources as `[cpu request millis, memory request bytes, cpu limit millis,
/// memory limit bytes]`: one short JSON array in the stored state.
pub type ResourceQuad = [i64; 4];

/// Requests and limits as a [`ResourceQuad`].
pub fn quad(e: &Effective) -> ResourceQuad {
    [
        e.requests.cpu_millis,
        e.requests.memory_bytes,
        e.limits.cpu_millis,
        e.limits.memory_bytes,
    ]
}

/// A [`ResourceQuad`] as requests and limits.
pub fn quad_effective(q: ResourceQuad) -> Effective {
    Effective {
        requests: crate::model::Resources::new(q[0], q[1]),
        limits: crate::model::Resources::new(q[2], q[3]),
    }
}

/// One container's resources, kept to tell a resize that was asked for (spec) from one the
/// kubelet carried out (status). Init and app containers alike, in spec order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContainerResize {
    #[serde(rename = "n")]
    pub name: Text,
    /// `spec.containers[].resources`: what is asked for.
    #[serde(rename = "d", default)]
    pub desired: ResourceQuad,
    /// `status.containerStatuses[].resources` is present (the kubelet reports what it applied).
    #[serde(rename = "rp", default, skip_serializing_if = "is_false")]
    pub reported: bool,
    /// What the kubelet applied, when it differs from `desired` (boxed: it rarely does).
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub actuated_other: Option<Box<ResourceQuad>>,
}

impl ContainerResize {
    /// What the kubelet reports as applied, if it reports anything.
    pub fn actuated(&self) -> Option<ResourceQuad> {
        self.reported.then(|| {
            self.actuated_other
                .as_deref()
                .copied()
                .unwrap_or(self.desired)
        })
    }
}

/// In-place resize: per-container resources and the pod's resize conditions. Absent for a pod
/// that declares no resources and reports none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PodResize {
    #[serde(rename = "c", default)]
    pub containers: Vec<ContainerResize>,
    /// The PodResizePending condition's reason (Deferred or Infeasible).
    #[serde(rename = "pr", default, skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<Text>,
    #[serde(rename = "pm", default, skip_serializing_if = "Option::is_none")]
    pub pending_message: Option<Text>,
    /// The PodResizeInProgress condition is present.
    #[serde(rename = "ip", default, skip_serializing_if = "is_false")]
    pub in_progress: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodState {
    /// The fields marked `serde(skip)` are not stored (neither in the JSON form nor by
    /// [`codec`](super::codec)): a `pod_state` row belongs to
    /// a `pods` row whose columns hold them, written from this same state in the same commit,
    /// and [`resume`](super::resume) fills them back in. Leaving them out takes 40 % off the
    /// stored state, which was a third of what the initial list writes. (States stored before
    /// they were left out still carry them under their old keys; those keys are ignored and the
    /// columns win, which hold the same values.)
    #[serde(skip)]
    pub uid: Text,
    #[serde(skip)]
    pub namespace: Text,
    #[serde(skip)]
    pub name: Text,
    /// Column `node` (stored as "no" before).
    #[serde(skip)]
    pub node: Option<Text>,
    /// Column `phase` ("p").
    #[serde(skip)]
    pub phase: Phase,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Text>,
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Text>,
    /// Column `created_at_ms` ("ca").
    #[serde(skip)]
    pub created_at_ms: i64,
    /// `metadata.deletionTimestamp`: when the grace period ends.
    #[serde(rename = "da", default, skip_serializing_if = "MaybeI64::is_none")]
    pub deletion_at_ms: MaybeI64,
    #[serde(rename = "dg", default, skip_serializing_if = "MaybeI64::is_none")]
    pub deletion_grace_secs: MaybeI64,
    /// PodScheduled=True lastTransitionTime.
    #[serde(rename = "sa", default, skip_serializing_if = "MaybeI64::is_none")]
    pub scheduled_at_ms: MaybeI64,
    /// `status.startTime`.
    #[serde(rename = "st", default, skip_serializing_if = "MaybeI64::is_none")]
    pub start_time_ms: MaybeI64,
    #[serde(rename = "rd", default, skip_serializing_if = "is_false")]
    pub ready: bool,
    /// Ready condition lastTransitionTime.
    #[serde(rename = "ra", default, skip_serializing_if = "MaybeI64::is_none")]
    pub ready_changed_at_ms: MaybeI64,
    /// A boxed slice, not a `Vec`: the list is only ever replaced whole, and without a
    /// capacity field the state fits mimalloc's 256-byte size class (the test `size_class`).
    #[serde(rename = "c", default)]
    pub containers: Box<[ContainerState]>,
    /// Columns `cpu_request_millis` ... `memory_limit_bytes` ("e").
    #[serde(skip)]
    pub resources: Effective,
    /// Columns `owner_kind` and `owner_name` ("ok", "on").
    #[serde(skip)]
    pub owner_kind: Option<Text>,
    #[serde(skip)]
    pub owner_name: Option<Text>,
    #[serde(rename = "rv", default)]
    pub resource_version: MaybeI64,
    /// When the pod reached Succeeded or Failed (the `at` of that transition); set by the cache.
    /// Column `finished_at_ms` ("fa").
    #[serde(skip)]
    pub finished_at_ms: MaybeI64,
    /// In-place resize state (see [`PodResize`]), when [`PodState::resize`] cannot rebuild it
    /// from the rest of the state. Most pods keep none: see [`PodState::elide_resize`].
    #[serde(rename = "rz", default, skip_serializing_if = "Option::is_none")]
    pub resize_kept: Option<Arc<PodResize>>,
    /// The kubelet reports the resources it applied (`status.containerStatuses[].resources`).
    /// Only meaningful while `resize_kept` is None; a kept state says it per container.
    #[serde(rename = "rr", default, skip_serializing_if = "is_false")]
    pub resize_reported: bool,
}

impl PodState {
    /// Replaces repeated strings with the interner's shared copies (the uid stays unique).
    pub fn intern(&mut self, interner: &mut Interner) {
        interner.intern(&mut self.namespace);
        interner.intern_opt(&mut self.node);
        interner.intern_opt(&mut self.reason);
        interner.intern_opt(&mut self.owner_kind);
        interner.intern_opt(&mut self.owner_name);
        for c in &mut self.containers {
            interner.intern(&mut c.name);
            for t in [&mut c.terminated, &mut c.last_terminated]
                .into_iter()
                .flatten()
            {
                interner.intern_opt(&mut t.reason);
            }
            if let Some(w) = &mut c.waiting {
                interner.intern(&mut w.reason);
            }
        }
        if let Some(resize) = &mut self.resize_kept {
            interner.intern_resize(resize);
        }
    }

    /// The pod's in-place resize state: the kept one, or else the one a plain pod implies.
    /// None for a pod that declares and reports no resources.
    pub fn resize(&self) -> Option<Cow<'_, PodResize>> {
        match &self.resize_kept {
            Some(kept) => Some(Cow::Borrowed(kept)),
            None => self.plain_resize().map(Cow::Owned),
        }
    }

    /// The resize state of a plain pod: one app container, no init containers, nothing
    /// pending or in progress, and the kubelet applied what the spec asks for (so the
    /// container's resources are the pod's effective ones). The container's name is the one
    /// its status gives.
    fn plain_resize(&self) -> Option<PodResize> {
        let quad = quad(&self.resources);
        if quad == ResourceQuad::default() && !self.resize_reported {
            return None;
        }
        let [app] = &*self.containers else {
            return None;
        };
        (!app.init).then(|| PodResize {
            containers: vec![ContainerResize {
                name: app.name.clone(),
                desired: quad,
                reported: self.resize_reported,
                actuated_other: None,
            }],
            pending_reason: None,
            pending_message: None,
            in_progress: false,
        })
    }

    /// Sets the resize state, keeping it only when [`PodState::resize`] could not rebuild it
    /// exactly: a plain pod needs none of it.
    pub fn set_resize(&mut self, resize: Option<Arc<PodResize>>) {
        self.resize_reported = resize
            .as_ref()
            .is_some_and(|r| r.containers.iter().any(|c| c.reported));
        self.resize_kept = None;
        if resize.as_deref() != self.plain_resize().as_ref() {
            self.resize_kept = resize;
        }
    }

    /// Whether the pod still holds resources on its node: bound and not finished.
    pub fn holds_node_resources(&self) -> bool {
        self.node.is_some() && !self.phase.is_terminal()
    }

    /// Whether any container has ever run (phase Running, or a container start on record).
    pub fn has_started(&self) -> bool {
        self.phase == Phase::Running
            || self.start_time_ms.is_some() && self.phase.is_terminal()
            || self
                .containers
                .iter()
                .any(|c| !c.init && c.started_at_ms.is_some())
    }

    pub fn restarts(&self) -> i64 {
        self.containers.iter().map(|c| c.restart_count).sum()
    }

    /// The time the pod started running: when its first app container's first run started.
    /// `status.startTime` is when the kubelet admitted the pod, before image pulls and init
    /// containers, so it is only the fallback when no first run's start is known (a pod first
    /// seen after its containers restarted), and any later run's start the last resort.
    pub fn started_at_ms(&self) -> Option<i64> {
        let apps = || self.containers.iter().filter(|c| !c.init);
        self.first_run_started_at_ms()
            .or(self.start_time_ms.get())
            .or_else(|| {
                apps()
                    .flat_map(|c| {
                        c.terminations()
                            .filter_map(|t| t.started_at_ms)
                            .chain(c.started_at_ms)
                    })
                    .min()
            })
    }

    /// When the first app container's first run started, if status still shows it: the kubelet
    /// keeps a container's newest run and, in lastState, one more, so once its second run has
    /// ended (in back-off, lastState is that run) nothing in status holds the first run's start.
    pub fn first_run_started_at_ms(&self) -> Option<i64> {
        self.containers
            .iter()
            .filter(|c| !c.init)
            .filter_map(|c| {
                if c.restart_count == 0 && c.has_current_run() {
                    c.started_at_ms
                        .or_else(|| c.terminated.as_ref().and_then(|t| t.started_at_ms))
                } else {
                    c.terminations()
                        .find(|t| t.run == 0)
                        .and_then(|t| t.started_at_ms)
                }
            })
            .min()
    }

    /// The reason to show for how the pod ended: the pod's own (Evicted, DeadlineExceeded),
    /// else how its containers ended. A non-zero exit says more than a clean one, and an app
    /// container's more than an init container's or a sidecar's (a sidecar stopped by the
    /// kubelet ends `Completed` in the same millisecond as the app container that failed), so
    /// the latest app container with a non-zero exit wins, then any non-zero exit, then the
    /// last container to terminate.
    pub fn final_reason(&self) -> Option<Text> {
        if !self.phase.is_terminal() {
            return None;
        }
        if self.reason.is_some() {
            return self.reason.clone();
        }
        let ended = || {
            self.containers
                .iter()
                .filter_map(|c| c.terminated.as_deref().map(|t| (c.init, t)))
        };
        let failed = |(_, t): &(bool, &Termination)| t.exit_code.is_some_and(|x| x != 0);
        let latest =
            |found: Option<(bool, &Termination)>| found.and_then(|(_, t)| t.reason.clone());
        let by_finish = |(_, t): &(bool, &Termination)| t.finished_at_ms;
        latest(
            ended()
                .filter(|e| !e.0)
                .filter(failed)
                .max_by_key(by_finish),
        )
        .or_else(|| latest(ended().filter(failed).max_by_key(by_finish)))
        .or_else(|| latest(ended().max_by_key(by_finish)))
    }

    /// The latest finishedAt of any container, for the time a pod reached a terminal phase.
    pub fn last_finished_at_ms(&self) -> Option<i64> {
        self.containers
            .iter()
            .filter_map(|c| c.terminated.as_ref().and_then(|t| t.finished_at_ms))
            .max()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    #[serde(rename = "u")]
    pub uid: Text,
    #[serde(rename = "n")]
    pub name: Text,
    #[serde(rename = "ca")]
    pub created_at_ms: i64,
    /// Ready condition is True.
    #[serde(rename = "rd", default, skip_serializing_if = "is_false")]
    pub ready: bool,
    #[serde(rename = "ra", default, skip_serializing_if = "Option::is_none")]
    pub ready_changed_at_ms: Option<i64>,
    #[serde(rename = "us", default, skip_serializing_if = "is_false")]
    pub unschedulable: bool,
    #[serde(rename = "cap", default)]
    pub capacity: NodeResources,
    #[serde(rename = "alc", default)]
    pub allocatable: NodeResources,
    #[serde(rename = "rv", default)]
    pub resource_version: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(name: &str, init: bool, reason: &str, exit_code: i64, at: i64) -> ContainerState {
        ContainerState {
            name: name.into(),
            init,
            terminated: Some(Box::new(Termination {
                finished_at_ms: Some(at),
                exit_code: Some(exit_code),
                reason: Some(reason.into()),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    /// The cache holds one `PodState` a pod, boxed, so its size decides the allocation:
    /// mimalloc's size classes step from 256 to 320 bytes, and at 320 a state costs 64 bytes
    /// more (6.4 MB at 100k pods). A field added here must keep it within 256 or say why not.
    #[test]
    fn size_class() {
        assert!(
            std::mem::size_of::<PodState>() <= 256,
            "PodState is {} bytes",
            std::mem::size_of::<PodState>()
        );
    }

    /// A state read back from the database at startup enters the cache without the spare room
    /// serde leaves while it grows a vector (a resumed cluster of 100k pods would carry it all):
    /// the pod's containers are a boxed slice, and a kept resize state is shrunk.
    #[test]
    fn interning_leaves_no_spare_room_for_containers() {
        let json = r#"{"c": [{"n": "a"}, {"n": "b"}],
            "rz": {"c": [{"n": "a", "d": [1, 2, 3, 4]}], "ip": true}}"#;
        let mut state: PodState = serde_json::from_str(json).unwrap();
        assert_eq!(state.containers.len(), 2);
        assert!(state.resize_kept.as_ref().unwrap().containers.capacity() > 1);
        state.intern(&mut Interner::default());
        let resize = state.resize_kept.as_ref().unwrap();
        assert_eq!(resize.containers.capacity(), resize.containers.len());
    }

    /// Every cached pod holds its containers inline: the run id and the boxed waiting reason
    /// cost 8 bytes per container (64 before), and a termination stays behind a box.
    #[test]
    fn container_state_stays_small() {
        assert!(std::mem::size_of::<ContainerState>() <= 72);
        assert_eq!(std::mem::size_of::<Option<Box<Termination>>>(), 8);
        assert_eq!(std::mem::size_of::<Option<Box<Waiting>>>(), 8);
    }

    fn with_resize(name: &str, pending: Option<&str>) -> PodState {
        let container = |name: &str, cpu| ContainerResize {
            name: name.into(),
            desired: [cpu, 1 << 28, 0, 0],
            reported: true,
            actuated_other: None,
        };
        PodState {
            name: name.into(),
            resize_kept: Some(Arc::new(PodResize {
                containers: vec![container("init", 500), container("app", 250)],
                pending_reason: pending.map(Text::from),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    /// Replicas of one template share one settled resize state; a state in flight stays the
    /// pod's own, and the interner does not keep it.
    #[test]
    fn settled_resize_states_are_shared_and_states_in_flight_are_not() {
        let mut interner = Interner::default();
        let [mut a, mut b] = [with_resize("a", None), with_resize("b", None)];
        a.intern(&mut interner);
        b.intern(&mut interner);
        let (ra, rb) = (a.resize_kept.unwrap(), b.resize_kept.unwrap());
        assert!(Arc::ptr_eq(&ra, &rb), "one copy for both replicas");
        let mut c = with_resize("c", Some("Deferred"));
        c.intern(&mut interner);
        assert!(!Arc::ptr_eq(c.resize_kept.as_ref().unwrap(), &ra));
        assert_eq!(interner.resizes.len(), 1, "the pending state is not kept");
        // Its strings are still shared.
        let name = &c.resize_kept.as_ref().unwrap().containers[1].name;
        assert!(Arc::ptr_eq(name, &ra.containers[1].name));
    }

    /// Values no state holds any more are forgotten; values in use stay shared.
    #[test]
    fn the_interner_forgets_what_no_state_holds() {
        let mut interner = Interner::default();
        let mut kept = with_resize("kept", None);
        kept.owner_name = Some("job-1".into());
        kept.intern(&mut interner);
        let mut gone = with_resize("gone", None);
        gone.owner_name = Some("job-2".into());
        gone.resize_kept = Some(Arc::new(PodResize::default()));
        gone.intern(&mut interner);
        let before = interner.len();
        drop(gone);
        interner.forget_unused();
        assert_eq!(interner.len(), before - 1, "job-2 is forgotten");
        assert_eq!(
            interner.resizes.len(),
            1,
            "the unused empty resize state is forgotten"
        );
        let mut again = with_resize("again", None);
        again.owner_name = Some("job-1".into());
        again.intern(&mut interner);
        assert!(Arc::ptr_eq(
            again.owner_name.as_ref().unwrap(),
            kept.owner_name.as_ref().unwrap()
        ));
        assert!(Arc::ptr_eq(
            again.resize_kept.as_ref().unwrap(),
            kept.resize_kept.as_ref().unwrap()
        ));
    }

    #[test]
    fn a_failed_pod_shows_its_app_containers_error_not_a_sidecars_completion() {
        let mut pod = PodState {
            phase: Phase::Failed,
            // The sidecar is listed first (init containers come first) and was stopped by
            // the kubelet in the same millisecond as the app container failed.
            containers: Box::new([
                ended("proxy", true, "Completed", 0, 5_000),
                ended("app", false, "Error", 1, 5_000),
            ]),
            ..Default::default()
        };
        assert_eq!(pod.final_reason().as_deref(), Some("Error"));
        pod.containers.reverse();
        assert_eq!(pod.final_reason().as_deref(), Some("Error"));
        // A failed init container is the reason when no app container failed.
        pod.containers = Box::new([
            ended("init", true, "Error", 2, 4_000),
            ended("app", false, "Completed", 0, 5_000),
        ]);
        assert_eq!(pod.final_reason().as_deref(), Some("Error"));
        // The pod's own reason wins.
        pod.reason = Some("Evicted".into());
        assert_eq!(pod.final_reason().as_deref(), Some("Evicted"));
    }
}
