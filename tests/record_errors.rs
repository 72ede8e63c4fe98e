//! Bad input to `kubetrail record`: each case gives a clear message that names the problem and
//! the right exit code, never a panic, and never damages recorded data.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn kubetrail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run kubetrail")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_clean_failure(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr:\n{err}");
    assert!(
        err.contains(needle),
        "stderr should mention {needle:?}:\n{err}"
    );
    assert!(!err.contains("panicked"), "no panics:\n{err}");
}

/// A kubeconfig pointing at a port nobody listens on.
fn write_kubeconfig(dir: &Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n\
             contexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\ncurrent-context: ctx\n\
             users:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_missing_kubeconfig_is_named_and_no_database_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let out = kubetrail(&[
        "record",
        "--kubeconfig",
        "/nonexistent/kubeconfig",
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_clean_failure(&out, 1, "/nonexistent/kubeconfig");
    assert!(
        !db.exists(),
        "a failed start must not leave a database behind"
    );
}

#[test]
fn an_invalid_kubeconfig_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, "this: [is not: a kubeconfig").unwrap();
    let out = kubetrail(&[
        "record",
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--db",
        dir.path().join("t.db").to_str().unwrap(),
    ]);
    assert_clean_failure(&out, 1, "cannot read kubeconfig");
}

#[test]
fn an_unknown_context_is_a_usage_error_listing_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let kc = write_kubeconfig(dir.path(), "http://127.0.0.1:1");
    let out = kubetrail(&[
        "record",
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--context",
        "prod",
        "--db",
        dir.path().join("t.db").to_str().unwrap(),
    ]);
    assert_clean_failure(&out, 2, "\"prod\"");
    assert!(
        stderr(&out).contains("ctx"),
        "lists the contexts it has: {}",
        stderr(&out)
    );
}

#[test]
fn a_malformed_flag_is_a_usage_error() {
    let out = kubetrail(&["record", "--snapshot-interval", "soon"]);
    assert_clean_failure(&out, 2, "soon");
}

#[test]
fn an_unwritable_database_path_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let kc = write_kubeconfig(dir.path(), "http://127.0.0.1:1");
    let out = kubetrail(&[
        "record",
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--db",
        "/nonexistent-dir/t.db",
    ]);
    assert_clean_failure(&out, 1, "cannot create database /nonexistent-dir/t.db");
}

#[test]
fn a_corrupt_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let kc = write_kubeconfig(dir.path(), "http://127.0.0.1:1");
    let db = dir.path().join("t.db");
    let junk: Vec<u8> = (0..16384u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&db, &junk).unwrap();
    let out = kubetrail(&[
        "record",
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_clean_failure(&out, 1, "is not a kubetrail database");
    assert_eq!(std::fs::read(&db).unwrap(), junk);
}

#[test]
fn a_database_from_a_newer_kubetrail_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let kc = write_kubeconfig(dir.path(), "http://127.0.0.1:1");
    let db = dir.path().join("t.db");
    drop(kubetrail::store::sqlite::open_for_writing(&db).unwrap());
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(
            None,
            "user_version",
            kubetrail::store::sqlite::SCHEMA_VERSION + 1,
        )
        .unwrap();
    let out = kubetrail(&[
        "record",
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_clean_failure(&out, 1, "newer kubetrail");
}

#[test]
fn an_unreachable_server_is_retried_and_reported_then_a_second_recorder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let kc = write_kubeconfig(dir.path(), "http://127.0.0.1:1");
    let db = dir.path().join("t.db");
    let log = dir.path().join("rec.log");
    let mut first = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args([
            "record",
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ])
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // It keeps running and says why it is not getting anywhere.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log).unwrap().contains("retrying") {
        assert!(
            Instant::now() < deadline,
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the recorder must not exit on an unreachable server"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let second = kubetrail(&[
        "record",
        "--kubeconfig",
        kc.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_clean_failure(&second, 1, "already writing");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(first.id().to_string())
        .status();
    let status = first.wait().unwrap();
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
}

#[test]
fn a_malformed_label_selector_is_a_usage_error_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let out = kubetrail(&["record", "-l", "app in (web", "--db", db.to_str().unwrap()]);
    assert_clean_failure(&out, 2, "app in (web");
    assert!(!db.exists());
}

#[test]
fn a_metrics_address_in_use_fails_at_startup_before_the_database_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), "http://127.0.0.1:1");
    let db = dir.path().join("t.db");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = kubetrail(&[
        "record",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--db",
        db.to_str().unwrap(),
        "--metrics-addr",
        &addr,
    ]);
    assert_clean_failure(&out, 1, &format!("cannot listen on --metrics-addr {addr}"));
    assert!(
        stderr(&out).contains("in use"),
        "the OS reason is given:\n{}",
        stderr(&out)
    );
    assert!(!db.exists(), "no database is left behind");
}

