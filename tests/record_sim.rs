//! `kubetrail record` against `kubetrail simulate` over real HTTP: the recorded history must equal
//! the simulator's ground truth, through stream cuts, a 410 relist, an outage and a kill -9.

#[path = "common/compare.rs"]
mod compare;
#[path = "common/recorder.rs"]
mod recorder;
#[path = "common/sim.rs"]
mod sim;

use std::time::{Duration, Instant};

use compare::{Comparison, Gap, compare, read_recorded};
use kubetrail::model::Subject;
use recorder::{RecorderProcess, logged_at, now_ms};
use sim::SimProcess;

/// Pauses the simulator and waits until the database holds everything the truth says
/// (or the timeout passes), then returns the final comparison.
fn settle(sim: &SimProcess, db: &std::path::Path, gaps: &[Gap], timeout: Duration) -> Comparison {
    sim.pause();
    let deadline = Instant::now() + timeout;
    loop {
        let result = compare(&sim.truth(), &read_recorded(db), gaps);
        if (result.missing.is_empty() && result.unexpected.is_empty()) || Instant::now() > deadline
        {
            return result;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The span before the recorder's first list: what happened then is reconstructed.
fn before_start(started_ms: i64) -> Gap {
    Gap::listed(0, started_ms + 2_000)
}

const SIM_ARGS: &[&str] = &[
    "--nodes", "4", "--pods", "20", "--churn", "15", "--seed", "11", "--pace", "0.5",
];

fn run_for(d: Duration) {
    std::thread::sleep(d);
}

/// A simulator with a recorder attached that has finished its first list.
struct Session {
    sim: SimProcess,
    db: std::path::PathBuf,
    rec: RecorderProcess,
    started: i64,
}

impl Session {
    fn start(sim_args: &[&str]) -> Session {
        let sim = SimProcess::spawn(sim_args);
        let db = sim.dir().join("trail.db");
        let started = now_ms();
        let rec =
            RecorderProcess::spawn(sim.kubeconfig_path(), &db, &sim.dir().join("rec.log"), &[]);
        rec.wait_for_log(
            "initial list of pods and nodes done",
            Duration::from_secs(30),
        );
        Session {
            sim,
            db,
            rec,
            started,
        }
    }

    /// Settles with the given gaps besides the one before the recorder started, stops the
    /// recorder (which must exit 0) and returns the comparison and the recorder's log.
    fn finish(self, mut gaps: Vec<Gap>, timeout: Duration) -> (Comparison, String) {
        gaps.push(before_start(self.started));
        let result = settle(&self.sim, &self.db, &gaps, timeout);
        let log = self.rec.log();
        let status = self.rec.stop();
        assert!(status.success(), "recorder exit: {status:?}\n{log}");
        (result, log)
    }
}

#[test]
fn records_exactly_what_the_simulator_did() {
    let session = Session::start(SIM_ARGS);
    run_for(Duration::from_secs(12));
    let (result, _) = session.finish(vec![], Duration::from_secs(30));
    result.assert_exact();
    assert!(
        result.matched > 200,
        "too little happened to prove anything: {}",
        result.matched
    );
    // Live events were seen live.
    assert!(result.matched_inferred < result.matched / 2, "{result:?}");
}

#[test]
fn nothing_secret_is_stored_and_the_file_is_private() {
    let Session { sim, db, rec, .. } = Session::start(SIM_ARGS);
    run_for(Duration::from_secs(3));
    assert!(rec.stop().success());
    // The simulator's pods carry env values such as DATABASE_PASSWORD=s3cr3t-...; the recorder
    // parses only the fields it uses, so none of that may reach the file.
    let mut bytes = std::fs::read(&db).unwrap();
    bytes.extend(std::fs::read(db.with_extension("db-wal")).unwrap_or_default());
    let text = String::from_utf8_lossy(&bytes);
    for secret in [
        "s3cr3t",
        "DATABASE_PASSWORD",
        "tok_",
        "PROXY_TOKEN",
        "busybox",
    ] {
        assert!(
            !text.contains(secret),
            "{secret:?} was stored in the database"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&db).unwrap().permissions().mode() & 0o777,
        0o600
    );
    drop(sim);
}

#[test]
fn cut_watch_streams_resume_without_loss() {
    let mut args = SIM_ARGS.to_vec();
    args.extend(["--cut-watches-every", "2"]);
    let session = Session::start(&args);
    run_for(Duration::from_secs(12));
    let (result, log) = session.finish(vec![], Duration::from_secs(30));
    result.assert_exact();
    assert!(
        !log.contains("relisting"),
        "a cut stream must resume, not relist:\n{log}"
    );
}

#[test]
fn a_410_relists_once_and_loses_nothing() {
    let session = Session::start(SIM_ARGS);
    run_for(Duration::from_secs(4));
    let fault_at = now_ms();
    session.sim.fault(r#"{"compact":true}"#);
    session.sim.fault(r#"{"cut_watches":true}"#);
    session
        .rec
        .wait_for_log("pod relist done", Duration::from_secs(30));
    let relisted_at = now_ms();
    run_for(Duration::from_secs(6));
    // Changes still in flight when the streams end (published, not yet read) are seen only by
    // the relist, which dates them from the object: a deletionTimestamp has second precision,
    // so such a `terminating` can be up to a second earlier than the truth. The gap starts
    // earlier by that much.
    let gap = Gap::listed(fault_at - 2_000, relisted_at);
    // The node watch relists on its own, possibly later (see the outage test below).
    let nodes_relisted =
        logged_at(&session.rec.log(), "node relist done", fault_at).unwrap_or(i64::MAX / 4);
    let node_gap =
        Gap::listed(fault_at - 2_000, nodes_relisted.max(relisted_at)).only(Subject::Node);
    let (result, log) = session.finish(vec![gap, node_gap], Duration::from_secs(30));
    result.assert_exact();
    assert_eq!(
        log.matches("pod watch: relisting").count(),
        1,
        "exactly one pod relist:\n{log}"
    );
}

#[test]
fn an_outage_of_30_seconds_is_retried_and_reconciled() {
    let session = Session::start(SIM_ARGS);
    run_for(Duration::from_secs(3));
    let outage_at = now_ms();
    session.sim.fault(r#"{"outage_secs":30}"#);
    // The recorder is blind from the outage until its watch is back (its retry backoff may
    // take a few seconds past the outage's end).
    // The watch resumes and the server replays what it missed; changes made meanwhile come
    // behind the replay, so the recorder follows live events again once it has caught up.
    session
        .rec
        .wait_for_log("pod watch caught up", Duration::from_secs(60));
    let caught_up = now_ms();
    run_for(Duration::from_secs(8));
    // The outage ends every stream at once: changes published but not yet read come only with
    // the replay, so the gap starts earlier by the time an event can be in flight.
    let gap = Gap::replayed(outage_at - 2_000, caught_up);
    // The node watch recovers on its own: it knows where its replay ends only at its first
    // event after the outage, and follows live events from the one after that, which on a
    // loaded machine can come well after the pods caught up (or not before the end).
    let nodes_caught_up =
        logged_at(&session.rec.log(), "node watch caught up", outage_at).unwrap_or(i64::MAX / 4);
    let node_gap =
        Gap::replayed(outage_at - 2_000, nodes_caught_up.max(caught_up)).only(Subject::Node);
    let (result, log) = session.finish(vec![gap, node_gap], Duration::from_secs(40));
    result.assert_exact();
    assert!(
        log.contains("retrying"),
        "the outage is reported while retrying:\n{log}"
    );
    assert!(
        result.matched_inferred > 0,
        "the outage's changes are inferred: {result:?}"
    );
}

#[test]
fn kill_9_then_restart_on_the_same_file_loses_and_duplicates_nothing() {
    let mut session = Session::start(SIM_ARGS);
    run_for(Duration::from_secs(6));
    let killed_at = now_ms();
    let log = session.sim.dir().join("rec.log");
    let kubeconfig = session.sim.kubeconfig_path().to_path_buf();
    session.rec = {
        let first = std::mem::replace(&mut session.rec, RecorderProcess::placeholder());
        first.kill_9();
        run_for(Duration::from_secs(5));
        std::fs::write(&log, "").unwrap();
        RecorderProcess::spawn(&kubeconfig, &session.db, &log, &[])
    };
    session.rec.wait_for_log(
        "initial list of pods and nodes done",
        Duration::from_secs(30),
    );
    let restarted_at = now_ms();
    run_for(Duration::from_secs(6));
    // Rows received but not yet committed when the process died are lost with it (the writer
    // commits every ~100 ms); the restart must infer them, so the gap starts a little earlier.
    let gap = Gap::listed(killed_at - 2_000, restarted_at);
    let (result, log) = session.finish(vec![gap], Duration::from_secs(30));
    result.assert_exact();
    assert!(
        log.contains("resuming"),
        "the restart reconciles against the database:\n{log}"
    );
}
