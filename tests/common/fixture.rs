//! Shared test helper: databases with known content, built through the real writer
//! (`store::open_for_writing` + `store::write_batch`), and a runner for the built binary.
//!
//! Builders take only what a test cares about and default the rest:
//! `pod("uid", "ns", "name", T0).node("n1").requests(500, GI).build()`,
//! `transition("uid", TransitionKind::Created, T0).phases(None, Some(Phase::Pending)).build()`,
//! `usage("node-uid", T0).requested(1000, 2 * GI).pods(2).allocatable(4000, 8 * GI).build()`.
//! [`scenario`] is a small cluster used by the query and export tests; its content is listed
//! in its doc so tests can state expected values by hand.
#![allow(dead_code)]

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kubetrail::model::{Effective, Phase, Resources, TransitionKind};
use kubetrail::store::sqlite::{WriteHandle, open_for_writing, write_batch};
use kubetrail::store::{
    Batch, NodeResources, NodeRow, NodeUsageRow, PodRow, SubjectUid, TransitionRow,
};

/// 2024-05-01T00:00:00Z.
pub const T0: i64 = 1_714_521_600_000;
pub const SEC: i64 = 1_000;
pub const MIN: i64 = 60 * SEC;
pub const HOUR: i64 = 60 * MIN;
pub const DAY: i64 = 24 * HOUR;
pub const MI: i64 = 1 << 20;
pub const GI: i64 = 1 << 30;

/// A database file in its own temporary directory (removed on drop), with the writer's handle
/// held open like a running recorder's.
///
/// The handle is opened once: reopening it would race with tests that spawn the binary, since a
/// child between fork and exec briefly shares the writer-lock descriptor and the reopen would
/// see "another kubetrail process is already writing".
pub struct FixtureDb {
    // Declared first so it closes before the directory is removed.
    writer: RefCell<WriteHandle>,
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl FixtureDb {
    /// An empty database at the current schema.
    pub fn new() -> FixtureDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("kubetrail.db");
        let writer = open_for_writing(&path).expect("create fixture database");
        FixtureDb {
            writer: RefCell::new(writer),
            dir,
            path,
        }
    }

    /// Writes one batch in one transaction, as the recorder's writer would.
    pub fn write(&self, batch: &Batch) -> &Self {
        write_batch(&mut self.writer.borrow_mut().conn, batch).expect("write fixture batch");
        self
    }

    /// Runs `f` on the writer's connection (e.g. retention steps, or SQL a builder cannot say).
    pub fn with_writer<T>(&self, f: impl FnOnce(&mut rusqlite::Connection) -> T) -> T {
        f(&mut self.writer.borrow_mut().conn)
    }

    /// Stores a recording session, as `kubetrail record` would: started at `from`, last
    /// heartbeat at `to`, stopped cleanly there when `stopped`; `namespace`/`selector` its scope.
    pub fn session(
        &self,
        from: i64,
        to: i64,
        stopped: bool,
        namespace: Option<&str>,
        selector: Option<&str>,
    ) -> &Self {
        self.with_writer(|conn| {
            conn.execute(
                "INSERT INTO recording_sessions
                     (started_at_ms, heartbeat_at_ms, stopped_at_ms, namespace, selector, nodes)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1)",
                rusqlite::params![from, to, stopped.then_some(to), namespace, selector],
            )
            .expect("insert a recording session");
        });
        self
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("utf-8 temp path")
    }
}

pub struct PodBuilder(PodRow);

/// A pending pod with no node, no resources and no labels.
pub fn pod(uid: &str, namespace: &str, name: &str, created_at_ms: i64) -> PodBuilder {
    PodBuilder(PodRow {
        uid: uid.into(),
        namespace: namespace.into(),
        name: name.into(),
        node: None,
        owner_kind: None,
        owner_name: None,
        labels_json: None,
        created_at_ms,
        started_at_ms: None,
        finished_at_ms: None,
        deleted_at_ms: None,
        phase: Phase::Pending,
        reason: None,
        restarts: 0,
        resources: Effective::default(),
        state: b"{}".to_vec(),
    })
}

