//! The files in deploy/ that no test cluster can run: the systemd unit (checked by systemd's
//! own parser) and the Dockerfile (its build context must hold every file the build reads).
//! The Kubernetes manifests are applied to a real API server in tests/e2e_deploy.rs.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify_without_warnings() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("KUBETRAIL_E2E_REQUIRED").as_deref() != Ok("1"),
            "systemd-analyze is missing; .ci/run installs the systemd package"
        );
        eprintln!("SKIPPED: systemd-analyze is not installed");
        return;
    }
    let unit =
        std::fs::read_to_string(Path::new(ROOT).join("deploy/systemd/kubetrail.service")).unwrap();
    // verify checks that ExecStart's binary exists: point it at the one under test.
    assert!(unit.contains("ExecStart=/usr/local/bin/kubetrail record "));
    let unit = unit.replace("/usr/local/bin/kubetrail", env!("CARGO_BIN_EXE_kubetrail"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubetrail.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on unknown keys and bad values, only warning about them.
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {:?}\n{stderr}",
        out.status
    );
}

#[test]
fn the_dockerfile_copies_everything_the_build_reads() {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("deploy/Dockerfile")).unwrap();
    let copied: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len() - 1].to_vec()
        })
        .collect();
    // Every package of the workspace: the root (the binary) and crates/*.
    let mut packages = vec![std::path::PathBuf::from(ROOT)];
    for entry in std::fs::read_dir(Path::new(ROOT).join("crates")).unwrap() {
        packages.push(entry.unwrap().path());
    }
    for package in &packages {
        assert!(
            !package.join("build.rs").exists(),
            "{}: a build script would need copying too",
            package.display()
        );
    }
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string()];
    // Files the source pulls in at compile time.
    let sources = packages.iter().flat_map(|p| walk(&p.join("src")));
    for entry in sources {
        let text = std::fs::read_to_string(&entry).unwrap();
        for include in text.split("include_str!(\"").skip(1) {
            let rel = include.split('"').next().unwrap();
            let full = entry.parent().unwrap().join(rel).canonicalize().unwrap();
            let top = full
                .strip_prefix(ROOT)
                .unwrap()
                .components()
                .next()
                .unwrap();
            needed.push(top.as_os_str().to_string_lossy().into_owned());
        }
    }
    needed.push("src".into());
    needed.push("crates".into());
    needed.sort();
    needed.dedup();
    for path in &needed {
        assert!(
            copied.contains(&path.as_str()),
            "deploy/Dockerfile does not COPY {path} (copies {copied:?})"
        );
    }
    let ignored = std::fs::read_to_string(Path::new(ROOT).join(".dockerignore")).unwrap();
    for path in &needed {
        assert!(
            !ignored.lines().any(|l| l.trim() == path),
            ".dockerignore drops {path}"
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Every manifest lets the recorder list and watch Events in both groups, beside its pods:
/// without it `record` logs a forbidden events watch forever (the e2e test checks the grant
/// on a real API server with `kubectl auth can-i`).
#[test]
fn every_manifest_grants_list_and_watch_on_events_in_both_groups() {
    let dir = Path::new(ROOT).join("deploy/kubernetes");
    for name in [
        "kubetrail.yaml",
        "kubetrail-namespaced.yaml",
        "kubetrail-postgres.yaml",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let rule = "  - apiGroups: [\"\", \"events.k8s.io\"]\n    resources: [\"events\"]\n    verbs: [\"list\", \"watch\"]\n";
        assert!(text.contains(rule), "{name} lacks the events rule");
    }
}

/// Every manifest lets the recorder list and watch ReplicaSets and Jobs (the owner chain),
/// and nothing more on them: without it `record` logs forbidden owner watches forever (the
/// e2e test checks the grant on a real API server with `kubectl auth can-i`).
#[test]
fn every_manifest_grants_list_and_watch_on_replicasets_and_jobs() {
    let dir = Path::new(ROOT).join("deploy/kubernetes");
    for name in [
        "kubetrail.yaml",
        "kubetrail-namespaced.yaml",
        "kubetrail-postgres.yaml",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        for (group, resource) in [("apps", "replicasets"), ("batch", "jobs")] {
            let rule = format!(
                "  - apiGroups: [\"{group}\"]\n    resources: [\"{resource}\"]\n    verbs: [\"list\", \"watch\"]\n"
            );
            assert!(text.contains(&rule), "{name} lacks the {resource} rule");
        }
    }
}

/// Every manifest lets the recorder get and list the metrics API's pods (and, cluster-wide,
/// nodes), and none grants nodes/proxy, which is not read-only (the e2e test checks the grant
/// with `kubectl auth can-i`).
#[test]
fn every_manifest_grants_get_and_list_on_the_metrics_api_and_never_nodes_proxy() {
    let dir = Path::new(ROOT).join("deploy/kubernetes");
    for (name, resources) in [
        ("kubetrail.yaml", "[\"pods\", \"nodes\"]"),
        ("kubetrail-namespaced.yaml", "[\"pods\"]"),
        ("kubetrail-postgres.yaml", "[\"pods\", \"nodes\"]"),
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let rule = format!(
            "  - apiGroups: [\"metrics.k8s.io\"]\n    resources: {resources}\n    verbs: [\"get\", \"list\"]\n"
        );
        assert!(text.contains(&rule), "{name} lacks the metrics.k8s.io rule");
        assert!(
            !text
                .lines()
                .any(|l| l.trim_start().starts_with("resources:") && l.contains("proxy")),
            "{name} grants a proxy subresource"
        );
    }
}
