//! Shared test helper: runs `kubetrail record` as a child process, the way a user would.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct RecorderProcess {
    child: Option<Child>,
    log: PathBuf,
}

impl RecorderProcess {
    /// `kubetrail record --kubeconfig K --db D --snapshot-interval 1s --status-interval 1s ARGS`,
    /// stderr into `log`.
    pub fn spawn(kubeconfig: &Path, db: &Path, log: &Path, extra: &[&str]) -> RecorderProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
            .arg("record")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--db")
            .arg(db)
            .args(["--snapshot-interval", "1s", "--status-interval", "1s"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .expect("log file"),
            )
            .env("RUST_LOG", "info")
            .spawn()
            .expect("spawn kubetrail record");
        RecorderProcess {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// Holds no process; stands in while a test swaps recorders.
    pub fn placeholder() -> RecorderProcess {
        RecorderProcess {
            child: None,
            log: PathBuf::new(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "recorder log never said {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "recorder did not stop within 30 s after SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` (a `kill` name such as "HUP"), then waits up to `timeout` for the exit.
    /// None if it is still running then (it is killed).
    pub fn signal_and_wait(mut self, signal: &str, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// kill -9: no chance to flush anything.
    pub fn kill_9(mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }
}

impl Drop for RecorderProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// When the recorder's log first says `needle` at or after `since_ms` (Unix ms), by the log
/// line's own timestamp. Each watch stream recovers on its own, and only its own log line says
/// when it did; a test that waited for the pod stream reads the node stream's time here.
pub fn logged_at(log: &str, needle: &str, since_ms: i64) -> Option<i64> {
    log.lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp_millis())
        .find(|&at| at >= since_ms)
}
