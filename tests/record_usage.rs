//! Measured usage recorded from `kubetrail simulate`'s metrics API: every recorded sample must
//! equal what the API served for that pod, container and timestamp (read here over plain HTTP
//! and parsed with this file's own quantity reading, not the recorder's decoder); `kubectl top`
//! and `kubetrail query usage` must agree at one frozen moment (usage, and each container's
//! requests against its spec as `kubectl get pods` shows it); a missing or unavailable
//! metrics API is logged once, reported as `kubetrail_usage_available 0`, retried, and leaves
//! readiness alone.

#[path = "common/prom.rs"]
mod prom;
#[path = "common/recorder.rs"]
mod recorder;
#[allow(clippy::duplicate_mod)]
#[path = "common/sim.rs"]
mod sim;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prom::Endpoint;
use recorder::RecorderProcess;
use serde_json::Value;
use sim::SimProcess;

const SIM_ARGS: &[&str] = &[
    "--nodes",
    "3",
    "--pods",
    "20",
    "--churn",
    "2",
    "--seed",
    "3",
    "--metrics-window",
    "1",
];

/// (namespace, pod, container, timestamp ms) -> (millicores, bytes).
type Samples = BTreeMap<(String, String, String, i64), (i64, i64)>;

/// CPU as metrics-server writes it (`123n`, `5m`, `1`) in millicores, rounded up as
/// Kubernetes' MilliValue does; only the forms the metrics API uses.
fn cpu_millis(q: &str) -> i64 {
    if let Some(n) = q.strip_suffix('n') {
        let n: i64 = n.parse().unwrap();
        (n + 999_999) / 1_000_000
    } else if let Some(m) = q.strip_suffix('m') {
        m.parse().unwrap()
    } else {
        q.parse::<i64>().unwrap() * 1000
    }
}

/// Memory as metrics-server writes it (`1234Ki`, `5Mi`, plain bytes) in bytes.
fn memory_bytes(q: &str) -> i64 {
    for (suffix, factor) in [("Ki", 1i64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)] {
        if let Some(v) = q.strip_suffix(suffix) {
            return v.parse::<i64>().unwrap() * factor;
        }
    }
    q.parse().unwrap()
}

fn rfc3339_ms(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .unwrap()
        .timestamp_millis()
}

