//! `kubetrail stats`: file and log sizes, rows per table, the span of the history, open pods
//! and nodes, and what the policy would remove, without changing the file.

#[path = "common/fixture.rs"]
mod fixture;

use fixture::*;
use kubetrail::model::{Phase, TransitionKind};
use kubetrail::store::Batch;

fn database() -> (FixtureDb, i64) {
    let now = kubetrail::model::time::now_ms();
    let db = FixtureDb::new();
    let mut batch = Batch::default();
    batch
        .nodes
        .push(node("n1-uid", "n1", now - 60 * DAY).build());
    batch.nodes.push(
        node("n2-uid", "n2", now - 60 * DAY)
            .deleted(now - 50 * DAY)
            .build(),
    );
    batch.pods.push(
        pod("old", "ns", "old", now - 50 * DAY)
            .finished(now - 45 * DAY, Phase::Failed, None)
            .deleted(now - 45 * DAY)
            .build(),
    );
    batch
        .pods
        .push(pod("live", "ns", "live", now - 50 * DAY).build());
    batch
        .transitions
        .push(transition("old", TransitionKind::Created, now - 50 * DAY).build());
    batch
        .transitions
        .push(transition("live", TransitionKind::Created, now - 50 * DAY).build());
    batch
        .transitions
        .push(transition("live", TransitionKind::Ready, now - HOUR).build());
    for hour in 0..(20 * 24) {
        batch.node_usage.push(
            usage("n1-uid", now - 20 * DAY + hour * HOUR)
                .requested(100, GI)
                .pods(1)
                .build(),
        );
    }
    db.write(&batch);
    (db, now)
}

#[test]
fn stats_reports_sizes_counts_span_and_what_the_policy_would_remove() {
    let (db, now) = database();
    let before = std::fs::read(&db.path).unwrap();
    let out = kubetrail(&["stats", "--db", db.path_str()]);
    let text = out.ok();
    assert!(
        text.contains(&format!(
            "schema version {}",
            kubetrail::store::sqlite::SCHEMA_VERSION
        )),
        "{text}"
    );
    assert!(text.contains("write-ahead log"), "{text}");
    assert!(
        text.contains("1 open pods, 1 open nodes (never pruned); 1 ended pods, 1 deleted nodes"),
        "{text}"
    );
    assert!(text.contains("transitions"), "{text}");
    assert!(text.contains("max-age: pods deleted before"), "{text}");
    assert!(text.contains("1 pods with 1 transitions"), "{text}");
    // 13 days of hourly rows are older than the 7-day raw horizon.
    assert!(
        text.contains("raw-usage-age: raw node usage before"),
        "{text}"
    );

    let json: serde_json::Value = serde_json::from_str(
        kubetrail(&[
            "stats",
            "--db",
            db.path_str(),
            "-o",
            "json",
            "--raw-usage-age",
            "10d",
        ])
        .ok(),
    )
    .unwrap();
    assert_eq!(json["open_pods"], 1);
    assert_eq!(json["open_nodes"], 1);
    assert_eq!(json["deleted_nodes"], 1);
    let tables = json["tables"].as_array().unwrap();
    let usage = tables.iter().find(|t| t["table"] == "node_usage").unwrap();
    assert_eq!(usage["rows"], 480);
    assert!(usage["bytes"].as_u64().unwrap() > 0);
    assert_eq!(json["transitions"]["from_ms"], now - 50 * DAY);
    assert_eq!(json["transitions"]["to_ms"], now - HOUR);
    let retention = &json["retention"];
    assert_eq!(retention["aged_out"]["pods"], 1);
    // With 10 days of raw usage, the first 10 days (240 hourly rows, maybe one more at the
    // horizon's hour boundary) roll up.
    let rolled = retention["usage"]["raw_rows_rolled_up"].as_u64().unwrap();
    assert!((240..=241).contains(&rolled), "{rolled}");
    assert!(retention["file"]["db_bytes"].as_u64().unwrap() > 0);
    assert_eq!(
        std::fs::read(&db.path).unwrap(),
        before,
        "stats changed the file"
    );
}
