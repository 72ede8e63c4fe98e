//! The informer's local cache: the compact state of every pod and node in scope, and the node
//! index (pods by node with their summed requests and limits), so a node's utilisation is known
//! without a scan and without asking the API server.
//!
//! Every `apply_*` / `delete_*` call diffs the incoming state against the cached one with
//! [`detect`](super::detect) and appends the resulting rows to a [`Batch`]. Relists are
//! bracketed by `begin_*_relist` / `end_*_relist`: whatever was cached (or loaded from the
//! database at startup) and is absent from the fresh list is recorded as deleted (inferred).
//!
//! With a label selector (`record -l`) the scope is the selector's: a pod relabelled out of it
//! comes as a watch DELETED although it lives on. The DELETED event carries the object, and
//! that tells the two apart (see [`Cache::delete_pod`]): `left_scope`, and the pod is forgotten
//! until an event shows it matching again (`entered_scope`). A pod absent from a relist is
//! ambiguous in the same way, and a list filtered by the selector cannot tell; those pods are
//! handed back ([`Cache::take_unresolved`]) for the caller to look up by name before
//! anything is recorded.

use foldhash::{HashMap, HashSet};

use super::codec;
use super::detect::{self, Gone, Observation};
use super::objects::{Node, Pod};
use super::pod_set::PodSet;
use super::state::{Interner, MaybeI64, NodeState, PodState, Text, quad_effective};
use crate::model::selector::LabelSelector;
use crate::model::usage::UsageBatch;
use crate::model::{Effective, Resources, TransitionKind};
use crate::store::{Batch, NodeCapacityRow, NodeRow, NodeUsageRow, PodResourcesRow, PodRow};

/// A node's summed requests and limits over its pods that hold resources (bound, not finished).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub requested: Resources,
    pub limits: Resources,
    pub pod_count: i64,
}

#[derive(Debug, Default)]
struct NodeEntry {
    /// None while pods point at a node the node watcher has not listed (yet).
    state: Option<NodeState>,
    usage: Usage,
    /// uids of the pods counted in `usage`.
    pods: HashSet<Text>,
}

#[derive(Default)]
pub struct Cache {
    /// Boxed: a hash table keeps up to half its slots empty, and an empty slot of a boxed value
    /// costs 8 bytes where an inline `PodState` costs 256 (see [`PodSet`]).
    pods: PodSet,
    /// Keyed by node name, which is what pods refer to.
    nodes: HashMap<Text, NodeEntry>,
    /// uids seen since the current pod relist began; None outside a relist.
    pod_relist: Option<HashSet<Text>>,
    node_relist: Option<HashSet<Text>>,
    /// Nodes whose usage changed since the last flush.
    dirty_nodes: HashSet<Text>,
    interner: Interner,
    /// `record -l`: the pods in scope.
    selector: Option<LabelSelector>,
    /// uids of pods that left the selector's scope (relabelled) and may come back. Only
    /// relabelled pods are here, so it stays small; a pod deleted while out of scope is never
    /// seen again and its uid stays (40 bytes).
    left_scope: HashSet<Text>,
    /// Pods missing from a selector-filtered relist, not yet known deleted or relabelled.
    unresolved: Vec<PodState>,
    /// Until when (Unix ms) the recorder followed pod events: a pod missing from the next list
    /// was still there then (see [`Gone::Relisted`]).
    pods_followed_until_ms: i64,
}

/// What a pod contributes to its node's usage, if anything.
fn contribution(state: &PodState) -> Option<(&Text, Resources, Resources)> {
    if state.holds_node_resources() {
        Some((
            state.node.as_ref()?,
            state.resources.requests,
            state.resources.limits,
        ))
    } else {
        None
    }
}

fn owned(text: &Option<Text>) -> Option<String> {
    text.as_deref().map(str::to_string)
}

