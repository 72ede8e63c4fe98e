//! Shared end-to-end helper: a REAL kube-apiserver + etcd (built from Go modules by
//! `e2e/controlplane/build.sh`), here, and a driver that plays the kubelet (and a little of the
//! scheduler and of kubectl) against it, writing down the ground truth of every transition it
//! causes, in `kubelet.rs`.
//!
//! Include it with `#[path = "common/e2e.rs"] mod e2e;`.
//!
//! ```ignore
//! let Some(cp) = ControlPlane::start(true) else { return }; // always Some: see "Skipping"
//! let mut k = Kubelet::connect(&cp);
//! k.create_namespace("shop");
//! k.create_node("node-a", "4", "8Gi");
//! k.create_pod("shop", "web", PodShape::service("node-a"));
//! k.run("web");
//! k.ready("web");
//! compare(&k.truth, &read_recorded(&db), &gaps).assert_exact();
//! ```
//!
//! Skipping: every e2e test carries `#[ignore = "needs the real control plane ..."]`, so a plain
//! `cargo test` lists it as ignored (never as a passing test that did nothing). `scripts/test`
//! builds the control plane, sets `KUBETRAIL_E2E_BIN` and passes `--include-ignored`; CI
//! (`KUBETRAIL_E2E_REQUIRED=1`) fails in scripts/test when it cannot build it. A test run
//! without the variable fails in [`ControlPlane::start`].
//!
//! Times: the real API server keeps times to the second. Every condition and container time is
//! set here (RFC 3339, whole seconds) by [`Kubelet::stamp`], which also makes sure that no two
//! steps share a second; times the server sets (creationTimestamp, deletionTimestamp, the
//! PodScheduled condition of a binding) are read back from its answers. Kinds the recorder
//! times by its own clock (cordoned, capacity_changed, resized, deleted) get the middle of the
//! request that caused them.
#![allow(dead_code)]

// e2e_wire also includes sim.rs, which loads the same file: two copies of a small helper.
#[allow(clippy::duplicate_mod)]
#[path = "http.rs"]
mod http;
#[path = "kubelet.rs"]
mod kubelet;
#[path = "pod_records.rs"]
mod pod_records;
// Not every test binary that includes this file drives the kubelet.
#[allow(unused_imports)]
pub use kubelet::Kubelet;
#[allow(unused_imports)]
pub use pod_records::PodShape;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kubetrail::model::TransitionKind;
use kubetrail_sim::TruthLine;
use serde_json::{Value, json};

/// How long the launcher may take to build nothing and start etcd + kube-apiserver.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// The e2e tests of one test binary run one at a time: each starts its own etcd, API server and
/// recorder, and the recorder's observation-time kinds must land within 1 s on a 2-core machine.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Whole seconds since the epoch as RFC 3339 UTC (`2026-11-29T02:39:29Z`), as metav1.Time is
/// written.
pub fn rfc3339_secs(secs: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0)
        .expect("time in range")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Parses an RFC 3339 time from the API server into Unix milliseconds.
pub fn parse_ms(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s:?} is not RFC 3339: {e}"))
        .timestamp_millis()
}

/// A k8s-openapi time (which wraps jiff) as Unix milliseconds, through its wire form.
fn time_ms<T: serde::Serialize>(t: &T) -> i64 {
    match serde_json::to_value(t).expect("time serialises") {
        Value::String(s) => parse_ms(&s),
        other => panic!("a time serialised as {other}"),
    }
}

