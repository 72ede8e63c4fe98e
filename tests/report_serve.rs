//! `kubetrail serve`'s JSON API over real HTTP, against a recorded simulated cluster: the shapes
//! of `/api/report`, `/api/history`, `/api/search` and `/api/coverage` (checked against `kubetrail
//! query` on the same file), 404 for unknown paths, 400 for paths that climb (`/../`, `%2e%2e`)
//! and for bad parameters, 405 for every write method, and loopback as the default address;
//! and 50 concurrent API requests beside a recorder that keeps committing.

#[path = "common/recorded.rs"]
mod recorded;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use recorded::{RecorderProcess, SimProcess, http_request, kubetrail, query_json, recorded};
use serde_json::Value;

/// `kubetrail serve` as a child; killed on drop.
struct Served {
    child: Child,
    addr: SocketAddr,
}

impl Served {
    fn start(db: &Path) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
            .args(["serve", "--addr", "127.0.0.1:0", "--db"])
            .arg(db)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kubetrail serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read");
        let addr = line
            .strip_prefix("serving on http://")
            .and_then(|r| r.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Served { child, addr }
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let (code, body) = http_request(self.addr, "GET", path, None);
        let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        (code, json)
    }

    /// One request exactly as written (no client normalises the path): status line and body.
    fn raw(&self, request: &str) -> (String, String) {
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        (head.to_string(), body.to_string())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_api_answers_in_the_documented_shapes() {
    let fixture = recorded("report_serve");
    let served = Served::start(&fixture.db);
    let pods = query_json(&fixture.db, &["pods"]);

    let (code, report) = served.get("/api/report");
    assert_eq!(code, 200, "{report}");
    for key in [
        "version",
        "generated_at_ms",
        "source",
        "request",
        "window",
        "coverage",
        "notes",
        "overview",
        "nodes",
        "namespaces",
        "workloads",
        "pods",
        "events",
        "tables",
    ] {
        assert!(report.get(key).is_some(), "/api/report lacks {key}");
    }
    let names = report["pods"]["name"].as_array().unwrap();
    assert_eq!(names.len(), pods.len());
    let buckets = report["window"]["bucket_starts_ms"]
        .as_array()
        .unwrap()
        .len();
    assert!(buckets > 0);
    assert_eq!(
        report["overview"]["running"].as_array().unwrap().len(),
        buckets
    );
    for series in report["nodes"]["cpu_requested_millis"].as_array().unwrap() {
        assert_eq!(series.as_array().unwrap().len(), buckets);
    }
    assert_eq!(report["coverage"]["known"], true);
    // Every restart the pods count is a marker, within the window (restarts before the
    // recorder started are reconstructed, and may lie before the window).
    let restarts: i64 = report["pods"]["restarts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_i64().unwrap())
        .sum();
    let marks = report["events"]["kind"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| *k == "container_restarted")
        .count() as i64;
    assert!(
        marks > 0 && marks <= restarts,
        "{marks} marks, {restarts} restarts"
    );

    // An owner filter keeps exactly that owner's pods.
    let owned = pods
        .iter()
        .find(|p| p["owner_kind"].is_string())
        .expect("a pod with an owner");
    let (kind, owner) = (
        owned["owner_kind"].as_str().unwrap(),
        owned["owner_name"].as_str().unwrap(),
    );
    let expected = pods
        .iter()
        .filter(|p| p["owner_kind"] == kind && p["owner_name"] == owner)
        .count();
    let (code, filtered) = served.get(&format!("/api/report?owner={kind}/{owner}"));
    assert_eq!(code, 200, "{filtered}");
    assert_eq!(filtered["pods"]["name"].as_array().unwrap().len(), expected);
    assert_eq!(filtered["workloads"]["name"], serde_json::json!([owner]));
    assert_eq!(filtered["request"]["owner"], format!("{kind}/{owner}"));

    // /api/history is `query history -o json`.
    let pod = &pods[0];
    let (ns, name) = (
        pod["namespace"].as_str().unwrap(),
        pod["name"].as_str().unwrap(),
    );
    let (code, history) = served.get(&format!("/api/history?namespace={ns}&pod={name}"));
    assert_eq!(code, 200);
    let expected = query_json(&fixture.db, &["history", name, "-n", ns]);
    assert_eq!(history, Value::Array(expected));
    let (code, missing) = served.get("/api/history?namespace=default&pod=no-such-pod");
    assert_eq!(code, 404);
    assert!(missing["error"].as_str().unwrap().contains("no-such-pod"));

    // /api/search finds the pod, its owner and its node by part of their names.
    let needle = &name[..name.len() - 2];
    let (code, hits) = served.get(&format!("/api/search?q={needle}"));
    assert_eq!(code, 200);
    assert!(
        hits["pods"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == name),
        "{hits}"
    );
    let (_, hits) = served.get(&format!("/api/search?q={owner}"));
    assert!(
        hits["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["name"] == owner),
        "{hits}"
    );
    if let Some(node) = pod["node"].as_str() {
        let (_, hits) = served.get(&format!("/api/search?q={node}"));
        assert!(
            hits["nodes"].as_array().unwrap().iter().any(|n| n == node),
            "{hits}"
        );
    }

    // /api/coverage: the one recording session.
    let (code, coverage) = served.get("/api/coverage");
    assert_eq!(code, 200);
    assert_eq!(coverage["known"], true);
    assert_eq!(coverage["sessions"], 1);
    assert_eq!(coverage["intervals"].as_array().unwrap().len(), 1);
    assert_eq!(coverage["gaps"], serde_json::json!([]));

    // The page itself.
    let (code, page) = http_request(served.addr, "GET", "/", None);
    assert_eq!(code, 200);
    assert!(page.contains(r#"{"mode":"live"}"#));
}

#[test]
fn unknown_paths_bad_parameters_climbing_paths_and_writes_are_refused() {
    let fixture = recorded("report_serve");
    let served = Served::start(&fixture.db);
    for path in ["/nope", "/api/nope", "/api", "/index.html", "/etc/passwd"] {
        let (code, body) = served.get(path);
        assert_eq!(code, 404, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("no such path"),
            "{body}"
        );
    }
    for (path, says) in [
        ("/api/report?since=yesterday-ish", "invalid time --since"),
        ("/api/report?owner=web", "KIND/NAME"),
        ("/api/report?step=5", "step"),
        ("/api/report?step=1ms", "buckets"),
        ("/api/history", "give pod"),
        ("/api/search", "give q"),
    ] {
        let (code, body) = served.get(path);
        assert_eq!(code, 400, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{path}: {body}"
        );
    }
    // Climbing paths, written raw so that no client cleans them up first.
    for path in [
        "/../../etc/passwd",
        "/api/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/api/%2E%2E/report",
        "/..%2f..%2fetc/passwd",
        "/.%2e/etc/passwd",
        "/api\\..\\report",
    ] {
        let (head, body) = served.raw(&format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ));
        assert!(head.starts_with("HTTP/1.1 400"), "{path}: {head}");
        assert!(!body.contains("root:"), "{path} served a file");
    }
    // Every write method, on real routes and unknown ones.
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for path in ["/api/report", "/", "/api/history", "/anything"] {
            let (head, body) = served.raw(&format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{{}}"
            ));
            assert!(head.starts_with("HTTP/1.1 405"), "{method} {path}: {head}");
            assert!(
                head.to_ascii_lowercase().contains("allow: get, head"),
                "{head}"
            );
            assert!(body.contains("read-only"), "{body}");
        }
    }
}

#[test]
fn serve_binds_loopback_by_default() {
    let fixture = recorded("report_serve");
    // Without --addr. Port 8080 may be taken on this machine; then the refusal names the
    // address it tried, which is the default all the same.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args(["serve", "--db", fixture.db_str()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubetrail serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if line.is_empty() {
        assert!(
            stderr.contains("cannot listen on --addr 127.0.0.1:8080"),
            "{stderr}"
        );
    } else {
        assert!(
            line.starts_with("serving on http://127.0.0.1:8080/ (read-only)"),
            "{line}"
        );
    }
    // A bad address is a usage error, a missing database a clear runtime one.
    let run = kubetrail(&["serve", "--addr", "localhost-ish", "--db", fixture.db_str()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--addr"), "{}", run.stderr);
    let missing = fixture.dir.join("missing.db");
    let run = kubetrail(&[
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--db",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("missing.db"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"));
}

/// Where a recorder serves /readyz and /metrics, from its "serving http://ADDR/metrics" line.
fn operator_address(rec: &RecorderProcess) -> SocketAddr {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let log = rec.log();
        if let Some(rest) = log.split("serving http://").nth(1)
            && let Some((addr, _)) = rest.split_once("/metrics")
        {
            return addr.parse().expect("address in the log line");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no metrics address logged:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A metric's value in the Prometheus text format (a family without labels).
fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

/// `serve` reads in snapshots of its own and never takes the write lock, so a burst of readers
/// must not hold back a recorder writing the same file: while 50 clients ask for reports,
/// histories, searches and coverage at once, the recorder stays ready, its write lag stays far
/// below its readiness bound, and it commits throughout.
#[test]
fn fifty_concurrent_api_requests_beside_a_recorder_do_not_hold_its_writes_back() {
    let sim = SimProcess::spawn(&[
        "--nodes", "5", "--pods", "60", "--churn", "20", "--seed", "9", "--pace", "0.4",
    ]);
    let db = sim.dir().join("busy.db");
    let rec = RecorderProcess::spawn(
        sim.kubeconfig_path(),
        &db,
        &sim.dir().join("rec.log"),
        &["--metrics-addr", "127.0.0.1:0", "--unready-after", "10s"],
    );
    let operator = operator_address(&rec);
    let get = |path: &str| http_request(operator, "GET", path, None);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while get("/readyz").0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "never ready:\n{}",
            rec.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let served = Served::start(&db);
    let pods = query_json(&db, &["pods"]);
    let pod = &pods[0];
    let history = format!(
        "/api/history?namespace={}&pod={}",
        pod["namespace"].as_str().unwrap(),
        pod["name"].as_str().unwrap()
    );
    let paths = [
        "/api/report?since=1h".to_string(),
        history,
        "/api/search?q=a".to_string(),
        "/api/coverage".to_string(),
    ];
    let clients = 50;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = std::sync::Arc::new(std::sync::Barrier::new(clients + 1));
    let addr = served.addr;
    let workers: Vec<_> = (0..clients)
        .map(|i| {
            let (start, stop, paths) = (start.clone(), stop.clone(), paths.clone());
            std::thread::spawn(move || {
                start.wait();
                // Each client walks the four endpoints from its own starting point, so every
                // kind of request is in flight at once, until told to stop.
                let mut answers = Vec::new();
                let mut k = i;
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    || answers.len() < paths.len()
                {
                    let path = &paths[k % paths.len()];
                    answers.push((path.clone(), http_request(addr, "GET", path, None).0));
                    k += 1;
                }
                answers
            })
        })
        .collect();

    // Watch the recorder for 10 s of requests.
    start.wait();
    let (_, metrics) = get("/metrics");
    let commits_before = metric(&metrics, "kubetrail_commits_total");
    let mut worst_lag = 0.0f64;
    let mut unready = Vec::new();
    let began = std::time::Instant::now();
    while began.elapsed() < Duration::from_secs(10) {
        let (code, body) = get("/readyz");
        if code != 200 {
            unready.push(body);
        }
        let (_, metrics) = get("/metrics");
        worst_lag = worst_lag.max(metric(&metrics, "kubetrail_write_lag_seconds"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, metrics) = get("/metrics");
    let commits_during = metric(&metrics, "kubetrail_commits_total") - commits_before;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answered = 0;
    for w in workers {
        for (path, code) in w.join().expect("client thread") {
            assert_eq!(code, 200, "{path}");
            answered += 1;
        }
    }
    assert!(answered >= clients * paths.len(), "{answered} answers");
    assert!(
        unready.is_empty(),
        "unready during the requests: {unready:?}"
    );
    assert!(
        worst_lag < 5.0,
        "the write lag reached {worst_lag} s while serve answered {answered} requests"
    );
    // The simulator churns all along, so commits must have gone on under the requests.
    assert!(commits_during > 0.0, "no commit during {answered} requests");
    assert!(rec.stop().success());
}
