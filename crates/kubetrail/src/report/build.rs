//! Builds a [`Report`] from a store, through the public report functions only: `for_each_pod`
//! for the pods, `for_each_transition` for the markers and the node spells, and
//! `for_each_node_bucket` for the node series (the same integration as `query nodes`), and
//! `for_each_event` for the Warning events (see [`super::warnings`]).
//!
//! The window is clipped to the recorded time first (a `--since 7d` over a file recorded for an
//! hour draws that hour, at a step that suits it), then everything is read for that window.

use std::collections::{BTreeSet, HashMap};

use super::model::{CoverageInfo, Events, Nodes, Pods, Report, RequestInfo, WindowInfo, Workloads};
use super::summary::{self, NodeChange};
use super::{ReportRequest, choose_step, warnings};
use crate::model::TransitionKind;
use crate::model::time::Window;
use crate::query::{
    NodeFilter, PodFilter, PodSummary, QueryError, TransitionFilter, for_each_node_bucket,
    for_each_pod, for_each_transition,
};
use crate::store::{Coverage, HistoryReader};

/// The pod transitions drawn as markers.
const POD_KINDS: &[TransitionKind] = &[
    TransitionKind::ContainerRestarted,
    TransitionKind::ContainerTerminated,
    TransitionKind::ContainerWaiting,
    TransitionKind::Failed,
];

/// The node transitions: spells (NotReady, cordoned) and markers.
const NODE_KINDS: &[TransitionKind] = &[
    TransitionKind::NodeAdded,
    TransitionKind::NodeDeleted,
    TransitionKind::NodeReady,
    TransitionKind::NodeNotReady,
    TransitionKind::Cordoned,
    TransitionKind::Uncordoned,
    TransitionKind::CapacityChanged,
];

const MIB: f64 = 1024.0 * 1024.0;

/// One pod marker before the pods are final (they may still be trimmed to `max_pods`).
struct RawEvent {
    pod: usize,
    at_ms: i64,
    kind: &'static str,
    container: Option<String>,
    reason: Option<String>,
    exit_code: Option<i64>,
    restart_count: Option<i64>,
    message: Option<String>,
    inferred: bool,
}

