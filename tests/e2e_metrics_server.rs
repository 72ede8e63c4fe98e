//! Measured usage on the real path: the real metrics-server (v0.8.0, built from Go modules by
//! e2e/controlplane/build.sh) runs behind the real kube-apiserver's aggregator (APIService
//! v1beta1.metrics.k8s.io) and scrapes the kubelet resource metrics that kwok emulates for its
//! nodes (e2e/kwok/metrics.yaml). `kubetrail record` samples that API, and what it stored is
//! compared with two truths that are not kubetrail's code: metrics-server's own answers
//! (`kubectl get --raw /apis/metrics.k8s.io/v1beta1/...`) at the same timestamps, and
//! `kubectl top pods --containers` / `kubectl top nodes` (kubectl's own quantity handling)
//! read while metrics-server served those timestamps.
//!
//! Checked: every pod container and node sample that metrics-server served while the truth was
//! polled is in the database with the same timestamp, millicores (rounded up) and bytes;
//! `kubetrail query usage --by container` over exactly those timestamps gives their count,
//! average and maximum; `kubetrail query nodes` gives each node's count, mean and peak of them;
//! and kubectl top's figures equal the stored ones.
//!
//! `#[ignore]`d like the other e2e tests: scripts/test runs it once the control plane is built
//! (KUBETRAIL_E2E_BIN). It needs `kubectl` on PATH.

#[path = "common/e2e.rs"]
mod e2e;
#[path = "common/fixture.rs"]
mod fixture;
#[path = "common/prom.rs"]
mod prom;
#[path = "common/recorder.rs"]
mod recorder;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{ControlPlane, serial};
use prom::Endpoint;
use recorder::RecorderProcess;
use serde_json::Value;

/// Two kwok nodes, each naming its path on kwok's server (metrics-server reads the annotation),
/// and three pods bound to them directly, with different usage so that a sample given to the
/// wrong pod, container or node shows. db-0 has two containers (kwok gives both the pod's usage).
/// Memory is not all whole MiB, as a real working set is not: metrics-server then writes it in
/// `Ki` (web-1: `100000Ki`) or plain bytes (idle: `1000000`, and node ms-a's sum).
const OBJECTS: &str = r#"
apiVersion: v1
kind: Node
metadata:
  name: ms-a
  annotations:
    kwok.x-k8s.io/node: fake
    metrics.k8s.io/resource-metrics-path: /metrics/nodes/ms-a/metrics/resource
  labels: {kubernetes.io/hostname: ms-a, kubernetes.io/os: linux}
status:
  capacity: {cpu: "4", memory: 8Gi, pods: "110"}
  allocatable: {cpu: "4", memory: 8Gi, pods: "110"}
---
apiVersion: v1
kind: Node
metadata:
  name: ms-b
  annotations:
    kwok.x-k8s.io/node: fake
    metrics.k8s.io/resource-metrics-path: /metrics/nodes/ms-b/metrics/resource
  labels: {kubernetes.io/hostname: ms-b, kubernetes.io/os: linux}
status:
  capacity: {cpu: "2", memory: 4Gi, pods: "110"}
  allocatable: {cpu: "2", memory: 4Gi, pods: "110"}
---
apiVersion: v1
kind: Namespace
metadata: {name: usage}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: usage
  annotations: {kubetrail.dev/pull-delay: 100ms, kubetrail.dev/usage-cpu: 250m, kubetrail.dev/usage-memory: 100000Ki}
spec:
  nodeName: ms-a
  containers:
  - name: app
    image: web:1
    resources: {requests: {cpu: 500m, memory: 128Mi}}
---
apiVersion: v1
kind: Pod
metadata:
  name: db-0
  namespace: usage
  annotations: {kubetrail.dev/pull-delay: 100ms, kubetrail.dev/usage-cpu: 120m, kubetrail.dev/usage-memory: 200Mi}
spec:
  nodeName: ms-b
  containers:
  - name: db
    image: db:1
    resources: {requests: {cpu: 200m, memory: 256Mi}}
  - name: backup
    image: backup:1
---
apiVersion: v1
kind: Pod
metadata:
  name: idle
  namespace: usage
  annotations: {kubetrail.dev/pull-delay: 100ms, kubetrail.dev/usage-memory: "1000000"}
