//! Conformance cases for measured usage (metrics API samples): pods and nodes resolved by name
//! to their open incarnation, replays that insert nothing, unknown subjects skipped, samples
//! read back as written, and a pruned pod's samples gone with it; through the traits only.

use super::{Backend, pod};
use crate::model::usage::{
    ContainerSample, ContainerUsageRow, NodeSample, NodeUsageSampleRow, UsageBatch, UsageFilter,
};
use crate::model::{Effective, Resources};
use crate::store::{Batch, HistoryReader, NodeResources, NodeRow};

fn container(ns: &str, pod: &str, c: &str, at_ms: i64, cpu: i64) -> ContainerUsageRow {
    ContainerUsageRow {
        namespace: ns.into(),
        pod: pod.into(),
        container: c.into(),
        at_ms,
        window_ms: 15_000,
        cpu_millis: cpu,
        memory_bytes: cpu << 20,
        resources: None,
    }
}

fn node_row(uid: &str, name: &str, created_at_ms: i64, deleted_at_ms: Option<i64>) -> NodeRow {
    let r = NodeResources {
        cpu_millis: 4_000,
        memory_bytes: 8 << 30,
        pods: 110,
    };
    NodeRow {
        uid: uid.into(),
        name: name.into(),
        created_at_ms,
        deleted_at_ms,
        capacity: r,
        allocatable: r,
        state_json: "{}".into(),
    }
}

fn samples(reader: &dyn HistoryReader, filter: &UsageFilter) -> Vec<ContainerSample> {
    let mut out = Vec::new();
    reader
        .snapshot()
        .unwrap()
        .container_samples(filter, &mut |s| out.push(s))
        .unwrap();
    out
}

fn node_samples(reader: &dyn HistoryReader) -> Vec<NodeSample> {
    let mut out = Vec::new();
    reader
        .snapshot()
        .unwrap()
        .node_samples_measured(None, None, None, &mut |s| out.push(s))
        .unwrap();
    out
}

pub(crate) fn containers_keep_their_latest_requests_beside_their_samples(b: &dyn Backend) {
    let mut f = b.fresh();
    let mut batch = Batch::default();
    batch.pods.push(pod("u1", "shop", "web-1"));
    f.writer.commit(&batch, None).unwrap();
    let own = |cpu: i64, memory: i64| Effective {
        requests: Resources::new(cpu, memory),
        limits: Resources::new(cpu * 2, memory * 2),
    };
    let with = |c: &str, at_ms: i64, resources: Option<Effective>| ContainerUsageRow {
        resources,
        ..container("shop", "web-1", c, at_ms, 10)
    };
    let resources = |f: &super::Fixture| -> Vec<(String, i64, Option<Effective>)> {
        samples(&*f.reader, &UsageFilter::default())
            .into_iter()
            .map(|s| (s.subject.container, s.at_ms, s.subject.container_resources))
            .collect()
    };
    let write = |f: &mut super::Fixture, containers: Vec<ContainerUsageRow>| {
        let sample = UsageBatch {
            containers,
            nodes: vec![],
        };
        f.writer.write_usage(&sample).unwrap();
    };
    write(
        &mut f,
        vec![
            with("app", 1_000, Some(own(250, 64 << 20))),
            with("side", 1_000, None),
        ],
    );
    assert_eq!(
        resources(&f),
        [
            ("app".into(), 1_000, Some(own(250, 64 << 20))),
            ("side".into(), 1_000, None)
        ]
    );
    // An in-place resize of app, and side's requests known from now on: the keys hold the
    // latest, for every sample.
    write(
        &mut f,
        vec![
            with("app", 2_000, Some(own(500, 64 << 20))),
            with("side", 2_000, Some(own(0, 0))),
        ],
    );
    // A sample without them (a pod the recorder does not cache) changes nothing.
    write(&mut f, vec![with("app", 3_000, None)]);
    let app = Some(own(500, 64 << 20));
    assert_eq!(
        resources(&f),
        [
            ("app".into(), 1_000, app),
            ("app".into(), 2_000, app),
            ("app".into(), 3_000, app),
            ("side".into(), 1_000, Some(own(0, 0))),
            ("side".into(), 2_000, Some(own(0, 0))),
        ]
    );
}

