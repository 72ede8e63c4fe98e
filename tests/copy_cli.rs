//! `kubetrail copy`: a SQLite history moved into PostgreSQL reads the same there (reports
//! compared with the file's own, not with constants), a second copy adds nothing, a copy of a
//! file that has grown adds only what is new, an interrupted copy is finished by running it
//! again, the cluster's recorder lock is honoured both ways, and bad input is refused with a
//! message that names the problem.

#[path = "common/fixture.rs"]
mod fixture;
#[path = "common/recorder.rs"]
mod recorder;
#[path = "common/sim.rs"]
mod sim;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fixture::*;
use kubetrail::model::{Phase, TransitionKind};
use kubetrail::retention::{Pass, Policy};
use kubetrail::store::sqlite::db::open_for_maintenance;
use kubetrail::store::{Batch, HistoryWriter, NodeCapacityRow, NodeResources, PodResourcesRow};
use kubetrail_pgtest::PgServer;
use recorder::{RecorderProcess, now_ms};
use sim::SimProcess;

/// The tables a copy fills, as (name, rows of `cluster` in PostgreSQL, rows in the file).
const COUNTS: &[(&str, &str, &str)] = &[
    (
        "nodes",
        "SELECT count(*) FROM nodes WHERE cluster_id = $1",
        "SELECT count(*) FROM nodes",
    ),
    (
        "pods",
        "SELECT count(*) FROM pods WHERE cluster_id = $1",
        "SELECT count(*) FROM pods",
    ),
    (
        "pod_state",
        "SELECT count(*) FROM pod_state s JOIN pods p ON p.id = s.pod_id WHERE p.cluster_id = $1",
        "SELECT count(*) FROM pod_state",
    ),
    (
        "label_sets",
        "SELECT count(*) FROM label_sets WHERE cluster_id = $1",
        "SELECT count(*) FROM label_sets",
    ),
    (
        "transitions",
        "SELECT count(*) FROM transitions WHERE cluster_id = $1",
        "SELECT count(*) FROM transitions",
    ),
    (
        "pod_resources",
        "SELECT count(*) FROM pod_resources r JOIN pods p ON p.id = r.pod_id WHERE p.cluster_id = $1",
        "SELECT count(*) FROM pod_resources",
    ),
    (
        "node_capacity",
        "SELECT count(*) FROM node_capacity c JOIN nodes n ON n.id = c.node_id WHERE n.cluster_id = $1",
        "SELECT count(*) FROM node_capacity",
    ),
    (
        "node_usage",
        "SELECT count(*) FROM node_usage WHERE cluster_id = $1",
        "SELECT count(*) FROM node_usage",
    ),
    (
        "node_usage_rollup",
        "SELECT count(*) FROM node_usage_rollup WHERE cluster_id = $1",
        "SELECT count(*) FROM node_usage_rollup",
    ),
    (
        "usage_containers",
        "SELECT count(*) FROM usage_containers WHERE cluster_id = $1",
        "SELECT count(*) FROM usage_containers",
    ),
    (
        "container_usage",
        "SELECT count(*) FROM container_usage u JOIN usage_containers c ON c.id = u.container_id WHERE c.cluster_id = $1",
        "SELECT count(*) FROM container_usage",
    ),
    (
        "node_usage_samples",
        "SELECT count(*) FROM node_usage_samples s JOIN nodes n ON n.id = s.node_id WHERE n.cluster_id = $1",
        "SELECT count(*) FROM node_usage_samples",
    ),
    (
        "container_usage_hourly",
        "SELECT count(*) FROM container_usage_hourly h JOIN usage_containers c ON c.id = h.container_id WHERE c.cluster_id = $1",
        "SELECT count(*) FROM container_usage_hourly",
    ),
    (
        "node_usage_samples_hourly",
        "SELECT count(*) FROM node_usage_samples_hourly h JOIN nodes n ON n.id = h.node_id WHERE n.cluster_id = $1",
        "SELECT count(*) FROM node_usage_samples_hourly",
    ),
    (
        "recording_sessions",
        "SELECT count(*) FROM recording_sessions WHERE cluster_id = $1",
        "SELECT count(*) FROM recording_sessions",
    ),
    (
        "quarantine",
        "SELECT count(*) FROM quarantine WHERE cluster_id = $1",
        "SELECT count(*) FROM quarantine",
    ),
    (
        "events",
        "SELECT count(*) FROM events WHERE cluster_id = $1",
        "SELECT count(*) FROM events",
    ),
    (
        "event_occurrences",
        "SELECT count(*) FROM event_occurrences WHERE cluster_id = $1",
        "SELECT count(*) FROM event_occurrences",
    ),
    (
        "owners",
        "SELECT count(*) FROM owners WHERE cluster_id = $1",
        "SELECT count(*) FROM owners",
    ),
    (
        "owner_scales",
        "SELECT count(*) FROM owner_scales WHERE cluster_id = $1",
        "SELECT count(*) FROM owner_scales",
    ),
];

