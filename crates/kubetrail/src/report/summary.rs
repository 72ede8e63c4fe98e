//! What a report computes from the rows it read: pods per phase per bucket, restarts and
//! OOMKills per bucket, workload totals and their order, the "top" tables and node spells.
//! Pure functions over the model's columns, so each rule is tested on a few hand-made rows.

use std::collections::HashMap;

use super::model::{Events, NodeEvents, Overview, Pods, Tables, WindowInfo, Workloads};

/// Rows in each "top" table.
pub const TABLE_ROWS: usize = 25;

pub fn is_restart(kind: &str) -> bool {
    kind == "container_restarted"
}

pub fn is_oom_kill(kind: &str, reason: Option<&str>) -> bool {
    kind == "container_terminated" && reason == Some("OOMKilled")
}

pub fn is_eviction(kind: &str, reason: Option<&str>) -> bool {
    kind == "failed" && reason == Some("Evicted")
}

/// Adds `[from, to)`, as a share of each bucket's length, to the buckets it overlaps: the
/// time-weighted average count of pods in a state.
fn add_interval(series: &mut [f64], window: &WindowInfo, from: i64, to: i64) {
    let (from, to) = (from.max(window.since_ms), to.min(window.until_ms));
    if from >= to || series.is_empty() {
        return;
    }
    for (i, value) in series
        .iter_mut()
        .enumerate()
        .take(window.bucket_of(to - 1) + 1)
        .skip(window.bucket_of(from))
    {
        let (start, end) = (window.bucket_starts_ms[i], window.bucket_end(i));
        let overlap = to.min(end) - from.max(start);
        if overlap > 0 && end > start {
            *value += overlap as f64 / (end - start) as f64;
        }
    }
}

/// The overview's series. A pod is Pending from creation until it starts (or ends), Running
/// from its start until it finishes, then Succeeded or Failed until it is deleted (or the
/// window ends). Phases come from the pod's summary times: a pod's phase only moves forward,
/// so those times are its phase history.
pub fn overview(pods: &Pods, events: &Events, window: &WindowInfo) -> Overview {
    let n = window.bucket_starts_ms.len();
    let mut o = Overview {
        pending: vec![0.0; n],
        running: vec![0.0; n],
        succeeded: vec![0.0; n],
        failed: vec![0.0; n],
        restarts: vec![0; n],
        oom_kills: vec![0; n],
        evictions: vec![0; n],
    };
    for i in 0..pods.len() {
        let end = pods.deleted_ms[i].unwrap_or(window.until_ms);
        let created = pods.created_ms[i];
        let started = pods.started_ms[i];
        let finished = pods.finished_ms[i];
        let pending_end = started.or(finished).unwrap_or(end).min(end);
        add_interval(&mut o.pending, window, created, pending_end);
        if let Some(s) = started {
            add_interval(&mut o.running, window, s, finished.unwrap_or(end).min(end));
        }
        if let Some(f) = finished {
            match pods.phase[i] {
                "Succeeded" => add_interval(&mut o.succeeded, window, f, end),
                "Failed" => add_interval(&mut o.failed, window, f, end),
                _ => {}
            }
        }
    }
    for v in [
        &mut o.pending,
        &mut o.running,
        &mut o.succeeded,
        &mut o.failed,
    ] {
        for x in v.iter_mut() {
            *x = (*x * 100.0).round() / 100.0;
        }
    }
    for e in 0..events.len() {
        if events.at_ms[e] < window.since_ms || events.at_ms[e] >= window.until_ms || n == 0 {
            continue;
        }
        let b = window.bucket_of(events.at_ms[e]);
        let (kind, reason) = (events.kind[e], events.reason[e].as_deref());
        if is_restart(kind) {
            o.restarts[b] += 1;
        } else if is_oom_kill(kind, reason) {
            o.oom_kills[b] += 1;
        } else if is_eviction(kind, reason) {
            o.evictions[b] += 1;
        }
    }
    o
}