pub(crate) fn usage_samples_key_open_pods_and_nodes_and_replays_insert_nothing(b: &dyn Backend) {
    let mut f = b.fresh();
    let mut batch = Batch::default();
    // A deleted incarnation of web-1 and the open one: samples go to the open one.
    let mut old = pod("old", "shop", "web-1");
    old.deleted_at_ms = Some(500);
    let mut web = pod("new", "shop", "web-1");
    web.resources.requests.cpu_millis = 200;
    web.owner_kind = Some("ReplicaSet".into());
    web.owner_name = Some("web-7f".into());
    batch.pods.extend([old, web]);
    batch
        .nodes
        .push(node_row("n-old", "node-a", 100, Some(200)));
    batch.nodes.push(node_row("n-new", "node-a", 300, None));
    f.writer.commit(&batch, None).unwrap();

    let sample = UsageBatch {
        containers: vec![
            container("shop", "web-1", "app", 30_000, 120),
            container("shop", "web-1", "sidecar", 30_000, 5),
            container("shop", "nobody", "app", 30_000, 1),
        ],
        nodes: vec![
            NodeUsageSampleRow {
                node: "node-a".into(),
                at_ms: 30_000,
                window_ms: 15_000,
                cpu_millis: 900,
                memory_bytes: 3 << 30,
            },
            NodeUsageSampleRow {
                node: "node-gone".into(),
                at_ms: 30_000,
                window_ms: 15_000,
                cpu_millis: 1,
                memory_bytes: 1,
            },
        ],
    };
    let done = f.writer.write_usage(&sample).unwrap();
    assert_eq!(
        (
            done.containers_written,
            done.nodes_written,
            done.unknown,
            done.duplicates
        ),
        (2, 1, 2, 0)
    );
    let again = f.writer.write_usage(&sample).unwrap();
    assert_eq!(
        (
            again.containers_written,
            again.nodes_written,
            again.duplicates
        ),
        (0, 0, 3),
        "a replayed sample inserts nothing"
    );
    let mut next = UsageBatch::default();
    next.containers
        .push(container("shop", "web-1", "app", 45_000, 180));
    assert_eq!(f.writer.write_usage(&next).unwrap().containers_written, 1);

    let all = samples(&*f.reader, &UsageFilter::default());
    let got: Vec<(&str, &str, i64, i64, i64)> = all
        .iter()
        .map(|s| {
            (
                s.subject.pod_uid.as_str(),
                s.subject.container.as_str(),
                s.at_ms,
                s.cpu_millis,
                s.memory_bytes,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("new", "app", 30_000, 120, 120 << 20),
            ("new", "app", 45_000, 180, 180 << 20),
            ("new", "sidecar", 30_000, 5, 5 << 20),
        ]
    );
    assert_eq!(all[0].subject.pod_cpu_request_millis, 200);
    assert_eq!(all[0].subject.owner_name.as_deref(), Some("web-7f"));
    assert_eq!(all[0].window_ms, 15_000);
    let since = samples(
        &*f.reader,
        &UsageFilter {
            since_ms: Some(40_000),
            ..UsageFilter::default()
        },
    );
    assert_eq!(since.len(), 1);
    let nodes = node_samples(&*f.reader);
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        (
            nodes[0].node.as_str(),
            nodes[0].cpu_millis,
            nodes[0].memory_bytes
        ),
        ("node-a", 900, 3 << 30)
    );
}

