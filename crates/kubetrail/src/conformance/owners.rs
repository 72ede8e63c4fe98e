//! Conformance cases for workload owners: ReplicaSets and Jobs written once (a replay or an
//! unchanged sight writes nothing), scale rows added only on change, a deletion kept once set,
//! the filters, and `--owner` resolved through the chain into pods, through the traits only.

use super::{Backend, pod};
use crate::model::owner::{OwnerFilter, OwnerKind, WorkloadRef};
use crate::model::report::PodFilter;
use crate::store::{Batch, OwnerRow};

fn rs(uid: &str, name: &str, revision: i64, spec: i64, status: i64, at_ms: i64) -> OwnerRow {
    OwnerRow {
        uid: uid.into(),
        kind: OwnerKind::ReplicaSet,
        namespace: "shop".into(),
        name: name.into(),
        controller_kind: Some("Deployment".into()),
        controller_name: Some("web".into()),
        revision: Some(revision),
        template_hash: Some(name.trim_start_matches("web-").into()),
        images: format!("nginx:1.{revision},envoy:1"),
        created_at_ms: 1_000 * revision,
        deleted_at_ms: None,
        spec_replicas: Some(spec),
        status_replicas: Some(status),
        observed_at_ms: at_ms,
    }
}

fn commit(f: &mut super::Fixture, owners: Vec<OwnerRow>) -> crate::store::BatchStats {
    let batch = Batch {
        owners,
        ..Batch::default()
    };
    f.writer.commit(&batch, None).unwrap()
}

pub(crate) fn owners_are_written_once_and_scale_rows_only_on_change(b: &dyn Backend) {
    let mut f = b.fresh();
    let first = vec![rs("u1", "web-aaa", 1, 2, 2, 10_000)];
    let s = commit(&mut f, first.clone());
    assert_eq!((s.owners_written, s.owner_scales_added), (1, 1));
    // A relist after a restart (the same state, seen later) writes nothing.
    let mut again = first.clone();
    again[0].observed_at_ms = 99_000;
    let s = commit(&mut f, again);
    assert_eq!((s.owners_written, s.owner_scales_added), (0, 0));
    // A rollout: the new ReplicaSet scales up, the old one down, then it is deleted.
    let s = commit(
        &mut f,
        vec![
            rs("u2", "web-bbb", 2, 2, 0, 20_000),
            rs("u1", "web-aaa", 1, 0, 2, 21_000),
        ],
    );
    assert_eq!((s.owners_written, s.owner_scales_added), (2, 2));
    let mut gone = rs("u1", "web-aaa", 1, 0, 0, 30_000);
    gone.deleted_at_ms = Some(30_000);
    commit(&mut f, vec![gone.clone()]);
    // A later sight with another deletion time changes nothing: the first one stays.
    let mut late = gone;
    late.deleted_at_ms = Some(40_000);
    late.observed_at_ms = 40_000;
    let s = commit(&mut f, vec![late]);
    assert_eq!((s.owners_written, s.owner_scales_added), (0, 0));

    let all = f
        .reader
        .snapshot()
        .unwrap()
        .owners(&OwnerFilter::default())
        .unwrap();
    assert_eq!(all.len(), 2);
    let old = &all[0];
    assert_eq!((old.name.as_str(), old.kind), ("web-aaa", "ReplicaSet"));
    assert_eq!(old.revision, Some(1));
    assert_eq!(old.images, ["nginx:1.1", "envoy:1"]);
    assert_eq!(old.template_hash.as_deref(), Some("aaa"));
    assert_eq!(old.deleted_at_ms, Some(30_000));
    let steps: Vec<(i64, Option<i64>, Option<i64>)> = old
        .scales
        .iter()
        .map(|s| (s.at_ms, s.spec_replicas, s.status_replicas))
        .collect();
    assert_eq!(
        steps,
        [
            (10_000, Some(2), Some(2)),
            (21_000, Some(0), Some(2)),
            (30_000, Some(0), Some(0))
        ]
    );
    let open = f
        .reader
        .snapshot()
        .unwrap()
        .owners(&OwnerFilter {
            open_only: true,
            ..OwnerFilter::default()
        })
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].name, "web-bbb");

    // Several sights of one owner in one batch count as they would one batch each: a new one
    // seen again unchanged (nothing) and then deleted (written, no scale row); a stored one
    // scaled twice at one observed time (one scale row, the last).
    let mut deleted = rs("u3", "web-ccc", 3, 1, 1, 50_000);
    deleted.deleted_at_ms = Some(52_000);
    deleted.observed_at_ms = 52_000;
    let s = commit(
        &mut f,
        vec![
            rs("u3", "web-ccc", 3, 1, 1, 50_000),
            rs("u2", "web-bbb", 2, 3, 2, 60_000),
            rs("u3", "web-ccc", 3, 1, 1, 51_000),
            deleted,
            rs("u2", "web-bbb", 2, 3, 3, 60_000),
        ],
    );
    assert_eq!((s.owners_written, s.owner_scales_added), (4, 3));
    let all = f
        .reader
        .snapshot()
        .unwrap()
        .owners(&OwnerFilter::default())
        .unwrap();
    let scales = |name: &str| -> Vec<(i64, Option<i64>, Option<i64>)> {
        all.iter()
            .find(|o| o.name == name)
            .unwrap()
            .scales
            .iter()
            .map(|s| (s.at_ms, s.spec_replicas, s.status_replicas))
            .collect()
    };
    assert_eq!(scales("web-ccc"), [(50_000, Some(1), Some(1))]);
    assert_eq!(
        scales("web-bbb"),
        [(20_000, Some(2), Some(0)), (60_000, Some(3), Some(3))]
    );
    let ccc = all.iter().find(|o| o.name == "web-ccc").unwrap();
    assert_eq!(ccc.deleted_at_ms, Some(52_000));
}

