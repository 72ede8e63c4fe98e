//! The scenario engine run headless (no HTTP, no wall clock): a fixed seed gives identical
//! truth bytes, every pod's transitions come in a legal order, and the scheduler never puts
//! more on a node than its allocatable.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use kubetrail::model::TransitionKind;
use kubetrail_sim::scenario::{Scenario, ScenarioConfig};
use kubetrail_sim::store::{RetentionLimits, Store};
use kubetrail_sim::truth::{TruthLine, TruthWriter, read_truth};

const START_MS: i64 = 1_795_000_000_000;

fn config(seed: u64) -> ScenarioConfig {
    ScenarioConfig {
        seed,
        start_ms: START_MS,
        nodes: 4,
        pods: 60,
        churn_per_sec: 20.0,
        pace: 0.3,
        event_flood_per_min: 0.0,
    }
}

fn run(config: ScenarioConfig, ticks: u64, truth: &Path) -> Scenario {
    let store = Store::new(RetentionLimits::default());
    let mut scenario = Scenario::new(config, store, TruthWriter::create(truth).unwrap());
    scenario.run_ticks(ticks);
    scenario.flush_truth().unwrap();
    scenario
}

#[test]
fn a_fixed_seed_gives_identical_truth_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    run(config(42), 3000, &a);
    run(config(42), 3000, &b);
    run(config(43), 3000, &c);
    let (a, b, c) = (
        std::fs::read(a).unwrap(),
        std::fs::read(b).unwrap(),
        std::fs::read(c).unwrap(),
    );
    assert!(
        a.len() > 10_000,
        "the scenario should produce plenty of truth ({} bytes)",
        a.len()
    );
    assert!(
        a == b,
        "same seed, same start, same ticks: the truth must be identical"
    );
    assert!(a != c, "another seed should give another history");
}

/// Checks one pod's truth lines, in file order, against the lifecycle.
fn check_pod(uid: &str, lines: &[&TruthLine]) -> Result<(), String> {
    use TransitionKind::*;
    let kinds: Vec<(TransitionKind, i64)> = lines
        .iter()
        .filter(|l| !l.is_relabel())
        .map(|l| (l.transition_kind().unwrap(), l.at_ms().unwrap()))
        .collect();
    let err = |msg: &str| Err(format!("pod {uid}: {msg}: {kinds:?}"));
    if kinds.first().map(|k| k.0) != Some(Created) {
        return err("the first transition must be created");
    }
    if lines[0].labels.is_none() {
        return err("created carries the labels");
    }
    let created_at = kinds[0].1;
    let count = |kind| kinds.iter().filter(|(k, _)| *k == kind).count();
    for once in [Created, Scheduled, Started, Terminating, Deleted] {
        if count(once) > 1 {
            return err(&format!("{once} happens at most once"));
        }
    }
    if count(Succeeded) + count(Failed) > 1 {
        return err("a pod reaches one terminal phase");
    }
    let position = |kind| kinds.iter().position(|(k, _)| *k == kind);
    let mut last_at = created_at;
    for kind in [Scheduled, Started] {
        if let Some(i) = position(kind) {
            if kinds[i].1 < last_at {
                return err(&format!("{kind} is earlier than the step before it"));
            }
            last_at = kinds[i].1;
        }
    }
    let needs = |kind, before| match (position(kind), position(before)) {
        (Some(i), Some(j)) => i > j,
        (Some(_), None) => false,
        (None, _) => true,
    };
    for (kind, before) in [
        (Scheduled, Created),
        (Started, Scheduled),
        (Ready, Started),
        (ContainerTerminated, Scheduled),
        (ContainerRestarted, ContainerTerminated),
        (Succeeded, Started),
        (Failed, Started),
    ] {
        if !needs(kind, before) {
            return err(&format!("{kind} before {before}"));
        }
    }
    if let Some(i) = position(Deleted)
        && i != kinds.len() - 1
    {
        return err("nothing may follow deleted");
    }
    if let (Some(t), Some(d)) = (position(Terminating), position(Deleted))
        && (t > d || kinds[t].1 > kinds[d].1)
    {
        return err("terminating must come before deleted");
    }
    if let Some(i) = position(Succeeded).or(position(Failed))
        && kinds[i + 1..]
            .iter()
            .any(|(k, _)| !matches!(k, Deleted | Terminating))
    {
        return err("only deletion follows a terminal phase");
    }
    // Ready and unready alternate, starting with ready.
    let mut ready = false;
    for (kind, _) in &kinds {
        match kind {
            Ready if ready => return err("ready twice in a row"),
            Unready if !ready => return err("unready while not ready"),
            Ready => ready = true,
            Unready => ready = false,
            _ => {}
        }
    }
    // An in-place resize is requested, then done; one at a time.
    let mut resizing = false;
    for (kind, _) in &kinds {
        match kind {
            ResizeRequested if resizing => return err("a second resize before the first is done"),
            Resized if !resizing => return err("resized without resize_requested"),
            ResizeRequested => resizing = true,
            Resized => resizing = false,
            _ => {}
        }
    }
    check_container_runs(lines).map_err(|e| format!("pod {uid}: {e}"))
}