pub(crate) fn a_pruned_pods_usage_samples_go_with_it(b: &dyn Backend) {
    let mut f = b.fresh();
    let mut batch = Batch::default();
    batch.pods.push(pod("a", "shop", "gone"));
    batch.pods.push(pod("b", "shop", "here"));
    f.writer.commit(&batch, None).unwrap();
    let sample = UsageBatch {
        containers: vec![
            container("shop", "gone", "app", 30_000, 10),
            container("shop", "here", "app", 30_000, 20),
        ],
        nodes: vec![],
    };
    assert_eq!(f.writer.write_usage(&sample).unwrap().containers_written, 2);
    let mut ended = pod("a", "shop", "gone");
    ended.deleted_at_ms = Some(40_000);
    f.writer
        .commit(
            &Batch {
                pods: vec![ended],
                ..Batch::default()
            },
            None,
        )
        .unwrap();
    let (counts, done) = f.writer.prune_ended_pods(50_000, 1_000).unwrap();
    assert!(done);
    assert_eq!(counts.pods, 1);
    let left: Vec<String> = samples(&*f.reader, &UsageFilter::default())
        .into_iter()
        .map(|s| s.subject.pod)
        .collect();
    assert_eq!(left, ["here"]);
    // Nothing of the pruned pod is left behind, not even rows no report would join.
    let rows = |table: &str| super::table_rows(&*f.reader, table);
    assert_eq!(rows("container_usage"), Some(1));
    assert_eq!(rows("usage_containers"), Some(1));
}

/// 2026-12-01T00:00:00Z: an hour boundary.
const T0: i64 = 1_796_083_200_000;
const HOUR: i64 = 3_600_000;

/// The test's own nearest-rank percentile: the smallest value with at least `p`% of the
/// values at or below it.
fn percentile(values: &[i64], p: usize) -> i64 {
    let mut sorted = values.to_vec();
    sorted.sort();
    let mut rank = 1;
    while rank * 100 < p * sorted.len() {
        rank += 1;
    }
    sorted[rank - 1]
}

/// One raw sample as written: series (`pod/container` or the node), time, cpu, memory.
type Raw = (String, i64, i64, i64);

/// Pods web-1 (containers app and side) and web-2 (app) of ReplicaSet web-7f, and node-a,
/// each sampled every 15 s for three hours from `T0`, values from a small LCG (any spread
/// will do). Returns the samples as written.
fn three_hours_of_samples(f: &mut super::Fixture) -> Vec<Raw> {
    let mut batch = Batch::default();
    for (uid, name) in [("a", "web-1"), ("b", "web-2")] {
        let mut p = pod(uid, "shop", name);
        p.owner_kind = Some("ReplicaSet".into());
        p.owner_name = Some("web-7f".into());
        batch.pods.push(p);
    }
    batch.nodes.push(node_row("n", "node-a", 0, None));
    f.writer.commit(&batch, None).unwrap();
    let mut state: u64 = 7;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as i64 % 1_000
    };
    let mut raw: Vec<Raw> = Vec::new();
    let mut at = T0;
    while at < T0 + 3 * HOUR {
        let mut sample = UsageBatch::default();
        for (p, c) in [("web-1", "app"), ("web-1", "side"), ("web-2", "app")] {
            let (cpu, mem) = (next(), next() << 20);
            sample.containers.push(ContainerUsageRow {
                memory_bytes: mem,
                ..container("shop", p, c, at, cpu)
            });
            raw.push((format!("{p}/{c}"), at, cpu, mem));
        }
        let (cpu, mem) = (next(), next() << 20);
        sample.nodes.push(NodeUsageSampleRow {
            node: "node-a".into(),
            at_ms: at,
            window_ms: 15_000,
            cpu_millis: cpu,
            memory_bytes: mem,
        });
        raw.push(("node-a".into(), at, cpu, mem));
        f.writer.write_usage(&sample).unwrap();
        at += 15_000;
    }
    raw
}

/// Rolls up everything before `horizon` in small steps (the budget cuts inside an hour);
/// returns how many steps it took.
fn roll_up(f: &mut super::Fixture, horizon: i64) -> usize {
    let mut steps = 0;
    loop {
        let progress = f.writer.roll_up_usage(horizon, 100).unwrap();
        steps += 1;
        if progress.done {
            return steps;
        }
        assert!(steps < 1_000, "the roll-up never ends");
    }
}

