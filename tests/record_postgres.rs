//! Two clusters recording into one PostgreSQL server (a real one, started by kubetrail-pgtest),
//! each by its own `kubetrail record` against its own `kubetrail simulate`. One recorder is
//! killed with SIGKILL and restarted. Each cluster's history must equal its own simulator's
//! truth, and hold no row of the other.

#[path = "common/compare.rs"]
mod compare;
#[path = "common/recorder.rs"]
mod recorder;
#[path = "common/sim.rs"]
mod sim;

use std::path::Path;
use std::time::{Duration, Instant};

use compare::{Comparison, Gap, compare, read_recorded_pg};
use kubetrail_pgtest::PgServer;
use recorder::{RecorderProcess, now_ms};
use sim::SimProcess;

const LISTED: &str = "initial list of pods and nodes done";

/// A simulated cluster and the recorder that records it as `--cluster name`.
struct Cluster {
    name: &'static str,
    sim: SimProcess,
    rec: RecorderProcess,
    started_ms: i64,
}

impl Cluster {
    fn start(name: &'static str, url: &str, seed: &str) -> Cluster {
        let sim = SimProcess::spawn(&[
            "--nodes", "3", "--pods", "15", "--churn", "10", "--seed", seed, "--pace", "0.5",
        ]);
        let started_ms = now_ms();
        let rec = spawn_recorder(&sim, url, name);
        Cluster {
            name,
            sim,
            rec,
            started_ms,
        }
    }
}

fn spawn_recorder(sim: &SimProcess, url: &str, cluster: &str) -> RecorderProcess {
    let rec = RecorderProcess::spawn(
        sim.kubeconfig_path(),
        Path::new(url),
        &sim.dir().join("rec.log"),
        &["--cluster", cluster],
    );
    rec.wait_for_log(LISTED, Duration::from_secs(30));
    rec
}