/// Reads the report that `req` asks for. `source` names the store for the page's heading;
/// `now_ms` ends an open window. The reader should allow `query::nodes::WORKERS + 1`
/// snapshots (the node series are integrated on several threads, as in `query nodes`).
pub fn build(
    reader: &dyn HistoryReader,
    req: &ReportRequest,
    now_ms: i64,
    source: &str,
) -> Result<Report, QueryError> {
    let coverage = Coverage::from_sessions(reader.snapshot()?.sessions()?);

    // Pods of the requested window; the window is clipped afterwards and pods outside it
    // dropped, so one read serves both.
    let mut all_pods: Vec<PodSummary> = Vec::new();
    let pod_filter = PodFilter {
        namespace: req.namespace.clone(),
        node: req.node.clone(),
        window: req.window,
        ..Default::default()
    };
    for_each_pod(reader, &pod_filter, now_ms, |pod| {
        if req
            .owner
            .as_ref()
            .is_none_or(|o| o.matches(pod.owner_kind.as_deref(), pod.owner_name.as_deref()))
        {
            all_pods.push(pod);
        }
        Ok(())
    })?;

    let mut notes = Vec::new();
    let (since_ms, until_ms) = clip_window(req, &coverage, &all_pods, now_ms, &mut notes);
    let step_ms = choose_step(since_ms, until_ms, req.step_ms).map_err(QueryError::Usage)?;
    let window = window_info(since_ms, until_ms, step_ms);
    all_pods.retain(|p| p.created_at_ms < until_ms && p.deleted_at_ms.is_none_or(|d| d > since_ms));

    // Markers of those pods.
    let uids: HashMap<&str, usize> = all_pods
        .iter()
        .enumerate()
        .map(|(i, p)| (p.uid.as_str(), i))
        .collect();
    let mut raw_events = Vec::new();
    let clipped = Window {
        since_ms: Some(since_ms),
        until_ms: Some(until_ms),
    };
    let transition_filter = TransitionFilter {
        kinds: POD_KINDS.to_vec(),
        namespace: req.namespace.clone(),
        node: req.node.clone(),
        window: clipped,
        ..Default::default()
    };
    for_each_transition(reader, &transition_filter, |t| {
        let Some(&pod) = uids.get(t.uid.as_str()) else {
            return Ok(());
        };
        // A container that completed is the normal end of a Job, not an event worth a mark.
        if t.kind == "container_terminated" && t.reason.as_deref() == Some("Completed") {
            return Ok(());
        }
        raw_events.push(RawEvent {
            pod,
            at_ms: t.at_ms,
            kind: t.kind,
            container: t.container,
            reason: t.reason,
            exit_code: t.exit_code,
            restart_count: t.restart_count,
            message: t.message,
            inferred: t.inferred,
        });
        Ok(())
    })?;
    drop(uids);
    let (kept, raw_events) = trim_pods(all_pods, raw_events, req.max_pods, &mut notes);

    // Node transitions from the start of history, so that a spell open when the window starts
    // is known; node usage per bucket.
    let mut node_rows = Vec::new();
    let node_filter = TransitionFilter {
        kinds: NODE_KINDS.to_vec(),
        node: req.node.clone(),
        window: Window {
            since_ms: None,
            until_ms: Some(until_ms),
        },
        ..Default::default()
    };
    for_each_transition(reader, &node_filter, |t| {
        node_rows.push(t);
        Ok(())
    })?;
    let mut buckets = Vec::new();
    let node_report = for_each_node_bucket(
        reader,
        &NodeFilter {
            node: req.node.clone(),
            window: clipped,
            step_ms,
        },
        now_ms,
        |b| {
            buckets.push(b);
            Ok(())
        },
    )?;

    // One table of node names for pods, series and spells.
    let names: Vec<String> = kept
        .iter()
        .filter_map(|p| p.node.clone())
        .chain(buckets.iter().map(|b| b.node.clone()))
        .chain(node_rows.iter().filter_map(|t| t.node.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let node_index: HashMap<&str, u32> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u32))
        .collect();

    let mut nodes = empty_nodes(names.len(), window.bucket_starts_ms.len());
    // Two incarnations of one name may share a bucket; the one present longer in it wins.
    let mut present = vec![vec![0i64; window.bucket_starts_ms.len()]; names.len()];
    for b in &buckets {
        let n = node_index[b.node.as_str()] as usize;
        let i = window.bucket_of(b.start_ms);
        if b.present_ms <= present[n][i] {
            continue;
        }
        present[n][i] = b.present_ms;
        let mib = |bytes: i64| Some((bytes as f64 / MIB).round() as i64);
        nodes.cpu_requested_millis[n][i] = Some(b.cpu_requested_avg_millis);
        nodes.cpu_limits_millis[n][i] = Some(b.cpu_limits_avg_millis);
        nodes.cpu_allocatable_millis[n][i] = Some(b.cpu_allocatable_avg_millis);
        nodes.memory_requested_mib[n][i] = mib(b.memory_requested_avg_bytes);
        nodes.memory_limits_mib[n][i] = mib(b.memory_limits_avg_bytes);
        nodes.memory_allocatable_mib[n][i] = mib(b.memory_allocatable_avg_bytes);
        nodes.pods_peak[n][i] = Some(b.pods_peak);
        nodes.partial[n] |= b.partial;
    }
    let changes = node_rows.iter().filter_map(|t| {
        Some(NodeChange {
            node: *node_index.get(t.node.as_deref()?)?,
            at_ms: t.at_ms,
            kind: t.kind,
            reason: t.reason.as_deref(),
            message: t.message.as_deref(),
        })
    });
    let (not_ready, cordoned, node_events) = summary::node_spells(changes, &window);
    nodes.not_ready = not_ready;
    nodes.cordoned = cordoned;
    nodes.events = node_events;
    if buckets.is_empty() {
        notes.push(
            "no node usage was recorded in the window (a recorder with --no-nodes, or no node \
             existed): the node charts are empty"
                .to_string(),
        );
    }
    notes.extend(node_report.notes);

    let pod_index: HashMap<&str, u32> = kept
        .iter()
        .enumerate()
        .map(|(i, p)| (p.uid.as_str(), i as u32))
        .collect();
    let warnings = warnings::read(
        reader,
        clipped,
        req.namespace.as_deref(),
        req.node.as_deref(),
        &warnings::Subjects {
            pods: &pod_index,
            nodes: &node_index,
        },
        &mut notes,
    )?;
    drop(pod_index);

    let (namespaces, mut workloads, mut pods) = pod_columns(&kept, &node_index);
    let events = event_columns(raw_events);
    summary::rank_workloads(&mut workloads, &mut pods, &events, &namespaces);
    let overview = summary::overview(&pods, &events, &window);
    let mut tables = summary::tables(&pods, &events, &window);
    tables.warning_reasons = warnings::reasons(&warnings);
    drop(node_index);
    nodes.names = names;

    Ok(Report {
        version: 1,
        generated_at_ms: now_ms,
        source: source.to_string(),
        request: RequestInfo {
            namespace: req.namespace.clone(),
            owner: req.owner.as_ref().map(ToString::to_string),
            node: req.node.clone(),
            since_ms: req.window.since_ms,
            until_ms: req.window.until_ms,
        },
        coverage: coverage_info(&coverage, since_ms, until_ms),
        window,
        notes,
        overview,
        nodes,
        namespaces,
        workloads,
        pods,
        events,
        warnings,
        tables,
    })
}