pub(super) fn pod_row(
    state: &PodState,
    labels_json: Option<String>,
    deleted_at_ms: Option<i64>,
) -> PodRow {
    PodRow {
        uid: state.uid.to_string(),
        namespace: state.namespace.to_string(),
        name: state.name.to_string(),
        node: owned(&state.node),
        owner_kind: owned(&state.owner_kind),
        owner_name: owned(&state.owner_name),
        labels_json,
        created_at_ms: state.created_at_ms,
        started_at_ms: if state.has_started() {
            state.started_at_ms()
        } else {
            None
        },
        finished_at_ms: state.finished_at_ms.get(),
        deleted_at_ms,
        phase: state.phase,
        reason: owned(&state.final_reason()),
        restarts: state.restarts(),
        resources: state.resources,
        // Only open pods need their state (to reconcile a restart against the first list); a
        // deleted pod's summary columns say all there is, and most pods of a long history are
        // deleted, so no state is kept for them.
        state: match deleted_at_ms {
            None => codec::encoded_pod(state),
            Some(_) => Vec::new(),
        },
    }
}

pub(super) fn node_row(state: &NodeState, deleted_at_ms: Option<i64>) -> NodeRow {
    NodeRow {
        uid: state.uid.to_string(),
        name: state.name.to_string(),
        created_at_ms: state.created_at_ms,
        deleted_at_ms,
        capacity: state.capacity,
        allocatable: state.allocatable,
        state_json: serde_json::to_string(state).unwrap_or_default(),
    }
}