fn pg(conninfo: &str) -> postgres::Client {
    postgres::Client::connect(conninfo, postgres::NoTls).expect("connect to the test server")
}

fn pg_counts(conninfo: &str, cluster: &str) -> BTreeMap<&'static str, i64> {
    let mut c = pg(conninfo);
    let id: i32 = c
        .query_one("SELECT id FROM clusters WHERE name = $1", &[&cluster])
        .expect("the cluster is registered")
        .get(0);
    COUNTS
        .iter()
        .map(|(name, sql, _)| (*name, c.query_one(*sql, &[&id]).unwrap().get(0)))
        .collect()
}

fn file_counts(file: &Path) -> BTreeMap<&'static str, i64> {
    let c = rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    COUNTS
        .iter()
        .map(|(name, _, sql)| (*name, c.query_row(sql, [], |r| r.get(0)).unwrap()))
        .collect()
}

/// `kubetrail copy --from FILE --to URL --cluster NAME ARGS`.
fn copy(file: &Path, url: &str, cluster: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "copy",
        "--from",
        file.to_str().unwrap(),
        "--to",
        url,
        "--cluster",
        cluster,
    ];
    args.extend_from_slice(extra);
    kubetrail(&args)
}

/// The summary's table: name -> [rows, new, updated, already there].
fn summary(stdout: &str) -> BTreeMap<String, [u64; 4]> {
    stdout
        .lines()
        .filter(|l| l.starts_with("  ") && !l.trim_start().starts_with("table"))
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            let n = |i: usize| cells[i].parse::<u64>().unwrap();
            (cells[0].to_string(), [n(1), n(2), n(3), n(4)])
        })
        .collect()
}

/// The reports a user would read, each on the file and on the database's cluster, in one
/// fixed window (so that "now" cannot move between the two); asserts they are equal and not
/// empty.
fn assert_same_reports(file: &Path, url: &str, cluster: &str, since_ms: i64, until_ms: i64) {
    let (since, until) = (rfc3339(since_ms), rfc3339(until_ms));
    let window = ["--since", since.as_str(), "--until", until.as_str()];
    let from_file = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--db", file.to_str().unwrap()]);
        kubetrail(&all).ok().to_string()
    };
    let from_db = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--db", url, "--cluster", cluster]);
        kubetrail(&all).ok().to_string()
    };
    let pods = from_file(&[&["query", "pods", "-o", "json"][..], &window].concat());
    let listed = parse_json(&pods);
    assert!(!listed.is_empty(), "the file lists no pods:\n{pods}");
    // One pod's history: the one with the most to tell.
    let (ns, name) = busiest(&listed);
    let reports: Vec<Vec<&str>> = vec![
        [&["query", "pods", "-o", "json"][..], &window].concat(),
        [&["query", "pods"][..], &window].concat(),
        [&["query", "transitions", "-o", "json"][..], &window].concat(),
        [&["query", "transitions"][..], &window].concat(),
        [
            &["query", "history", &name, "-n", &ns, "-o", "json"][..],
            &window,
        ]
        .concat(),
        [
            &["query", "nodes", "-o", "json", "--step", "1h"][..],
            &window,
        ]
        .concat(),
        [&["query", "nodes", "--step", "10m"][..], &window].concat(),
        [&["export", "transitions"][..], &window].concat(),
        [&["export", "pods"][..], &window].concat(),
        [&["query", "events", "-o", "json"][..], &window].concat(),
        [&["query", "workloads", "-o", "json"][..], &window].concat(),
        [&["export", "workloads"][..], &window].concat(),
        [&["query", "usage", "-o", "json"][..], &window].concat(),
        [
            &["query", "usage", "--by", "container", "-o", "json"][..],
            &window,
        ]
        .concat(),
        [&["export", "usage"][..], &window].concat(),
    ];
    for args in reports {
        let (a, b) = (from_file(&args), from_db(&args));
        assert!(!a.trim().is_empty(), "{args:?} printed nothing");
        assert_eq!(a, b, "`kubetrail {}` differs", args.join(" "));
    }
}