/// The window to draw: the requested one, within the recorded time (the sessions; without
/// any, from the first pod on). Notes say when nothing was recorded in it.
fn clip_window(
    req: &ReportRequest,
    coverage: &Coverage,
    pods: &[PodSummary],
    now_ms: i64,
    notes: &mut Vec<String>,
) -> (i64, i64) {
    let requested_until = req.window.until_ms.unwrap_or(now_ms);
    let (data_from, data_to) = if coverage.is_known() {
        let from = coverage.sessions.iter().map(|s| s.started_at_ms).min();
        (from, coverage.end_ms())
    } else {
        (pods.iter().map(|p| p.created_at_ms).min(), None)
    };
    let since = match (req.window.since_ms, data_from) {
        (Some(s), Some(d)) => s.max(d),
        (Some(s), None) => s,
        (None, Some(d)) => d,
        (None, None) => requested_until - 3_600_000,
    };
    let until = data_to.map_or(requested_until, |d| d.min(requested_until));
    if until > since {
        return (since, until);
    }
    notes.push("nothing was recorded in the requested window".to_string());
    let since = req
        .window
        .since_ms
        .unwrap_or(requested_until - 3_600_000)
        .min(requested_until - 1_000);
    (since, requested_until)
}

fn window_info(since_ms: i64, until_ms: i64, step_ms: i64) -> WindowInfo {
    let first = since_ms.div_euclid(step_ms);
    let last = (until_ms - 1).div_euclid(step_ms);
    WindowInfo {
        since_ms,
        until_ms,
        step_ms,
        bucket_starts_ms: (first..=last)
            .map(|k| (k * step_ms).max(since_ms))
            .collect(),
    }
}

