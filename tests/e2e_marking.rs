//! Every end-to-end test is visible as skipped when the real control plane is absent: it
//! carries `#[ignore = ...]`, so `cargo test` lists it as "ignored" rather than passing it as ok
//! after printing SKIPPED, and `scripts/test` runs them with `--include-ignored`.

use std::path::Path;

fn e2e_test_files() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("tests/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("e2e_") && n.ends_with(".rs") && n != "e2e_marking.rs"
            })
        })
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable test file");
            (p.display().to_string(), text)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn e2e_tests_without_the_control_plane_are_ignored_not_passed() {
    let files = e2e_test_files();
    assert!(!files.is_empty(), "no tests/e2e_*.rs found");
    let mut unmarked = Vec::new();
    for (path, text) in &files {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim() == "#[test]" {
                let next = lines.get(i + 1).map(|l| l.trim()).unwrap_or_default();
                if !next.starts_with("#[ignore = \"needs the real control plane") {
                    unmarked.push(format!("{path}:{}", i + 1));
                }
            }
        }
    }
    assert!(
        unmarked.is_empty(),
        "e2e tests without #[ignore = \"needs the real control plane ...\"]: {unmarked:?}"
    );
    let common =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/e2e.rs"))
            .expect("tests/common/e2e.rs");
    assert!(
        !common.contains("SKIPPED:"),
        "ControlPlane::start must not pass a test that did not run"
    );
}

#[test]
fn scripts_test_runs_the_ignored_e2e_tests_once_the_control_plane_is_built() {
    let script =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test"))
            .expect("scripts/test");
    assert!(script.contains("--include-ignored"), "{script}");
    assert!(
        script.contains("KUBETRAIL_E2E_REQUIRED"),
        "CI must still fail without go"
    );
}
