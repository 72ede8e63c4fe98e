//! The store seam holds: no code outside the SQLite backend (`crates/kubetrail/src/store/sqlite/`)
//! names rusqlite or r2d2, in the library or the command line (`src/`). Tests may: each file is
//! read only up to its first `#[cfg(test)]`.

use std::path::{Path, PathBuf};

/// `file:line: text` for every mention of rusqlite or r2d2 in the non-test code under `root`,
/// except under `allowed`.
fn mentions(root: &Path, allowed: Option<&Path>) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        if allowed.is_some_and(|a| dir == a) {
            continue;
        }
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path: PathBuf = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    if line.contains("#[cfg(test)]") {
                        break;
                    }
                    if line.contains("rusqlite") || line.contains("r2d2") {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    found.sort();
    found
}

#[test]
fn only_the_sqlite_backend_names_rusqlite_or_r2d2() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let library = workspace.join("crates/kubetrail/src");
    let backend = library.join("store/sqlite");
    let mut found = mentions(&library, Some(&backend));
    found.extend(mentions(&workspace.join("src"), None));
    assert!(
        found.is_empty(),
        "rusqlite/r2d2 outside crates/kubetrail/src/store/sqlite/ (go through the store \
         seam, store::api, instead):\n{}",
        found.join("\n")
    );
}