/// Fills the workloads' totals from their pods and events, sorts them worst first (OOMKills,
/// evictions, restarts, failed pods, then namespace and name) and renumbers `pods.workload`.
pub fn rank_workloads(
    workloads: &mut Workloads,
    pods: &mut Pods,
    events: &Events,
    namespaces: &[String],
) {
    let n = workloads.name.len();
    workloads.pods = vec![0; n];
    workloads.restarts = vec![0; n];
    workloads.oom_kills = vec![0; n];
    workloads.evictions = vec![0; n];
    workloads.failed = vec![0; n];
    for p in 0..pods.len() {
        let w = pods.workload[p] as usize;
        workloads.pods[w] += 1;
        workloads.restarts[w] += pods.restarts[p];
        workloads.failed[w] += (pods.phase[p] == "Failed") as u32;
    }
    for e in 0..events.len() {
        let w = pods.workload[events.pod[e] as usize] as usize;
        let (kind, reason) = (events.kind[e], events.reason[e].as_deref());
        workloads.oom_kills[w] += is_oom_kill(kind, reason) as u32;
        workloads.evictions[w] += is_eviction(kind, reason) as u32;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        let key = |w: usize| {
            (
                std::cmp::Reverse(workloads.oom_kills[w]),
                std::cmp::Reverse(workloads.evictions[w]),
                std::cmp::Reverse(workloads.restarts[w]),
                std::cmp::Reverse(workloads.failed[w]),
            )
        };
        key(a).cmp(&key(b)).then_with(|| {
            let name = |w: usize| {
                (
                    &namespaces[workloads.namespace[w] as usize],
                    &workloads.kind[w],
                    &workloads.name[w],
                )
            };
            name(a).cmp(&name(b))
        })
    });
    let mut new_index = vec![0u32; n];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new as u32;
    }
    fn permute<T: Clone>(v: &[T], order: &[usize]) -> Vec<T> {
        order.iter().map(|&i| v[i].clone()).collect()
    }
    *workloads = Workloads {
        namespace: permute(&workloads.namespace, &order),
        kind: permute(&workloads.kind, &order),
        name: permute(&workloads.name, &order),
        pods: permute(&workloads.pods, &order),
        restarts: permute(&workloads.restarts, &order),
        oom_kills: permute(&workloads.oom_kills, &order),
        evictions: permute(&workloads.evictions, &order),
        failed: permute(&workloads.failed, &order),
    };
    for w in pods.workload.iter_mut() {
        *w = new_index[*w as usize];
    }
}

/// The "top" tables.
pub fn tables(pods: &Pods, events: &Events, window: &WindowInfo) -> Tables {
    let mut top: Vec<u32> = (0..pods.len() as u32)
        .filter(|&p| pods.restarts[p as usize] > 0)
        .collect();
    // Most restarts first; among equals the older pod, as `query pods` lists them.
    top.sort_by_key(|&p| (std::cmp::Reverse(pods.restarts[p as usize]), p));
    top.truncate(TABLE_ROWS);

    let newest_first = |keep: &dyn Fn(usize) -> bool| -> (Vec<u32>, u32) {
        let mut rows: Vec<u32> = (0..events.len() as u32)
            .filter(|&e| keep(e as usize))
            .collect();
        let total = rows.len() as u32;
        rows.reverse();
        rows.truncate(TABLE_ROWS);
        (rows, total)
    };
    let (oom_kills, oom_kills_total) =
        newest_first(&|e| is_oom_kill(events.kind[e], events.reason[e].as_deref()));
    let (evictions, evictions_total) =
        newest_first(&|e| is_eviction(events.kind[e], events.reason[e].as_deref()));

    let mut pending: Vec<[i64; 2]> = (0..pods.len())
        .map(|p| {
            let end = pods.started_ms[p]
                .or(pods.finished_ms[p])
                .or(pods.deleted_ms[p])
                .unwrap_or(window.until_ms);
            [p as i64, (end - pods.created_ms[p]).max(0)]
        })
        .filter(|row| row[1] > 0)
        .collect();
    pending.sort_by_key(|row| (std::cmp::Reverse(row[1]), row[0]));
    pending.truncate(TABLE_ROWS);

    Tables {
        top_restarts: top,
        oom_kills,
        oom_kills_total,
        evictions,
        evictions_total,
        longest_pending: pending,
        // Filled from the warnings by `build`.
        warning_reasons: Vec::new(),
    }
}

/// One node transition, as read (time order).
pub struct NodeChange<'a> {
    pub node: u32,
    pub at_ms: i64,
    pub kind: &'static str,
    pub reason: Option<&'a str>,
    pub message: Option<&'a str>,
}