#[test]
fn a_malformed_metrics_address_is_a_usage_error_with_an_example() {
    for bad in ["localhost", "9090", "127.0.0.1:99999", ":http"] {
        let out = kubetrail(&["record", "--metrics-addr", bad]);
        assert_clean_failure(&out, 2, "give IP:PORT such as 127.0.0.1:9090");
        assert!(
            stderr(&out).contains(bad),
            "names {bad:?}:\n{}",
            stderr(&out)
        );
    }
}

/// A kubetrail database whose `pods` table has garbage in some of its leaf pages.
fn damaged_database(path: &Path) {
    let handle = kubetrail::store::sqlite::open_for_writing(path).unwrap();
    let conn = &handle.conn;
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO pods (uid, namespace, name, created_at_ms, phase)
         SELECT 'uid-' || i, 'ns', 'pod-' || i, 1, 2 FROM n;",
    )
    .unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    let page_size: i64 = conn
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .unwrap();
    let pages: Vec<i64> = conn
        .prepare("SELECT pageno FROM dbstat WHERE name = 'pods' AND pagetype = 'leaf'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(pages.len() > 10, "{pages:?}");
    drop(handle);
    let mut bytes = std::fs::read(path).unwrap();
    for page in pages.iter().step_by(4) {
        let at = ((page - 1) * page_size) as usize;
        bytes[at..at + 64].fill(0x5a);
    }
    std::fs::write(path, bytes).unwrap();
}

/// The library refuses the file itself, before any command gets to it.
#[test]
fn a_damaged_file_is_refused_for_writing_and_maintenance_with_how_to_recover() {
    use kubetrail::store::StoreError;
    use kubetrail::store::sqlite::db::{check_file, open_for_maintenance};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    damaged_database(&path);
    let before = std::fs::read(&path).unwrap();
    for err in [
        kubetrail::store::sqlite::open_for_writing(&path)
            .err()
            .expect("refused"),
        open_for_maintenance(&path).expect_err("refused"),
        check_file(&path).expect_err("refused"),
    ] {
        let text = err.to_string();
        assert!(matches!(err, StoreError::Damaged { .. }), "{text}");
        assert!(
            text.contains("is damaged") && text.contains(".recover"),
            "{text}"
        );
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "left as it is");
}

#[test]
fn a_damaged_database_is_refused_by_record_prune_and_stats_with_how_to_recover() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    damaged_database(&db);
    let before = std::fs::read(&db).unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), "http://127.0.0.1:1");
    let db_arg = db.to_str().unwrap();
    // The old kubetrail wrote into such a file, and reported from it, and exited 0.
    for args in [
        vec!["stats", "--db", db_arg],
        vec!["prune", "--db", db_arg],
        vec![
            "record",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--db",
            db_arg,
        ],
    ] {
        let out = kubetrail(&args);
        assert_clean_failure(&out, 1, "is damaged");
        assert!(stderr(&out).contains(".recover"), "{}", stderr(&out));
    }
    assert_eq!(std::fs::read(&db).unwrap(), before, "left as it is");
}

/// At most how many attempts fit in `elapsed` when each retry waits at least half its
/// exponential delay (125 ms, 250 ms, 500 ms, ...).
fn most_attempts(elapsed: Duration) -> usize {
    let mut attempts = 1;
    let mut waited = 0.0;
    let mut delay = 0.125;
    while waited + delay <= elapsed.as_secs_f64() {
        waited += delay;
        delay *= 2.0;
        attempts += 1;
    }
    attempts
}

#[test]
fn list_retries_against_an_unreachable_server_back_off_instead_of_every_250_ms() {
    let dir = tempfile::tempdir().unwrap();
    let kc = write_kubeconfig(dir.path(), "http://127.0.0.1:1");
    let db = dir.path().join("t.db");
    let log = dir.path().join("rec.log");
    let started = Instant::now();
    let mut rec = Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args([
            "record",
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
        ])
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let failures = |log: &str| log.matches("pod watch failed").count();
    // Until a few retries have happened, however slow the machine.
    let deadline = Instant::now() + Duration::from_secs(60);
    while failures(&std::fs::read_to_string(&log).unwrap()) < 4 {
        assert!(Instant::now() < deadline, "no retries logged");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(rec.id().to_string())
        .status();
    assert!(rec.wait().unwrap().success());
    let elapsed = started.elapsed();
    let text = std::fs::read_to_string(&log).unwrap();
    // An upper bound from the time that really passed: a slow machine only makes fewer. The
    // old recorder retried every 250 ms, since each list attempt reset its backoff.
    let bound = most_attempts(elapsed);
    assert!(
        failures(&text) <= bound,
        "{} failed lists in {elapsed:?} (at most {bound} with backoff):\n{text}",
        failures(&text)
    );
}