fn sha(file: &Path) -> Vec<u8> {
    // Not a cryptographic hash: the file's bytes, compared whole.
    std::fs::read(file).unwrap()
}

#[test]
fn a_recorded_history_reads_the_same_after_a_copy_and_copying_again_adds_only_what_is_new() {
    let sim = SimProcess::spawn(&[
        "--nodes", "3", "--pods", "12", "--churn", "12", "--seed", "41", "--pace", "0.5",
    ]);
    let file = sim.dir().join("trail.db");
    let log = sim.dir().join("rec.log");
    let started = now_ms();
    let rec = RecorderProcess::spawn(
        sim.kubeconfig_path(),
        &file,
        &log,
        &["--usage-interval", "1s"],
    );
    rec.wait_for_log("initial list committed", Duration::from_secs(30));
    rec.wait_for_log(
        "the metrics API (metrics.k8s.io) answers",
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_secs(4));
    assert!(rec.stop().success());
    let until = now_ms();
    let before = sha(&file);

    let server = PgServer::shared();
    let conninfo = server.fresh_database();
    let url = server.url(&conninfo);
    let first = copy(&file, &url, "east", &["--chunk-rows", "7"]);
    let table = summary(first.ok());
    assert_eq!(sha(&file), before, "the copy changed its source");
    let counts = file_counts(&file);
    assert!(
        counts["transitions"] > 20,
        "too little happened: {counts:?}"
    );
    assert!(
        counts["pod_state"] > 0 && counts["label_sets"] > 0,
        "{counts:?}"
    );
    assert!(
        counts["owners"] > 0
            && counts["owner_scales"] > 0
            && counts["events"] > 0
            && counts["container_usage"] > 0
            && counts["node_usage_samples"] > 0,
        "the simulator's ReplicaSets, Jobs, Events and measured usage were not recorded: {counts:?}"
    );
    assert_eq!(pg_counts(&conninfo, "east"), counts);
    assert_eq!(
        table["transitions"][1] as i64, counts["transitions"],
        "{table:?}"
    );
    assert!(
        first.stderr.contains("copy:   transitions:"),
        "no progress on stderr:\n{}",
        first.stderr
    );
    assert_same_reports(&file, &url, "east", started - 60_000, until);

    // Again: nothing is new, nothing changes.
    let second = copy(&file, &url, "east", &[]);
    for (name, [rows, new, updated, present]) in summary(second.ok()) {
        assert_eq!(
            (new, updated, present),
            (0, 0, rows),
            "{name}:\n{}",
            second.stdout
        );
    }
    assert_eq!(pg_counts(&conninfo, "east"), counts);

    // The file grows (a second recording session); a copy adds what is new, and the pods that
    // ended meanwhile end in the database too.
    let log = sim.dir().join("rec2.log");
    let rec = RecorderProcess::spawn(sim.kubeconfig_path(), &file, &log, &[]);
    rec.wait_for_log("initial list committed", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(4));
    assert!(rec.stop().success());
    let until = now_ms();
    let grown = file_counts(&file);
    assert!(grown["transitions"] > counts["transitions"], "{grown:?}");
    let third = copy(&file, &url, "east", &[]);
    let table = summary(third.ok());
    assert_eq!(
        table["transitions"][1] as i64,
        grown["transitions"] - counts["transitions"],
        "{}",
        third.stdout
    );
    assert_eq!(table["recording_sessions"][1], 1, "{}", third.stdout);
    assert_eq!(pg_counts(&conninfo, "east"), grown);
    assert_same_reports(&file, &url, "east", started - 60_000, until);

    // The same file copied into a second cluster: every uid is now in two clusters. A history
    // over both finds each pod twice, and each incarnation holds its own cluster's
    // transitions, as many as the file's.
    copy(&file, &url, "west", &[]).ok();
    let (ns, name) = busiest_pod(&file);
    let history = |db: &str| {
        let out = kubetrail(&[
            "query", "history", &name, "-n", &ns, "-o", "json", "--db", db,
        ]);
        parse_json(out.ok())
    };
    let alone = history(file.to_str().unwrap());
    let both = history(&url);
    assert_eq!(both.len(), 2 * alone.len(), "{both:?}");
    for inc in &both {
        let transitions = inc["transitions"].as_array().unwrap();
        let clusters: std::collections::BTreeSet<&str> = transitions
            .iter()
            .map(|t| t["cluster"].as_str().unwrap())
            .collect();
        assert_eq!(
            clusters.len(),
            1,
            "one incarnation, two clusters' rows: {inc}"
        );
        let same = alone.iter().find(|a| a["uid"] == inc["uid"]).unwrap();
        assert_eq!(
            transitions.len(),
            same["transitions"].as_array().unwrap().len(),
            "{inc}"
        );
    }
}