pub(crate) fn owner_filters_and_pods_by_workload(b: &dyn Backend) {
    let mut f = b.fresh();
    let mut job = rs("j1", "backup-1", 1, 1, 1, 5_000);
    job.kind = OwnerKind::Job;
    job.controller_kind = Some("CronJob".into());
    job.controller_name = Some("backup".into());
    job.revision = None;
    let mut other_ns = rs("u9", "web-zzz", 1, 1, 1, 5_000);
    other_ns.namespace = "other".into();
    commit(
        &mut f,
        vec![
            rs("u1", "web-aaa", 1, 1, 1, 5_000),
            rs("u2", "web-bbb", 2, 1, 1, 6_000),
            job,
            other_ns,
        ],
    );
    let mut batch = Batch::default();
    for (uid, ns, name, kind, owner) in [
        (
            "p1",
            "shop",
            "web-aaa-1",
            Some("ReplicaSet"),
            Some("web-aaa"),
        ),
        (
            "p2",
            "shop",
            "web-bbb-1",
            Some("ReplicaSet"),
            Some("web-bbb"),
        ),
        ("p3", "shop", "backup-1-x", Some("Job"), Some("backup-1")),
        ("p4", "shop", "db-0", Some("StatefulSet"), Some("db")),
        ("p5", "shop", "bare", None, None),
        (
            "p6",
            "other",
            "web-zzz-1",
            Some("ReplicaSet"),
            Some("web-zzz"),
        ),
    ] {
        let mut p = pod(uid, ns, name);
        p.owner_kind = kind.map(str::to_string);
        p.owner_name = owner.map(str::to_string);
        batch.pods.push(p);
    }
    f.writer.commit(&batch, None).unwrap();
    let pods_of = |w: &str, ns: Option<&str>| -> Vec<String> {
        let filter = PodFilter {
            namespace: ns.map(str::to_string),
            ..PodFilter::default()
        };
        let mut out = Vec::new();
        crate::query::owners::for_each_pod_of(
            &*f.reader,
            &filter,
            &WorkloadRef::parse(w).unwrap(),
            i64::MAX,
            |p| {
                out.push(p.uid);
                Ok(())
            },
        )
        .unwrap();
        out
    };
    assert_eq!(pods_of("deployment/web", Some("shop")), ["p1", "p2"]);
    assert_eq!(pods_of("deployment/web", None), ["p1", "p2", "p6"]);
    assert_eq!(pods_of("replicaset/web-bbb", None), ["p2"]);
    assert_eq!(pods_of("cronjob/backup", None), ["p3"]);
    assert_eq!(pods_of("job/backup-1", None), ["p3"]);
    assert_eq!(pods_of("statefulset/db", None), ["p4"]);
    assert_eq!(pods_of("pod/bare", None), ["p5"]);
    assert_eq!(pods_of("pod/db-0", None), Vec::<String>::new(), "owned");
    assert!(pods_of("deployment/nothing", None).is_empty());
    let by_controller = f
        .reader
        .snapshot()
        .unwrap()
        .owners(&OwnerFilter {
            controller: Some(("CronJob".into(), "backup".into())),
            ..OwnerFilter::default()
        })
        .unwrap();
    assert_eq!(by_controller.len(), 1);
    assert_eq!(by_controller[0].kind, "Job");
}