impl PodBuilder {
    pub fn node(mut self, node: &str) -> Self {
        self.0.node = Some(node.into());
        self
    }
    pub fn owner(mut self, kind: &str, name: &str) -> Self {
        self.0.owner_kind = Some(kind.into());
        self.0.owner_name = Some(name.into());
        self
    }
    pub fn labels(mut self, labels: &[(&str, &str)]) -> Self {
        let map: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        self.0.labels_json = Some(serde_json::Value::Object(map).to_string());
        self
    }
    /// Running since `at_ms`.
    pub fn started(mut self, at_ms: i64) -> Self {
        self.0.started_at_ms = Some(at_ms);
        self.0.phase = Phase::Running;
        self
    }
    /// Terminal at `at_ms` with this phase and reason.
    pub fn finished(mut self, at_ms: i64, phase: Phase, reason: Option<&str>) -> Self {
        self.0.finished_at_ms = Some(at_ms);
        self.0.phase = phase;
        self.0.reason = reason.map(Into::into);
        self
    }
    pub fn phase(mut self, phase: Phase) -> Self {
        self.0.phase = phase;
        self
    }
    pub fn deleted(mut self, at_ms: i64) -> Self {
        self.0.deleted_at_ms = Some(at_ms);
        self
    }
    pub fn restarts(mut self, restarts: i64) -> Self {
        self.0.restarts = restarts;
        self
    }
    pub fn requests(mut self, cpu_millis: i64, memory_bytes: i64) -> Self {
        self.0.resources.requests = Resources::new(cpu_millis, memory_bytes);
        self
    }
    pub fn limits(mut self, cpu_millis: i64, memory_bytes: i64) -> Self {
        self.0.resources.limits = Resources::new(cpu_millis, memory_bytes);
        self
    }
    pub fn build(self) -> PodRow {
        self.0
    }
}

pub struct TransitionBuilder(TransitionRow);

/// A live (not inferred) pod transition observed one second after `at_ms`.
pub fn transition(pod_uid: &str, kind: TransitionKind, at_ms: i64) -> TransitionBuilder {
    TransitionBuilder(TransitionRow::new(
        SubjectUid::Pod(pod_uid.into()),
        kind,
        at_ms,
        at_ms + SEC,
    ))
}

/// A node transition observed one second after `at_ms`.
pub fn node_transition(node_uid: &str, kind: TransitionKind, at_ms: i64) -> TransitionBuilder {
    TransitionBuilder(TransitionRow::new(
        SubjectUid::Node(node_uid.into()),
        kind,
        at_ms,
        at_ms + SEC,
    ))
}

impl TransitionBuilder {
    pub fn phases(mut self, before: Option<Phase>, after: Option<Phase>) -> Self {
        self.0.phase_before = before;
        self.0.phase_after = after;
        self
    }
    pub fn container(mut self, name: &str) -> Self {
        self.0.container = Some(name.into());
        self
    }
    pub fn reason(mut self, reason: &str) -> Self {
        self.0.reason = Some(reason.into());
        self
    }
    pub fn message(mut self, message: &str) -> Self {
        self.0.message = Some(message.into());
        self
    }
    pub fn exit_code(mut self, code: i64) -> Self {
        self.0.exit_code = Some(code);
        self
    }
    pub fn restart_count(mut self, count: i64) -> Self {
        self.0.restart_count = Some(count);
        self
    }
    /// Tells apart repeats of one kind of one pod (the idempotency key).
    pub fn seq(mut self, seq: i64) -> Self {
        self.0.seq = seq;
        self
    }
    pub fn observed(mut self, at_ms: i64) -> Self {
        self.0.observed_at_ms = at_ms;
        self
    }
    pub fn resource_version(mut self, rv: i64) -> Self {
        self.0.resource_version = Some(rv);
        self
    }
    pub fn inferred(mut self) -> Self {
        self.0.inferred = true;
        self
    }
    pub fn build(self) -> TransitionRow {
        self.0
    }
}