/// (namespace, name) of the pod with the most restarts in the file.
fn busiest_pod(file: &Path) -> (String, String) {
    let pods = kubetrail(&[
        "query",
        "pods",
        "-o",
        "json",
        "--db",
        file.to_str().unwrap(),
    ]);
    busiest(&parse_json(pods.ok()))
}

/// (namespace, name) of the listed pod with the most restarts (the last of equals).
fn busiest(listed: &[serde_json::Value]) -> (String, String) {
    let pod = listed
        .iter()
        .max_by_key(|p| p["restarts"].as_i64().unwrap_or(0))
        .expect("pods listed");
    (
        pod["namespace"].as_str().unwrap().to_string(),
        pod["name"].as_str().unwrap().to_string(),
    )
}

/// A file with everything a long-lived one has: rollups beside raw usage, capacity and
/// resource history, sessions with a gap, a quarantined row. Times relative to `base`.
fn built_history(base: i64) -> FixtureDb {
    use TransitionKind::*;
    let db = FixtureDb::new();
    let mut batch = Batch::default();
    batch.nodes.push(
        node("n1-uid", "node-1", base - DAY)
            .allocatable(4000, 8 * GI, 110)
            .build(),
    );
    batch.nodes.push(
        node("n2-uid", "node-2", base)
            .allocatable(2000, 4 * GI, 110)
            .deleted(base + 20 * HOUR)
            .build(),
    );
    batch.pods.push(
        pod("p1-uid", "shop", "web-0", base + MIN)
            .node("node-1")
            .labels(&[("app", "web")])
            .requests(500, GI)
            .started(base + 2 * MIN)
            .finished(base + 5 * HOUR, Phase::Failed, Some("OOMKilled"))
            .deleted(base + 5 * HOUR + 5 * SEC)
            .build(),
    );
    let mut open = pod("p2-uid", "shop", "web-1", base + 10 * MIN)
        .node("node-1")
        .labels(&[("app", "web")])
        .requests(250, GI / 2)
        .started(base + 11 * MIN)
        .phase(Phase::Running)
        .restarts(2)
        .build();
    open.state = br#"{"phase":"Running","restarts":2}"#.to_vec();
    batch.pods.push(open);
    let mut other = pod("p3-uid", "batch", "job-x", base + HOUR)
        .node("node-2")
        .requests(1000, 2 * GI)
        .started(base + HOUR + MIN)
        .phase(Phase::Running)
        .build();
    other.state = br#"{"phase":"Running"}"#.to_vec();
    batch.pods.push(other);
    batch.transitions.extend([
        transition("p1-uid", Created, base + MIN)
            .phases(None, Some(Phase::Pending))
            .build(),
        transition("p1-uid", Started, base + 2 * MIN).build(),
        transition("p1-uid", ContainerTerminated, base + 5 * HOUR)
            .container("app")
            .reason("OOMKilled")
            .exit_code(137)
            .build(),
        transition("p1-uid", Failed, base + 5 * HOUR)
            .phases(Some(Phase::Running), Some(Phase::Failed))
            .reason("OOMKilled")
            .build(),
        transition("p1-uid", Deleted, base + 5 * HOUR + 5 * SEC).build(),
        transition("p2-uid", Created, base + 10 * MIN).build(),
        transition("p2-uid", ContainerRestarted, base + 2 * HOUR)
            .container("app")
            .restart_count(1)
            .seq(1)
            .build(),
        transition("p2-uid", ContainerRestarted, base + 2 * HOUR)
            .container("app")
            .restart_count(2)
            .seq(2)
            .build(),
        transition("p3-uid", Created, base + HOUR).build(),
        node_transition("n2-uid", NodeNotReady, base + 19 * HOUR).build(),
        node_transition("n2-uid", NodeDeleted, base + 20 * HOUR)
            .inferred()
            .build(),
    ]);
    batch.pod_resources.extend([
        PodResourcesRow {
            pod_uid: "p2-uid".into(),
            at_ms: base + 10 * MIN,
            resources: Default::default(),
        },
        PodResourcesRow {
            pod_uid: "p2-uid".into(),
            at_ms: base + 3 * HOUR,
            resources: open_resources(),
        },
    ]);
    batch.node_capacity.push(NodeCapacityRow {
        node_uid: "n1-uid".into(),
        at_ms: base - DAY,
        capacity: NodeResources {
            cpu_millis: 4000,
            memory_bytes: 8 * GI,
            pods: 110,
        },
        allocatable: NodeResources {
            cpu_millis: 4000,
            memory_bytes: 8 * GI,
            pods: 110,
        },
    });
    // Two days of usage steps on node-1, every 20 minutes; node-2 while it lived.
    let mut at = base;
    let mut i = 0;
    while at < base + 2 * DAY {
        batch.node_usage.push(
            usage("n1-uid", at)
                .requested(500 + (i % 7) * 250, GI + (i % 5) * GI / 4)
                .pods(1 + i % 4)
                .allocatable(4000, 8 * GI)
                .build(),
        );
        if at < base + 20 * HOUR {
            batch.node_usage.push(
                usage("n2-uid", at)
                    .requested(1000, 2 * GI)
                    .pods(1)
                    .allocatable(2000, 4 * GI)
                    .build(),
            );
        }
        at += 20 * MIN;
        i += 1;
    }
    db.write(&batch);
    db.session(base - HOUR, base + DAY, true, None, None);
    db.session(base + DAY + HOUR, base + 2 * DAY, false, None, None);
    db.with_writer(|c| {
        c.execute(
            "INSERT INTO quarantine (at_ms, kind, error, row) VALUES (?1, 'pods', 'bad', 'PodRow {..}')",
            [base + HOUR],
        )
        .unwrap();
    });
    // Retention rolls up the first day and a half: raw rows stay for the last half day only.
    let mut conn = open_for_maintenance(&db.path).unwrap();
    let policy = Policy {
        max_age_ms: None,
        raw_usage_age_ms: Some(12 * HOUR),
        rollup_age_ms: None,
        max_db_bytes: None,
    };
    Pass::new(policy, base + 2 * DAY).run(&mut conn).unwrap();
    db
}