/// Keeps at most `max` pods: those with trouble (a marker, a restart, a failure) first, then
/// the rest oldest first; a note says how many were left out. Events follow their pods.
fn trim_pods(
    pods: Vec<PodSummary>,
    events: Vec<RawEvent>,
    max: usize,
    notes: &mut Vec<String>,
) -> (Vec<PodSummary>, Vec<RawEvent>) {
    if pods.len() <= max {
        return (pods, events);
    }
    let mut troubled = vec![false; pods.len()];
    for e in &events {
        troubled[e.pod] = true;
    }
    for (i, p) in pods.iter().enumerate() {
        troubled[i] |= p.restarts > 0 || p.phase == "Failed";
    }
    let mut order: Vec<usize> = (0..pods.len()).collect();
    order.sort_by_key(|&i| (!troubled[i], i));
    order.truncate(max);
    order.sort_unstable();
    notes.push(format!(
        "{} of {} pods are left out (a report lists at most {max}; those with restarts, \
         OOMKills, evictions or failures are kept first): narrow it with -n, --owner, --node \
         or a shorter --since",
        pods.len() - max,
        pods.len()
    ));
    let mut new_index = vec![usize::MAX; pods.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let mut slots: Vec<Option<PodSummary>> = pods.into_iter().map(Some).collect();
    let kept = order.iter().filter_map(|&i| slots[i].take()).collect();
    let events = events
        .into_iter()
        .filter_map(|mut e| {
            let new = new_index[e.pod];
            (new != usize::MAX).then(|| {
                e.pod = new;
                e
            })
        })
        .collect();
    (kept, events)
}

fn empty_nodes(names: usize, buckets: usize) -> Nodes {
    let grid = || vec![vec![None; buckets]; names];
    Nodes {
        names: Vec::new(),
        cpu_requested_millis: grid(),
        cpu_limits_millis: grid(),
        cpu_allocatable_millis: grid(),
        memory_requested_mib: grid(),
        memory_limits_mib: grid(),
        memory_allocatable_mib: grid(),
        pods_peak: grid(),
        partial: vec![false; names],
        ..Default::default()
    }
}

/// The pods as columns, with their namespaces and workloads (grouped by the owner as
/// recorded; a pod without one is a workload of kind `Pod` of its own).
fn pod_columns(
    kept: &[PodSummary],
    node_index: &HashMap<&str, u32>,
) -> (Vec<String>, Workloads, Pods) {
    let mut namespaces: Vec<String> = kept
        .iter()
        .map(|p| p.namespace.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    namespaces.dedup();
    let ns_index: HashMap<&str, u32> = namespaces
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u32))
        .collect();
    let mut workloads = Workloads::default();
    let mut workload_index: HashMap<(u32, String, String), u32> = HashMap::new();
    let mut pods = Pods::default();
    for p in kept {
        let ns = ns_index[p.namespace.as_str()];
        let (kind, name) = match (&p.owner_kind, &p.owner_name) {
            (Some(k), Some(n)) => (k.clone(), n.clone()),
            _ => ("Pod".to_string(), p.name.clone()),
        };
        let next = workload_index.len() as u32;
        let w = *workload_index
            .entry((ns, kind.clone(), name.clone()))
            .or_insert_with(|| {
                workloads.namespace.push(ns);
                workloads.kind.push(kind);
                workloads.name.push(name);
                next
            });
        pods.namespace.push(ns);
        pods.name.push(p.name.clone());
        pods.workload.push(w);
        pods.node
            .push(p.node.as_deref().and_then(|n| node_index.get(n).copied()));
        pods.created_ms.push(p.created_at_ms);
        pods.started_ms.push(p.started_at_ms);
        pods.finished_ms.push(p.finished_at_ms);
        pods.deleted_ms.push(p.deleted_at_ms);
        pods.phase.push(p.phase);
        pods.reason.push(p.reason.clone());
        pods.restarts.push(p.restarts);
    }
    (namespaces, workloads, pods)
}

fn event_columns(raw: Vec<RawEvent>) -> Events {
    let mut e = Events::default();
    for r in raw {
        e.pod.push(r.pod as u32);
        e.at_ms.push(r.at_ms);
        e.kind.push(r.kind);
        e.container.push(r.container);
        e.reason.push(r.reason);
        e.exit_code.push(r.exit_code);
        e.restart_count.push(r.restart_count);
        e.message.push(r.message);
        e.inferred.push(r.inferred);
    }
    e
}

fn coverage_info(coverage: &Coverage, since_ms: i64, until_ms: i64) -> CoverageInfo {
    let gaps: Vec<[i64; 2]> = coverage
        .gaps(since_ms, until_ms)
        .into_iter()
        .map(|(a, b)| [a, b])
        .collect();
    // The covered stretches are the window less its gaps.
    let mut intervals = Vec::new();
    let mut t = since_ms;
    for &[a, b] in &gaps {
        if a > t {
            intervals.push([t, a]);
        }
        t = b;
    }
    if t < until_ms {
        intervals.push([t, until_ms]);
    }
    CoverageInfo {
        known: coverage.is_known(),
        intervals,
        gaps,
        covered_ms: coverage.covered_ms(since_ms, until_ms),
        partial_scopes: coverage.partial_scopes(since_ms, until_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_aligned_to_the_step_and_clipped_to_the_window() {
        let w = window_info(90, 420, 100);
        assert_eq!(w.bucket_starts_ms, [90, 100, 200, 300, 400]);
        assert_eq!(w.bucket_of(95), 0);
        assert_eq!(w.bucket_of(419), 4);
        assert_eq!(w.bucket_end(4), 420);
        assert_eq!(w.bucket_end(0), 100);
    }
}
