//! `kubetrail prune` as a user runs it: `--dry-run` changes nothing, bad flags are usage errors
//! that name the value, a missing file is not created, a budget too small for the live state
//! warns and deletes none of it, and a recorder's lock on the file does not stop a prune.

#[path = "common/fixture.rs"]
mod fixture;

use fixture::*;
use kubetrail::model::{Phase, TransitionKind};
use kubetrail::store::Batch;
use kubetrail::store::sqlite::open_for_writing;
use rusqlite::Connection;

fn now_ms() -> i64 {
    kubetrail::model::time::now_ms()
}

/// 20 pods that ended 40 days ago and 3 open pods, one of them created 400 days ago.
fn database_with_old_and_live_pods() -> FixtureDb {
    let now = now_ms();
    let db = FixtureDb::new();
    let mut batch = Batch::default();
    for i in 0..20 {
        let uid = format!("ended-{i}");
        batch.pods.push(
            pod(&uid, "ns", &uid, now - 41 * DAY)
                .finished(now - 40 * DAY, Phase::Succeeded, None)
                .deleted(now - 40 * DAY)
                .build(),
        );
        batch
            .transitions
            .push(transition(&uid, TransitionKind::Created, now - 41 * DAY).build());
        batch
            .transitions
            .push(transition(&uid, TransitionKind::Deleted, now - 40 * DAY).build());
    }
    for (i, age) in [400, 2, 0].into_iter().enumerate() {
        let uid = format!("live-{i}");
        batch
            .pods
            .push(pod(&uid, "ns", &uid, now - age * DAY).build());
        batch
            .transitions
            .push(transition(&uid, TransitionKind::Created, now - age * DAY).build());
    }
    db.write(&batch);
    db
}

fn pods_left(db: &FixtureDb) -> (i64, i64) {
    let conn = Connection::open(&db.path).unwrap();
    let open = conn
        .query_row(
            "SELECT count(*) FROM pods WHERE deleted_at_ms IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let ended = conn
        .query_row(
            "SELECT count(*) FROM pods WHERE deleted_at_ms IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (open, ended)
}

/// The database's bytes after a checkpoint (so that everything is in the main file).
fn checkpointed_bytes(db: &FixtureDb) -> Vec<u8> {
    let conn = Connection::open(&db.path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    std::fs::read(&db.path).unwrap()
}

#[test]
fn dry_run_reports_what_would_go_and_changes_nothing() {
    let db = database_with_old_and_live_pods();
    let before = checkpointed_bytes(&db);
    let run = kubetrail(&[
        "prune",
        "--db",
        db.path_str(),
        "--dry-run",
        "--max-db-size",
        "64KiB",
    ]);
    let out = run.ok();
    assert!(out.contains("dry run, nothing was changed"), "{out}");
    assert!(out.contains("20 pods with 40 transitions"), "{out}");
    assert!(out.contains("max-db-size 64 KiB"), "{out}");
    assert_eq!(
        std::fs::read(&db.path).unwrap(),
        before,
        "the main file changed"
    );
    let wal = std::path::PathBuf::from(format!("{}-wal", db.path_str()));
    assert!(
        std::fs::metadata(&wal).map_or(0, |m| m.len()) == 0,
        "the dry run wrote to the log"
    );
    assert_eq!(pods_left(&db), (3, 20));

    // JSON carries the same counts in machine units.
    let json: serde_json::Value = serde_json::from_str(
        kubetrail(&["prune", "--db", db.path_str(), "--dry-run", "-o", "json"]).ok(),
    )
    .unwrap();
    assert_eq!(json["aged_out"]["pods"], 20);
    assert_eq!(std::fs::read(&db.path).unwrap(), before);

    // And the real prune then does what the dry run said.
    let out = kubetrail(&["prune", "--db", db.path_str()]);
    assert!(
        out.ok()
            .contains("max-age removed: 20 ended pods (40 transitions"),
        "{}",
        out.stdout
    );
    assert_eq!(pods_left(&db), (3, 0));
}

#[test]
fn malformed_durations_and_sizes_are_usage_errors_that_name_the_value() {
    let db = database_with_old_and_live_pods();
    for (args, needle) in [
        (vec!["prune", "--max-age", "30x"], "\"30x\""),
        (vec!["prune", "--raw-usage-age", "7"], "\"7\""),
        (vec!["prune", "--max-db-size", "2000"], "\"2000\""),
        (vec!["prune", "--max-db-size", "2QB"], "\"2QB\""),
        (vec!["prune", "--max-db-size", "0GiB"], "\"0GiB\""),
        (vec!["stats", "--rollup-age", "soon"], "\"soon\""),
        (vec!["record", "--retention-interval", "10"], "\"10\""),
        (vec!["record", "--max-db-size", "lots"], "\"lots\""),
        (
            vec!["prune", "--raw-usage-age", "30d", "--rollup-age", "7d"],
            "--rollup-age 7d is shorter than --raw-usage-age 30d",
        ),
    ] {
        let mut full = args.clone();
        if full[0] != "record" {
            full.extend(["--db", db.path_str()]);
        }
        let run = kubetrail(&full);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(needle),
            "{args:?} should name {needle}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"));
    }
    assert_eq!(pods_left(&db), (3, 20), "nothing was deleted");
}

#[test]
fn a_missing_database_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing-here.db");
    for command in ["prune", "stats"] {
        let run = kubetrail(&[command, "--db", path.to_str().unwrap()]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
        assert!(!path.exists());
    }
}

#[test]
fn a_budget_too_small_for_the_live_state_warns_and_deletes_none_of_it() {
    let db = database_with_old_and_live_pods();
    let run = kubetrail(&["prune", "--db", db.path_str(), "--max-db-size", "1KiB"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("warning: --max-db-size 1 KiB cannot be met"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Raise --max-db-size"), "{}", run.stderr);
    // Every ended pod went (oldest history first), every live pod stayed with its history.
    assert_eq!(pods_left(&db), (3, 0));
    let conn = Connection::open(&db.path).unwrap();
    let live_transitions: i64 = conn
        .query_row("SELECT count(*) FROM transitions t JOIN pods p ON p.id = t.pod_id WHERE p.uid LIKE 'live-%'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(live_transitions, 3);
}

#[test]
fn prune_runs_while_a_recorder_holds_the_writer_lock() {
    // The fixture holds the writer's handle, with its lock, as a running recorder does.
    let db = database_with_old_and_live_pods();
    // A second recorder is refused...
    let err = open_for_writing(&db.path)
        .err()
        .expect("the fixture holds the writer lock");
    assert!(err.to_string().contains("already writing"), "{err}");
    // ...but a prune is not.
    let run = kubetrail(&["prune", "--db", db.path_str()]);
    assert!(
        run.ok().contains("max-age removed: 20 ended pods"),
        "{}",
        run.stdout
    );
    let pods: i64 = db.with_writer(|conn| {
        conn.query_row("SELECT count(*) FROM pods", [], |r| r.get(0))
            .unwrap()
    });
    assert_eq!(pods, 3);
}
