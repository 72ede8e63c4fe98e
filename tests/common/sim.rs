//! Shared test helper: runs `kubetrail simulate` as a child process on a free port and talks to
//! it. Include it with `#[path = "common/sim.rs"] mod sim;` (or from `tests/common/mod.rs`).
//!
//! ```ignore
//! let sim = SimProcess::spawn(&["--pods", "50", "--churn", "20"]);
//! let out = std::process::Command::new("kubectl")
//!     .arg("--kubeconfig").arg(sim.kubeconfig_path()).args(["get", "pods", "-A"]).output();
//! let truth = sim.wait_for_truth(Duration::from_secs(10), |lines| lines.len() > 100);
//! ```
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kubetrail_sim::TruthLine;

#[path = "http.rs"]
mod http;
pub use http::{http_request, http_request_within};

/// A running `kubetrail simulate` child; killed on drop.
pub struct SimProcess {
    child: Child,
    addr: SocketAddr,
    kubeconfig: PathBuf,
    truth: PathBuf,
    /// Holds the kubeconfig, truth file and the child's stderr log (`sim.log`).
    dir: tempfile::TempDir,
}

impl SimProcess {
    /// Starts the binary with `--listen 127.0.0.1:0`, a kubeconfig and a truth file in a temp
    /// directory, plus `extra_args` (e.g. `["--seed", "3", "--churn", "50"]`). Waits (up to 60 s)
    /// for its `serving on` line. Panics with the child's stderr if it does not come up.
    pub fn spawn(extra_args: &[&str]) -> SimProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        let truth = dir.path().join("truth.jsonl");
        let log = dir.path().join("sim.log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubetrail"));
        command
            .arg("simulate")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--kubeconfig-out")
            .arg(&kubeconfig);
        if !extra_args.contains(&"--truth-out") {
            command.arg("--truth-out").arg(&truth);
        }
        command.args(extra_args);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .env("RUST_LOG", "warn");
        let mut child = command.spawn().expect("spawn kubetrail simulate");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("serving on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "simulator did not start: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let addr: SocketAddr = url
            .trim_start_matches("http://")
            .parse()
            .expect("address in the serving line");
        SimProcess {
            child,
            addr,
            kubeconfig,
            truth,
            dir,
        }
    }

    /// The simulator's process id (for `kill -STOP`: a frozen API server).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The truth file (empty path semantics if `--truth-out` was given in `extra_args`).
    pub fn truth_path(&self) -> &Path {
        &self.truth
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The child's stderr so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sim.log")).unwrap_or_default()
    }

    /// Complete truth lines written so far.
    pub fn truth(&self) -> Vec<TruthLine> {
        kubetrail_sim::read_truth(&self.truth).expect("readable truth file")
    }

    /// Polls the truth file until `done` holds (or panics after `timeout`).
    pub fn wait_for_truth(
        &self,
        timeout: Duration,
        done: impl Fn(&[TruthLine]) -> bool,
    ) -> Vec<TruthLine> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.truth();
            if done(&lines) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "truth condition not met within {timeout:?} ({} lines)",
                lines.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A kube client for the simulator (call inside a tokio runtime).
    pub fn kube_client(&self) -> kube::Client {
        let config = kube::Config::new(self.base_url().parse().expect("uri"));
        kube::Client::try_from(config).expect("kube client")
    }

    /// A plain HTTP GET: (status code, body).
    pub fn get(&self, path_and_query: &str) -> (u16, String) {
        http_request(self.addr, "GET", path_and_query, None)
    }

    pub fn post(&self, path: &str, json: &str) -> (u16, String) {
        http_request(self.addr, "POST", path, Some(json))
    }

    pub fn delete(&self, path: &str) -> (u16, String) {
        http_request(self.addr, "DELETE", path, None)
    }

    /// Injects faults (`POST /_sim/faults`), e.g. `r#"{"cut_watches":true}"#`.
    pub fn fault(&self, json: &str) {
        let (code, body) = self.post("/_sim/faults", json);
        assert_eq!(code, 200, "fault {json} was refused: {body}");
    }

    /// Freezes the scenario engine; returns once nothing changes any more.
    pub fn pause(&self) {
        let (code, body) = self.post("/_sim/pause", "");
        assert_eq!(code, 200, "{body}");
    }

    pub fn resume(&self) {
        let (code, body) = self.post("/_sim/resume", "");
        assert_eq!(code, 200, "{body}");
    }

    /// Runs `secs` of the scenario's virtual time at once (`POST /_sim/advance`); the answer
    /// comes when they ran, which takes seconds for an hour of a small cluster.
    pub fn advance(&self, secs: f64) {
        let (code, body) = http_request_within(
            self.addr,
            "POST",
            "/_sim/advance",
            Some(&format!("{{\"secs\": {secs}}}")),
            Duration::from_secs(600),
        );
        assert_eq!(code, 200, "{body}");
    }

    /// `GET /_sim/stats` as JSON.
    pub fn stats(&self) -> serde_json::Value {
        let (code, body) = self.get("/_sim/stats");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).expect("stats JSON")
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