spec:
  nodeName: ms-a
  containers:
  - name: sleep
    image: busybox:1
"#;

const NODES: [&str; 2] = ["ms-a", "ms-b"];
/// (pod, container) of every container in OBJECTS.
const CONTAINERS: [(&str, &str); 4] = [
    ("web-1", "app"),
    ("db-0", "db"),
    ("db-0", "backup"),
    ("idle", "sleep"),
];
/// Each container's own (CPU request millicores, memory request bytes) as OBJECTS declares
/// them; a container that declares none has zeros.
const REQUESTS: [(&str, &str, i64, i64); 4] = [
    ("web-1", "app", 500, 128 << 20),
    ("db-0", "db", 200, 256 << 20),
    ("db-0", "backup", 0, 0),
    ("idle", "sleep", 0, 0),
];
/// Distinct metrics-server timestamps the truth must see of every pod and node.
const TIMESTAMPS: usize = 3;

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `kubectl ARGS` with the admin kubeconfig; its stdout, or Err(stderr).
fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    use std::io::Write;
    let mut child = Command::new(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()))
        .args(args)
        .arg("--request-timeout=20s")
        .env("KUBECONFIG", kubeconfig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or("").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A Kubernetes quantity as metrics-server writes it, scaled: CPU to nanocores
/// (`123456n`, `250m`, `1`), memory to bytes (`98304Ki`, `96Mi`, `1000`). The test's own
/// parser; kubectl top's figures check it below.
fn quantity(q: &str, scale: f64) -> i64 {
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let num: f64 = num
        .parse()
        .unwrap_or_else(|e| panic!("quantity {q:?}: {e}"));
    let factor = match suffix {
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        other => panic!("quantity {q:?}: unknown suffix {other:?}"),
    };
    (num * factor * scale).round() as i64
}

/// One sample as metrics-server served it: CPU in millicores rounded up (as the Kubernetes
/// MilliValue does, and as kubectl top prints), memory in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Usage {
    cpu_millis: i64,
    memory_bytes: i64,
}

fn usage(u: &Value) -> Usage {
    let nanocores = quantity(u["cpu"].as_str().expect("usage.cpu"), 1e9);
    Usage {
        cpu_millis: (nanocores + 999_999) / 1_000_000,
        memory_bytes: quantity(u["memory"].as_str().expect("usage.memory"), 1.0),
    }
}

/// What metrics-server served, keyed by (pod, container) or (node, "") and the sample's
/// timestamp (Unix ms).
type Truth = BTreeMap<(String, String), BTreeMap<i64, Usage>>;

/// One read of metrics-server's answers: the current timestamp of every pod and node in it.
fn read_truth(kubeconfig: &Path, truth: &mut Truth) -> Result<BTreeMap<String, i64>, String> {
    let mut stamps = BTreeMap::new();
    let pods = kubectl(
        kubeconfig,
        &[
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/namespaces/usage/pods",
        ],
        None,
    )?;
    let pods: Value = serde_json::from_str(&pods).map_err(|e| e.to_string())?;
    for item in pods["items"].as_array().into_iter().flatten() {
        let pod = item["metadata"]["name"].as_str().unwrap().to_string();
        let at = e2e::parse_ms(item["timestamp"].as_str().unwrap());
        for c in item["containers"].as_array().into_iter().flatten() {
            let key = (pod.clone(), c["name"].as_str().unwrap().to_string());
            truth.entry(key).or_default().insert(at, usage(&c["usage"]));
        }
        stamps.insert(pod, at);
    }
    let nodes = kubectl(
        kubeconfig,
        &["get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"],
        None,
    )?;
    let nodes: Value = serde_json::from_str(&nodes).map_err(|e| e.to_string())?;
    for item in nodes["items"].as_array().into_iter().flatten() {
        let node = item["metadata"]["name"].as_str().unwrap().to_string();
        let at = e2e::parse_ms(item["timestamp"].as_str().unwrap());
        truth
            .entry((node.clone(), String::new()))
            .or_default()
            .insert(at, usage(&item["usage"]));
        stamps.insert(node, at);
    }
    Ok(stamps)
}