pub struct NodeBuilder(NodeRow);

/// A node with 4 cpu, 8Gi and 110 pods of capacity and allocatable.
pub fn node(uid: &str, name: &str, created_at_ms: i64) -> NodeBuilder {
    let resources = NodeResources {
        cpu_millis: 4000,
        memory_bytes: 8 * GI,
        pods: 110,
    };
    NodeBuilder(NodeRow {
        uid: uid.into(),
        name: name.into(),
        created_at_ms,
        deleted_at_ms: None,
        capacity: resources,
        allocatable: resources,
        state_json: "{}".into(),
    })
}

impl NodeBuilder {
    pub fn deleted(mut self, at_ms: i64) -> Self {
        self.0.deleted_at_ms = Some(at_ms);
        self
    }
    pub fn allocatable(mut self, cpu_millis: i64, memory_bytes: i64, pods: i64) -> Self {
        self.0.allocatable = NodeResources {
            cpu_millis,
            memory_bytes,
            pods,
        };
        self.0.capacity = self.0.allocatable;
        self
    }
    pub fn build(self) -> NodeRow {
        self.0
    }
}

pub struct UsageBuilder(NodeUsageRow);

/// A usage step with nothing requested on a node with 4 cpu and 8Gi allocatable.
pub fn usage(node_uid: &str, at_ms: i64) -> UsageBuilder {
    UsageBuilder(NodeUsageRow {
        node_uid: node_uid.into(),
        at_ms,
        requested: Resources::default(),
        limits: Resources::default(),
        pod_count: 0,
        allocatable: Resources::new(4000, 8 * GI),
        keyframe: false,
    })
}

/// A batch with one node, `node-1` (uid `n1-uid`, 4 cpu and 8Gi allocatable), created at
/// `at_ms` with its requests' keyframe there: what a test of measured node usage starts from.
pub fn one_node_from(at_ms: i64) -> Batch {
    let mut batch = Batch::default();
    batch.nodes.push(
        node("n1-uid", "node-1", at_ms)
            .allocatable(4000, 8 * GI, 110)
            .build(),
    );
    batch.node_usage.push(
        usage("n1-uid", at_ms)
            .allocatable(4000, 8 * GI)
            .keyframe()
            .build(),
    );
    batch
}

impl UsageBuilder {
    pub fn requested(mut self, cpu_millis: i64, memory_bytes: i64) -> Self {
        self.0.requested = Resources::new(cpu_millis, memory_bytes);
        self
    }
    pub fn limits(mut self, cpu_millis: i64, memory_bytes: i64) -> Self {
        self.0.limits = Resources::new(cpu_millis, memory_bytes);
        self
    }
    pub fn pods(mut self, count: i64) -> Self {
        self.0.pod_count = count;
        self
    }
    pub fn allocatable(mut self, cpu_millis: i64, memory_bytes: i64) -> Self {
        self.0.allocatable = Resources::new(cpu_millis, memory_bytes);
        self
    }
    pub fn keyframe(mut self) -> Self {
        self.0.keyframe = true;
        self
    }
    pub fn build(self) -> NodeUsageRow {
        self.0
    }
}