fn open_resources() -> kubetrail::model::Effective {
    kubetrail::model::Effective {
        requests: kubetrail::model::Resources::new(300, GI / 2),
        limits: kubetrail::model::Resources::new(600, GI),
    }
}

#[test]
fn a_long_history_with_rollups_sessions_and_quarantine_copies_whole() {
    let base = (now_ms() - 3 * DAY) / HOUR * HOUR;
    let db = built_history(base);
    let counts = file_counts(&db.path);
    assert!(counts["node_usage_rollup"] > 20, "{counts:?}");
    assert!(counts["node_usage"] > 20, "{counts:?}");
    let server = PgServer::shared();
    let conninfo = server.fresh_database();
    let url = server.url(&conninfo);
    copy(&db.path, &url, "west", &["--chunk-rows", "9"]).ok();
    assert_eq!(pg_counts(&conninfo, "west"), counts);
    assert_same_reports(&db.path, &url, "west", base - DAY, base + 2 * DAY + HOUR);
    let stats = |args: &[&str]| -> serde_json::Value {
        serde_json::from_str(kubetrail(args).ok()).unwrap()
    };
    let a = stats(&["stats", "-o", "json", "--db", db.path_str()]);
    let b = stats(&["stats", "-o", "json", "--db", &url, "--cluster", "west"]);
    for key in [
        "quarantined_rows",
        "open_pods",
        "ended_pods",
        "open_nodes",
        "deleted_nodes",
    ] {
        assert_eq!(a[key], b[key], "stats {key}: {a} vs {b}");
    }
    assert_eq!(a["quarantined_rows"], 1);
    let again = copy(&db.path, &url, "west", &[]);
    for (name, [rows, new, updated, _]) in summary(again.ok()) {
        assert_eq!(
            (new, updated),
            (0, 0),
            "{name} ({rows} rows):\n{}",
            again.stdout
        );
    }
    assert_eq!(pg_counts(&conninfo, "west"), counts);
}