/// Container runs: each containerID ends once; restartCount grows by one per new run and
/// names the run that ended; CrashLoopBackOff only between runs; image pull trouble only
/// before the pod started, ErrImagePull first.
fn check_container_runs(lines: &[&TruthLine]) -> Result<(), String> {
    use TransitionKind::*;
    let mut ended: HashSet<&str> = HashSet::new();
    // Per container: restartCount so far, and whether its latest run has ended.
    let mut containers: HashMap<&str, (u32, bool)> = HashMap::new();
    let mut started = false;
    let mut last_pull_reason: HashMap<&str, &str> = HashMap::new();
    for line in lines.iter().filter(|l| !l.is_relabel()) {
        let kind = line.transition_kind().unwrap();
        let container = line.container.as_deref().unwrap_or("");
        let state = containers.entry(container).or_insert((0, false));
        match kind {
            Started => started = true,
            ContainerTerminated => {
                let id = line.container_id.as_deref().ok_or("a run without an id")?;
                if !id.starts_with("containerd://") || id.len() != 13 + 32 {
                    return Err(format!("odd containerID {id}"));
                }
                if !ended.insert(id) {
                    return Err(format!("run {id} of {container} ended twice"));
                }
                if !started
                    && (line.exit_code != Some(0) || line.reason.as_deref() != Some("Completed"))
                {
                    return Err(format!(
                        "{container} ended before the pod started: {line:?}"
                    ));
                }
                state.1 = true;
            }
            ContainerRestarted => {
                let id = line
                    .container_id
                    .as_deref()
                    .ok_or("a restart without an id")?;
                if !ended.contains(id) {
                    return Err(format!(
                        "{container} restarted after run {id}, which never ended"
                    ));
                }
                let count = line
                    .restart_count
                    .ok_or("a restart without restart_count")?;
                if count != state.0 + 1 {
                    return Err(format!(
                        "{container}: restartCount went from {} to {count}",
                        state.0
                    ));
                }
                if !state.1 {
                    return Err(format!("{container} restarted while running"));
                }
                *state = (count, false);
            }
            ContainerWaiting => match line.reason.as_deref() {
                Some("CrashLoopBackOff") => {
                    if !started || !state.1 {
                        return Err(format!(
                            "{container} in CrashLoopBackOff while not between runs"
                        ));
                    }
                }
                Some(reason @ ("ErrImagePull" | "ImagePullBackOff")) => {
                    if started {
                        return Err(format!("{container}: {reason} after the pod started"));
                    }
                    let previous = last_pull_reason.insert(container, reason);
                    let expected = match previous {
                        None | Some("ImagePullBackOff") => "ErrImagePull",
                        _ => "ImagePullBackOff",
                    };
                    if reason != expected {
                        return Err(format!("{container}: {reason} after {previous:?}"));
                    }
                }
                other => return Err(format!("unexpected waiting reason {other:?}")),
            },
            _ => {}
        }
    }
    Ok(())
}