/// What the simulator's metrics API serves now.
fn served(sim: &SimProcess) -> Samples {
    let (code, body) = sim.get("/apis/metrics.k8s.io/v1beta1/pods");
    assert_eq!(code, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    let mut out = Samples::new();
    for item in list["items"].as_array().unwrap() {
        let at = rfc3339_ms(item["timestamp"].as_str().unwrap());
        for c in item["containers"].as_array().unwrap() {
            out.insert(
                (
                    item["metadata"]["namespace"].as_str().unwrap().into(),
                    item["metadata"]["name"].as_str().unwrap().into(),
                    c["name"].as_str().unwrap().into(),
                    at,
                ),
                (
                    cpu_millis(c["usage"]["cpu"].as_str().unwrap()),
                    memory_bytes(c["usage"]["memory"].as_str().unwrap()),
                ),
            );
        }
    }
    out
}

/// Every container sample in the database, read with SQL of this test's own.
/// Empty while the recorder has not created the file and its tables yet.
fn recorded(db: &Path) -> Samples {
    if !db.exists() {
        return Samples::new();
    }
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let Ok(mut stmt) = conn.prepare(
        "SELECT p.namespace, p.name, c.name, u.at_ms, u.cpu_millis, u.memory_bytes
         FROM container_usage u JOIN usage_containers c ON c.id = u.container_id
         JOIN pods p ON p.id = c.pod_id",
    ) else {
        return Samples::new();
    };
    let rows = stmt
        .query_map([], |r| {
            Ok((
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?),
                (r.get(4)?, r.get(5)?),
            ))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn timestamps(s: &Samples) -> BTreeSet<i64> {
    s.keys().map(|k| k.3).collect()
}

#[test]
fn recorded_usage_equals_what_the_metrics_api_served_at_each_sample() {
    let sim = Arc::new(SimProcess::spawn(SIM_ARGS));
    let db = sim.dir().join("trail.db");
    let rec = RecorderProcess::spawn(
        sim.kubeconfig_path(),
        &db,
        &sim.dir().join("rec.log"),
        &["--usage-interval", "1s"],
    );
    // The truth: what the API served, polled more often than its window moves. The scrape of
    // a window does not change once served, so whatever both sides saw must be equal.
    let truth = Arc::new(Mutex::new(Samples::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (sim, truth, stop) = (sim.clone(), truth.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now = served(&sim);
                truth.lock().unwrap().extend(now);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let matched_timestamps = loop {
        let got = recorded(&db);
        let seen = timestamps(&truth.lock().unwrap());
        let both: BTreeSet<i64> = timestamps(&got).intersection(&seen).copied().collect();
        if both.len() >= 5 {
            break both;
        }
        assert!(
            Instant::now() < deadline,
            "too few samples seen by both: {} recorded timestamps, {} served\n{}",
            timestamps(&got).len(),
            seen.len(),
            rec.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();
    assert!(rec.stop().success());
    let truth = truth.lock().unwrap();
    let got = recorded(&db);
    let mut compared = 0;
    let mut moved = false;
    let mut previous: BTreeMap<(String, String, String), (i64, i64)> = BTreeMap::new();
    for (key, value) in &got {
        if !matched_timestamps.contains(&key.3) {
            continue;
        }
        let served = truth.get(key).unwrap_or_else(|| {
            panic!("recorded {key:?} = {value:?}, but the API served no such sample")
        });
        assert_eq!(value, served, "{key:?}: recorded vs served");
        compared += 1;
        let series = (key.0.clone(), key.1.clone(), key.2.clone());
        if previous.insert(series, *value).is_some_and(|p| p != *value) {
            moved = true;
        }
    }
    assert!(compared >= 20, "only {compared} samples compared");
    assert!(
        moved,
        "no container's usage changed between samples: nothing was proven"
    );
}

/// Each container's own (CPU request, memory request, memory limit) as `kubectl get pods`
/// shows its spec, read with this file's quantity parsing. A request left out defaults to the
/// limit, as the API server's defaulting makes it; neither is 0.
fn spec_resources(kubeconfig: &Path) -> BTreeMap<(String, String, String), (i64, i64, i64)> {
    let out = Command::new("kubectl")
        .args(["get", "pods", "-A", "-o", "json"])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pods: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut specs = BTreeMap::new();
    for p in pods["items"].as_array().unwrap() {
        let (ns, pod) = (&p["metadata"]["namespace"], &p["metadata"]["name"]);
        for c in p["spec"]["containers"].as_array().unwrap() {
            let r = &c["resources"];
            let q =
                |kind: &str, what: &str, parse: fn(&str) -> i64| r[kind][what].as_str().map(parse);
            let cpu_limit = q("limits", "cpu", cpu_millis);
            let memory_limit = q("limits", "memory", memory_bytes);
            let cpu = q("requests", "cpu", cpu_millis).or(cpu_limit).unwrap_or(0);
            let memory = q("requests", "memory", memory_bytes)
                .or(memory_limit)
                .unwrap_or(0);
            let key = (
                ns.as_str().unwrap().to_string(),
                pod.as_str().unwrap().to_string(),
                c["name"].as_str().unwrap().to_string(),
            );
            specs.insert(key, (cpu, memory, memory_limit.unwrap_or(0)));
        }
    }
    specs
}

/// `kubectl top pods --containers` as (namespace, pod, container) -> (millicores, MiB).
fn kubectl_top(kubeconfig: &Path) -> BTreeMap<(String, String, String), (i64, i64)> {
    let out = Command::new("kubectl")
        .args(["top", "pods", "-A", "--containers", "--no-headers"])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let cpu = f[3].strip_suffix('m').unwrap().parse().unwrap();
        let mem = f[4].strip_suffix("Mi").unwrap().parse().unwrap();
        rows.insert((f[0].into(), f[1].into(), f[2].into()), (cpu, mem));
    }
    rows
}

#[test]
fn kubectl_top_and_query_usage_agree_at_the_same_moment() {
    let sim = SimProcess::spawn(SIM_ARGS);
    let db = sim.dir().join("trail.db");
    let rec = RecorderProcess::spawn(
        sim.kubeconfig_path(),
        &db,
        &sim.dir().join("rec.log"),
        &["--usage-interval", "1s"],
    );
    rec.wait_for_log(
        "initial list of pods and nodes done",
        Duration::from_secs(30),
    );
    // Let pods be committed, then freeze the cluster: its metrics timestamp stops moving.
    let deadline = Instant::now() + Duration::from_secs(60);
    while recorded(&db).len() < 10 {
        assert!(
            Instant::now() < deadline,
            "no usage recorded:\n{}",
            rec.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    sim.pause();
    let frozen = served(&sim);
    let at_ms = *timestamps(&frozen).iter().next_back().unwrap();
    assert_eq!(timestamps(&frozen).len(), 1);
    // The recorder samples that frozen moment within an interval or two.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !timestamps(&recorded(&db)).contains(&at_ms) {
        assert!(
            Instant::now() < deadline,
            "the frozen sample was never recorded"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let top = kubectl_top(sim.kubeconfig_path());
    let specs = spec_resources(sim.kubeconfig_path());
    let since = chrono::DateTime::from_timestamp_millis(at_ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let out = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args([
            "query",
            "usage",
            "--by",
            "container",
            "-o",
            "json",
            "--since",
            &since,
        ])
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut agreed = 0;
    for r in rows.as_array().unwrap() {
        let key = (
            r["namespace"].as_str().unwrap().to_string(),
            r["name"].as_str().unwrap().to_string(),
            r["container"].as_str().unwrap().to_string(),
        );
        // One sample since the frozen moment: average, p95 and max are that sample.
        assert_eq!(r["samples"], 1, "{key:?}");
        let cpu = r["cpu_max_millis"].as_i64().unwrap();
        let mib = r["memory_max_bytes"].as_i64().unwrap() >> 20;
        let shown = top
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} not in kubectl top"));
        assert_eq!((cpu, mib), *shown, "{key:?}: query usage vs kubectl top");
        // The container's own requests and memory limit, against its spec.
        let own = (
            r["cpu_request_millis"].as_i64(),
            r["memory_request_bytes"].as_i64(),
            r["memory_limit_bytes"].as_i64(),
        );
        let (cpu_req, mem_req, mem_lim) = specs[&key];
        assert_eq!(
            own,
            (Some(cpu_req), Some(mem_req), Some(mem_lim)),
            "{key:?}: query usage vs the pod's spec"
        );
        agreed += 1;
    }
    assert!(
        agreed >= 10,
        "only {agreed} containers compared of {}",
        top.len()
    );
    // kubectl top nodes against the node samples recorded at the same moment.
    let deadline = Instant::now() + Duration::from_secs(60);
    let nodes = loop {
        let nodes = recorded_nodes(&db, at_ms);
        if nodes.len() == 3 {
            break nodes;
        }
        assert!(
            Instant::now() < deadline,
            "node samples at {at_ms}: {nodes:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = Command::new("kubectl")
        .args(["top", "nodes", "--no-headers"])
        .env("KUBECONFIG", sim.kubeconfig_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut shown = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let cpu: i64 = f[1].strip_suffix('m').unwrap().parse().unwrap();
        let mib: i64 = f[3].strip_suffix("Mi").unwrap().parse().unwrap();
        shown.insert(f[0].to_string(), (cpu, mib));
    }
    let recorded: BTreeMap<String, (i64, i64)> = nodes
        .into_iter()
        .map(|(n, (cpu, bytes))| (n, (cpu, bytes >> 20)))
        .collect();
    assert_eq!(recorded, shown, "recorded node usage vs kubectl top nodes");
    assert!(rec.stop().success());
}

/// The node samples at `at_ms`: name -> (millicores, bytes).
fn recorded_nodes(db: &Path, at_ms: i64) -> BTreeMap<String, (i64, i64)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT n.name, s.cpu_millis, s.memory_bytes FROM node_usage_samples s
             JOIN nodes n ON n.id = s.node_id WHERE s.at_ms = ?1",
        )
        .unwrap();
    stmt.query_map([at_ms], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A metric's value from a `/metrics` text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn wait_metric(ep: Endpoint, name: &str, what: &str, done: impl Fn(f64) -> bool) {
    ep.wait_until("/metrics", Duration::from_secs(60), what, |code, body| {
        code == 200 && metric(body, name).is_some_and(&done)
    });
}

#[test]
fn a_missing_then_unavailable_metrics_api_is_logged_once_reported_and_leaves_readiness_alone() {
    let mut args = SIM_ARGS.to_vec();
    args.extend(["--metrics-api", "missing"]);
    let sim = SimProcess::spawn(&args);
    let db = sim.dir().join("trail.db");
    let rec = RecorderProcess::spawn(
        sim.kubeconfig_path(),
        &db,
        &sim.dir().join("rec.log"),
        &["--usage-interval", "1s", "--metrics-addr", "127.0.0.1:0"],
    );
    let ep = Endpoint::from_log(|| rec.log(), Duration::from_secs(30));
    ep.wait_until("/readyz", Duration::from_secs(60), "ready", |code, _| {
        code == 200
    });
    wait_metric(ep, "kubetrail_usage_checks_total", "three checks", |v| {
        v >= 3.0
    });
    let (_, body) = ep.get("/metrics");
    assert_eq!(metric(&body, "kubetrail_usage_available"), Some(0.0));
    let missing = "does not serve the metrics API";
    assert_eq!(rec.log().matches(missing).count(), 1, "{}", rec.log());
    assert_eq!(ep.get("/readyz").0, 200);

    sim.fault(r#"{"metrics_api":"unavailable"}"#);
    rec.wait_for_log("registered but unavailable", Duration::from_secs(30));
    let checks = metric(&ep.get("/metrics").1, "kubetrail_usage_checks_total").unwrap();
    wait_metric(ep, "kubetrail_usage_checks_total", "more checks", |v| {
        v >= checks + 3.0
    });
    let (_, body) = ep.get("/metrics");
    assert_eq!(metric(&body, "kubetrail_usage_available"), Some(0.0));
    assert_eq!(rec.log().matches("registered but unavailable").count(), 1);
    assert_eq!(ep.get("/readyz").0, 200);
    assert!(
        recorded(&db).is_empty(),
        "nothing is recorded while the API is away"
    );

    // Once it is served again, sampling starts by itself.
    sim.fault(r#"{"metrics_api":"served"}"#);
    wait_metric(ep, "kubetrail_usage_available", "available", |v| v == 1.0);
    wait_metric(ep, "kubetrail_usage_rows_written_total", "rows", |v| {
        v > 0.0
    });
    assert!(!recorded(&db).is_empty());
    assert!(!rec.log().contains("nodes/proxy"));
    assert!(rec.stop().success());
}