pub(crate) fn usage_rollups_equal_a_direct_computation_over_the_raw_samples(b: &dyn Backend) {
    let mut f = b.fresh();
    let raw = three_hours_of_samples(&mut f);
    // Rolled up to two hours ago.
    let horizon = T0 + 2 * HOUR;
    let steps = roll_up(&mut f, horizon);
    assert!(steps > 4, "the budget did not bound the steps");
    let mut hours: Vec<(String, i64, crate::model::usage::Hourly)> = Vec::new();
    {
        let mut snap = f.reader.snapshot().unwrap();
        snap.container_hours(&mut |h| {
            hours.push((format!("{}/{}", h.pod, h.container), h.hour_ms, h.hourly))
        })
        .unwrap();
        snap.node_hours(None, i64::MIN, i64::MAX, &mut |h| {
            hours.push((h.node.clone(), h.hour_ms, h.hourly))
        })
        .unwrap();
    }
    assert_eq!(hours.len(), 4 * 2, "two hours of four series");
    for (series, hour, got) in &hours {
        let cpu: Vec<i64> = raw
            .iter()
            .filter(|r| &r.0 == series && r.1 >= *hour && r.1 < hour + HOUR)
            .map(|r| r.2)
            .collect();
        let mem: Vec<i64> = raw
            .iter()
            .filter(|r| &r.0 == series && r.1 >= *hour && r.1 < hour + HOUR)
            .map(|r| r.3)
            .collect();
        assert_eq!(got.samples, 240, "{series} {hour}");
        assert_eq!(
            (got.cpu_min, got.cpu_max, got.cpu_sum, got.cpu_p95),
            (
                *cpu.iter().min().unwrap(),
                *cpu.iter().max().unwrap(),
                cpu.iter().sum::<i64>(),
                percentile(&cpu, 95)
            ),
            "{series} cpu at {hour}"
        );
        assert_eq!(
            (
                got.memory_min,
                got.memory_max,
                got.memory_sum,
                got.memory_p95
            ),
            (
                *mem.iter().min().unwrap(),
                *mem.iter().max().unwrap(),
                mem.iter().sum::<i64>(),
                percentile(&mem, 95)
            ),
            "{series} memory at {hour}"
        );
    }
    // The raw samples from the horizon on are untouched.
    let left = samples(&*f.reader, &UsageFilter::default());
    assert_eq!(left.len(), 3 * 240);
    assert!(left.iter().all(|s| s.at_ms >= horizon));
    assert_eq!(node_samples(&*f.reader).len(), 240);
    // One node by name, samples and rollups: the store filters, not the caller.
    let (mut named, mut other, mut named_hours) = (0, 0, 0);
    {
        let mut snap = f.reader.snapshot().unwrap();
        snap.node_samples_measured(Some("node-a"), None, None, &mut |_| named += 1)
            .unwrap();
        snap.node_samples_measured(Some("node-b"), None, None, &mut |_| other += 1)
            .unwrap();
        snap.node_hours(Some("node-a"), i64::MIN, i64::MAX, &mut |_| {
            named_hours += 1
        })
        .unwrap();
        snap.node_hours(Some("node-b"), i64::MIN, i64::MAX, &mut |_| other += 1)
            .unwrap();
    }
    assert_eq!((named, named_hours, other), (240, 2, 0));
    // --rollup-age: the first hour's rollups go, the second's stay.
    let (removed, done) = f.writer.expire_usage_rollups(T0 + HOUR, 1_000).unwrap();
    assert_eq!((removed, done), (4, true));
    let mut kept = 0;
    f.reader
        .snapshot()
        .unwrap()
        .container_hours(&mut |h| {
            assert_eq!(h.hour_ms, T0 + HOUR);
            kept += 1
        })
        .unwrap();
    assert_eq!(kept, 3);
}

