//! Kubernetes Events recorded from `kubetrail simulate`: what `kubetrail query events` returns
//! must equal what the simulator's API serves (read here with plain HTTP and serde_json, not
//! with the recorder's decoder), across a restart seconds or an hour of cluster time later
//! (nothing twice, nothing lost), and a flood of events must not hold back pod transitions.

#[path = "common/compare.rs"]
mod compare;
#[path = "common/recorder.rs"]
mod recorder;
#[path = "common/sim.rs"]
mod sim;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use compare::{Gap, compare, read_recorded};
use recorder::{RecorderProcess, now_ms};
use serde_json::Value;
use sim::SimProcess;

/// What both sides must agree on for one event.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    kind: String,
    name: String,
    reason: String,
    event_type: String,
    count: i64,
}

/// The Pod and Node events the simulator serves now, by uid, from `events.k8s.io/v1`.
fn served(sim: &SimProcess) -> BTreeMap<String, Seen> {
    let (status, body) = sim.get("/apis/events.k8s.io/v1/events");
    assert_eq!(status, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    let mut out = BTreeMap::new();
    for e in list["items"].as_array().unwrap() {
        let kind = e["regarding"]["kind"].as_str().unwrap_or_default();
        if kind != "Pod" && kind != "Node" {
            continue;
        }
        let count = e["series"]["count"]
            .as_i64()
            .or(e["deprecatedCount"].as_i64())
            .unwrap_or(1);
        out.insert(
            e["metadata"]["uid"].as_str().unwrap().to_string(),
            Seen {
                kind: kind.to_string(),
                name: e["regarding"]["name"].as_str().unwrap().to_string(),
                reason: e["reason"].as_str().unwrap().to_string(),
                event_type: e["type"].as_str().unwrap().to_string(),
                count,
            },
        );
    }
    out
}

/// What `kubetrail query events -o json` says, by uid, without the events the simulator has
/// expired since (last seen over its one-hour TTL ago): the recorder keeps those.
fn recorded(db: &Path) -> BTreeMap<String, Seen> {
    let expired_before = now_ms() - 3_600_000 + 60_000;
    recorded_all(db)
        .into_iter()
        .filter(|(_, (_, last_seen))| *last_seen >= expired_before)
        .map(|(uid, (seen, _))| (uid, seen))
        .collect()
}

/// Every recorded event, by uid, with its last seen time.
fn recorded_all(db: &Path) -> BTreeMap<String, (Seen, i64)> {
    let out = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args(["query", "events", "-o", "json", "--db"])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut map = BTreeMap::new();
    for e in rows.as_array().unwrap() {
        let uid = e["uid"].as_str().unwrap().to_string();
        let seen = Seen {
            kind: e["kind"].as_str().unwrap().to_string(),
            name: e["name"].as_str().unwrap().to_string(),
            reason: e["reason"].as_str().unwrap().to_string(),
            event_type: e["type"].as_str().unwrap().to_string(),
            count: e["count"].as_i64().unwrap(),
        };
        let last_seen = e["last_seen_ms"].as_i64().unwrap();
        assert!(
            map.insert(uid.clone(), (seen, last_seen)).is_none(),
            "{uid} twice"
        );
    }
    map
}

/// Waits until the recorded events equal the served ones (the simulator is paused).
fn settle_events(sim: &SimProcess, db: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let (want, got) = (served(sim), recorded(db));
        if want == got {
            return;
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = want
                .iter()
                .filter(|(u, s)| got.get(*u) != Some(s))
                .collect();
            let extra: Vec<_> = got.keys().filter(|u| !want.contains_key(*u)).collect();
            panic!(
                "recorded events differ from the served ones: {} served, {} recorded\n\
                 missing or different: {:?}\nnot served: {:?}",
                want.len(),
                got.len(),
                &missing[..missing.len().min(10)],
                &extra[..extra.len().min(10)]
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

const SIM_ARGS: &[&str] = &[
    "--nodes", "3", "--pods", "20", "--churn", "2", "--seed", "1",
];

fn spawn_recorder(sim: &SimProcess, db: &Path, extra: &[&str]) -> RecorderProcess {
    let rec = RecorderProcess::spawn(sim.kubeconfig_path(), db, &sim.dir().join("rec.log"), extra);
    rec.wait_for_log("event list done", Duration::from_secs(30));
    rec
}

#[test]
fn recorded_events_equal_what_the_simulator_serves() {
    let sim = SimProcess::spawn(SIM_ARGS);
    let db = sim.dir().join("trail.db");
    let rec = spawn_recorder(&sim, &db, &[]);
    std::thread::sleep(Duration::from_secs(8));
    sim.pause();
    settle_events(&sim, &db, Duration::from_secs(30));
    let got = recorded(&db);
    let reasons: std::collections::BTreeSet<&str> =
        got.values().map(|s| s.reason.as_str()).collect();
    for reason in [
        "Scheduled",
        "Pulling",
        "Pulled",
        "Created",
        "Started",
        "Killing",
    ] {
        assert!(reasons.contains(reason), "no {reason} in {reasons:?}");
    }
    assert!(
        got.values().any(|s| s.count > 1),
        "no series grew: nothing proves counts"
    );
    assert!(rec.stop().success());
}

/// The `new_or_grown` figure of the last "event list done" line of the log.
fn last_list_writes(log: &str) -> usize {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("event list done"))
        .expect("an event list");
    let value = line.split("new_or_grown=").nth(1).unwrap();
    value.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn a_restart_writes_only_what_is_new_and_loses_nothing() {
    let sim = SimProcess::spawn(SIM_ARGS);
    let db = sim.dir().join("trail.db");
    let rec = spawn_recorder(&sim, &db, &[]);
    std::thread::sleep(Duration::from_secs(4));
    assert!(rec.stop().success());
    // Everything the store holds, even events the simulator is about to expire: the recorder
    // remembers all of them at its restart, so none of them counts as new (`recorded` leaves
    // out those within a minute of the one-hour edge).
    let before: BTreeMap<String, Seen> = recorded_all(&db)
        .into_iter()
        .map(|(uid, (seen, _))| (uid, seen))
        .collect();
    // The cluster goes on while kubetrail is away, then stands still for the comparison.
    std::thread::sleep(Duration::from_secs(4));
    sim.pause();
    let served_now = served(&sim);
    let expected_writes = served_now
        .iter()
        .filter(|(uid, s)| before.get(*uid).is_none_or(|b| b.count < s.count))
        .count();
    assert!(expected_writes > 0, "nothing happened while away");
    let rec = spawn_recorder(&sim, &db, &[]);
    settle_events(&sim, &db, Duration::from_secs(30));
    let log = rec.log();
    assert!(rec.stop().success());
    // The relist wrote exactly the new and grown events: none of the others a second time.
    assert_eq!(last_list_writes(&log), expected_writes, "{log}");
    // Nothing recorded before the restart was lost (events the simulator expired included).
    let after: BTreeMap<String, Seen> = recorded_all(&db)
        .into_iter()
        .map(|(uid, (seen, _))| (uid, seen))
        .collect();
    for (uid, seen) in &before {
        let now = after.get(uid).expect("lost across the restart");
        assert!(now.count >= seen.count, "{uid}: {seen:?} -> {now:?}");
    }
}

/// A restart an hour of cluster time later, as after a real hour away: the API server has
/// expired every event older than its one-hour TTL, the recorder's memory of what it wrote
/// reaches an hour back, and the relist must write each event it still serves once, those
/// already written never again.
#[test]
fn a_restart_an_hour_of_cluster_time_later_writes_no_event_twice() {
    // The cluster's clock starts an hour behind the wall clock; the hour is then run at once
    // (`/_sim/advance`) while kubetrail is away, so that at the restart both clocks agree, as
    // they would after a real hour.
    let start = kubetrail::model::time::format_time_ms(now_ms() - 3_600_000);
    // Fewer new pods than the other tests (one every 2 s), so that the hour runs in seconds.
    let args = [
        "--nodes",
        "3",
        "--pods",
        "20",
        "--churn",
        "0.5",
        "--seed",
        "1",
        "--start-time",
        start.as_str(),
    ];
    let sim = SimProcess::spawn(&args);
    let db = sim.dir().join("trail.db");
    let rec = spawn_recorder(&sim, &db, &[]);
    std::thread::sleep(Duration::from_secs(4));
    assert!(rec.stop().success());
    let before: BTreeMap<String, Seen> = recorded_all(&db)
        .into_iter()
        .map(|(uid, (seen, _))| (uid, seen))
        .collect();
    assert!(!before.is_empty(), "nothing was recorded before the hour");

    sim.advance(3_600.0);
    sim.pause();
    let served_now = served(&sim);
    let expired = before
        .keys()
        .filter(|u| !served_now.contains_key(*u))
        .count();
    assert!(
        expired > 0,
        "the hour expired none of the {} events recorded before it",
        before.len()
    );
    let expected_writes = served_now
        .iter()
        .filter(|(uid, s)| before.get(*uid).is_none_or(|b| b.count < s.count))
        .count();
    assert!(
        expected_writes > 100,
        "the hour made only {expected_writes} events"
    );

    let rec = spawn_recorder(&sim, &db, &[]);
    // Every served event recorded as served (the expired ones stay recorded too).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = recorded_all(&db);
        let missing = served_now
            .iter()
            .filter(|(uid, s)| got.get(*uid).map(|(seen, _)| seen) != Some(*s))
            .count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} served events are not recorded as served",
            served_now.len()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = rec.log();
    assert!(rec.stop().success());
    assert_eq!(last_list_writes(&log), expected_writes, "{log}");
    let after = recorded_all(&db);
    for (uid, seen) in &before {
        let (now, _) = after.get(uid).expect("lost across the hour");
        assert!(now.count >= seen.count, "{uid}: {seen:?} -> {now:?}");
    }
    assert_eq!(
        after.len(),
        before.len()
            + served_now
                .keys()
                .filter(|u| !before.contains_key(*u))
                .count(),
        "recorded events are what was recorded before and what is served now"
    );
}

/// The dropped total the recorder logged last (0 when it dropped nothing).
fn dropped_total(log: &str) -> u64 {
    log.lines()
        .rev()
        .find_map(|l| l.split("dropped_total=").nth(1))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn an_event_flood_never_holds_back_pod_transitions() {
    // Heavy churn makes thousands of events a minute (eight or so per pod); the queue to the
    // writer holds only 20 of them, so a burst overflows it.
    let sim = SimProcess::spawn(&[
        "--nodes", "4", "--pods", "20", "--churn", "15", "--seed", "11", "--pace", "0.5",
    ]);
    let db = sim.dir().join("trail.db");
    let started = now_ms();
    let rec = spawn_recorder(&sim, &db, &["--event-queue-rows", "20"]);
    rec.wait_for_log(
        "initial list of pods and nodes done",
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_secs(10));
    sim.pause();
    let paused_at = Instant::now();
    // Every pod transition is committed within a bounded lag of the pause.
    // The initial list of a churning cluster takes a moment: what happened before it ended
    // is reconstructed, and compared as such.
    let listed = recorder::logged_at(&rec.log(), "initial list of pods and nodes done", started)
        .unwrap_or(started);
    let gaps = vec![Gap::listed(0, listed + 2_000)];
    let deadline = Instant::now() + Duration::from_secs(10);
    let result = loop {
        let result = compare(&sim.truth(), &read_recorded(&db), &gaps);
        if (result.missing.is_empty() && result.unexpected.is_empty()) || Instant::now() > deadline
        {
            break result;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let lag = paused_at.elapsed();
    result.assert_exact();
    assert!(result.matched > 500, "too little churn: {}", result.matched);
    assert!(lag < Duration::from_secs(10), "transitions lagged {lag:?}");
    std::thread::sleep(Duration::from_secs(1));
    let log = rec.log();
    assert!(rec.stop().success());
    let dropped = dropped_total(&log);
    let served = served(&sim).len() as u64;
    let kept = recorded(&db).len() as u64;
    eprintln!("events served {served}, recorded {kept}, dropped {dropped}; transition lag {lag:?}");
    if dropped > 0 {
        assert!(log.contains("events dropped so that pod transitions are not delayed"));
    } else {
        assert_eq!(kept, served, "nothing dropped, so nothing may be missing");
    }
}

#[test]
fn events_and_owners_are_listed_only_once_the_initial_list_is_committed() {
    // The events list is about as big as the pods' (a few events per pod): listed at once, it
    // took the writer's time from the initial list and overflowed the queue (dropped events).
    // The owners' list (a Job for every third pod) took the writer's time and memory too.
    let sim = SimProcess::spawn(&["--nodes", "50", "--pods", "3000", "--seed", "3", "--paused"]);
    let db = sim.dir().join("trail.db");
    let rec = spawn_recorder(&sim, &db, &[]);
    let sides = [
        "watching events.k8s.io/v1 Events",
        "watching apps/v1 replicasets",
        "watching batch/v1 jobs",
    ];
    for line in ["initial list committed to the database"]
        .iter()
        .chain(&sides)
    {
        rec.wait_for_log(line, Duration::from_secs(30));
    }
    let log = rec.log();
    let at = |needle: &str| {
        log.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in the log:\n{log}"))
    };
    for side in sides {
        assert!(
            at("initial list committed to the database") < at(side),
            "{side:?} began before the initial list was committed:\n{log}"
        );
    }
    // Nothing is lost by waiting: every event the simulator serves is recorded, as served.
    // (The recorder also keeps those the simulator has let expire since, so this is a subset
    // check, not the equality of `settle_events`, whose window at the one-hour edge a cluster
    // of this size always has a few events in.)
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let want = served(&sim);
        let got = recorded_all(&db);
        let missing: Vec<_> = want
            .iter()
            .filter(|(uid, seen)| got.get(*uid).map(|(s, _)| s) != Some(seen))
            .collect();
        if missing.is_empty() {
            assert!(want.len() > 3000, "too few events served: {}", want.len());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} served events not recorded: {:?}",
            missing.len(),
            want.len(),
            &missing[..missing.len().min(5)]
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(dropped_total(&rec.log()), 0);
    assert!(rec.stop().success());
}
