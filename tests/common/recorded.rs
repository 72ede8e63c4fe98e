//! Shared test helper for the report and serve tests: one simulated cluster recorded by the
//! real `kubetrail record` until its history holds a container restart (what the pictures
//! are tested on), made once per test binary and read by every test in it; and `kubetrail`
//! run as a user would, with its JSON read back. Include with
//! `#[path = "common/recorded.rs"] mod recorded;` (it includes `sim.rs` and `recorder.rs`).
#![allow(dead_code)]

#[path = "recorder.rs"]
mod recorder;
#[path = "sim.rs"]
mod sim;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use recorder::RecorderProcess;
#[allow(unused_imports)]
pub use sim::{SimProcess, http_request};

/// A finished `kubetrail` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout of a run that must have succeeded.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "kubetrail failed:\n{}", self.stderr);
        &self.stdout
    }
}

pub fn kubetrail(args: &[&str]) -> Run {
    kubetrail_in(Path::new("."), args)
}

pub fn kubetrail_in(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run kubetrail");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `kubetrail query ARGS -o json --db DB`, parsed.
pub fn query_json(db: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["query"];
    all.extend_from_slice(args);
    let db = db.to_str().expect("utf-8 path");
    all.extend_from_slice(&["-o", "json", "--db", db]);
    let run = kubetrail(&all);
    assert_eq!(run.code, 0, "kubetrail {all:?} failed:\n{}", run.stderr);
    serde_json::from_str::<Vec<Value>>(&run.stdout).expect("JSON array")
}

/// The simulated cluster the report tests draw: a few nodes, pods that churn, crash and get
/// OOMKilled, at a quick pace.
pub const SIM_ARGS: &[&str] = &[
    "--nodes", "5", "--pods", "40", "--churn", "6", "--seed", "42", "--pace", "0.4",
];

/// A recorded database, its recorder stopped cleanly.
pub struct Recorded {
    pub dir: PathBuf,
    pub db: PathBuf,
}

impl Recorded {
    pub fn db_str(&self) -> &str {
        self.db.to_str().expect("utf-8 path")
    }
}

/// Records [`SIM_ARGS`] for at least 8 s and until a pod has restarted and a Warning event is
/// recorded (at most 90 s), once
/// per test binary. The files live under Cargo's per-target temporary directory, in a folder
/// named for this process; folders of earlier runs are removed first.
pub fn recorded(name: &str) -> &'static Recorded {
    static ONCE: OnceLock<Recorded> = OnceLock::new();
    ONCE.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-fixture"));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let db = dir.join("trail.db");
        let sim = SimProcess::spawn(SIM_ARGS);
        let rec = RecorderProcess::spawn(sim.kubeconfig_path(), &db, &dir.join("rec.log"), &[]);
        rec.wait_for_log(
            "initial list of pods and nodes done",
            Duration::from_secs(60),
        );
        let started = Instant::now();
        let deadline = started + Duration::from_secs(90);
        loop {
            std::thread::sleep(Duration::from_secs(2));
            if started.elapsed() < Duration::from_secs(8) {
                continue;
            }
            let restarted = query_json(&db, &["pods"])
                .iter()
                .any(|p| p["restarts"].as_i64() > Some(0));
            // The crash loop's BackOff (a Warning event) is drawn too.
            let warned = !query_json(&db, &["events", "--type", "Warning"]).is_empty();
            if restarted && warned {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "within 90 s of recording {SIM_ARGS:?}: a restart {restarted}, a Warning event {warned}"
            );
        }
        let log = rec.log();
        let status = rec.stop();
        assert!(status.success(), "recorder exit {status:?}:\n{log}");
        drop(sim);
        Recorded { dir, db }
    })
}

/// RFC 3339 UTC with milliseconds dropped when they are zero: how the page prints a time.
pub fn page_time(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .expect("a time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        .replace(".000Z", "Z")
}