/// `query usage` over a window whose first two hours are rolled up: the test's own figures
/// from the samples as written are the truth.
pub(crate) fn query_usage_over_rollups_keeps_counts_averages_and_maxima(b: &dyn Backend) {
    use crate::query::usage::{UsageBy, usage};
    let mut f = b.fresh();
    let raw = three_hours_of_samples(&mut f);
    // (cpu, memory) per sample time of a pod, its containers added, in [from, to).
    let pod_points = |pod: &str, from: i64, to: i64| -> Vec<(i64, i64)> {
        let mut by_time = std::collections::BTreeMap::<i64, (i64, i64)>::new();
        for (series, at, cpu, mem) in &raw {
            if series.starts_with(&format!("{pod}/")) && *at >= from && *at < to {
                let p = by_time.entry(*at).or_default();
                p.0 += cpu;
                p.1 += mem;
            }
        }
        by_time.into_values().collect()
    };
    let cpu = |points: &[(i64, i64)]| points.iter().map(|p| p.0).collect::<Vec<_>>();
    let report =
        |f: &super::Fixture, filter: &UsageFilter| usage(&*f.reader, filter, UsageBy::Pod).unwrap();
    let all = UsageFilter::default();

    let before = report(&f, &all);
    let web2 = pod_points("web-2", T0, T0 + 3 * HOUR);
    assert_eq!(before[1].name, "web-2");
    assert_eq!(
        (before[1].basis, before[1].samples, before[1].cpu_p95_millis),
        ("raw", 720, percentile(&cpu(&web2), 95))
    );

    roll_up(&mut f, T0 + 2 * HOUR);
    let after = report(&f, &all);
    assert_eq!(after.len(), 2);
    for (row, pod) in after.iter().zip(["web-1", "web-2"]) {
        let points = pod_points(pod, T0, T0 + 3 * HOUR);
        let sum: i64 = cpu(&points).iter().sum();
        let memory_sum: i64 = points.iter().map(|p| p.1).sum();
        assert_eq!(row.basis, "raw+hourly", "{pod}");
        assert_eq!(row.samples, 720, "{pod}");
        assert_eq!(row.cpu_avg_millis, sum as f64 / 720.0, "{pod}");
        assert_eq!(row.memory_avg_bytes, memory_sum as f64 / 720.0, "{pod}");
        // A maximum and p95 over rollups never understate (web-1 stacks two containers).
        let exact_max = *cpu(&points).iter().max().unwrap();
        assert!(row.cpu_max_millis >= exact_max, "{pod}");
        assert!(row.cpu_p95_millis >= percentile(&cpu(&points), 95), "{pod}");
    }
    // One container: the maximum stays exact, and p95 is the largest of the parts' p95s.
    let part_p95 = |from: i64, to: i64| percentile(&cpu(&pod_points("web-2", from, to)), 95);
    assert_eq!(after[1].cpu_max_millis, before[1].cpu_max_millis);
    assert_eq!(
        after[1].cpu_p95_millis,
        part_p95(T0, T0 + HOUR)
            .max(part_p95(T0 + HOUR, T0 + 2 * HOUR))
            .max(part_p95(T0 + 2 * HOUR, T0 + 3 * HOUR))
    );

    // A rolled-up hour counts when it starts in the window.
    let first_hour = report(
        &f,
        &UsageFilter {
            since_ms: Some(T0),
            until_ms: Some(T0 + HOUR),
            ..UsageFilter::default()
        },
    );
    assert!(
        first_hour
            .iter()
            .all(|r| r.basis == "hourly" && r.samples == 240)
    );
    let from_mid_first = report(
        &f,
        &UsageFilter {
            since_ms: Some(T0 + HOUR / 2),
            ..UsageFilter::default()
        },
    );
    assert!(from_mid_first.iter().all(|r| r.samples == 480));
    let by_owner = usage(&*f.reader, &all, UsageBy::Owner).unwrap();
    assert_eq!(
        (by_owner.len(), by_owner[0].pods, by_owner[0].samples),
        (1, 2, 1440)
    );
}
