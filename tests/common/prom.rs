//! Shared test helper: the operator endpoint of `kubetrail record --metrics-addr 127.0.0.1:0`.
//! [`Endpoint::from_log`] finds the port the recorder logged; [`Metrics::scrape`] parses
//! `/metrics` with `promcheck`, the reference Go parser that `e2e/controlplane/build.sh` builds
//! into `$KUBETRAIL_E2E_BIN` (so the format is checked by code we did not write).
#![allow(dead_code)]

#[path = "http.rs"]
mod http;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where a recorder serves /healthz, /readyz and /metrics.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint(pub SocketAddr);

impl Endpoint {
    /// Waits (up to `timeout`) for the recorder's "serving http://ADDR/metrics" log line.
    pub fn from_log(log: impl Fn() -> String, timeout: Duration) -> Endpoint {
        let deadline = Instant::now() + timeout;
        loop {
            let text = log();
            if let Some(rest) = text.split("serving http://").nth(1)
                && let Some((addr, _)) = rest.split_once("/metrics")
            {
                return Endpoint(addr.parse().expect("address in the log line"));
            }
            assert!(
                Instant::now() < deadline,
                "the recorder never logged its metrics address:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http::http_request(self.0, "GET", path, None)
    }

    /// Polls `path` until `done(status, body)` holds; returns the last answer. Panics with it
    /// after `timeout`.
    pub fn wait_until(
        &self,
        path: &str,
        timeout: Duration,
        what: &str,
        done: impl Fn(u16, &str) -> bool,
    ) -> (u16, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let (code, body) = self.get(path);
            if done(code, &body) {
                return (code, body);
            }
            assert!(
                Instant::now() < deadline,
                "{what}: still {code} after {timeout:?}:\n{body}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The `promcheck` binary, or None (after a loud SKIPPED line) when `KUBETRAIL_E2E_BIN` is
/// unset; with `KUBETRAIL_E2E_REQUIRED=1` that is a failure.
pub fn promcheck(test: &str) -> Option<PathBuf> {
    match std::env::var_os("KUBETRAIL_E2E_BIN").filter(|v| !v.is_empty()) {
        Some(bin) => Some(PathBuf::from(bin).join("promcheck")),
        None => {
            assert!(
                std::env::var("KUBETRAIL_E2E_REQUIRED").as_deref() != Ok("1"),
                "{test}: KUBETRAIL_E2E_REQUIRED=1 but KUBETRAIL_E2E_BIN is not set; run scripts/test"
            );
            let _ = writeln!(
                std::io::stderr(),
                "\nSKIPPED: {test}: KUBETRAIL_E2E_BIN is not set, so there is no promcheck to parse \
                 /metrics with. Run scripts/test.\n"
            );
            None
        }
    }
}

/// Parsed `/metrics`: family name -> {type, help, samples: [{labels, value}]}.
pub struct Metrics(pub Value);

impl Metrics {
    /// Scrapes and parses; panics with promcheck's message if the text is not valid.
    pub fn scrape(promcheck: &PathBuf, endpoint: Endpoint) -> (Metrics, String) {
        let (code, text) = endpoint.get("/metrics");
        assert_eq!(code, 200, "/metrics answered {code}:\n{text}");
        let mut child = Command::new(promcheck)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", promcheck.display()));
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write to promcheck");
        let out = child.wait_with_output().expect("promcheck output");
        assert!(
            out.status.success(),
            "/metrics is not valid Prometheus text: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let parsed = serde_json::from_slice(&out.stdout).expect("promcheck prints JSON");
        (Metrics(parsed), text)
    }

    pub fn family(&self, name: &str) -> &Value {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("no metric family {name}"))
    }

    /// The sum of the samples of `name` whose labels include all of `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.family(name)["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .filter(|s| labels.iter().all(|(k, v)| s["labels"][k] == *v))
            .map(|s| s["value"].as_f64().expect("a value"))
            .sum()
    }
}
