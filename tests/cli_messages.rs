//! Small things a user trips on: each gives one clear sentence and the right exit code, and
//! nothing is left behind. Messages said the same thing twice ("No such file or directory (os
//! error 2): No such file or directory (os error 2)"), `export --out DIR` ran the whole export
//! before it failed and left its temporary file, and impossible windows and intervals were
//! accepted.

#[path = "common/fixture.rs"]
mod fixture;

use std::path::Path;

use fixture::{FixtureDb, kubetrail};

/// A kubeconfig pointing at a port nobody listens on (record opens the database before it
/// connects).
fn write_kubeconfig(dir: &Path) -> String {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:1\n\
         contexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\ncurrent-context: ctx\n\
         users:\n- name: u\n  user:\n    token: t\n",
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

/// No clause of the message is printed twice.
fn assert_says_it_once(stderr: &str) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or(stderr);
    let parts: Vec<&str> = line.split(": ").collect();
    for (i, part) in parts.iter().enumerate() {
        assert!(
            !parts[i + 1..].contains(part),
            "{part:?} is repeated in {line:?}"
        );
    }
    assert!(!line.contains("os error"), "errno noise: {line:?}");
    assert!(!line.contains("Error code"), "SQLite code noise: {line:?}");
}

#[test]
fn a_database_in_a_missing_directory_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let kc = write_kubeconfig(dir.path());
    let run = kubetrail(&[
        "record",
        "--kubeconfig",
        &kc,
        "--db",
        "/nonexistent/dir/kubetrail.db",
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("/nonexistent/dir/kubetrail.db"),
        "{}",
        run.stderr
    );
    assert_says_it_once(&run.stderr);
}

#[test]
fn a_missing_kubeconfig_is_named_once() {
    let run = kubetrail(&["record", "--kubeconfig", "/nonexistent/kubeconfig"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("no such file"), "{}", run.stderr);
    assert_says_it_once(&run.stderr);
}

#[test]
fn a_directory_as_db_says_it_is_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().to_str().unwrap();
    let run = kubetrail(&["query", "pods", "--db", db]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("is a directory"), "{}", run.stderr);
    assert_says_it_once(&run.stderr);
    let kc = write_kubeconfig(dir.path());
    let run = kubetrail(&["record", "--kubeconfig", &kc, "--db", db]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("is a directory"), "{}", run.stderr);
    assert_says_it_once(&run.stderr);
}

#[test]
fn an_existing_read_only_database_is_not_called_uncreatable() {
    let dir = tempfile::tempdir().unwrap();
    let kc = write_kubeconfig(dir.path());
    // A file that exists and cannot be opened for writing, even by root (a sysfs attribute
    // without a write method refuses every writer); else a 0400 file for other users.
    let sysfs = Path::new("/sys/devices/system/cpu/online");
    let target = if sysfs.exists() {
        sysfs.to_path_buf()
    } else {
        use std::os::unix::fs::PermissionsExt;
        let file = dir.path().join("ro.db");
        std::fs::write(&file, b"").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).unwrap();
        file
    };
    let run = kubetrail(&[
        "record",
        "--kubeconfig",
        &kc,
        "--db",
        target.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!run.stderr.contains("cannot create"), "{}", run.stderr);
    assert!(run.stderr.contains("for writing"), "{}", run.stderr);
    assert_says_it_once(&run.stderr);
}

#[test]
fn export_out_a_directory_is_refused_before_the_export_and_leaves_nothing() {
    let db = FixtureDb::new();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("reports");
    std::fs::create_dir(&target).unwrap();
    let run = kubetrail(&[
        "export",
        "pods",
        "--out",
        target.to_str().unwrap(),
        "--db",
        db.path_str(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("is a directory"), "{}", run.stderr);
    let left: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "reports")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    let run = kubetrail(&[
        "export",
        "pods",
        "--out",
        "/nonexistent/dir/pods.csv",
        "--db",
        db.path_str(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
}

#[test]
fn a_future_since_without_until_is_refused() {
    let db = FixtureDb::new();
    for cmd in [
        &["query", "pods"][..],
        &["query", "nodes"],
        &["export", "transitions"],
    ] {
        let mut args = cmd.to_vec();
        args.extend(["--since", "2999-01-01T00:00:00Z", "--db", db.path_str()]);
        let run = kubetrail(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("in the future"), "{}", run.stderr);
    }
    let run = kubetrail(&[
        "query",
        "pods",
        "--since",
        "2999-01-01T00:00:00Z",
        "--until",
        "2999-02-01T00:00:00Z",
        "--db",
        db.path_str(),
    ]);
    assert_eq!(
        run.code, 0,
        "with --until a future window is a question: {}",
        run.stderr
    );
}

#[test]
fn a_snapshot_interval_under_a_second_is_refused() {
    let run = kubetrail(&["record", "--snapshot-interval", "10ms"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("shorter than 1s"), "{}", run.stderr);
}

#[test]
fn an_absurd_churn_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kc");
    let run = kubetrail(&[
        "simulate",
        "--kubeconfig-out",
        kc.to_str().unwrap(),
        "--churn",
        "1000000000",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("at most 10000"), "{}", run.stderr);
    assert!(!kc.exists());
}

#[test]
fn an_event_flood_that_is_not_a_rate_or_too_large_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kc");
    for (flood, says) in [
        ("-5", "is not a rate"),
        ("NaN", "is not a rate"),
        ("6000000", "at most 600000"),
    ] {
        let flag = format!("--event-flood={flood}");
        let run = kubetrail(&["simulate", "--kubeconfig-out", kc.to_str().unwrap(), &flag]);
        assert_eq!(run.code, 2, "{flood}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{flood}: {}", run.stderr);
        assert!(!kc.exists());
    }
}

#[test]
fn a_namespace_that_is_not_a_dns_label_is_refused() {
    let db = FixtureDb::new();
    for bad in ["Shop", "shop/", "-shop", "a_b", ""] {
        // `--namespace=` so that clap takes a leading '-' as the value.
        let flag = format!("--namespace={bad}");
        let run = kubetrail(&["query", "pods", &flag, "--db", db.path_str()]);
        assert_eq!(run.code, 2, "-n {bad:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("not a namespace name"),
            "{}",
            run.stderr
        );
        let run = kubetrail(&["record", &flag]);
        assert_eq!(run.code, 2, "record -n {bad:?}: {}", run.stderr);
    }
    kubetrail(&["query", "pods", "-n", "kube-system", "--db", db.path_str()]).ok();
}