pub(crate) fn aged_owners_go_unless_a_kept_pod_names_them(b: &dyn Backend) {
    let mut f = b.fresh();
    let deleted = |uid: &str, name: &str, at_ms: i64| {
        let mut o = rs(uid, name, 1, 0, 0, at_ms);
        o.deleted_at_ms = Some(at_ms);
        o
    };
    // Two sights each, so each has two scale rows.
    commit(
        &mut f,
        vec![
            rs("gone", "web-aaa", 1, 1, 1, 1_000),
            rs("orphan", "web-bbb", 1, 1, 1, 1_000),
            rs("late", "web-ccc", 1, 1, 1, 1_000),
            rs("live", "web-ddd", 1, 1, 1, 1_000),
        ],
    );
    commit(
        &mut f,
        vec![
            deleted("gone", "web-aaa", 2_000),
            deleted("orphan", "web-bbb", 2_000),
            deleted("late", "web-ccc", 8_000),
        ],
    );
    // web-aaa's pod ended before the cutoff (it goes too); web-bbb's pod outlived its
    // ReplicaSet (orphaned) and is still open.
    let mut batch = Batch::default();
    for (uid, name, owner, deleted_at) in [
        ("p1", "web-aaa-1", "web-aaa", Some(2_500)),
        ("p2", "web-bbb-1", "web-bbb", None),
    ] {
        let mut p = pod(uid, "shop", name);
        p.owner_kind = Some("ReplicaSet".into());
        p.owner_name = Some(owner.into());
        p.deleted_at_ms = deleted_at;
        batch.pods.push(p);
    }
    f.writer.commit(&batch, None).unwrap();

    let aged_out = super::max_age_plan(&*f.reader, 5_000, 10_000);
    assert_eq!((aged_out.owners, aged_out.owner_scales), (1, 2));
    let (pods, done) = f.writer.prune_ended_pods(5_000, 1_000).unwrap();
    assert!(done);
    assert_eq!(pods.pods, 1);
    // A budget of one: a step per owner, until none is left.
    let (counts, done) = f.writer.prune_owners(5_000, 1).unwrap();
    assert_eq!((counts.owners, counts.owner_scales, done), (1, 2, false));
    let (counts, done) = f.writer.prune_owners(5_000, 1).unwrap();
    assert_eq!((counts.owners, done), (0, true));
    let left: Vec<String> = f
        .reader
        .snapshot()
        .unwrap()
        .owners(&OwnerFilter::default())
        .unwrap()
        .into_iter()
        .map(|o| o.uid)
        .collect();
    assert_eq!(left, ["orphan", "late", "live"]);
}