#[test]
fn every_pod_moves_through_a_legal_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truth");
    run(config(7), 6000, &path);
    let lines = read_truth(&path).unwrap();
    let mut pods: HashMap<String, Vec<&TruthLine>> = HashMap::new();
    let mut seen = HashSet::new();
    let mut reasons = HashSet::new();
    let mut relabels = 0;
    for line in &lines {
        if line.is_relabel() {
            relabels += 1;
        } else {
            seen.insert(line.transition_kind().unwrap());
        }
        if line.kind == "container_waiting" {
            reasons.insert(line.reason.clone().unwrap());
        }
        if line.node.is_none() {
            assert!(line.namespace.is_some() && line.name.is_some(), "{line:?}");
            pods.entry(line.uid.clone()).or_default().push(line);
        }
    }
    for (uid, lines) in &pods {
        check_pod(uid, lines).unwrap();
    }
    for kind in [
        TransitionKind::Created,
        TransitionKind::Scheduled,
        TransitionKind::Started,
        TransitionKind::Ready,
        TransitionKind::Unready,
        TransitionKind::ContainerTerminated,
        TransitionKind::ContainerRestarted,
        TransitionKind::ContainerWaiting,
        TransitionKind::ResizeRequested,
        TransitionKind::Resized,
        TransitionKind::Succeeded,
        TransitionKind::Failed,
        TransitionKind::Terminating,
        TransitionKind::Deleted,
        TransitionKind::NodeAdded,
        TransitionKind::NodeReady,
    ] {
        assert!(
            seen.contains(&kind),
            "a minute of scenario should include {kind}"
        );
    }
    for reason in ["CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff"] {
        assert!(reasons.contains(reason), "no {reason} in {reasons:?}");
    }
    assert!(relabels > 0, "a minute of scenario should relabel a pod");
    // A pod held by a finalizer: its containers end after terminating, and it goes later.
    let held = pods.values().any(|lines| {
        let kinds: Vec<&str> = lines.iter().map(|l| l.kind.as_str()).collect();
        let t = kinds.iter().position(|k| *k == "terminating");
        let s = kinds
            .iter()
            .position(|k| *k == "succeeded" || *k == "failed");
        matches!((t, s, kinds.last()), (Some(t), Some(s), Some(&"deleted")) if t < s)
    });
    assert!(
        held,
        "a minute of scenario should hold a deleted pod by its finalizer"
    );
}

#[test]
fn scheduling_never_exceeds_allocatable() {
    let dir = tempfile::tempdir().unwrap();
    // Far more pods than 2 nodes hold: many stay Pending.
    let config = ScenarioConfig {
        seed: 9,
        start_ms: START_MS,
        nodes: 2,
        pods: 400,
        churn_per_sec: 50.0,
        pace: 0.2,
        event_flood_per_min: 0.0,
    };
    let store = Store::new(RetentionLimits::default());
    let mut scenario = Scenario::new(
        config,
        store,
        TruthWriter::create(&dir.path().join("t")).unwrap(),
    );
    scenario.check_invariants().unwrap();
    for _ in 0..3000 {
        scenario.step();
        scenario.check_invariants().unwrap();
    }
    assert!(
        scenario.stats().unschedulable_pods > 0,
        "the test needs a full cluster"
    );
}

/// What the checker remembers about one app container between versions of its pod.
#[derive(Default)]
struct RunTrack {
    restart_count: u64,
    /// Seen from its first run, so its first back-off must be the initial one.
    from_zero: bool,
    run: Option<String>,
    /// The back-off delays (ms) of the CrashLoopBackOff episodes seen, one per ended run.
    delays: Vec<(String, i64)>,
}