/// NotReady and cordoned spells clipped to the window, and the node events inside it. Changes
/// come from the start of history, so a node that went NotReady before the window opened is
/// drawn NotReady from its first bucket.
pub fn node_spells<'a>(
    changes: impl IntoIterator<Item = NodeChange<'a>>,
    window: &WindowInfo,
) -> (Vec<[i64; 3]>, Vec<[i64; 3]>, NodeEvents) {
    let mut not_ready_since: HashMap<u32, i64> = HashMap::new();
    let mut cordoned_since: HashMap<u32, i64> = HashMap::new();
    let (mut not_ready, mut cordoned) = (Vec::new(), Vec::new());
    let mut events = NodeEvents::default();
    let clip = |node: u32, from: i64, to: i64, into: &mut Vec<[i64; 3]>| {
        let (from, to) = (from.max(window.since_ms), to.min(window.until_ms));
        if from < to {
            into.push([node as i64, from, to]);
        }
    };
    for c in changes {
        if c.at_ms >= window.until_ms {
            break;
        }
        match c.kind {
            "not_ready" => {
                not_ready_since.entry(c.node).or_insert(c.at_ms);
            }
            "ready" => {
                if let Some(from) = not_ready_since.remove(&c.node) {
                    clip(c.node, from, c.at_ms, &mut not_ready);
                }
            }
            "cordoned" => {
                cordoned_since.entry(c.node).or_insert(c.at_ms);
            }
            "uncordoned" => {
                if let Some(from) = cordoned_since.remove(&c.node) {
                    clip(c.node, from, c.at_ms, &mut cordoned);
                }
            }
            "deleted" => {
                if let Some(from) = not_ready_since.remove(&c.node) {
                    clip(c.node, from, c.at_ms, &mut not_ready);
                }
                if let Some(from) = cordoned_since.remove(&c.node) {
                    clip(c.node, from, c.at_ms, &mut cordoned);
                }
            }
            _ => {}
        }
        if c.at_ms >= window.since_ms {
            events.node.push(c.node);
            events.at_ms.push(c.at_ms);
            events.kind.push(c.kind);
            events.reason.push(c.reason.map(str::to_string));
            events.message.push(c.message.map(str::to_string));
        }
    }
    for (node, from) in not_ready_since {
        clip(node, from, window.until_ms, &mut not_ready);
    }
    for (node, from) in cordoned_since {
        clip(node, from, window.until_ms, &mut cordoned);
    }
    not_ready.sort_unstable();
    cordoned.sort_unstable();
    (not_ready, cordoned, events)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn window(hours: i64) -> WindowInfo {
        WindowInfo {
            since_ms: 0,
            until_ms: hours * H,
            step_ms: H,
            bucket_starts_ms: (0..hours).map(|h| h * H).collect(),
        }
    }

    /// created, started, finished, deleted, phase, restarts.
    type PodRow = (
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        &'static str,
        i64,
    );

    fn pods(rows: &[PodRow]) -> Pods {
        let mut p = Pods::default();
        for (i, &(created, started, finished, deleted, phase, restarts)) in rows.iter().enumerate()
        {
            p.namespace.push(0);
            p.name.push(format!("p{i}"));
            p.workload.push(i as u32 % 2);
            p.node.push(None);
            p.created_ms.push(created);
            p.started_ms.push(started);
            p.finished_ms.push(finished);
            p.deleted_ms.push(deleted);
            p.phase.push(phase);
            p.reason.push(None);
            p.restarts.push(restarts);
        }
        p
    }

    fn events(rows: &[(u32, i64, &'static str, Option<&str>)]) -> Events {
        let mut e = Events::default();
        for &(pod, at, kind, reason) in rows {
            e.pod.push(pod);
            e.at_ms.push(at);
            e.kind.push(kind);
            e.container.push(Some("app".into()));
            e.reason.push(reason.map(str::to_string));
            e.exit_code.push(None);
            e.restart_count.push(None);
            e.message.push(None);
            e.inferred.push(false);
        }
        e
    }

    #[test]
    fn phases_are_time_weighted_per_bucket() {
        let w = window(3);
        // Pending half an hour, running until 2h, then failed until deleted at 2h30.
        let p = pods(&[(0, Some(H / 2), Some(2 * H), Some(5 * H / 2), "Failed", 0)]);
        let o = overview(&p, &Events::default(), &w);
        assert_eq!(o.pending, [0.5, 0.0, 0.0]);
        assert_eq!(o.running, [0.5, 1.0, 0.0]);
        assert_eq!(o.failed, [0.0, 0.0, 0.5]);
        assert_eq!(o.succeeded, [0.0; 3]);
        // Never started, open: pending to the end of the window.
        let p = pods(&[(H + H / 4, None, None, None, "Pending", 0)]);
        assert_eq!(
            overview(&p, &Events::default(), &w).pending,
            [0.0, 0.75, 1.0]
        );
    }

    #[test]
    fn restarts_oom_kills_and_evictions_are_counted_per_bucket() {
        let w = window(2);
        let p = pods(&[(0, Some(1), None, None, "Running", 2)]);
        let e = events(&[
            (0, 10, "container_restarted", Some("Error")),
            (0, H + 1, "container_terminated", Some("OOMKilled")),
            (0, H + 2, "container_terminated", Some("Error")),
            (0, H + 3, "container_restarted", None),
            (0, H + 4, "failed", Some("Evicted")),
        ]);
        let o = overview(&p, &e, &w);
        assert_eq!(o.restarts, [1, 1]);
        assert_eq!(o.oom_kills, [0, 1]);
        assert_eq!(o.evictions, [0, 1]);
    }

    #[test]
    fn tables_rank_and_count() {
        let w = window(4);
        let p = pods(&[
            (0, Some(H), None, None, "Running", 3),
            (0, Some(10), None, None, "Running", 7),
            (0, None, None, None, "Pending", 0),
            (0, Some(5), None, None, "Running", 3),
        ]);
        let e = events(&[
            (0, 1, "container_terminated", Some("OOMKilled")),
            (1, 2, "container_terminated", Some("OOMKilled")),
            (3, 3, "failed", Some("Evicted")),
        ]);
        let t = tables(&p, &e, &w);
        assert_eq!(t.top_restarts, [1, 0, 3]);
        assert_eq!(
            (t.oom_kills.as_slice(), t.oom_kills_total),
            (&[1, 0][..], 2)
        );
        assert_eq!((t.evictions.as_slice(), t.evictions_total), (&[2][..], 1));
        assert_eq!(t.longest_pending[0], [2, 4 * H]);
        assert_eq!(t.longest_pending[1], [0, H]);
    }

    #[test]
    fn workloads_are_ranked_worst_first() {
        let mut p = pods(&[
            (0, Some(1), None, None, "Running", 1),
            (0, Some(1), None, None, "Running", 0),
            (0, Some(1), None, None, "Failed", 0),
        ]);
        let e = events(&[(1, 5, "container_terminated", Some("OOMKilled"))]);
        let mut w = Workloads {
            namespace: vec![0, 0],
            kind: vec!["ReplicaSet".into(), "Job".into()],
            name: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        rank_workloads(&mut w, &mut p, &e, &["ns".to_string()]);
        // Workload 1 ("b", pod 1) has the OOMKill, so it comes first.
        assert_eq!(w.name, ["b", "a"]);
        assert_eq!(w.oom_kills, [1, 0]);
        assert_eq!(w.pods, [1, 2]);
        assert_eq!(w.restarts, [0, 1]);
        assert_eq!(w.failed, [0, 1]);
        assert_eq!(p.workload, [1, 0, 1]);
    }

    #[test]
    fn node_spells_open_before_the_window_and_close_at_its_end() {
        let w = WindowInfo {
            since_ms: 10 * H,
            until_ms: 14 * H,
            step_ms: H,
            bucket_starts_ms: (10..14).map(|h| h * H).collect(),
        };
        let c = |node, at_ms, kind| NodeChange {
            node,
            at_ms,
            kind,
            reason: None,
            message: None,
        };
        let (not_ready, cordoned, events) = node_spells(
            [
                c(0, 5 * H, "not_ready"),
                c(0, 11 * H, "ready"),
                c(1, 12 * H, "cordoned"),
                c(1, 13 * H, "capacity_changed"),
                c(2, 2 * H, "cordoned"),
                c(2, 3 * H, "uncordoned"),
            ],
            &w,
        );
        assert_eq!(not_ready, [[0, 10 * H, 11 * H]]);
        assert_eq!(cordoned, [[1, 12 * H, 14 * H]]);
        assert_eq!(events.kind, ["ready", "cordoned", "capacity_changed"]);
        assert_eq!(events.node, [0, 1, 1]);
    }
}