fn pod_row(conninfo: &str, uid: &str) -> (Option<i64>, i64, Option<Vec<u8>>) {
    let r = pg(conninfo)
        .query_one(
            "SELECT p.deleted_at_ms, p.restarts, s.state FROM pods p
             LEFT JOIN pod_state s ON s.pod_id = p.id WHERE p.uid = $1",
            &[&uid],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

#[test]
fn where_both_hold_a_pod_the_newer_history_wins_and_an_ended_pod_stays_ended() {
    let base = (now_ms() - 3 * DAY) / HOUR * HOUR;
    let db = built_history(base);
    let server = PgServer::shared();
    let conninfo = server.fresh_database();
    let url = server.url(&conninfo);
    copy(&db.path, &url, "east", &[]).ok();

    // The database records on (a recorder of its own, later than the file): p2 restarts
    // again there, and its session ends after the file's.
    let mut c = pg(&conninfo);
    c.batch_execute(&format!(
        "UPDATE pods SET restarts = 5 WHERE uid = 'p2-uid';
         UPDATE pod_state SET state = 'db'::bytea WHERE pod_id = (SELECT id FROM pods WHERE uid = 'p2-uid');
         INSERT INTO recording_sessions (cluster_id, started_at_ms, heartbeat_at_ms)
         SELECT id, {}, {} FROM clusters WHERE name = 'east';",
        base + 2 * DAY + HOUR,
        base + 2 * DAY + 2 * HOUR
    ))
    .unwrap();
    // Meanwhile the file saw p3 end, and has an older view of p2.
    let mut update = Batch::default();
    let p3 = pod("p3-uid", "batch", "job-x", base + HOUR)
        .node("node-2")
        .requests(1000, 2 * GI)
        .started(base + HOUR + MIN)
        .finished(base + 2 * DAY, Phase::Succeeded, None)
        .deleted(base + 2 * DAY)
        .build();
    update.pods.push(p3);
    db.write(&update);
    let out = copy(&db.path, &url, "east", &[]);
    let table = summary(out.ok());
    assert_eq!(table["pods"][2], 1, "only p3 changes:\n{}", out.stdout);
    assert_eq!(
        pod_row(&conninfo, "p2-uid"),
        (None, 5, Some(b"db".to_vec())),
        "the database's newer view of an open pod is kept"
    );
    assert_eq!(
        pod_row(&conninfo, "p3-uid"),
        (Some(base + 2 * DAY), 0, None),
        "a pod that ended in the file ends in the database, without its state"
    );

    // Now the file is the newer history (a session after the database's): its view of the
    // open pod wins, but a pod the database has ended is not reopened.
    c.batch_execute("UPDATE pods SET deleted_at_ms = 1 WHERE uid = 'p1-uid'")
        .unwrap();
    db.session(
        base + 2 * DAY + 3 * HOUR,
        base + 2 * DAY + 4 * HOUR,
        true,
        None,
        None,
    );
    let out = copy(&db.path, &url, "east", &[]);
    out.ok();
    assert_eq!(
        pod_row(&conninfo, "p2-uid"),
        (
            None,
            2,
            Some(br#"{"phase":"Running","restarts":2}"#.to_vec())
        )
    );
    assert_eq!(
        pod_row(&conninfo, "p1-uid").0,
        Some(1),
        "an ended row is kept"
    );
}

#[test]
fn bad_input_is_refused_with_the_problem_named() {
    let server = PgServer::shared();
    let conninfo = server.fresh_database();
    let url = server.url(&conninfo);
    let db = built_history((now_ms() - 3 * DAY) / HOUR * HOUR);
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing.db");
    let out = copy(&missing, &url, "east", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("missing.db: no such file"),
        "{}",
        out.stderr
    );
    assert!(!missing.exists(), "a missing source was created");

    let garbage = dir.path().join("notes.txt");
    std::fs::write(
        &garbage,
        "not a database at all, just some words ".repeat(200),
    )
    .unwrap();
    let out = copy(&garbage, &url, "east", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("is not a kubetrail database"),
        "{}",
        out.stderr
    );

    let empty = dir.path().join("empty.db");
    rusqlite::Connection::open(&empty)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let out = copy(&empty, &url, "east", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("no kubetrail schema"), "{}", out.stderr);

    let out = copy(
        &db.path,
        dir.path().join("to.db").to_str().unwrap(),
        "east",
        &[],
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("give the PostgreSQL database to copy into"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("to.db").exists());

    let out = kubetrail(&["copy", "--from", &url, "--to", &url, "--cluster", "east"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("--from takes the SQLite file"),
        "{}",
        out.stderr
    );

    let out = kubetrail(&["copy", "--from", db.path_str(), "--to", &url]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--cluster"), "{}", out.stderr);

    // A server that is not there: a socket directory where nothing listens.
    let nowhere = format!(
        "postgres://kubetrail@{}:5432/kubetrail",
        dir.path().to_string_lossy().replace('/', "%2F")
    );
    let out = copy(&db.path, &nowhere, "east", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("cannot copy into cluster east of postgres://kubetrail@"),
        "{}",
        out.stderr
    );

    // Nothing was written anywhere by any of these.
    let tables: i64 = pg(&conninfo)
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
}

/// `kubetrail copy ...` as a child whose stderr lines arrive on a channel.
fn spawn_copy(
    file: &Path,
    url: &str,
    cluster: &str,
    extra: &[&str],
) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args([
            "copy",
            "--from",
            file.to_str().unwrap(),
            "--to",
            url,
            "--cluster",
            cluster,
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn wait_for_line(rx: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => panic!(
                "no line with {needle:?}; stderr so far:\n{}",
                seen.join("\n")
            ),
        }
    }
}

fn kill(signal: &str, child: &Child) {
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal}");
}

#[test]
fn an_interrupted_copy_leaves_whole_chunks_and_running_it_again_finishes_it() {
    let base = (now_ms() - 3 * DAY) / HOUR * HOUR;
    let db = built_history(base);
    let server = PgServer::shared();
    let conninfo = server.fresh_database();
    let url = server.url(&conninfo);
    // Stopped right after it announced itself (it holds the destination then), interrupted,
    // and let go: it stops after the chunk it is writing, long before the end at 2 rows a
    // chunk.
    let (mut child, rx) = spawn_copy(&db.path, &url, "east", &["--chunk-rows", "2"]);
    wait_for_line(&rx, "rows");
    kill("STOP", &child);
    kill("INT", &child);
    kill("CONT", &child);
    let status = child.wait().unwrap();
    let lines: Vec<String> = rx.try_iter().collect();
    assert_eq!(status.code(), Some(1), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("interrupted after") && l.contains("run the same command again")),
        "{lines:?}"
    );
    let partial = pg_counts(&conninfo, "east");
    let whole = file_counts(&db.path);
    assert!(partial["transitions"] < whole["transitions"], "{partial:?}");
    // Sessions go last: a copy cut short claims no covered time.
    assert_eq!(partial["recording_sessions"], 0, "{partial:?}");

    copy(&db.path, &url, "east", &[]).ok();
    assert_eq!(pg_counts(&conninfo, "east"), whole);
    assert_same_reports(&db.path, &url, "east", base - DAY, base + 2 * DAY + HOUR);
}

#[test]
fn a_copy_and_a_recorder_of_the_same_cluster_exclude_each_other() {
    let base = (now_ms() - 3 * DAY) / HOUR * HOUR;
    let db = built_history(base);
    let server = PgServer::shared();
    let conninfo = server.fresh_database();
    let url = server.url(&conninfo);
    let sim = SimProcess::spawn(&["--nodes", "1", "--pods", "2"]);

    // A copy that holds the cluster (stopped mid-way): a recorder of it is refused, one of
    // another cluster is not.
    let (mut child, rx) = spawn_copy(&db.path, &url, "east", &["--chunk-rows", "2"]);
    wait_for_line(&rx, "rows");
    kill("STOP", &child);
    let out = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args(["record", "--db", &url, "--cluster", "east", "--kubeconfig"])
        .arg(sim.kubeconfig_path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    kill("CONT", &child);
    assert!(
        !out.status.success(),
        "a recorder ran beside the copy: {err}"
    );
    assert!(err.contains("already recording cluster east"), "{err}");
    assert!(child.wait().unwrap().success());

    // A recorder of the cluster: a copy into it is refused. Into another cluster of the same
    // database, at the same time, it goes.
    let log = sim.dir().join("rec.log");
    let rec = RecorderProcess::spawn(
        sim.kubeconfig_path(),
        Path::new(&url),
        &log,
        &["--cluster", "east"],
    );
    rec.wait_for_log("initial list committed", Duration::from_secs(30));
    let out = copy(&db.path, &url, "east", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("already recording cluster east"),
        "{}",
        out.stderr
    );
    copy(&db.path, &url, "west", &[]).ok();
    assert!(rec.stop().success());
    assert_eq!(pg_counts(&conninfo, "west"), file_counts(&db.path));
}

/// Measured usage copies whole, and an hour is never held twice on the server: after the file's
/// retention rolls hours up that an earlier copy moved raw (measured samples, and the requests'
/// steps), the next copy replaces those rows by the hour's rollup, so the counts and the
/// reports match the file again.
#[test]
fn measured_usage_copies_whole_and_an_hour_rolled_up_since_replaces_its_samples() {
    use kubetrail::model::usage::{ContainerUsageRow, NodeUsageSampleRow, UsageBatch};
    let now = now_ms();
    let start = (now - 3 * DAY) / HOUR * HOUR;
    let until = now / HOUR * HOUR;
    let db = FixtureDb::new();
    db.session(start, now, false, None, None);
    let mut batch = one_node_from(start);
    batch
        .pods
        .push(pod("p1-uid", "shop", "web-1", start).node("node-1").build());
    batch
        .transitions
        .push(transition("p1-uid", TransitionKind::Created, start).build());
    db.write(&batch);
    let (mut at, mut i) = (start, 0_i64);
    db.with_writer(|conn| {
        while at < now {
            conn.write_usage(&UsageBatch {
                containers: vec![ContainerUsageRow {
                    namespace: "shop".into(),
                    pod: "web-1".into(),
                    container: "app".into(),
                    at_ms: at,
                    window_ms: 15_000,
                    cpu_millis: (i * 37) % 500,
                    memory_bytes: ((i * 53) % 300) << 20,
                    // The container's own requests: the copy carries them to its key.
                    resources: Some(kubetrail::model::Effective {
                        requests: kubetrail::model::Resources::new(150, 96 << 20),
                        limits: kubetrail::model::Resources::new(0, 192 << 20),
                    }),
                }],
                nodes: vec![NodeUsageSampleRow {
                    node: "node-1".into(),
                    at_ms: at,
                    window_ms: 15_000,
                    cpu_millis: (i * 41) % 4000,
                    memory_bytes: ((i * 59) % 8000) << 20,
                }],
            })
            .unwrap();
            at += 5 * MIN;
            i += 1;
        }
    });
    let server = PgServer::shared();
    let conninfo = server.fresh_database();
    let url = server.url(&conninfo);
    copy(&db.path, &url, "north", &["--chunk-rows", "50"]).ok();
    let raw = file_counts(&db.path);
    assert!(
        raw["container_usage"] > 800 && raw["node_usage_samples"] > 800,
        "{raw:?}"
    );
    assert_eq!(pg_counts(&conninfo, "north"), raw);
    assert_same_reports(&db.path, &url, "north", start, until);
    // ... and the container's own requests are in them, on the server too.
    let by_container = kubetrail(&[
        "query",
        "usage",
        "--by",
        "container",
        "-o",
        "json",
        "--db",
        &url,
        "--cluster",
        "north",
    ]);
    let rows = parse_json(by_container.ok());
    assert_eq!(rows[0]["cpu_request_millis"], 150, "{rows:?}");
    assert_eq!(rows[0]["memory_limit_bytes"], 192 << 20, "{rows:?}");

    let pruned = kubetrail(&["prune", "--db", db.path_str(), "--raw-usage-age", "1d"]);
    assert_eq!(pruned.code, 0, "{}", pruned.stderr);
    let rolled = file_counts(&db.path);
    assert!(
        rolled["container_usage_hourly"] >= 47 && rolled["node_usage_samples_hourly"] >= 47,
        "{rolled:?}"
    );
    let second = copy(&db.path, &url, "north", &["--chunk-rows", "50"]);
    let table = summary(second.ok());
    for name in ["container_usage_hourly", "node_usage_samples_hourly"] {
        // Every rolled-up hour replaced samples of the first copy.
        assert_eq!(
            table[name][2] as i64, rolled[name],
            "{name} updated:\n{}",
            second.stdout
        );
    }
    assert_eq!(pg_counts(&conninfo, "north"), rolled);
    assert_same_reports(&db.path, &url, "north", start, until);

    let third = copy(&db.path, &url, "north", &[]);
    for (name, [rows, new, updated, _]) in summary(third.ok()) {
        assert_eq!(
            (new, updated),
            (0, 0),
            "{name} ({rows} rows):\n{}",
            third.stdout
        );
    }
    assert_eq!(pg_counts(&conninfo, "north"), rolled);
}