/// Parses the delay of "back-off 1.2s restarting failed container=..." (Go duration, as the
/// kubelet prints it) into ms.
fn backoff_delay_ms(message: &str) -> Option<i64> {
    let d = message.strip_prefix("back-off ")?.split(' ').next()?;
    let (mut total, mut number) = (0f64, String::new());
    let mut chars = d.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let n: f64 = number.parse().ok()?;
        number.clear();
        total += match (c, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                n
            }
            ('h', _) => n * 3_600_000.0,
            ('m', _) => n * 60_000.0,
            ('s', _) => n * 1000.0,
            _ => return None,
        };
    }
    Some(total.round() as i64)
}

/// Every version of every pod the store publishes while a scenario runs is checked against
/// what a real kubelet shows: restartCount never decreases and grows exactly when a new run
/// (new containerID) starts, with lastState holding the run that ended; CrashLoopBackOff shows
/// that same run, its back-off doubles up to the cap, and the restart waits it out; pull
/// failures keep the pod Pending with no run; init containers run one at a time, in order,
/// before the app containers; a pod with a finalizer stays, terminal, until the finalizer
/// goes.
#[test]
fn pod_status_follows_the_kubelet_through_crash_loops_pulls_inits_and_finalizers() {
    use kubetrail_sim::store::{ChangeType, ResourceKind, WatchStart};
    use serde_json::Value;

    let dir = tempfile::tempdir().unwrap();
    let config = config(7);
    let pace = config.pace;
    let store = Store::new(RetentionLimits::default());
    let mut scenario = Scenario::new(
        config,
        store.clone(),
        TruthWriter::create(&dir.path().join("t")).unwrap(),
    );
    let WatchStart::Initial { mut rx, .. } = store.watch(ResourceKind::Pods, None) else {
        panic!("a watch from now starts with the current state");
    };
    let scale = kubetrail_sim::scenario::BACKOFF_SCALE * pace;
    let (initial_ms, max_ms) = (
        ((10_000.0 * scale / 10.0).round() as i64) * 10,
        ((300_000.0 * scale / 10.0).round() as i64) * 10,
    );
    let mut tracks: HashMap<(String, String), RunTrack> = HashMap::new();
    let (mut backoffs, mut pulls, mut held, mut init_checks, mut resizes) = (0, 0, 0, 0, 0);
    let mut check = |change: &kubetrail_sim::store::Change| -> Result<(), String> {
        let pod: Value = serde_json::from_slice(&change.object.json).unwrap();
        let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
        let phase = pod["status"]["phase"].as_str().unwrap_or("");
        let finalizers = pod["metadata"]["finalizers"].as_array().map_or(0, Vec::len);
        if change.change_type == ChangeType::Deleted && finalizers > 0 {
            return Err(format!("{uid} went with its finalizer: {pod}"));
        }
        if finalizers > 0
            && pod["metadata"]["deletionTimestamp"].is_string()
            && (phase == "Succeeded" || phase == "Failed")
        {
            held += 1;
        }
        let resize_in_progress = pod["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "PodResizeInProgress"));
        if resize_in_progress {
            let spec = &pod["spec"]["containers"][0]["resources"]["requests"];
            let status = &pod["status"]["containerStatuses"][0];
            if status["allocatedResources"] != *spec || status["resources"]["requests"] == *spec {
                return Err(format!(
                    "{uid}: a resize in progress is allocated, not yet actuated: {pod}"
                ));
            }
            resizes += 1;
        }
        let statuses = pod["status"]["containerStatuses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for cs in &statuses {
            let name = cs["name"].as_str().unwrap().to_string();
            let restart_count = cs["restartCount"].as_u64().unwrap();
            let id = cs["containerID"].as_str().map(str::to_string);
            let last_id = cs["lastState"]["terminated"]["containerID"].as_str();
            let key = (uid.clone(), name.clone());
            let fresh = !tracks.contains_key(&key);
            let track = tracks.entry(key).or_insert_with(|| RunTrack {
                from_zero: restart_count == 0,
                ..RunTrack::default()
            });
            let err = |msg: String| Err(format!("{uid}/{name}: {msg}: {cs}"));
            if restart_count < track.restart_count {
                return err(format!("restartCount fell from {}", track.restart_count));
            }
            let state = &cs["state"];
            if state["running"].is_object() {
                let id = id.clone().ok_or("running without a containerID")?;
                if track.run.as_ref().is_some_and(|r| *r != id) && !fresh {
                    if restart_count != track.restart_count + 1 {
                        return err(format!(
                            "a new run but restartCount {}",
                            track.restart_count
                        ));
                    }
                    if last_id != track.run.as_deref() {
                        return err("lastState is not the run that ended".into());
                    }
                    if let Some((episode, delay)) = track.delays.last()
                        && Some(episode.as_str()) == last_id
                    {
                        let finished = kubetrail_sim::clock::parse_rfc3339_ms(
                            cs["lastState"]["terminated"]["finishedAt"]
                                .as_str()
                                .unwrap(),
                        )
                        .unwrap();
                        let started = kubetrail_sim::clock::parse_rfc3339_ms(
                            state["running"]["startedAt"].as_str().unwrap(),
                        )
                        .unwrap();
                        // Second precision on both ends.
                        if started - finished < delay - 1000 {
                            return err(format!(
                                "restarted {} ms after the crash, back-off {delay} ms",
                                started - finished
                            ));
                        }
                    }
                } else if track.run.is_some() && restart_count != track.restart_count {
                    return err("restartCount changed within one run".into());
                }
                track.run = Some(id);
            } else if let Some(reason) = state["waiting"]["reason"].as_str() {
                match reason {
                    "CrashLoopBackOff" => {
                        if last_id.is_none()
                            || (track.run.is_some() && last_id != track.run.as_deref())
                        {
                            return err(
                                "CrashLoopBackOff without the ended run in lastState".into()
                            );
                        }
                        if id.as_deref() != last_id {
                            return err("containerID is not the latest run".into());
                        }
                        if !fresh && restart_count != track.restart_count {
                            return err("restartCount changed while waiting".into());
                        }
                        track.run = id.clone();
                        let message = state["waiting"]["message"].as_str().unwrap_or("");
                        let pod_ref = format!(
                            "restarting failed container={name} pod={}_{}({uid})",
                            pod["metadata"]["name"].as_str().unwrap(),
                            pod["metadata"]["namespace"].as_str().unwrap()
                        );
                        if !message.ends_with(&pod_ref) {
                            return err(format!("message {message:?}"));
                        }
                        let delay = backoff_delay_ms(message).ok_or("no delay in the message")?;
                        let episode = last_id.unwrap().to_string();
                        if track.delays.last().is_none_or(|(e, _)| *e != episode) {
                            if let Some((_, previous)) = track.delays.last()
                                && delay != (previous * 2).min(max_ms)
                                && delay != initial_ms
                            {
                                return err(format!("back-off {delay} ms after {previous} ms"));
                            }
                            if track.delays.is_empty() && track.from_zero && delay != initial_ms {
                                return err(format!("first back-off {delay} ms"));
                            }
                            track.delays.push((episode, delay));
                            backoffs += 1;
                        }
                    }
                    "ErrImagePull" | "ImagePullBackOff" => {
                        if phase != "Pending" || restart_count != 0 || id.is_some() {
                            return err(format!("pull trouble in phase {phase}"));
                        }
                        pulls += 1;
                    }
                    "ContainerCreating" | "PodInitializing" => {
                        if phase != "Pending" {
                            return err(format!("{reason} in phase {phase}"));
                        }
                    }
                    other => return err(format!("unexpected waiting reason {other}")),
                }
            } else if state["terminated"].is_object() {
                if track.run.is_some() && id != track.run {
                    return err("terminated is not the latest run".into());
                }
                track.run = id.clone();
            }
            track.restart_count = restart_count;
        }
        // Init containers: one plain init at a time, in order, all done before apps run.
        let specs = pod["spec"]["initContainers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let inits = pod["status"]["initContainerStatuses"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut earlier_done = true;
        for (spec, status) in specs.iter().zip(&inits) {
            let sidecar = spec["restartPolicy"] == "Always";
            let began = !status["state"]["waiting"].is_object();
            if began && !earlier_done {
                return Err(format!("{uid}: init containers out of order: {inits:?}"));
            }
            let done = if sidecar {
                began
            } else {
                status["state"]["terminated"].is_object()
            };
            earlier_done &= done;
        }
        if !inits.is_empty() && phase == "Pending" {
            init_checks += 1;
            if !earlier_done
                && statuses
                    .iter()
                    .any(|s| s["state"]["waiting"]["reason"] != "PodInitializing")
            {
                return Err(format!(
                    "{uid}: app containers move before the init containers are done: {pod}"
                ));
            }
        }
        Ok(())
    };
    for _ in 0..6000 {
        scenario.step();
        while let Ok(change) = rx.try_recv() {
            check(&change).unwrap();
        }
    }
    assert!(
        backoffs >= 5,
        "too few CrashLoopBackOff episodes: {backoffs}"
    );
    assert!(pulls >= 2, "too few pull failures: {pulls}");
    assert!(held >= 1, "no pod held by a finalizer");
    assert!(
        init_checks >= 5,
        "too few pods with init containers: {init_checks}"
    );
    assert!(resizes >= 1, "no resize seen in progress");
    println!(
        "backoffs {backoffs}, pulls {pulls}, held {held}, init checks {init_checks}, resize versions {resizes}"
    );
}

#[path = "common/compare.rs"]
#[allow(unused)]
mod compare;

/// With `-l app.kubernetes.io/name=APP`, a pod relabelled out of its app leaves the scope and
/// (maybe) comes back; what it does meanwhile is invisible to the recorder.
#[test]
fn scoped_truth_turns_relabels_into_scope_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truth");
    run(config(7), 6000, &path);
    let truth = read_truth(&path).unwrap();
    let relabel = truth
        .iter()
        .find(|l| l.is_relabel())
        .expect("a minute of scenario relabels a pod");
    let created = truth
        .iter()
        .find(|l| l.uid == relabel.uid && l.kind == "created")
        .unwrap();
    let app = &created.labels.as_ref().unwrap()["app.kubernetes.io/name"];
    let selector = format!("app.kubernetes.io/name={app}");
    let scoped = compare::scoped(&truth, &selector);
    let kinds: Vec<&str> = scoped
        .iter()
        .filter(|l| l.uid == relabel.uid)
        .map(|l| l.kind.as_str())
        .collect();
    let left = kinds
        .iter()
        .position(|k| *k == "left_scope")
        .unwrap_or_else(|| panic!("no left_scope for {selector}: {kinds:?}"));
    if let Some(back) = kinds.iter().position(|k| *k == "entered_scope") {
        assert_eq!(back, left + 1, "nothing is seen out of scope: {kinds:?}");
    } else {
        assert_eq!(
            left,
            kinds.len() - 1,
            "nothing is seen out of scope: {kinds:?}"
        );
    }
    assert!(scoped.iter().all(|l| !l.is_relabel()));
    // Pods of other apps are out of scope altogether; nodes stay.
    assert!(scoped.iter().any(|l| l.node.is_some()));
    assert!(
        scoped.len() < truth.len() / 2,
        "{} of {}",
        scoped.len(),
        truth.len()
    );
    // Without a selector nothing changes but the relabel lines.
    let everything = compare::scoped(&truth, "");
    assert_eq!(
        everything.len(),
        truth.iter().filter(|l| !l.is_relabel()).count()
    );
}

/// A pod that restarted before the recorder's first list has ready, unready, ready in the
/// gap; the recorder can only infer the last ready. The earlier ready must not take that
/// inferred row (which left the last one "missing").
#[test]
fn an_earlier_flip_inside_a_gap_does_not_take_the_inferred_row_of_the_last() {
    let (t1, t2, t3) = (START_MS - 90_000, START_MS - 60_000, START_MS - 50_000);
    let line = |kind, at| TruthLine::pod("u1", "default", "web-1", kind, at);
    let truth = vec![
        line(TransitionKind::Ready, t1),
        line(TransitionKind::Unready, t2),
        line(TransitionKind::Ready, t3),
    ];
    let recorded = vec![compare::Recorded {
        uid: "u1".into(),
        kind: TransitionKind::Ready,
        at_ms: t3 / 1000 * 1000,
        observed_at_ms: START_MS,
        inferred: true,
        container: None,
        restart_count: None,
    }];
    let result = compare::compare(&truth, &recorded, &[compare::before_start(START_MS)]);
    result.assert_exact();
    assert_eq!(result.matched, 1);
    assert_eq!(result.exempt.len(), 2, "{:?}", result.exempt);
}

/// A pod first seen with two restarts behind it: status describes only the last restart and
/// the run that ended before it, and the recorder has a row for each at their own times. The
/// first restart and its termination, earlier in the truth and inside the gap, must not take
/// those rows under the gap's looser rule (which left the last restart "missing" although it
/// was recorded at its exact time).
#[test]
fn an_earlier_run_inside_a_gap_does_not_take_the_rows_of_the_last() {
    let (t1, t2) = (START_MS - 90_000, START_MS - 60_000);
    let run = |kind, at, restart_count| {
        let mut line = TruthLine::pod("u1", "default", "web-1", kind, at);
        line.container = Some("web".into());
        line.restart_count = restart_count;
        line
    };
    let truth = vec![
        run(TransitionKind::ContainerTerminated, t1, None),
        run(TransitionKind::ContainerRestarted, t1, Some(1)),
        run(TransitionKind::ContainerTerminated, t2, None),
        run(TransitionKind::ContainerRestarted, t2, Some(2)),
    ];
    let row = |kind, run| compare::Recorded {
        uid: "u1".into(),
        kind,
        at_ms: t2 / 1000 * 1000,
        observed_at_ms: START_MS,
        inferred: true,
        container: Some("web".into()),
        restart_count: Some(run),
    };
    let recorded = vec![
        row(TransitionKind::ContainerTerminated, 1),
        row(TransitionKind::ContainerRestarted, 2),
    ];
    let result = compare::compare(&truth, &recorded, &[compare::before_start(START_MS)]);
    result.assert_exact();
    assert_eq!(result.matched, 2);
    assert_eq!(result.exempt.len(), 2, "{:?}", result.exempt);
}

/// A pod deleted while the recorder was down (kill -9, then a restart that lists): the list
/// does not show it, so its `deleted` (inferred) is all the recorder can know; what it did
/// inside the gap is exempt. A resumed watch would have replayed those changes, so after a
/// replayed gap they are still required.
#[test]
fn a_pod_deleted_inside_a_listed_gap_owes_only_its_deletion() {
    let (created, down, ended, gone, back) = (
        START_MS - 90_000,
        START_MS - 30_000,
        START_MS - 25_000,
        START_MS - 20_000,
        START_MS - 10_000,
    );
    let line = |kind, at| TruthLine::pod("u1", "default", "web-1", kind, at);
    let mut terminated = line(TransitionKind::ContainerTerminated, ended);
    terminated.container = Some("web".into());
    let truth = vec![
        line(TransitionKind::Created, created),
        terminated,
        line(TransitionKind::Succeeded, ended),
        line(TransitionKind::Deleted, gone),
    ];
    let row = |kind, at_ms, inferred| compare::Recorded {
        uid: "u1".into(),
        kind,
        at_ms,
        observed_at_ms: at_ms,
        inferred,
        container: None,
        restart_count: None,
    };
    let recorded = vec![
        row(TransitionKind::Created, created, false),
        row(TransitionKind::Deleted, back, true),
    ];
    let listed = compare::compare(&truth, &recorded, &[compare::Gap::listed(down, back)]);
    listed.assert_exact();
    assert_eq!(listed.exempt.len(), 2, "{:?}", listed.exempt);
    let replayed = compare::compare(&truth, &recorded, &[compare::Gap::replayed(down, back)]);
    assert_eq!(replayed.missing.len(), 2, "{replayed:?}");
    // The deletion itself is owed either way.
    let without = compare::compare(&truth, &recorded[..1], &[compare::Gap::listed(down, back)]);
    assert_eq!(without.missing.len(), 1, "{without:?}");
}

/// After an outage the resumed watch replays what was missed, and changes made meanwhile come
/// behind the replay: live, but a deletion is dated when the recorder got to it. Inside the
/// gap (which ends when the recorder has caught up) such a row is bounded, not exact; outside
/// any gap the 1 s rule still holds.
#[test]
fn a_change_seen_live_behind_a_replay_is_bounded_by_the_gap() {
    let (down, gone, caught_up) = (START_MS - 30_000, START_MS - 3_000, START_MS);
    let truth = vec![
        TruthLine::pod(
            "u1",
            "default",
            "web-1",
            TransitionKind::Created,
            down - 60_000,
        ),
        TruthLine::pod("u1", "default", "web-1", TransitionKind::Deleted, gone),
    ];
    let row = |kind, at_ms| compare::Recorded {
        uid: "u1".into(),
        kind,
        at_ms,
        observed_at_ms: at_ms,
        inferred: false,
        container: None,
        restart_count: None,
    };
    let recorded = vec![
        row(TransitionKind::Created, down - 60_000),
        row(TransitionKind::Deleted, gone + 1_500),
    ];
    let gap = compare::Gap::replayed(down, caught_up);
    compare::compare(&truth, &recorded, &[gap]).assert_exact();
    let strict = compare::compare(&truth, &recorded, &[]);
    assert_eq!(strict.missing.len(), 1, "{strict:?}");
    assert_eq!(strict.unexpected.len(), 1, "{strict:?}");
}

/// The Unhealthy occurrences the store holds: the sum of the core Events' counts.
fn unhealthy_occurrences(store: &Store) -> i64 {
    let (_, events) = store.snapshot(kubetrail_sim::store::ResourceKind::Events);
    events
        .values()
        .map(|o| serde_json::from_slice::<serde_json::Value>(&o.json).unwrap())
        .filter(|e| e["reason"] == "Unhealthy")
        .map(|e| e["count"].as_i64().unwrap())
        .sum()
}

#[test]
fn an_event_flood_adds_its_rate_of_unhealthy_events_on_running_pods() {
    let run = |flood: f64| {
        let store = Store::new(RetentionLimits::default());
        let config = ScenarioConfig {
            seed: 4,
            start_ms: START_MS,
            nodes: 4,
            pods: 200,
            churn_per_sec: 0.0,
            pace: 1.0,
            event_flood_per_min: flood,
        };
        let mut scenario = Scenario::new(config, store.clone(), TruthWriter::disabled());
        // 60 s of virtual time.
        scenario.run_ticks(6_000);
        unhealthy_occurrences(&store)
    };
    let quiet = run(0.0);
    let flooded = run(3_000.0);
    // The same seed without the flood makes the same lifecycles, with their own probe
    // failures (flapping pods): the flood draws its picks from random numbers of its own.
    // Not exactly 3,000: the simulator expires hour-old Events (the initial cluster's made-up
    // past) whenever it records one, so the flooded run drops a few of them sooner.
    let added = flooded - quiet;
    assert!(
        (2_950..=3_000).contains(&added),
        "3,000 a minute for a minute added {added} ({quiet} Unhealthy occurrences without)"
    );
}