/// kubectl top's rows: the first column(s) as the key, then its CPU (`250m`, in millicores)
/// and memory (`96Mi`, whole MiB rounded down) columns.
fn top(
    kubeconfig: &Path,
    args: &[&str],
    key_cols: usize,
) -> BTreeMap<(String, String), (i64, i64)> {
    let out = kubectl(kubeconfig, args, None).unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"));
    let mut rows = BTreeMap::new();
    for line in out.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let cpu = cols[key_cols].strip_suffix('m').expect("cpu in millicores");
        let mem = cols[key_cols + if key_cols == 1 { 2 } else { 1 }]
            .strip_suffix("Mi")
            .expect("memory in Mi");
        let key = (
            cols[0].to_string(),
            if key_cols == 2 {
                cols[1].to_string()
            } else {
                String::new()
            },
        );
        rows.insert(key, (cpu.parse().unwrap(), mem.parse().unwrap()));
    }
    rows
}

#[test]
#[ignore = "needs the real control plane (KUBETRAIL_E2E_BIN): run scripts/test"]
fn recorded_usage_matches_metrics_server_and_kubectl_top() {
    let _serial = serial();
    let started = Instant::now();
    let (cp, ready) = ControlPlane::start_with(
        true,
        &[
            "--cluster".into(),
            format!(
                "--kwok-config={}",
                repo_file("e2e/kwok/stages.yaml").display()
            ),
            format!(
                "--kwok-config={}",
                repo_file("e2e/kwok/metrics.yaml").display()
            ),
            "--metrics-server".into(),
        ],
    )
    .unwrap();
    let ms_log = PathBuf::from(
        ready["metrics_server_log"]
            .as_str()
            .expect("metrics_server_log"),
    );
    let ms_log = || std::fs::read_to_string(&ms_log).unwrap_or_default();
    let kc = cp.kubeconfig.clone();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("trail.db");
    let rec = RecorderProcess::spawn(
        &kc,
        &db,
        &dir.path().join("rec.log"),
        &["--usage-interval", "1s", "--metrics-addr", "127.0.0.1:0"],
    );
    kubectl(&kc, &["apply", "-f", "-"], Some(OBJECTS)).unwrap();

    // The aggregator finds metrics-server (the APIService turns Available) ...
    e2e::wait_until(
        "APIService v1beta1.metrics.k8s.io is Available",
        Duration::from_secs(120),
        || {
            kubectl(
                &kc,
                &[
                    "get",
                    "apiservice",
                    "v1beta1.metrics.k8s.io",
                    "-o",
                    r#"jsonpath={.status.conditions[?(@.type=="Available")].status}"#,
                ],
                None,
            )
            .is_ok_and(|s| s == "True")
        },
    );
    eprintln!(
        "e2e_metrics_server: APIService Available after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // ... and metrics-server has scraped every node and pod (CPU is a rate: two scrapes).
    let mut truth = Truth::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let stamps = read_truth(&kc, &mut truth).unwrap_or_default();
        if NODES
            .iter()
            .chain(["web-1", "db-0", "idle"].iter())
            .all(|n| stamps.contains_key(*n))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics-server never served all pods and nodes (saw {stamps:?}); its log:\n{}",
            ms_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "e2e_metrics_server: first metrics after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let ep = Endpoint::from_log(|| rec.log(), Duration::from_secs(30));
    ep.wait_until(
        "/metrics",
        Duration::from_secs(60),
        "usage available",
        |c, body| c == 200 && body.lines().any(|l| l == "kubetrail_usage_available 1"),
    );

    // The truth: metrics-server's answers, read every ~second (far more often than its 10 s
    // resolution, so no timestamp is missed) until every pod and node has TIMESTAMPS of them
    // and kubectl top has been read while one timestamp held for all.
    truth.clear();
    let mut tops = Vec::new(); // (stamps, top pods, top nodes), each read inside one timestamp
    let mut last_read = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let before = read_truth(&kc, &mut truth).expect("metrics API");
        let gap = last_read.elapsed();
        last_read = Instant::now();
        assert!(
            gap < Duration::from_secs(8),
            "truth reads {gap:?} apart: a timestamp may be missed"
        );
        if tops.len() < 2 {
            let pods = top(
                &kc,
                &["top", "pods", "-n", "usage", "--containers", "--no-headers"],
                2,
            );
            let nodes = top(&kc, &["top", "nodes", "--no-headers"], 1);
            let after = read_truth(&kc, &mut truth).expect("metrics API");
            if before == after {
                tops.push((after, pods, nodes));
            }
        }
        let enough = truth.len() == CONTAINERS.len() + NODES.len()
            && truth.values().all(|t| t.len() >= TIMESTAMPS);
        if enough && !tops.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not enough samples in time: {truth:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let last_ts = *truth.values().flat_map(|t| t.keys()).max().unwrap();
    let first_ts = *truth.values().flat_map(|t| t.keys()).min().unwrap();

    // The recorder samples every second; wait (up to 60 s) until it has written the last
    // timestamp of everything. Not an assertion: what is missing then is named below.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let got = read_db(&db);
        if truth.iter().all(|(k, t)| {
            got.get(k)
                .is_some_and(|g| g.contains_key(t.keys().last().unwrap()))
        }) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(rec.stop().success());
    let got = read_db(&db);

    // 1. Every sample metrics-server served is stored, at its timestamp, with its values.
    for (key, samples) in &truth {
        for (at, want) in samples {
            let have = got.get(key).and_then(|g| g.get(at));
            assert_eq!(
                have,
                Some(want),
                "{key:?} at {}: stored {have:?}, metrics-server served {want:?} (stored: {:?})",
                e2e::rfc3339_secs(at / 1000),
                got.get(key)
            );
        }
    }
    // The usage is what kwok was told (CPU is a rate of two scrapes: within 1%); a node's is
    // the sum of its pods'.
    let want_of = |name: &str| match name {
        "web-1" => (250, 100_000 << 10),
        "db-0" => (120, 200 << 20),
        "idle" => (1, 1_000_000),
        "ms-a" => (251, (100_000 << 10) + 1_000_000),
        "ms-b" => (240, 2 * (200 << 20)),
        other => panic!("unexpected {other}"),
    };
    for ((name, container), samples) in &truth {
        let (cpu, mem) = want_of(name);
        for u in samples.values() {
            assert_eq!(u.memory_bytes, mem, "{name}/{container}");
            assert!(
                (u.cpu_millis - cpu).abs() <= (cpu / 100).max(1),
                "{name}/{container}: {u:?}"
            );
        }
    }

    // 2. kubectl top (upstream code) agrees with what was stored at the timestamp it showed.
    for (stamps, pods, nodes) in &tops {
        for ((pod, container), (cpu, mib)) in pods {
            let at = stamps[pod];
            let u = got[&(pod.clone(), container.clone())][&at];
            assert_eq!(
                (u.cpu_millis, u.memory_bytes >> 20),
                (*cpu, *mib),
                "kubectl top {pod}/{container}"
            );
        }
        assert_eq!(pods.len(), CONTAINERS.len(), "{pods:?}");
        for node in NODES {
            let (cpu, mib) = nodes[&(node.to_string(), String::new())];
            let u = got[&(node.to_string(), String::new())][&stamps[node]];
            assert_eq!(
                (u.cpu_millis, u.memory_bytes >> 20),
                (cpu, mib),
                "kubectl top node {node}"
            );
        }
    }

    // A report over exactly the truth's timestamps, as JSON rows.
    let (since, until) = (
        e2e::rfc3339_secs(first_ts / 1000 - 1),
        e2e::rfc3339_secs(last_ts / 1000 + 1),
    );
    let db_arg = db.to_str().unwrap();
    let report = |args: &[&str]| -> Vec<Value> {
        let window = [
            "-o", "json", "--db", db_arg, "--since", &since, "--until", &until,
        ];
        fixture::parse_json(fixture::kubetrail(&[args, &window[..]].concat()).ok())
    };

    // 3. query usage: the samples' count, average and maximum.
    let rows = report(&["query", "usage", "--by", "container", "-n", "usage"]);
    assert_eq!(rows.len(), CONTAINERS.len(), "{rows:#?}");
    for (pod, container) in CONTAINERS {
        let row = rows
            .iter()
            .find(|r| r["name"] == pod && r["container"] == container)
            .unwrap_or_else(|| panic!("no row for {pod}/{container}: {rows:#?}"));
        let t = &truth[&(pod.to_string(), container.to_string())];
        let n = t.len() as f64;
        let cpu_avg = t.values().map(|u| u.cpu_millis as f64).sum::<f64>() / n;
        let mem_avg = t.values().map(|u| u.memory_bytes as f64).sum::<f64>() / n;
        assert_eq!(row["samples"], t.len(), "{pod}/{container}: {row}");
        assert_eq!(
            row["cpu_max_millis"],
            t.values().map(|u| u.cpu_millis).max().unwrap(),
            "{row}"
        );
        assert_eq!(
            row["memory_max_bytes"],
            t.values().map(|u| u.memory_bytes).max().unwrap(),
            "{row}"
        );
        assert!(
            (row["cpu_avg_millis"].as_f64().unwrap() - cpu_avg).abs() < 0.01,
            "{row} vs {cpu_avg}"
        );
        assert!(
            (row["memory_avg_bytes"].as_f64().unwrap() - mem_avg).abs() < 1.0,
            "{row} vs {mem_avg}"
        );
        // The container's own requests, as its pod declares them, not its pod's sum.
        let (_, _, cpu_req, mem_req) = REQUESTS
            .iter()
            .find(|(p, c, ..)| *p == pod && *c == container)
            .unwrap();
        assert_eq!(
            (&row["cpu_request_millis"], &row["memory_request_bytes"]),
            (&Value::from(*cpu_req), &Value::from(*mem_req)),
            "{pod}/{container}: {row}"
        );
    }
    // 4. query nodes over the same stretch, in one bucket: each node's measured usage is the
    //    count, mean and largest of the samples metrics-server served for it.
    let rows = report(&["query", "nodes", "--step", "1h"]);
    for node in NODES {
        let row = rows
            .iter()
            .find(|r| r["node"] == node)
            .unwrap_or_else(|| panic!("no row for node {node}: {rows:#?}"));
        let t = &truth[&(node.to_string(), String::new())];
        let n = t.len() as f64;
        let mean =
            |f: fn(&Usage) -> i64| (t.values().map(|u| f(u) as f64).sum::<f64>() / n).round();
        assert_eq!(row["used_samples"], t.len(), "{node}: {row}");
        assert_eq!(
            row["cpu_used_peak_millis"],
            t.values().map(|u| u.cpu_millis).max().unwrap(),
            "{node}: {row}"
        );
        assert_eq!(
            row["memory_used_peak_bytes"],
            t.values().map(|u| u.memory_bytes).max().unwrap(),
            "{node}: {row}"
        );
        assert_eq!(
            row["cpu_used_avg_millis"].as_f64(),
            Some(mean(|u| u.cpu_millis)),
            "{node}: {row}"
        );
        assert_eq!(
            row["memory_used_avg_bytes"].as_f64(),
            Some(mean(|u| u.memory_bytes)),
            "{node}: {row}"
        );
    }
    eprintln!(
        "e2e_metrics_server: {} samples compared ({} kubectl top reads) in {:.1} s",
        truth.values().map(|t| t.len()).sum::<usize>(),
        tops.len(),
        started.elapsed().as_secs_f64()
    );
    drop(cp);
}

/// The recorder's stored samples, read from its SQLite file: containers by (pod, container)
/// and nodes by (node, ""), each by timestamp. Empty while the file or its tables are not
/// there yet.
fn read_db(db: &Path) -> Truth {
    let mut out = Truth::new();
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return out;
    };
    let rows = |sql: &str| -> Vec<(String, String, i64, i64, i64)> {
        let Ok(mut st) = c.prepare(sql) else {
            return Vec::new();
        };
        st.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map(|it| it.filter_map(Result::ok).collect())
        .unwrap_or_default()
    };
    let containers = rows(
        "SELECT p.name, uc.name, cu.at_ms, cu.cpu_millis, cu.memory_bytes
           FROM container_usage cu JOIN usage_containers uc ON uc.id = cu.container_id
           JOIN pods p ON p.id = uc.pod_id",
    );
    let node_rows = rows(
        "SELECT n.name, '', s.at_ms, s.cpu_millis, s.memory_bytes
           FROM node_usage_samples s JOIN nodes n ON n.id = s.node_id",
    );
    for (name, container, at, cpu, mem) in containers.into_iter().chain(node_rows) {
        out.entry((name, container)).or_default().insert(
            at,
            Usage {
                cpu_millis: cpu,
                memory_bytes: mem,
            },
        );
    }
    out
}
