//! `kubetrail backup`: a copy taken while the writer holds the database open reads back the
//! same through `query`; `--out -` streams it; an existing file is never overwritten; bad input
//! is named and leaves nothing behind.

#[path = "common/fixture.rs"]
mod fixture;

use std::path::Path;

use fixture::*;

/// What `query` reports from a database, for comparing a copy with its original.
fn reports(db: &Path) -> Vec<String> {
    let db = db.to_str().unwrap();
    [
        vec!["query", "pods", "-A", "-o", "json"],
        vec!["query", "transitions", "-o", "csv"],
        vec![
            "query",
            "nodes",
            "--since",
            "2024-04-29T00:00:00Z",
            "--until",
            "2024-05-02T00:00:00Z",
            "--step",
            "1h",
            "-o",
            "csv",
        ],
    ]
    .into_iter()
    .map(|mut args| {
        args.extend(["--db", db]);
        kubetrail(&args).ok().to_string()
    })
    .map(without_lifetimes)
    .collect()
}

/// An open pod's `lifetime_ms` runs to now, so two runs of the same query differ in it.
fn without_lifetimes(report: String) -> String {
    match serde_json::from_str::<serde_json::Value>(&report) {
        Ok(serde_json::Value::Array(mut pods)) => {
            for pod in &mut pods {
                pod.as_object_mut().unwrap().remove("lifetime_ms");
            }
            serde_json::to_string_pretty(&pods).unwrap()
        }
        _ => report,
    }
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect()
}

#[test]
fn a_copy_taken_while_the_writer_is_open_reads_back_the_same() {
    let db = scenario(); // its writer handle stays open, like a running recorder's
    let out_dir = tempfile::tempdir().unwrap();
    let copy = out_dir.path().join("copy.db");
    let run = kubetrail(&[
        "backup",
        "--db",
        db.path_str(),
        "--out",
        copy.to_str().unwrap(),
    ]);
    run.ok();
    assert!(run.stderr.contains("backed up"), "{}", run.stderr);
    let original = reports(&db.path);
    assert!(
        original[1].lines().count() > 10,
        "the scenario has history to compare"
    );
    assert_eq!(reports(&copy), original);
    assert!(leftovers(out_dir.path()).is_empty());
    assert!(
        !out_dir.path().join("copy.db-wal").exists(),
        "the copy stands alone, without a write-ahead log"
    );
}

#[test]
fn out_dash_streams_the_copy_to_stdout() {
    let db = scenario();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubetrail"))
        .args(["backup", "--db", db.path_str(), "--out", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(b"SQLite format 3\0"));
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("streamed.db");
    std::fs::write(&copy, &out.stdout).unwrap();
    assert_eq!(reports(&copy), reports(&db.path));
}

#[test]
fn an_existing_file_is_never_overwritten() {
    let db = scenario();
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("keep.db");
    std::fs::write(&existing, "precious").unwrap();
    let run = kubetrail(&[
        "backup",
        "--db",
        db.path_str(),
        "--out",
        existing.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert!(run.stderr.contains("keep.db"), "{}", run.stderr);
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "precious");
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn a_missing_or_foreign_database_is_named_and_nothing_is_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copy.db");
    let missing = dir.path().join("nope.db");
    let run = kubetrail(&[
        "backup",
        "--db",
        missing.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("nope.db") && run.stderr.contains("does not exist"),
        "{}",
        run.stderr
    );

    let foreign = dir.path().join("notes.txt");
    std::fs::write(
        &foreign,
        "not a database at all, just some text ".repeat(200),
    )
    .unwrap();
    let run = kubetrail(&[
        "backup",
        "--db",
        foreign.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("notes.txt"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"));
    assert!(!out.exists());
    assert!(leftovers(dir.path()).is_empty());

    let run = kubetrail(&["backup", "--db", foreign.to_str().unwrap()]);
    assert_eq!(run.code, 2, "--out is required: {}", run.stderr);
}