/// A small cluster with a known history (times relative to [`T0`], 2024-05-01T00:00:00Z):
///
/// - nodes `node-a` (uid `node-a-uid`, added T0-1d) and `node-b` (`node-b-uid`, added T0-1d,
///   not_ready at 1h25m, deleted at 1h30m);
/// - `shop/web-0` twice (a reused name):
///   - `web-0-a`: created 0, scheduled 0 on node-a, started 10s, ready 20s, container `app`
///     terminated OOMKilled exit 137 at 1h, failed (OOMKilled) at 1h, deleted at 1h+5s;
///     requests 500m/1Gi, limits 1/2Gi, labels app=web;
///   - `web-0-b`: created 1h+10s on node-a, started 1h+20s, ready 1h+30s, container `app`
///     restarted twice (2h, 3h; restart_count 1, 2), still open and Running; requests 500m/1Gi;
/// - `batch/job-x` (`job-x`): created 5m on node-b, started 6m, container `main` terminated
///   Completed exit 0 at 30m, succeeded 30m, deleted 40m; requests 2/4Gi, labels app=job;
/// - `shop/cache-1` (`cache-1`): created 10m on node-b, started 11m, failed (Evicted, message
///   "The node was low on resource: memory.") at 1h20m, deleted (inferred) at 1h30m; requests
///   250m/256Mi, labels app=cache,tier=backend;
/// - `other/web-0` (`other-web-0`): created 2h, never scheduled, deleted (inferred) at 3h;
///   labels app=web.
pub fn scenario() -> FixtureDb {
    use TransitionKind::*;
    let db = FixtureDb::new();
    let mut batch = Batch::default();
    batch
        .nodes
        .push(node("node-a-uid", "node-a", T0 - DAY).build());
    batch.nodes.push(
        node("node-b-uid", "node-b", T0 - DAY)
            .deleted(T0 + HOUR + 30 * MIN)
            .build(),
    );
    batch.pods.extend([
        pod("web-0-a", "shop", "web-0", T0)
            .node("node-a")
            .owner("StatefulSet", "web")
            .labels(&[("app", "web")])
            .started(T0 + 10 * SEC)
            .finished(T0 + HOUR, Phase::Failed, Some("OOMKilled"))
            .deleted(T0 + HOUR + 5 * SEC)
            .requests(500, GI)
            .limits(1000, 2 * GI)
            .build(),
        pod("web-0-b", "shop", "web-0", T0 + HOUR + 10 * SEC)
            .node("node-a")
            .owner("StatefulSet", "web")
            .labels(&[("app", "web")])
            .started(T0 + HOUR + 20 * SEC)
            .restarts(2)
            .requests(500, GI)
            .build(),
        pod("job-x", "batch", "job-x", T0 + 5 * MIN)
            .node("node-b")
            .owner("Job", "job")
            .labels(&[("app", "job")])
            .started(T0 + 6 * MIN)
            .finished(T0 + 30 * MIN, Phase::Succeeded, None)
            .deleted(T0 + 40 * MIN)
            .requests(2000, 4 * GI)
            .build(),
        pod("cache-1", "shop", "cache-1", T0 + 10 * MIN)
            .node("node-b")
            .labels(&[("app", "cache"), ("tier", "backend")])
            .started(T0 + 11 * MIN)
            .finished(T0 + HOUR + 20 * MIN, Phase::Failed, Some("Evicted"))
            .deleted(T0 + HOUR + 30 * MIN)
            .requests(250, 256 * MI)
            .build(),
        pod("other-web-0", "other", "web-0", T0 + 2 * HOUR)
            .labels(&[("app", "web")])
            .deleted(T0 + 3 * HOUR)
            .build(),
    ]);
    let t = transition;
    batch.transitions.extend([
        node_transition("node-a-uid", NodeAdded, T0 - DAY).build(),
        node_transition("node-b-uid", NodeAdded, T0 - DAY).build(),
        node_transition("node-b-uid", NodeNotReady, T0 + HOUR + 25 * MIN)
            .reason("NodeStatusUnknown")
            .build(),
        node_transition("node-b-uid", NodeDeleted, T0 + HOUR + 30 * MIN).build(),
        // web-0, first incarnation.
        t("web-0-a", Created, T0)
            .phases(None, Some(Phase::Pending))
            .resource_version(100)
            .build(),
        t("web-0-a", Scheduled, T0).build(),
        t("web-0-a", Started, T0 + 10 * SEC)
            .phases(Some(Phase::Pending), Some(Phase::Running))
            .build(),
        t("web-0-a", Ready, T0 + 20 * SEC).build(),
        t("web-0-a", ContainerTerminated, T0 + HOUR)
            .container("app")
            .reason("OOMKilled")
            .exit_code(137)
            .restart_count(0)
            .build(),
        t("web-0-a", Failed, T0 + HOUR)
            .phases(Some(Phase::Running), Some(Phase::Failed))
            .reason("OOMKilled")
            .build(),
        t("web-0-a", Deleted, T0 + HOUR + 5 * SEC)
            .phases(Some(Phase::Failed), Some(Phase::Failed))
            .build(),
        // web-0, second incarnation.
        t("web-0-b", Created, T0 + HOUR + 10 * SEC)
            .phases(None, Some(Phase::Pending))
            .build(),
        t("web-0-b", Scheduled, T0 + HOUR + 10 * SEC).build(),
        t("web-0-b", Started, T0 + HOUR + 20 * SEC)
            .phases(Some(Phase::Pending), Some(Phase::Running))
            .build(),
        t("web-0-b", Ready, T0 + HOUR + 30 * SEC).build(),
        t("web-0-b", ContainerRestarted, T0 + 2 * HOUR)
            .container("app")
            .reason("Error")
            .exit_code(1)
            .restart_count(1)
            .build(),
        t("web-0-b", ContainerRestarted, T0 + 3 * HOUR)
            .seq(1)
            .container("app")
            .reason("Error")
            .exit_code(1)
            .restart_count(2)
            .build(),
        // job-x
        t("job-x", Created, T0 + 5 * MIN)
            .phases(None, Some(Phase::Pending))
            .build(),
        t("job-x", Scheduled, T0 + 5 * MIN).build(),
        t("job-x", Started, T0 + 6 * MIN)
            .phases(Some(Phase::Pending), Some(Phase::Running))
            .build(),
        t("job-x", ContainerTerminated, T0 + 30 * MIN)
            .container("main")
            .reason("Completed")
            .exit_code(0)
            .build(),
        t("job-x", Succeeded, T0 + 30 * MIN)
            .phases(Some(Phase::Running), Some(Phase::Succeeded))
            .reason("Completed")
            .build(),
        t("job-x", Deleted, T0 + 40 * MIN)
            .phases(Some(Phase::Succeeded), Some(Phase::Succeeded))
            .build(),
        // cache-1
        t("cache-1", Created, T0 + 10 * MIN)
            .phases(None, Some(Phase::Pending))
            .build(),
        t("cache-1", Scheduled, T0 + 10 * MIN).build(),
        t("cache-1", Started, T0 + 11 * MIN)
            .phases(Some(Phase::Pending), Some(Phase::Running))
            .build(),
        t("cache-1", Failed, T0 + HOUR + 20 * MIN)
            .phases(Some(Phase::Running), Some(Phase::Failed))
            .reason("Evicted")
            .message("The node was low on resource: memory.")
            .build(),
        t("cache-1", Deleted, T0 + HOUR + 30 * MIN)
            .phases(Some(Phase::Failed), Some(Phase::Failed))
            .inferred()
            .build(),
        // other/web-0
        t("other-web-0", Created, T0 + 2 * HOUR)
            .phases(None, Some(Phase::Pending))
            .build(),
        t("other-web-0", Deleted, T0 + 3 * HOUR)
            .phases(Some(Phase::Pending), Some(Phase::Pending))
            .inferred()
            .build(),
    ]);
    db.write(&batch);
    db
}