/// Pauses the simulator, then waits until the cluster's rows equal its truth (or the timeout).
fn settle(c: &Cluster, conninfo: &str, gaps: &[Gap]) -> Comparison {
    c.sim.pause();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let result = compare(&c.sim.truth(), &read_recorded_pg(conninfo, c.name), gaps);
        if (result.missing.is_empty() && result.unexpected.is_empty()) || Instant::now() > deadline
        {
            return result;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn two_clusters_record_into_one_server_and_a_killed_recorder_resumes() {
    let server = PgServer::shared();
    let conninfo = server.fresh_database();
    let url = server.url(&conninfo);
    let east = Cluster::start("east", &url, "21");
    let mut west = Cluster::start("west", &url, "22");
    std::thread::sleep(Duration::from_secs(5));

    // A second recorder of a cluster already being recorded is refused, and says why.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args(["record", "--db", &url, "--cluster", "west", "--kubeconfig"])
        .arg(west.sim.kubeconfig_path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second recorder of west ran");
    assert!(
        stderr.contains("already recording cluster west"),
        "{stderr}"
    );

    let killed_at = now_ms();
    std::mem::replace(&mut west.rec, RecorderProcess::placeholder()).kill_9();
    std::thread::sleep(Duration::from_secs(4));
    // A fresh log, so that waiting for the first list waits for this recorder's.
    std::fs::write(west.sim.dir().join("rec.log"), "").unwrap();
    west.rec = spawn_recorder(&west.sim, &url, "west");
    let restarted_at = now_ms();
    assert!(west.rec.log().contains("resuming"), "{}", west.rec.log());
    std::thread::sleep(Duration::from_secs(5));

    let east_result = settle(&east, &conninfo, &[Gap::listed(0, east.started_ms + 2_000)]);
    // Rows received but not committed when the process died are lost with it; the restart
    // infers them, so the gap starts a little before the kill.
    let west_result = settle(
        &west,
        &conninfo,
        &[
            Gap::listed(0, west.started_ms + 2_000),
            Gap::listed(killed_at - 2_000, restarted_at),
        ],
    );
    for c in [east, west] {
        let log = c.rec.log();
        let status = c.rec.stop();
        assert!(
            status.success(),
            "{} recorder exit: {status:?}\n{log}",
            c.name
        );
    }
    east_result.assert_exact();
    west_result.assert_exact();
    assert!(
        east_result.matched > 50,
        "too little happened: {east_result:?}"
    );
    assert!(
        west_result.matched > 50,
        "too little happened: {west_result:?}"
    );
    assert!(
        west_result.matched_inferred > 0,
        "the kill's gap is inferred: {west_result:?}"
    );

    // No row of one cluster names a pod of the other: the simulators' uids differ by seed, so
    // a row filed under the wrong cluster would have shown up as unexpected above. Check the
    // pods table too, which the comparison does not read.
    let mut client = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    let shared: i64 = client
        .query_one(
            "SELECT count(*) FROM pods a JOIN pods b ON a.uid = b.uid AND a.cluster_id <> b.cluster_id",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(shared, 0, "a pod was recorded under both clusters");

    reports_name_the_cluster_of_each_row(&url, &mut client);
}

fn kubetrail(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Over both clusters, every format names each row's cluster, as the database files it; over
/// one (`--cluster`), reports read as a single cluster's do, without the column.
fn reports_name_the_cluster_of_each_row(url: &str, client: &mut postgres::Client) {
    use std::collections::BTreeMap;
    let filed: BTreeMap<String, String> = client
        .query(
            "SELECT p.uid, c.name FROM pods p JOIN clusters c ON c.id = p.cluster_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let rows = |args: &[&str]| -> Vec<serde_json::Value> {
        serde_json::from_str(&kubetrail(args)).unwrap()
    };

    let pods = rows(&["query", "pods", "--db", url, "-o", "json"]);
    assert_eq!(pods.len(), filed.len());
    for pod in &pods {
        assert_eq!(
            pod["cluster"].as_str(),
            filed.get(pod["uid"].as_str().unwrap()).map(String::as_str),
            "{pod}"
        );
    }
    let table = kubetrail(&["query", "pods", "--db", url]);
    assert!(table.starts_with("CLUSTER "), "{table}");
    for name in ["east", "west"] {
        assert!(
            table.lines().skip(1).any(|l| l.starts_with(name)),
            "{table}"
        );
    }

    let east = rows(&[
        "query",
        "pods",
        "--db",
        url,
        "--cluster",
        "east",
        "-o",
        "json",
    ]);
    assert_eq!(east.len(), filed.values().filter(|c| *c == "east").count());
    assert!(east.iter().all(|p| p.get("cluster").is_none()), "{east:?}");
    let table = kubetrail(&["query", "pods", "--db", url, "--cluster", "east"]);
    assert!(!table.contains("CLUSTER"), "{table}");

    // CSV: the header says so, and every record has its cluster first.
    let csv = kubetrail(&["export", "transitions", "--db", url]);
    let mut lines = csv.lines();
    assert!(
        lines.next().unwrap().starts_with("cluster,subject,"),
        "{csv}"
    );
    let transitions: i64 = client
        .query_one(
            "SELECT count(*) FROM transitions WHERE pod_id IS NOT NULL",
            &[],
        )
        .unwrap()
        .get(0);
    let records: Vec<&str> = lines.collect();
    assert_eq!(records.len() as i64, transitions);
    assert!(
        records
            .iter()
            .all(|r| r.starts_with("east,") || r.starts_with("west,")),
        "{csv}"
    );
    let one = kubetrail(&["export", "transitions", "--db", url, "--cluster", "west"]);
    assert!(one.starts_with("subject,"), "{one}");

    let nodes = rows(&["query", "nodes", "--db", url, "--since", "1h", "-o", "json"]);
    assert!(!nodes.is_empty());
    for name in ["east", "west"] {
        assert!(nodes.iter().any(|n| n["cluster"] == name), "{nodes:?}");
    }

    // Events: each row names its cluster as the database files it, in JSON and in CSV.
    let filed: BTreeMap<String, String> = client
        .query(
            "SELECT e.uid, c.name FROM events e JOIN clusters c ON c.id = e.cluster_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        !filed.is_empty(),
        "the simulators' events were not recorded"
    );
    let events = rows(&["query", "events", "--db", url, "-o", "json"]);
    assert_eq!(events.len(), filed.len());
    for e in &events {
        assert_eq!(
            e["cluster"].as_str(),
            filed.get(e["uid"].as_str().unwrap()).map(String::as_str),
            "{e}"
        );
    }
    let csv = kubetrail(&["export", "events", "--db", url]);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().take(2).collect::<Vec<_>>(),
        ["cluster", "uid"],
        "{csv}"
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), filed.len(), "{csv}");
    for record in records {
        assert_eq!(
            filed.get(&record[1]).map(String::as_str),
            Some(&record[0]),
            "{record:?}"
        );
    }

    workloads_resolve_each_cluster_by_its_own_chain(url, client);
}

/// Two clusters running the same manifests have ReplicaSets of the same name (the hash is the
/// template's). A west ReplicaSet is given the name of an east one, under another Deployment:
/// over both clusters, east's pods must still lead to east's Deployment, exactly as a read of
/// east alone says.
fn workloads_resolve_each_cluster_by_its_own_chain(url: &str, client: &mut postgres::Client) {
    let named = client
        .query_opt(
            "SELECT o.namespace, o.name, o.controller_name FROM owners o
             JOIN clusters c ON c.id = o.cluster_id
             WHERE c.name = 'east' AND o.kind = 1 AND o.controller_name IS NOT NULL
               AND EXISTS (SELECT 1 FROM pods p WHERE p.cluster_id = o.cluster_id
                           AND p.owner_name = o.name)
             LIMIT 1",
            &[],
        )
        .unwrap()
        .expect("east recorded a Deployment's ReplicaSet with pods");
    let (ns, rs, deployment): (String, String, String) = (named.get(0), named.get(1), named.get(2));
    client
        .execute(
            "INSERT INTO owners (cluster_id, uid, kind, namespace, name, controller_kind,
                 controller_name, images, created_at_ms)
             SELECT id, 'twin-of-east', 1, $1, $2, 'Deployment', 'not-' || $3, '',
                 9000000000000
             FROM clusters WHERE name = 'west'",
            &[&ns, &rs, &deployment],
        )
        .unwrap();
    let json = |args: &[&str]| -> Vec<serde_json::Value> {
        serde_json::from_str(&kubetrail(args)).unwrap()
    };
    // One fixed window for both reads: a pod still pending counts its time until `--until`.
    let until = kubetrail::model::time::format_time_ms(now_ms());
    let alone = json(&[
        "query",
        "workloads",
        "--db",
        url,
        "--cluster",
        "east",
        "--until",
        &until,
        "-o",
        "json",
    ]);
    assert!(
        alone
            .iter()
            .any(|w| w["kind"] == "Deployment" && w["name"] == deployment.as_str()),
        "{alone:?}"
    );
    let both: Vec<serde_json::Value> = json(&[
        "query",
        "workloads",
        "--db",
        url,
        "--until",
        &until,
        "-o",
        "json",
    ])
    .into_iter()
    .filter(|w| w["cluster"] == "east")
    .map(|mut w| {
        w.as_object_mut().unwrap().remove("cluster");
        w
    })
    .collect();
    assert_eq!(both, alone, "east's workloads over both clusters");
}
