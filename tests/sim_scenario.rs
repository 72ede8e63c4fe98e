//! The scenario engine run headless (no HTTP, no wall clock): a fixed seed gives identical
//! truth bytes, every pod's transitions come in a legal order, and the scheduler never puts
//! more on a node than its allocatable.

use std::collections::HashMap;
use std::path::Path;

use kubetrail::model::TransitionKind;
use kubetrail::sim::scenario::{Scenario, ScenarioConfig};
use kubetrail::sim::store::{RetentionLimits, Store};
use kubetrail::sim::truth::{TruthWriter, read_truth};

const START_MS: i64 = 1_795_000_000_000;

fn config(seed: u64) -> ScenarioConfig {
    ScenarioConfig {
        seed,
        start_ms: START_MS,
        nodes: 4,
        pods: 60,
        churn_per_sec: 20.0,
        pace: 0.3,
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

/// Checks one pod's transitions, in file order, against the lifecycle.
fn check_pod(uid: &str, kinds: &[(TransitionKind, i64)]) -> Result<(), String> {
    use TransitionKind::*;
    let err = |msg: &str| Err(format!("pod {uid}: {msg}: {kinds:?}"));
    if kinds.first().map(|k| k.0) != Some(Created) {
        return err("the first transition must be created");
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
        (ContainerTerminated, Started),
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
    for (kind, _) in kinds {
        match kind {
            Ready if ready => return err("ready twice in a row"),
            Unready if !ready => return err("unready while not ready"),
            Ready => ready = true,
            Unready => ready = false,
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
    let mut pods: HashMap<String, Vec<(TransitionKind, i64)>> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for line in &lines {
        let kind = line.transition_kind().unwrap();
        seen.insert(kind);
        if line.node.is_none() {
            assert!(line.namespace.is_some() && line.name.is_some(), "{line:?}");
            pods.entry(line.uid.clone())
                .or_default()
                .push((kind, line.at_ms().unwrap()));
        }
    }
    for (uid, kinds) in &pods {
        check_pod(uid, kinds).unwrap();
    }
    for kind in [
        TransitionKind::Created,
        TransitionKind::Scheduled,
        TransitionKind::Started,
        TransitionKind::Ready,
        TransitionKind::Unready,
        TransitionKind::ContainerTerminated,
        TransitionKind::ContainerRestarted,
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
