//! The store seam holds: each backend's driver is named only inside that backend's module, in
//! the library and the command line (`src/`) alike. rusqlite only under
//! `crates/kubetrail/src/store/sqlite/`, the `postgres` client only under `store/postgres/`, and
//! the r2d2 pool only in those two. Tests may: each file is read only up to its first
//! `#[cfg(test)]`.

use std::path::{Path, PathBuf};

/// A driver, and the one backend directory (under `crates/kubetrail/src/`) allowed to name it.
struct Driver {
    name: &'static str,
    homes: &'static [&'static str],
    /// Whether `line` names the driver.
    names: fn(&str) -> bool,
}

const DRIVERS: &[Driver] = &[
    Driver {
        name: "rusqlite",
        homes: &["store/sqlite"],
        names: |line| line.contains("rusqlite"),
    },
    Driver {
        name: "r2d2",
        homes: &["store/sqlite", "store/postgres"],
        names: |line| line.contains("r2d2"),
    },
    Driver {
        name: "postgres",
        homes: &["store/postgres"],
        // The crate as a path root (`postgres::Client`, `use postgres`), not the module
        // `store::postgres` that the seam's openers name.
        names: |line| {
            line.contains("tokio_postgres")
                || line.trim_start().starts_with("use postgres")
                || line.match_indices("postgres::").any(|(at, _)| {
                    !line[..at].ends_with(':')
                        && !line[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                })
        },
    },
];

/// The `.rs` files under `root`, recursively.
fn sources(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// `file:line: text` for every line of non-test code that names a driver outside its homes.
fn violations(workspace: &Path) -> Vec<String> {
    let library = workspace.join("crates/kubetrail/src");
    let mut files = sources(&library);
    files.extend(sources(&workspace.join("src")));
    let mut found = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains("#[cfg(test)]") {
                break;
            }
            for driver in DRIVERS {
                let at_home = driver
                    .homes
                    .iter()
                    .any(|h| path.starts_with(library.join(h)));
                if !at_home && (driver.names)(line) {
                    found.push(format!(
                        "{}:{}: {} ({} belongs in {})",
                        path.display(),
                        n + 1,
                        line.trim(),
                        driver.name,
                        driver.homes.join(" or ")
                    ));
                }
            }
        }
    }
    found.sort();
    found
}

#[test]
fn each_backend_alone_names_its_driver() {
    let found = violations(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(
        found.is_empty(),
        "a driver named outside its backend (go through the store seam, store::api, \
         instead):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_guard_sees_a_driver_out_of_place() {
    let postgres = &DRIVERS[2];
    assert!((postgres.names)("use postgres::Client;"));
    assert!((postgres.names)("    let c: postgres::Client = todo!();"));
    assert!(!(postgres.names)(
        "Location::Postgres(super::postgres::PgLocation)"
    ));
    assert!(!(postgres.names)("crate::store::postgres::tests"));
    assert!((DRIVERS[0].names)("use rusqlite::Connection;"));
}
