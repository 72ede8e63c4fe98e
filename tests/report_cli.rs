//! `kubetrail report` as a user runs it: bad flags and unusable `--out` paths are clear errors
//! with the right exit code (never a panic), a report over a fixture database is one
//! self-contained file, and `kubetrail demo` ends by writing `kubetrail-demo.html`.

#[path = "common/fixture.rs"]
mod fixture;

use std::io::Read;

use fixture::{kubetrail, kubetrail_in, scenario};

/// The report's JSON, inflated from the page (as the page's own script does, with
/// DecompressionStream).
fn embedded_report(page: &str) -> serde_json::Value {
    use base64::Engine;
    let start = page.find("id=\"kt-data\"").expect("the data element");
    let body = &page[start..];
    let body = &body[body.find('>').unwrap() + 1..body.find("</script>").unwrap()];
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .expect("base64");
    let mut json = String::new();
    flate2::read::GzDecoder::new(bytes.as_slice())
        .read_to_string(&mut json)
        .expect("gzip");
    serde_json::from_str(&json).expect("JSON")
}

#[test]
fn a_report_of_the_fixture_is_one_file_with_its_pods_and_tables() {
    let db = scenario();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.html");
    let run = kubetrail(&[
        "report",
        "--since",
        "2024-05-01",
        "--until",
        "2024-05-02",
        "--out",
        out.to_str().unwrap(),
        "--db",
        db.path_str(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), out.to_str().unwrap());
    assert!(run.stderr.contains("wrote "), "{}", run.stderr);
    let page = std::fs::read_to_string(&out).unwrap();
    assert!(page.starts_with("<!doctype html>"));
    for needle in [
        "src=\"http",
        "href=\"http",
        "@import",
        "src=\"//",
        "href=\"//",
    ] {
        assert!(!page.contains(needle), "the page refers to {needle}");
    }
    let report = embedded_report(&page);
    // The fixture's pods (common/fixture.rs), as `query pods` lists them.
    let listed = fixture::parse_json(
        kubetrail(&[
            "query",
            "pods",
            "--since",
            "2024-05-01",
            "--until",
            "2024-05-02",
            "-o",
            "json",
            "--db",
            db.path_str(),
        ])
        .ok(),
    );
    let names: Vec<&str> = listed.iter().map(|p| p["name"].as_str().unwrap()).collect();
    let in_report: Vec<&str> = report["pods"]["name"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(in_report, names);
    // web-0's first incarnation was OOMKilled: the OOMKill table points at its event.
    let oom = report["tables"]["oom_kills"][0]
        .as_u64()
        .expect("an OOMKill row") as usize;
    assert_eq!(report["events"]["reason"][oom], "OOMKilled");
    let pod = report["events"]["pod"][oom].as_u64().unwrap() as usize;
    assert_eq!(report["pods"]["name"][pod], "web-0");
    assert_eq!(
        report["pods"]["created_ms"][pod],
        listed[0]["created_at_ms"]
    );

    // --owner keeps that owner's pods only; an owner nobody has gives an empty report and a
    // note that says why that may be.
    let owned = listed
        .iter()
        .find(|p| p["owner_kind"].is_string())
        .expect("a pod with an owner");
    let owner = format!(
        "{}/{}",
        owned["owner_kind"].as_str().unwrap(),
        owned["owner_name"].as_str().unwrap()
    );
    let run = kubetrail(&[
        "report",
        "--since",
        "2024-05-01",
        "--until",
        "2024-05-02",
        "--owner",
        &owner,
        "--out",
        out.to_str().unwrap(),
        "--db",
        db.path_str(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = embedded_report(&std::fs::read_to_string(&out).unwrap());
    let expected = listed
        .iter()
        .filter(|p| {
            format!(
                "{}/{}",
                p["owner_kind"].as_str().unwrap_or(""),
                p["owner_name"].as_str().unwrap_or("")
            ) == owner
        })
        .count();
    assert_eq!(report["pods"]["name"].as_array().unwrap().len(), expected);
    let run = kubetrail(&[
        "report",
        "--owner",
        "Deployment/web",
        "--out",
        out.to_str().unwrap(),
        "--db",
        db.path_str(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("direct owner"), "{}", run.stderr);
}

#[test]
fn bad_flags_and_unusable_out_paths_are_clear_errors() {
    let db = scenario();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.html");
    let out = out.to_str().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let under_file = file.join("r.html");
    let missing_db = dir.path().join("missing.db");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["--since", "last tuesday"],
            2,
            "invalid time --since \"last tuesday\"",
        ),
        (
            vec!["--since", "1h", "--until", "2h"],
            2,
            "is before --since",
        ),
        (vec!["--owner", "web"], 2, "is not KIND/NAME"),
        (vec!["--owner", "ReplicaSet/"], 2, "is not KIND/NAME"),
        (vec!["--step", "5"], 2, "invalid duration \"5\""),
        (vec!["-n", "Shop"], 2, "is not a namespace name"),
        (
            vec!["--out", dir.path().to_str().unwrap()],
            2,
            "is a directory",
        ),
        (
            vec!["--out", "/no/such/dir/r.html"],
            2,
            "directory /no/such/dir does not exist",
        ),
        (
            vec!["--out", under_file.to_str().unwrap()],
            2,
            "does not exist",
        ),
        (vec!["--out", db.path_str()], 2, "is the database itself"),
        (
            vec!["--out", "/proc/kubetrail-report.html"],
            1,
            "cannot write --out /proc/kubetrail-report.html",
        ),
    ];
    for (args, code, says) in cases {
        let mut all = vec!["report", "--db", db.path_str()];
        if !args.contains(&"--out") {
            all.extend(["--out", out]);
        }
        all.extend(&args);
        let run = kubetrail(&all);
        assert_eq!(run.code, code, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
        assert!(
            !std::path::Path::new(out).exists(),
            "{args:?} wrote a report"
        );
    }
    let run = kubetrail(&["report", "--db", missing_db.to_str().unwrap(), "--out", out]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("missing.db"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"));
    // Nothing half-written is left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("plain-file")]);
}

#[test]
fn the_demo_ends_by_writing_its_report_and_saying_where() {
    let dir = tempfile::tempdir().unwrap();
    let run = kubetrail_in(Some(dir.path()), &["demo", "--duration", "3s"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("The report is kubetrail-demo.html"),
        "{}",
        run.stdout
    );
    let page = std::fs::read_to_string(dir.path().join("kubetrail-demo.html")).unwrap();
    let report = embedded_report(&page);
    assert!(!report["pods"]["name"].as_array().unwrap().is_empty());
    assert_eq!(report["source"], "kubetrail-demo.db");
}