/// The result of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts exit 0 and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "expected success; stderr:\n{}\nstdout:\n{}",
            self.stderr, self.stdout
        );
        &self.stdout
    }
}

/// Runs `kubetrail ARGS` with a clean environment for the variables it reads.
pub fn kubetrail(args: &[&str]) -> Run {
    kubetrail_in(None, args)
}

/// Runs `kubetrail ARGS` in `dir` (for the default `--db kubetrail.db`).
pub fn kubetrail_in(dir: Option<&Path>, args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubetrail"));
    cmd.args(args)
        .env_remove("KUBETRAIL_DB")
        .env("RUST_LOG", "warn");
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    Run::from(cmd.output().expect("run kubetrail"))
}

/// Parses CSV output into (header, records).
pub fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader
        .headers()
        .expect("csv header")
        .iter()
        .map(String::from)
        .collect();
    let records = reader
        .records()
        .map(|r| r.expect("csv record").iter().map(String::from).collect())
        .collect();
    (header, records)
}

/// Parses `-o json` output (an array of objects).
pub fn parse_json(text: &str) -> Vec<serde_json::Value> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Array(items)) => items,
        other => panic!("expected a JSON array, got {other:?} from:\n{text}"),
    }
}

/// RFC 3339 with milliseconds, as JSON and CSV print times.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .expect("valid time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Node usage with hand-computable averages (times relative to [`T0`]):
///
/// - `node-a` (uid `node-a-uid`, added T0-1d, still there). Steps (cpu request / memory
///   request / cpu limit / memory limit / pods / allocatable cpu, memory):
///   - T0-2h: 1000m / 2Gi / 2000m / 4Gi / 2 pods / 4000m, 8Gi (a keyframe before the window)
///   - 15m: 2000m / 4Gi / 4000m / 8Gi / 4 pods
///   - 1h45m: 1000m / 2Gi / 2000m / 4Gi / 2 pods
///   - 2h30m: same requests, allocatable becomes 8000m, 16Gi
/// - `node-b` (`node-b-uid`, added 30m, deleted 1h30m, allocatable 2000m, 4Gi):
///   - 30m: 500m / 1Gi / 1000m / 2Gi / 1 pod
///   - 1h: 1500m / 3Gi / 3000m / 6Gi / 3 pods
///   - 2h: 0 (a stray row after the deletion, which must not count)
/// - `node-c` (`node-c-uid`), added at 5h with one row then: outside a 0..3h window.
pub fn usage_scenario() -> FixtureDb {
    let db = FixtureDb::new();
    let mut batch = Batch::default();
    batch
        .nodes
        .push(node("node-a-uid", "node-a", T0 - DAY).build());
    batch.nodes.push(
        node("node-b-uid", "node-b", T0 + 30 * MIN)
            .allocatable(2000, 4 * GI, 110)
            .deleted(T0 + HOUR + 30 * MIN)
            .build(),
    );
    batch
        .nodes
        .push(node("node-c-uid", "node-c", T0 + 5 * HOUR).build());
    let a = |at, cpu, mem, pods| {
        usage("node-a-uid", at)
            .requested(cpu, mem)
            .limits(2 * cpu, 2 * mem)
            .pods(pods)
    };
    let b = |at, cpu, mem, pods| {
        usage("node-b-uid", at)
            .requested(cpu, mem)
            .limits(2 * cpu, 2 * mem)
            .pods(pods)
            .allocatable(2000, 4 * GI)
    };
    batch.node_usage.extend([
        a(T0 - 2 * HOUR, 1000, 2 * GI, 2).keyframe().build(),
        a(T0 + 15 * MIN, 2000, 4 * GI, 4).build(),
        a(T0 + HOUR + 45 * MIN, 1000, 2 * GI, 2).build(),
        a(T0 + 2 * HOUR + 30 * MIN, 1000, 2 * GI, 2)
            .allocatable(8000, 16 * GI)
            .build(),
        b(T0 + 30 * MIN, 500, GI, 1).build(),
        b(T0 + HOUR, 1500, 3 * GI, 3).build(),
        b(T0 + 2 * HOUR, 0, 0, 0).build(),
        usage("node-c-uid", T0 + 5 * HOUR)
            .requested(100, GI)
            .pods(1)
            .build(),
    ]);
    db.write(&batch);
    db
}