impl Cache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Only pods matching `selector` are in scope (the watch is filtered by it too).
    pub fn with_selector(selector: Option<LabelSelector>) -> Self {
        Cache {
            selector: selector.filter(|s| !s.is_empty()),
            ..Self::default()
        }
    }

    /// Pods a previous run saw leave the scope: if they come back, that is `entered_scope`.
    pub fn load_left_scope(&mut self, uids: impl IntoIterator<Item = String>) {
        self.left_scope
            .extend(uids.into_iter().map(|uid| Text::from(uid.as_str())));
    }

    fn in_scope(&self, labels_json: Option<&str>) -> bool {
        self.selector
            .as_ref()
            .is_none_or(|s| s.matches_json(labels_json))
    }

    /// Seeds the cache with the open pods and nodes a previous run committed, so the first list
    /// is diffed against them (missed transitions inferred, vanished objects deleted).
    pub fn load(&mut self, pods: Vec<PodState>, nodes: Vec<NodeState>) {
        for node in nodes {
            let name = node.name.clone();
            self.nodes.entry(name).or_default().state = Some(node);
        }
        for mut pod in pods {
            pod.intern(&mut self.interner);
            self.add_contribution(&pod);
            self.pods.insert(Box::new(pod));
        }
        // Loading is not a change: no usage rows for it.
        self.dirty_nodes.clear();
    }

    /// The recorder has followed pod events until `at_ms`: the last event of a stream, the end
    /// of a list, or (on a restart) the previous run's last commit.
    pub fn followed_pods_until(&mut self, at_ms: i64) {
        self.pods_followed_until_ms = self.pods_followed_until_ms.max(at_ms);
    }

    fn relisted(&self) -> Gone {
        Gone::Relisted {
            followed_until_ms: self.pods_followed_until_ms,
        }
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Whether a pod with this uid is cached (so an update for it is a modification).
    pub fn has_pod(&self, uid: &str) -> bool {
        self.pods.contains(uid)
    }

    pub fn has_node(&self, name: &str) -> bool {
        self.nodes.get(name).is_some_and(|n| n.state.is_some())
    }

    pub fn node_count(&self) -> usize {
        self.nodes.values().filter(|n| n.state.is_some()).count()
    }

    /// The usage of a node, from the index.
    pub fn node_usage(&self, name: &str) -> Option<Usage> {
        self.nodes.get(name).map(|n| n.usage)
    }

    /// The pods counted on a node.
    pub fn pods_on_node(&self, name: &str) -> impl Iterator<Item = &PodState> {
        self.nodes
            .get(name)
            .into_iter()
            .flat_map(|n| n.pods.iter())
            .filter_map(|uid| self.pods.get(uid))
    }

    fn add_contribution(&mut self, state: &PodState) {
        if let Some((node, requests, limits)) = contribution(state) {
            let entry = self.nodes.entry(node.clone()).or_default();
            if entry.pods.insert(state.uid.clone()) {
                entry.usage.requested += requests;
                entry.usage.limits += limits;
                entry.usage.pod_count += 1;
                self.dirty_nodes.insert(node.clone());
            }
        }
    }

    fn remove_contribution(&mut self, state: &PodState) {
        if let Some((node, requests, limits)) = contribution(state)
            && let Some(entry) = self.nodes.get_mut(node)
            && entry.pods.remove(&state.uid)
        {
            entry.usage.requested -= requests;
            entry.usage.limits -= limits;
            entry.usage.pod_count -= 1;
            self.dirty_nodes.insert(node.clone());
        }
    }

    /// An added or modified pod (or one listed during a relist).
    pub fn apply_pod(&mut self, pod: Pod, obs: Observation, batch: &mut Batch) {
        let mut new = pod.state;
        new.intern(&mut self.interner);
        if let Some(seen) = &mut self.pod_relist {
            seen.insert(new.uid.clone());
        }
        let old = self.pods.get(&new.uid);
        // Not on the wire; carried over so that an unchanged pod compares equal.
        new.finished_at_ms = old.map_or(MaybeI64::NONE, |o| o.finished_at_ms);
        detect::carry_runs(old, &mut new);
        if old == Some(&new) {
            return; // a replayed event or an update to fields we do not track
        }
        let mut rows = Vec::new();
        let mut obs = obs;
        if old.is_none() && self.left_scope.remove(&new.uid) {
            rows.push(detect::pod_scope(&new, true, obs));
            // What changed while it was out of scope is found the way a relist finds it.
            obs.inferred = true;
        }
        rows.extend(detect::pod_transitions(old, &new, obs));
        if let Some(finished) = rows
            .iter()
            .find(|r| matches!(r.kind, TransitionKind::Succeeded | TransitionKind::Failed))
        {
            new.finished_at_ms = MaybeI64::some(finished.at_ms);
        }
        if old.is_none_or(|o| o.resources != new.resources) {
            batch.pod_resources.push(PodResourcesRow {
                pod_uid: new.uid.to_string(),
                at_ms: obs.at_ms,
                resources: new.resources,
            });
        }
        batch.pods.push(pod_row(&new, pod.labels_json, None));
        batch.transitions.extend(rows);
        if let Some(old) = self.pods.remove(&new.uid) {
            self.remove_contribution(&old);
        }
        self.add_contribution(&new);
        self.pods.insert(Box::new(new));
    }

    /// A DELETED event. A pod deleted before we ever saw it is first applied, so its creation
    /// and whatever else its final state shows are recorded too.
    ///
    /// With a selector, a DELETED event may mean the pod stopped matching it. The API server
    /// then sends the object as it was *before* the change (still matching, with the new
    /// resourceVersion), so its labels alone cannot tell; but a real deletion of a pod always
    /// goes through graceful deletion, which stores a deletionTimestamp first (even with grace
    /// 0, for an unbound or finished pod), and the DELETED event carries it. So: no
    /// deletionTimestamp, or labels that do not match (a server that sends the new object),
    /// means the pod left the scope. A pod relabelled out while it terminates is taken for
    /// deleted, which it is about to be.
    pub fn delete_pod(&mut self, pod: Pod, obs: Observation, batch: &mut Batch) {
        let labels = pod.labels_json.clone();
        let uid = pod.state.uid.clone();
        let in_scope = self.selector.is_none()
            || self.in_scope(labels.as_deref()) && pod.state.deletion_at_ms.is_some();
        if !in_scope && !self.pods.contains(&uid) {
            return; // never followed, or already out of scope: nothing to say
        }
        self.apply_pod(pod, obs, batch);
        if let Some(last) = self.pods.remove(&uid) {
            if in_scope {
                self.record_pod_gone(*last, labels, obs, Gone::Watched, batch);
            } else {
                self.record_left_scope(*last, labels, obs, batch);
            }
        }
    }

    fn record_left_scope(
        &mut self,
        last: PodState,
        labels: Option<String>,
        obs: Observation,
        batch: &mut Batch,
    ) {
        self.remove_contribution(&last);
        let row = detect::pod_scope(&last, false, obs);
        // The pod stays open in `pods` with its new labels: a restart does not load it (it is
        // out of scope) and does not take it for deleted either.
        batch.pods.push(pod_row(&last, labels, None));
        batch.transitions.push(row);
        self.left_scope.insert(last.uid.clone());
    }

    fn record_pod_gone(
        &mut self,
        last: PodState,
        labels: Option<String>,
        obs: Observation,
        how: Gone,
        batch: &mut Batch,
    ) {
        self.remove_contribution(&last);
        let row = detect::pod_deleted(&last, obs, how);
        batch.pods.push(pod_row(&last, labels, Some(row.at_ms)));
        batch.transitions.push(row);
    }

    pub fn begin_pod_relist(&mut self) {
        self.pod_relist = Some(HashSet::default());
    }

    /// Ends a relist: cached pods that were not listed are gone (deleted while we were away).
    /// Returns how many. With a selector they may only have left the scope: they are kept
    /// aside for [`Cache::take_unresolved`] instead, and not counted.
    pub fn end_pod_relist(&mut self, obs: Observation, batch: &mut Batch) -> usize {
        let Some(seen) = self.pod_relist.take() else {
            return 0;
        };
        let gone: Vec<Text> = self
            .pods
            .values()
            .map(|p| &p.uid)
            .filter(|uid| !seen.contains(*uid))
            .cloned()
            .collect();
        let mut deleted = 0;
        for uid in &gone {
            if let Some(last) = self.pods.remove(uid) {
                if self.selector.is_some() {
                    self.remove_contribution(&last);
                    self.unresolved.push(*last);
                    continue;
                }
                // Labels are already stored from earlier rows; None leaves them as they are.
                self.record_pod_gone(*last, None, obs, self.relisted(), batch);
                deleted += 1;
            }
        }
        deleted
    }

    /// Pods missing from a selector-filtered list, to be looked up by namespace and name and
    /// handed back to [`Cache::resolve_missing`].
    pub fn take_unresolved(&mut self) -> Vec<PodState> {
        std::mem::take(&mut self.unresolved)
    }

    /// What a lookup found for a pod missing from a selector-filtered list: `found` is the pod
    /// of that namespace and name now, if any. The same uid still there was relabelled out of
    /// scope (or back in, if it matches again by now); otherwise the pod was deleted.
    pub fn resolve_missing(
        &mut self,
        last: PodState,
        found: Option<Pod>,
        obs: Observation,
        batch: &mut Batch,
    ) {
        match found {
            Some(pod) if pod.state.uid == last.uid => {
                let labels = pod.labels_json.clone();
                let in_scope = self.in_scope(labels.as_deref());
                let uid = last.uid.clone();
                self.add_contribution(&last);
                self.pods.insert(Box::new(last));
                self.apply_pod(pod, obs, batch);
                if !in_scope && let Some(last) = self.pods.remove(&uid) {
                    self.record_left_scope(*last, labels, obs, batch);
                }
            }
            _ => {
                let how = self.relisted();
                self.record_pod_gone(last, None, obs, how, batch)
            }
        }
    }

    pub fn apply_node(&mut self, node: Node, obs: Observation, batch: &mut Batch) {
        let mut new = node.state;
        self.interner.intern(&mut new.name);
        if let Some(seen) = &mut self.node_relist {
            seen.insert(new.name.clone());
        }
        let entry = self.nodes.entry(new.name.clone()).or_default();
        let old = entry.state.as_ref();
        // A node recreated under the same name is a new incarnation: the old one is gone.
        if let Some(previous) = old
            && previous.uid != new.uid
        {
            let previous = previous.clone();
            let row = detect::node_deleted(&previous, obs);
            batch.nodes.push(node_row(&previous, Some(row.at_ms)));
            batch.transitions.push(row);
            entry.state = None;
        }
        let old = entry.state.as_ref();
        if old == Some(&new) {
            return;
        }
        let rows = detect::node_transitions(old, &new, obs);
        let capacity_changed =
            old.is_none_or(|o| o.capacity != new.capacity || o.allocatable != new.allocatable);
        batch.nodes.push(node_row(&new, None));
        if capacity_changed {
            batch.node_capacity.push(NodeCapacityRow {
                node_uid: new.uid.to_string(),
                at_ms: obs.at_ms,
                capacity: new.capacity,
                allocatable: new.allocatable,
            });
            self.dirty_nodes.insert(new.name.clone());
        }
        batch.transitions.extend(rows);
        entry.state = Some(new);
    }

    pub fn delete_node(&mut self, node: Node, obs: Observation, batch: &mut Batch) {
        let name = node.state.name.clone();
        self.apply_node(node, obs, batch);
        self.record_node_gone(&name, obs, batch);
    }

    fn record_node_gone(&mut self, name: &Text, obs: Observation, batch: &mut Batch) {
        let Some(entry) = self.nodes.get_mut(name) else {
            return;
        };
        let Some(last) = entry.state.take() else {
            return;
        };
        let row = detect::node_deleted(&last, obs);
        batch.nodes.push(node_row(&last, Some(row.at_ms)));
        batch.transitions.push(row);
        // Pods still bound to it keep their entry until their own deletions arrive.
        if entry.pods.is_empty() {
            self.nodes.remove(name);
        }
        self.dirty_nodes.remove(name);
    }

    pub fn begin_node_relist(&mut self) {
        self.node_relist = Some(HashSet::default());
    }

    pub fn end_node_relist(&mut self, obs: Observation, batch: &mut Batch) -> usize {
        let Some(seen) = self.node_relist.take() else {
            return 0;
        };
        let gone: Vec<Text> = self
            .nodes
            .iter()
            .filter(|(name, entry)| entry.state.is_some() && !seen.contains(*name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &gone {
            self.record_node_gone(name, obs, batch);
        }
        gone.len()
    }

    /// Fills in each sampled container's own requests and limits (`spec.containers[]`) from
    /// the pod of that namespace and name, the newest incarnation when two are cached. A pod
    /// the cache does not hold (not listed yet, outside `-l`) leaves None; a container that
    /// declares nothing gets zeros, as the pod's requests do.
    pub fn fill_container_resources(&self, batch: &mut UsageBatch) {
        if batch.containers.is_empty() {
            return;
        }
        let mut by_name: HashMap<(&str, &str), &PodState> = HashMap::default();
        for pod in self.pods.values() {
            let key = (&*pod.namespace, &*pod.name);
            match by_name.get(&key) {
                Some(other) if other.created_at_ms > pod.created_at_ms => {}
                _ => {
                    by_name.insert(key, pod);
                }
            }
        }
        for row in &mut batch.containers {
            let Some(pod) = by_name.get(&(row.namespace.as_str(), row.pod.as_str())) else {
                continue;
            };
            row.resources = match pod.resize() {
                // A pod that declares no resources; without a resize state otherwise (its
                // containers not reported yet), the container's own are not known.
                None => (pod.resources == Effective::default()).then(Effective::default),
                Some(resize) => resize
                    .containers
                    .iter()
                    .find(|c| *c.name == *row.container)
                    .map(|c| quad_effective(c.desired)),
            };
        }
    }

    /// Emits one usage row per node whose usage changed since the last flush. Called once per
    /// batch, so a list of 100k pods gives one row per node, not one per pod.
    pub fn flush_usage(&mut self, at_ms: i64, batch: &mut Batch) {
        let dirty = std::mem::take(&mut self.dirty_nodes);
        for name in dirty {
            self.push_usage(&name, at_ms, false, batch);
        }
    }

    /// A keyframe row for every known node, so a window's first value is never far away.
    ///
    /// A node whose usage changed since the last flush gets an ordinary row (`keyframe = 0`);
    /// so every `keyframe = 1` row repeats the value before it, and readers may skip them.
    pub fn keyframes(&mut self, at_ms: i64, batch: &mut Batch) {
        // Keyframes come every few minutes: a good pace to forget the values no object holds.
        self.interner.forget_unused();
        let dirty = std::mem::take(&mut self.dirty_nodes);
        let names: Vec<Text> = self.nodes.keys().cloned().collect();
        for name in names {
            self.push_usage(&name, at_ms, !dirty.contains(&name), batch);
        }
    }

    fn push_usage(&self, name: &Text, at_ms: i64, keyframe: bool, batch: &mut Batch) {
        let Some(entry) = self.nodes.get(name) else {
            return;
        };
        let Some(state) = &entry.state else { return };
        batch.node_usage.push(NodeUsageRow {
            node_uid: state.uid.to_string(),
            at_ms,
            requested: entry.usage.requested,
            limits: entry.usage.limits,
            pod_count: entry.usage.pod_count,
            allocatable: state.allocatable.cpu_memory(),
            keyframe,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Effective, Phase};
    use crate::recorder::objects::{Node, Pod};
    use crate::recorder::state::PodState;
    use crate::store::{NodeResources, SubjectUid};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(uid: &str, node: Option<&str>, phase: Phase, cpu: i64) -> Pod {
        Pod {
            meta: ObjectMeta::default(),
            labels_json: None,
            state: PodState {
                uid: uid.into(),
                namespace: "ns".into(),
                name: uid.into(),
                node: node.map(Text::from),
                phase,
                created_at_ms: 1,
                resources: Effective {
                    requests: Resources::new(cpu, cpu * 10),
                    limits: Resources::new(cpu * 2, 0),
                },
                ..Default::default()
            },
        }
    }

    fn node(name: &str) -> Node {
        Node {
            meta: ObjectMeta::default(),
            state: NodeState {
                uid: format!("uid-{name}").into(),
                name: name.into(),
                created_at_ms: 1,
                ready: true,
                allocatable: NodeResources {
                    cpu_millis: 4000,
                    memory_bytes: 1 << 30,
                    pods: 110,
                },
                ..Default::default()
            },
        }
    }

    #[test]
    fn a_sampled_container_gets_its_own_requests_from_the_newest_pod_of_its_name() {
        use crate::model::usage::ContainerUsageRow;
        use crate::recorder::state::ContainerState;
        let mut cache = Cache::new();
        let mut batch = Batch::default();
        let obs = Observation::live(10);
        // An older incarnation of web (still terminating) and the newer one, each with one
        // app container; and a pod that declares nothing.
        for (uid, created, cpu) in [("web-old", 1, 100), ("web-new", 5, 300)] {
            let mut p = pod(uid, Some("n1"), Phase::Running, cpu);
            p.state.name = "web".into();
            p.state.created_at_ms = created;
            p.state.containers = vec![ContainerState {
                name: "app".into(),
                ..Default::default()
            }]
            .into();
            cache.apply_pod(p, obs, &mut batch);
        }
        cache.apply_pod(pod("idle", Some("n1"), Phase::Running, 0), obs, &mut batch);
        let row = |pod: &str, container: &str| ContainerUsageRow {
            namespace: "ns".into(),
            pod: pod.into(),
            container: container.into(),
            at_ms: 1,
            window_ms: 15_000,
            cpu_millis: 1,
            memory_bytes: 1,
            resources: None,
        };
        let mut sample = UsageBatch {
            containers: vec![
                row("web", "app"),
                row("web", "gone"),
                row("idle", "x"),
                row("nope", "app"),
            ],
            nodes: vec![],
        };
        cache.fill_container_resources(&mut sample);
        let filled: Vec<_> = sample.containers.iter().map(|c| c.resources).collect();
        let web_new = Effective {
            requests: Resources::new(300, 3_000),
            limits: Resources::new(600, 0),
        };
        assert_eq!(
            filled,
            [Some(web_new), None, Some(Effective::default()), None],
            "web's app from the newer incarnation; no such container; declares nothing; not cached"
        );
    }

    #[test]
    fn the_node_index_sums_bound_unfinished_pods() {
        let mut cache = Cache::new();
        let mut batch = Batch::default();
        let obs = Observation::live(10);
        cache.apply_node(node("n1"), obs, &mut batch);
        cache.apply_pod(pod("a", Some("n1"), Phase::Running, 100), obs, &mut batch);
        cache.apply_pod(pod("b", Some("n1"), Phase::Pending, 200), obs, &mut batch);
        cache.apply_pod(pod("c", None, Phase::Pending, 400), obs, &mut batch);
        let usage = cache.node_usage("n1").unwrap();
        assert_eq!(
            (
                usage.requested.cpu_millis,
                usage.limits.cpu_millis,
                usage.pod_count
            ),
            (300, 600, 2)
        );
        assert_eq!(cache.pods_on_node("n1").count(), 2);

        // Finishing releases the node's resources; deleting a finished pod changes nothing more.
        cache.apply_pod(pod("a", Some("n1"), Phase::Succeeded, 100), obs, &mut batch);
        assert_eq!(cache.node_usage("n1").unwrap().requested.cpu_millis, 200);
        cache.delete_pod(pod("a", Some("n1"), Phase::Succeeded, 100), obs, &mut batch);
        cache.delete_pod(pod("b", Some("n1"), Phase::Pending, 200), obs, &mut batch);
        assert_eq!(cache.node_usage("n1").unwrap(), Usage::default());
    }

    #[test]
    fn usage_rows_are_coalesced_per_flush() {
        let mut cache = Cache::new();
        let mut batch = Batch::default();
        let obs = Observation::inferred(10);
        cache.apply_node(node("n1"), obs, &mut batch);
        for i in 0..50 {
            cache.apply_pod(
                pod(&format!("p{i}"), Some("n1"), Phase::Running, 10),
                obs,
                &mut batch,
            );
        }
        cache.flush_usage(20, &mut batch);
        assert_eq!(batch.node_usage.len(), 1);
        assert_eq!(batch.node_usage[0].requested.cpu_millis, 500);
        assert_eq!(batch.node_usage[0].pod_count, 50);
        assert_eq!(batch.node_usage[0].allocatable.cpu_millis, 4000);
        let mut later = Batch::default();
        cache.flush_usage(30, &mut later);
        assert!(
            later.node_usage.is_empty(),
            "nothing changed since the last flush"
        );
        cache.keyframes(40, &mut later);
        assert_eq!(later.node_usage.len(), 1);
        assert!(
            later.node_usage[0].keyframe,
            "nothing changed: an exact repeat"
        );
        cache.apply_pod(pod("late", Some("n1"), Phase::Running, 10), obs, &mut later);
        cache.keyframes(50, &mut later);
        assert!(
            !later.node_usage[1].keyframe,
            "a change is never hidden in a keyframe"
        );
        assert_eq!(later.node_usage[1].pod_count, 51);
    }

    #[test]
    fn a_relist_deletes_what_is_gone_and_keeps_what_is_listed() {
        let mut cache = Cache::new();
        let batch = Batch::default();
        cache.load(
            vec![
                pod("kept", None, Phase::Pending, 1).state,
                pod("gone", None, Phase::Pending, 1).state,
            ],
            vec![node("n1").state, node("n2").state],
        );
        let mut batch2 = Batch::default();
        let obs = Observation::inferred(50);
        cache.begin_pod_relist();
        cache.apply_pod(pod("kept", None, Phase::Pending, 1), obs, &mut batch2);
        assert_eq!(cache.end_pod_relist(obs, &mut batch2), 1);
        cache.begin_node_relist();
        cache.apply_node(node("n1"), obs, &mut batch2);
        assert_eq!(cache.end_node_relist(obs, &mut batch2), 1);
        let kinds: Vec<(SubjectUid, TransitionKind, bool)> = batch2
            .transitions
            .iter()
            .map(|t| (t.subject.clone(), t.kind, t.inferred))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (
                    SubjectUid::Pod("gone".into()),
                    TransitionKind::Deleted,
                    true
                ),
                (
                    SubjectUid::Node("uid-n2".into()),
                    TransitionKind::NodeDeleted,
                    true
                ),
            ]
        );
        assert!(batch.is_empty(), "loading writes nothing");
        assert_eq!(cache.pod_count(), 1);
    }

    /// A pod whose grace period had ended was still there when the previous run last
    /// committed (the kubelet confirms a deletion when its containers are gone, often after the
    /// grace period); missing from the restarted recorder's list, it was deleted after that
    /// commit, not at its deletionTimestamp.
    #[test]
    fn a_pod_missing_from_a_restarts_list_is_not_dated_before_the_previous_run_last_saw_it() {
        let mut cache = Cache::new();
        let mut terminating = pod("slow", Some("n1"), Phase::Running, 1).state;
        terminating.deletion_at_ms = Some(29_000).into();
        terminating.deletion_grace_secs = Some(1).into();
        cache.load(vec![terminating], vec![]);
        cache.followed_pods_until(32_300);
        let mut batch = Batch::default();
        let obs = Observation::inferred(37_600);
        cache.begin_pod_relist();
        assert_eq!(cache.end_pod_relist(obs, &mut batch), 1);
        let deleted = batch.transitions.last().unwrap();
        assert_eq!(
            (deleted.kind, deleted.at_ms, deleted.inferred),
            (TransitionKind::Deleted, 32_300, true)
        );
        assert_eq!(batch.pods.last().unwrap().deleted_at_ms, Some(32_300));
    }

    #[test]
    fn a_pod_deleted_before_it_was_ever_seen_still_gets_created_and_deleted() {
        let mut cache = Cache::new();
        let mut batch = Batch::default();
        cache.delete_pod(
            pod("flash", None, Phase::Pending, 1),
            Observation::live(5),
            &mut batch,
        );
        let kinds: Vec<TransitionKind> = batch.transitions.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            vec![TransitionKind::Created, TransitionKind::Deleted]
        );
        assert_eq!(batch.pods.last().unwrap().deleted_at_ms, Some(5));
    }

    fn labelled(uid: &str, app: &str) -> Pod {
        let mut p = pod(uid, Some("n1"), Phase::Running, 100);
        p.labels_json = Some(format!(r#"{{"app":"{app}"}}"#));
        p
    }

    fn scoped() -> Cache {
        Cache::with_selector(Some(LabelSelector::parse("app=web").unwrap()))
    }

    fn kinds(batch: &Batch) -> Vec<TransitionKind> {
        batch.transitions.iter().map(|t| t.kind).collect()
    }

    #[test]
    fn a_pod_relabelled_out_of_the_selector_left_the_scope_and_was_not_deleted() {
        let mut cache = scoped();
        let obs = Observation::live(10);
        let mut batch = Batch::default();
        cache.apply_pod(labelled("a", "web"), obs, &mut batch);
        // The API server sends DELETED with the pod as it was before the relabel (still
        // matching) but without a deletionTimestamp, which every real deletion has.
        let mut left = Batch::default();
        cache.delete_pod(labelled("a", "web"), Observation::live(20), &mut left);
        assert_eq!(kinds(&left), vec![TransitionKind::LeftScope]);
        // A server that sends the new labels says the same.
        let mut again = scoped();
        again.apply_pod(labelled("b", "web"), obs, &mut Batch::default());
        let mut left_b = Batch::default();
        again.delete_pod(labelled("b", "other"), Observation::live(20), &mut left_b);
        assert_eq!(kinds(&left_b), vec![TransitionKind::LeftScope]);
        assert_eq!(left.pods.last().unwrap().deleted_at_ms, None);
        assert_eq!(cache.node_usage("n1").unwrap().pod_count, 0);
        // Labelled back: it entered the scope again, and its real deletion is recorded.
        let mut back = Batch::default();
        cache.apply_pod(labelled("a", "web"), Observation::live(30), &mut back);
        assert_eq!(kinds(&back)[0], TransitionKind::EnteredScope);
        assert!(!back.transitions[0].inferred);
        let mut gone = Batch::default();
        let mut deleting = labelled("a", "web");
        deleting.state.deletion_at_ms = Some(35).into();
        cache.delete_pod(deleting, Observation::live(40), &mut gone);
        assert_eq!(
            kinds(&gone),
            vec![TransitionKind::Terminating, TransitionKind::Deleted]
        );
        assert_eq!(gone.pods.last().unwrap().deleted_at_ms, Some(40));
    }

    #[test]
    fn a_pod_missing_from_a_selector_filtered_relist_is_looked_up_before_anything_is_recorded() {
        let mut cache = scoped();
        cache.load(
            vec![
                labelled("relabelled", "web").state,
                labelled("deleted", "web").state,
            ],
            vec![],
        );
        let obs = Observation::inferred(50);
        let mut batch = Batch::default();
        cache.begin_pod_relist();
        assert_eq!(cache.end_pod_relist(obs, &mut batch), 0);
        assert!(batch.transitions.is_empty(), "nothing known yet");
        let mut missing = cache.take_unresolved();
        missing.sort_by(|a, b| a.uid.cmp(&b.uid));
        let [deleted, relabelled] = <[PodState; 2]>::try_from(missing).unwrap();
        cache.resolve_missing(
            relabelled,
            Some(labelled("relabelled", "other")),
            obs,
            &mut batch,
        );
        cache.resolve_missing(deleted, None, obs, &mut batch);
        let got: Vec<_> = batch
            .transitions
            .iter()
            .map(|t| (t.subject.clone(), t.kind))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    SubjectUid::Pod("relabelled".into()),
                    TransitionKind::LeftScope
                ),
                (SubjectUid::Pod("deleted".into()), TransitionKind::Deleted),
            ]
        );
        assert_eq!(cache.pod_count(), 0);
    }

    #[test]
    fn a_pod_that_left_the_scope_before_a_restart_enters_it_again() {
        let mut cache = scoped();
        cache.load_left_scope(["a".to_string()]);
        let mut batch = Batch::default();
        cache.apply_pod(labelled("a", "web"), Observation::live(30), &mut batch);
        assert_eq!(kinds(&batch)[0], TransitionKind::EnteredScope);
        // What changed meanwhile is inferred, the way a relist finds it.
        assert!(batch.transitions[1..].iter().all(|t| t.inferred));
    }
}
