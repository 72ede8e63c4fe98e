//! The command line against a real PostgreSQL server (kubetrail-pgtest), where it goes wrong:
//! a server that is not there yet or goes away mid-run, a wrong password, a database that is
//! someone else's, and flags that only a SQLite file has. Every message names the problem, and
//! a password never reaches a message or a log.

#[path = "common/compare.rs"]
mod compare;
#[path = "common/recorder.rs"]
mod recorder;
#[path = "common/sim.rs"]
mod sim;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use compare::{Gap, compare, read_recorded_pg};
use kubetrail_pgtest::{PASSWORD_ROLE, PgServer};
use recorder::{RecorderProcess, now_ms};
use sim::SimProcess;

fn kubetrail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args(args)
        .output()
        .expect("run kubetrail")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn admin() -> postgres::Client {
    postgres::Client::connect(&PgServer::shared().conninfo("postgres"), postgres::NoTls).unwrap()
}

#[test]
fn a_wrong_password_is_refused_clearly_and_never_shown() {
    let server = PgServer::shared();
    let conninfo = server.fresh_database();
    admin()
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD 'right-one';
             EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ))
        .unwrap();
    let url = server.url(&conninfo).replace(
        "postgres://postgres@",
        &format!("postgres://{PASSWORD_ROLE}:hunter2-wrong@"),
    );
    let out = kubetrail(&["stats", "--db", &url]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("authentication failed"), "{err}");
    assert!(
        err.contains(&format!("postgres://{PASSWORD_ROLE}@")),
        "names the server: {err}"
    );
    assert!(!err.contains("hunter2"), "the password leaked: {err}");
}

#[test]
fn another_programs_database_is_refused_and_an_empty_one_is_no_history() {
    let server = PgServer::shared();
    let conninfo = server.fresh_database();
    let url = server.url(&conninfo);
    let out = kubetrail(&["query", "pods", "--db", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("holds no kubetrail history"),
        "{}",
        stderr(&out)
    );

    let mut c = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    c.batch_execute("CREATE TABLE invoices (id int)").unwrap();
    let sim = SimProcess::spawn(&["--nodes", "1", "--pods", "2"]);
    let out = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args(["record", "--db", &url, "--cluster", "east", "--kubeconfig"])
        .arg(sim.kubeconfig_path())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("another program (invoices)"), "{err}");
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 1, "nothing was added to someone else's database");
}