/// Polls `check` every 100 ms until it holds; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A kube client for a kubeconfig file (call inside a tokio runtime).
pub async fn client_for(kubeconfig: &Path) -> Client {
    let parsed = kube::config::Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", kubeconfig.display()));
    let config =
        kube::Config::from_custom_kubeconfig(parsed, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", kubeconfig.display()));
    Client::try_from(config).expect("kube client")
}

/// A raw request through a kube client (so TLS and the token come from the kubeconfig):
/// (HTTP status, body). `path` includes the query string.
pub async fn raw_request(client: &Client, method: &str, path: &str) -> (u16, String) {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("Accept", "application/json")
        .body(kube::client::Body::from(Vec::<u8>::new()))
        .expect("request");
    let response = client
        .send(request)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let code = response.status().as_u16();
    let body = response
        .into_body()
        .collect_bytes()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: body: {e}"));
    (code, String::from_utf8_lossy(&body).into_owned())
}

// ---------------------------------------------------------------------------------------------
// The control plane
// ---------------------------------------------------------------------------------------------

/// A running `controlplane` launcher (etcd + kube-apiserver). Stopped on drop; since its stdin
/// is a pipe held here, it also stops if the test process dies.
pub struct ControlPlane {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    /// stdout lines after the first (answers to stdin commands).
    replies: mpsc::Receiver<String>,
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    /// `http://127.0.0.1:PORT` (etcd's client URL, with its JSON gateway).
    pub etcd: String,
    /// What the launcher reports (from /version).
    pub version: String,
    /// What GET /version says, checked to be v1.35.x.
    pub git_version: String,
    pub token: String,
    pub ca: PathBuf,
    pub watch_cache: bool,
    pub apiserver_log: PathBuf,
    log: PathBuf,
    /// Kept (not removed) when the test panics, so the API server and etcd logs can be read.
    dir: Option<tempfile::TempDir>,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver from `$KUBETRAIL_E2E_BIN` (`--watch-cache=<watch_cache>`;
    /// false sends every watch to etcd, so compacting etcd makes old resourceVersions 410).
    ///
    /// Always `Some`; panics when `KUBETRAIL_E2E_BIN` is unset (the tests are #[ignore]d, so
    /// they run only when asked for). An Option still, so callers keep `let Some(cp) = ...`.
    pub fn start(watch_cache: bool) -> Option<ControlPlane> {
        Self::start_with(watch_cache, &[]).map(|(cp, _)| cp)
    }

    /// [`ControlPlane::start`] with extra launcher flags (e.g. `--cluster`); also returns the
    /// launcher's ready line, for the keys those flags add.
    pub fn start_with(watch_cache: bool, extra: &[String]) -> Option<(ControlPlane, Value)> {
        let test = std::thread::current()
            .name()
            .unwrap_or("an e2e test")
            .to_string();
        // Every e2e test is #[ignore]d, so it runs only when asked for (scripts/test passes
        // --include-ignored once it has built the control plane). Asked for without one, it
        // fails: a test that returned early here would pass as ok without testing anything.
        let Some(bin) = std::env::var_os("KUBETRAIL_E2E_BIN").filter(|v| !v.is_empty()) else {
            panic!(
                "{test}: KUBETRAIL_E2E_BIN is not set, so there is no real kube-apiserver. Run \
                 scripts/test (it builds the real kube-apiserver and etcd with \
                 e2e/controlplane/build.sh), or set KUBETRAIL_E2E_BIN to the directory that \
                 build.sh prints on its last line."
            );
        };
        let bin = PathBuf::from(bin);
        let launcher = bin.join("controlplane");
        assert!(
            launcher.is_file(),
            "KUBETRAIL_E2E_BIN={} has no controlplane launcher; rebuild with e2e/controlplane/build.sh",
            bin.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        let log = dir.path().join("controlplane.log");
        let mut child = Command::new(&launcher)
            .arg("--bin-dir")
            .arg(&bin)
            .arg("--work-dir")
            .arg(dir.path().join("cp"))
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .arg(format!("--watch-cache={watch_cache}"))
            .arg("--exit-on-stdin-close=true")
            .arg("--keep-work-dir")
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", launcher.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let started = Instant::now();
        let first = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the control plane did not come up within {START_TIMEOUT:?} ({e}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let ready: Value = serde_json::from_str(&first)
            .unwrap_or_else(|e| panic!("launcher's first line is not JSON ({e}): {first}"));
        let field = |name: &str| -> String {
            ready[name]
                .as_str()
                .unwrap_or_else(|| panic!("launcher line has no {name}: {first}"))
                .to_string()
        };
        let mut cp = ControlPlane {
            child: Some(child),
            stdin,
            replies: rx,
            kubeconfig: PathBuf::from(field("kubeconfig")),
            server: field("server"),
            etcd: field("etcd"),
            version: field("version"),
            git_version: String::new(),
            token: field("token"),
            ca: PathBuf::from(field("ca")),
            watch_cache,
            apiserver_log: PathBuf::from(field("apiserver_log")),
            log,
            dir: Some(dir),
        };
        // Ask the server itself, so the test output shows which Kubernetes it really ran against.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let info = rt.block_on(async {
            let client = client_for(&cp.kubeconfig).await;
            client.apiserver_version().await
        });
        let info = info.unwrap_or_else(|e| panic!("GET /version on {}: {e}", cp.server));
        assert!(
            info.git_version.starts_with("v1.35."),
            "the real API server should be v1.35.x, /version says {:?}",
            info.git_version
        );
        cp.git_version = info.git_version;
        let _ = writeln!(
            std::io::stderr(),
            "e2e: real kube-apiserver {} (GET /version gitVersion) at {}, etcd {}, watch cache {}, up in {:.1} s",
            cp.git_version,
            cp.server,
            cp.etcd,
            if watch_cache { "on" } else { "off" },
            started.elapsed().as_secs_f64()
        );
        Some((cp, ready))
    }

    /// The launcher's stderr so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// etcd's current revision (POST /v3/kv/range on its JSON gateway).
    pub fn etcd_revision(&self) -> i64 {
        let body = self.etcd_post("/v3/kv/range", r#"{"key":"Lw=="}"#);
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("etcd range answer ({e}): {body}"));
        let rev = &v["header"]["revision"];
        rev.as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| rev.as_i64())
            .unwrap_or_else(|| panic!("etcd range answer without header.revision: {body}"))
    }

    /// Writes `n` keys outside /registry, so etcd's revision moves on without any Kubernetes
    /// object changing: watchers' resourceVersions fall behind without them being told.
    pub fn bump_etcd(&self, n: usize) {
        use base64_lite::encode;
        for i in 0..n {
            let body = json!({"key": encode(b"/kubetrail-e2e/bump"), "value": encode(i.to_string().as_bytes())});
            self.etcd_post("/v3/kv/put", &body.to_string());
        }
    }

    /// Compacts etcd at its current revision (physically), so any watch from an older
    /// resourceVersion gets 410 Gone (with `--watch-cache=false`). Returns that revision.
    pub fn compact_etcd(&self) -> i64 {
        let rev = self.etcd_revision();
        let body = json!({"revision": rev.to_string(), "physical": true});
        self.etcd_post("/v3/kv/compaction", &body.to_string());
        rev
    }

    fn etcd_post(&self, path: &str, body: &str) -> String {
        let (code, answer) = http_post(&self.etcd, path, body);
        assert_eq!(code, 200, "etcd POST {path} {body}: HTTP {code}: {answer}");
        answer
    }

    /// Sends a stdin command (`stop-apiserver`, `start-apiserver`, `restart-apiserver`) and
    /// waits for its `"ok":true` answer.
    pub fn command(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("launcher stdin");
        writeln!(stdin, "{command}").expect("write to the launcher");
        stdin.flush().expect("flush");
        let deadline = Instant::now() + Duration::from_secs(150);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .replies
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no answer to {command} ({e}):\n{}", self.log()));
            let Ok(reply) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if reply["command"] == command {
                assert_eq!(
                    reply["ok"],
                    true,
                    "{command} failed: {line}\n{}",
                    self.log()
                );
                return;
            }
        }
    }

    /// Stops kube-apiserver (etcd keeps running); open watches end.
    pub fn stop_apiserver(&mut self) {
        self.command("stop-apiserver");
    }

    /// Starts kube-apiserver again on the same port and waits for /readyz.
    pub fn start_apiserver(&mut self) {
        self.command("start-apiserver");
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Closing stdin is the launcher's signal to stop both children (the work dir stays:
        // the launcher runs with --keep-work-dir, and the temp dir is removed below).
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        // A failed test keeps the logs (not etcd's data) for whoever reads the failure.
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            let kept = dir.keep();
            let _ = std::fs::remove_dir_all(kept.join("cp").join("etcd"));
            eprintln!(
                "e2e: the test failed; the control plane's logs (controlplane.log, cp/kube-apiserver.log, \
                 cp/etcd.log) are kept in {}",
                kept.display()
            );
        }
    }
}

/// One HTTP/1.0 POST to `base` (`http://host:port`): (status, body).
fn http_post(base: &str, path: &str, body: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://").trim_end_matches('/');
    let addr = addr
        .parse()
        .unwrap_or_else(|e| panic!("address {addr}: {e}"));
    http::http_request(addr, "POST", path, Some(body))
}

/// Just enough base64 for etcd's gateway (keys and values are bytes, sent as base64).
mod base64_lite {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}