#[test]
fn flags_only_a_file_has_are_refused_with_a_server_and_the_reverse() {
    let server = PgServer::shared();
    let url = server.url(&server.fresh_database());
    let out = kubetrail(&[
        "prune",
        "--db",
        &url,
        "--cluster",
        "east",
        "--max-db-size",
        "1GiB",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--max-db-size is a budget for a SQLite file"),
        "{}",
        stderr(&out)
    );
    let out = kubetrail(&["backup", "--db", &url, "--out", "/tmp/never.db"]);
    assert!(stderr(&out).contains("pg_dump"), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.db");
    let out = kubetrail(&[
        "query",
        "pods",
        "--db",
        file.to_str().unwrap(),
        "--cluster",
        "east",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--cluster is for a PostgreSQL --db"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_server_not_there_yet_is_retried_with_backoff_until_told_to_stop() {
    let sim = SimProcess::spawn(&["--nodes", "1", "--pods", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("rec.log");
    // A socket directory where no server listens (yet).
    let url = format!(
        "postgres://kubetrail:s3cret-pw@{}:5432/kubetrail",
        dir.path().to_string_lossy().replace('/', "%2F")
    );
    let rec = RecorderProcess::spawn(
        sim.kubeconfig_path(),
        Path::new(&url),
        &log,
        &["--cluster", "east"],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while rec
        .log()
        .matches("cannot reach the database yet; retrying")
        .count()
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "no retries logged:\n{}",
            rec.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = rec.log();
    let status = rec.signal_and_wait("TERM", Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{text}");
    assert!(!text.contains("s3cret-pw"), "the password leaked:\n{text}");
    // The delays grow: each retry line says how long it waits.
    let delays: Vec<u64> = text
        .lines()
        .filter_map(|l| l.split("retry_in_ms=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(delays.len() >= 3 && delays[2] > delays[0], "{delays:?}");
}

/// The `/readyz` status of a recorder whose log names its metrics address.
fn readyz(log: &str) -> u16 {
    let addr: SocketAddr = log
        .split("serving http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .expect("the metrics address in the log");
    sim::http_request(addr, "GET", "/readyz", None).0
}

#[test]
fn a_server_that_goes_away_mid_run_loses_nothing_and_the_recorder_is_unready_meanwhile() {
    let server = PgServer::shared();
    let conninfo = server.fresh_database();
    let db: String = conninfo.rsplit("dbname=").next().unwrap().to_string();
    let url = server.url(&conninfo);
    let sim = SimProcess::spawn(&[
        "--nodes", "2", "--pods", "10", "--churn", "8", "--seed", "31", "--pace", "0.5",
    ]);
    let log = sim.dir().join("rec.log");
    let started = now_ms();
    let rec = RecorderProcess::spawn(
        sim.kubeconfig_path(),
        Path::new(&url),
        &log,
        &[
            "--cluster",
            "east",
            "--metrics-addr",
            "127.0.0.1:0",
            "--unready-after",
            "2s",
        ],
    );
    rec.wait_for_log("initial list committed", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(readyz(&rec.log()), 200, "{}", rec.log());

    // The database stops taking connections, and the recorder's is ended.
    let mut admin = admin();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {db} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}';"
        ))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while readyz(&rec.log()) != 503 {
        assert!(
            Instant::now() < deadline,
            "still ready while nothing commits:\n{}",
            rec.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    admin
        .batch_execute(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while readyz(&rec.log()) != 200 {
        assert!(
            Instant::now() < deadline,
            "never ready again:\n{}",
            rec.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Everything that happened, outage included, is there: the recorder kept watching and its
    // rows waited for the server. Only the time before its first list is exempt.
    sim.pause();
    let gaps = [Gap::listed(0, started + 2_000)];
    let deadline = Instant::now() + Duration::from_secs(30);
    let result = loop {
        let result = compare(&sim.truth(), &read_recorded_pg(&conninfo, "east"), &gaps);
        if (result.missing.is_empty() && result.unexpected.is_empty()) || Instant::now() > deadline
        {
            break result;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let text = rec.log();
    assert!(rec.stop().success(), "{text}");
    if !(result.missing.is_empty() && result.unexpected.is_empty()) {
        eprintln!("the recorder's log:\n{text}");
    }
    result.assert_exact();
    assert!(result.matched > 30, "too little happened: {result:?}");
}

/// TLS against a real handshake: a server that takes only TLS on 127.0.0.1, with a certificate
/// for localhost signed by a CA of its own. The recorder and a query reach it under
/// `verify-full` with that CA; another CA, another host name and `sslmode=disable` are refused,
/// each with a message that names the problem.
#[test]
fn tls_is_verified_against_a_server_that_takes_only_tls() {
    let server = PgServer::tls().unwrap_or_else(|e| panic!("{e}"));
    let conninfo = server.fresh_database();
    let db: String = conninfo.rsplit("dbname=").next().unwrap().to_string();
    let port = server.tcp_port().unwrap();
    let ca = server.ca_file().unwrap().display().to_string();
    let url = |host: &str, params: &str| format!("postgres://postgres@{host}:{port}/{db}?{params}");
    let verified = url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );

    let sim = SimProcess::spawn(&["--nodes", "1", "--pods", "3", "--churn", "0", "--seed", "5"]);
    let log = sim.dir().join("rec.log");
    let rec = RecorderProcess::spawn(
        sim.kubeconfig_path(),
        Path::new(&verified),
        &log,
        &["--cluster", "east"],
    );
    rec.wait_for_log("initial list committed", Duration::from_secs(30));
    assert!(
        rec.stop().success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let out = kubetrail(&["query", "pods", "--db", &verified, "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pods: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pods.len(), 3, "{pods:?}");

    // `require` encrypts without checking, as libpq's does.
    let out = kubetrail(&["stats", "--db", &url("localhost", "sslmode=require")]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A CA that did not sign the server's certificate.
    let other_ca = sim.dir().join("other-ca.crt");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=someone else", "-keyout"])
        .arg(sim.dir().join("other-ca.key"))
        .arg("-out")
        .arg(&other_ca)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    let wrong_ca = url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
    );
    let out = kubetrail(&["stats", "--db", &wrong_ca]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // The certificate names localhost, not the address: verify-full checks the name...
    let by_address = |mode: &str| url("127.0.0.1", &format!("sslmode={mode}&sslrootcert={ca}"));
    let out = kubetrail(&["stats", "--db", &by_address("verify-full")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // ... and so does verify-ca here (stricter than libpq's, never weaker).
    let out = kubetrail(&["stats", "--db", &by_address("verify-ca")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // Without TLS the server itself refuses (pg_hba's hostnossl reject).
    let out = kubetrail(&["stats", "--db", &url("localhost", "sslmode=disable")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no encryption"), "{err}");
}

/// A database slower than the initial list (every statement that writes pods waits 2.5 s, as a
/// busy shared server might) keeps the writer's queue full when the list ends. The recorder
/// must still say when the list is committed and turn ready then, not wait for an idle queue.
#[test]
fn a_database_slower_than_the_initial_list_still_makes_the_recorder_ready() {
    let server = PgServer::shared();
    let conninfo = server.fresh_database();
    let url = server.url(&conninfo);
    // A first, empty recording makes the schema, so that the slow trigger can be added.
    let empty = SimProcess::spawn(&["--nodes", "1", "--pods", "0", "--churn", "0"]);
    let dir = tempfile::tempdir().unwrap();
    let rec = RecorderProcess::spawn(
        empty.kubeconfig_path(),
        Path::new(&url),
        &dir.path().join("first.log"),
        &["--cluster", "east"],
    );
    rec.wait_for_log("initial list committed", Duration::from_secs(30));
    assert!(rec.stop().success());
    let mut c = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
    c.batch_execute(
        "CREATE FUNCTION slow_write() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN PERFORM pg_sleep(2.5); RETURN NULL; END $$;
         CREATE TRIGGER slow_pods AFTER INSERT ON pods
             FOR EACH STATEMENT EXECUTE FUNCTION slow_write();",
    )
    .unwrap();

    // Pages of 800 pods make a batch of about 5,600 rows each: 20 batches, more than the
    // writer's queue holds (16). Each commit takes longer than the 2 s the recorder once
    // waited for room in the queue before it dropped its "committed" marker.
    let sim = SimProcess::spawn(&["--nodes", "20", "--pods", "16000", "--churn", "0"]);
    let rec = RecorderProcess::spawn(
        sim.kubeconfig_path(),
        Path::new(&url),
        &dir.path().join("slow.log"),
        &[
            "--cluster",
            "east",
            "--metrics-addr",
            "127.0.0.1:0",
            "--page-size",
            "800",
        ],
    );
    rec.wait_for_log(
        "initial list of pods and nodes done",
        Duration::from_secs(180),
    );
    let listed = rec.log();
    rec.wait_for_log("initial list committed", Duration::from_secs(180));
    let deadline = Instant::now() + Duration::from_secs(30);
    while readyz(&rec.log()) != 200 {
        assert!(Instant::now() < deadline, "never ready:\n{}", rec.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !listed.contains("initial list committed"),
        "the database was not slower than the list, so this tested nothing:\n{listed}"
    );
    let pods: i64 = c
        .query_one("SELECT count(*) FROM pods WHERE deleted_at_ms IS NULL", &[])
        .unwrap()
        .get(0);
    assert_eq!(pods, 16_000);
    // Stopping may leave the last rows of a 2.5 s commit behind (the stop waits 2 s for room
    // in the queue, and says how many rows it could not hand over): not what this tests.
    rec.stop();
}
