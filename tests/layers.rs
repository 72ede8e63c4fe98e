//! The library's layers hold: its top-level modules (`crates/kubetrail/src/*`) name each other
//! without a cycle, and only downwards:
//!
//! ```text
//! model  <-  store  <-  query, retention  <-  recorder        (output and error: leaves)
//!                        query  <-  report
//! ```
//!
//! `model` is plain data and pure rules; `store` is the seam and its backends, naming only the
//! vocabulary below it; `query` and `retention` run over the store and never name each other.
//! A module names another by a `crate::<module>` path (or `crate::{<module>, ...}`, or an
//! exported macro, `crate::<macro>!`). Tests may reach anywhere: each file is read only up to its
//! first `#[cfg(test)]`, and modules declared under `#[cfg(test)]` (the cross-backend
//! `conformance` suite at the top, the backends' `test_backend`s, `tests` modules) are skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and the ones it may name. A new module needs a line here.
const LAYERS: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("model", &[]),
    ("output", &[]),
    ("store", &["model", "error"]),
    ("query", &["model", "store", "output", "error"]),
    ("retention", &["model", "store", "error"]),
    (
        "recorder",
        &["model", "store", "query", "retention", "output", "error"],
    ),
    // Pictures of the history: reads through query's report functions and the store's coverage.
    ("report", &["model", "store", "query"]),
];

/// Where one module names another: `file:line`.
type Edges = BTreeMap<String, BTreeMap<String, String>>;

/// A source file, as a path relative to the library's `src/` and its text.
struct Source {
    path: PathBuf,
    text: String,
}

fn library() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/kubetrail/src")
}

/// Every `.rs` file under `root`, relative to it.
fn sources(root: &Path) -> Vec<Source> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(Source {
                    text: std::fs::read_to_string(&path).unwrap(),
                    path: path.strip_prefix(root).unwrap().to_path_buf(),
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// The directory that holds the submodules of the module in `file` (`lib.rs` and `x/mod.rs`:
/// their own directory; `x/y.rs`: `x/y/`).
fn child_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new("")).to_path_buf();
    match file.file_name().and_then(|n| n.to_str()) {
        Some("lib.rs" | "mod.rs") => parent,
        _ => parent.join(file.file_stem().unwrap()),
    }
}

/// The modules declared under `#[cfg(test)]` (`#[cfg(test)] mod x;`), as the path of the file
/// or directory that holds each: everything under them is test code.
fn test_only(files: &[Source]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for file in files {
        let mut lines = file.text.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if line != "#[cfg(test)]" {
                continue;
            }
            let Some(next) = lines
                .by_ref()
                .find(|l| !l.is_empty() && !l.starts_with("#["))
            else {
                break;
            };
            let declared = next
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ")
                .strip_prefix("mod ")
                .and_then(|rest| rest.strip_suffix(';'));
            if let Some(name) = declared {
                let dir = child_dir(&file.path);
                found.push(dir.join(format!("{name}.rs")));
                found.push(dir.join(name));
            }
        }
    }
    found
}

/// The text before the first `#[cfg(test)]` line.
fn non_test(text: &str) -> &str {
    let mut end = 0;
    for line in text.split_inclusive('\n') {
        if line.trim() == "#[cfg(test)]" {
            break;
        }
        end += line.len();
    }
    &text[..end]
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The first path segments after each `crate::` in `text` (all of them in `crate::{a, b::c}`),
/// with the byte offset where each is named.
fn named_after_crate(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        if text[..at].ends_with(is_ident) {
            continue; // `kubetrail_crate::`, not this crate
        }
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The top-level items of the group, up to its closing brace.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && depth == 0 && is_ident(c) => {
                        let name: String =
                            group[i..].chars().take_while(|&c| is_ident(c)).collect();
                        found.push((at, name));
                        item_start = false;
                    }
                    c if !c.is_whitespace() => item_start = false,
                    _ => {}
                }
            }
        } else {
            let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
            found.push((at, name));
        }
    }
    found
}

/// Which top-level module names which, over the library's non-test code in `files`.
fn edges(files: &[Source]) -> Edges {
    let tops: BTreeSet<String> = files
        .iter()
        .filter(|f| f.path != Path::new("lib.rs"))
        .map(|f| top_of(&f.path))
        .collect();
    let skipped = test_only(files);
    let live = || {
        files.iter().filter(|f| {
            f.path != Path::new("lib.rs") && !skipped.iter().any(|s| f.path.starts_with(s))
        })
    };
    // `#[macro_export]` macros live at the crate's root: `crate::usage!` names their module.
    let mut macros: BTreeMap<String, String> = BTreeMap::new();
    for file in live() {
        let mut lines = non_test(&file.text).lines().map(str::trim);
        while let Some(line) = lines.next() {
            if line == "#[macro_export]"
                && let Some(name) = lines.next().and_then(|l| l.strip_prefix("macro_rules! "))
            {
                let name = name.trim_end_matches(|c: char| !is_ident(c));
                macros.insert(name.to_string(), top_of(&file.path));
            }
        }
    }
    let mut edges = Edges::new();
    for file in live() {
        let from = top_of(&file.path);
        let text = non_test(&file.text);
        for (at, name) in named_after_crate(text) {
            let to = if tops.contains(&name) {
                name
            } else if let Some(home) = macros.get(&name) {
                home.clone()
            } else {
                continue;
            };
            if to == from || !live().any(|f| top_of(&f.path) == to) {
                continue;
            }
            let line = text[..at].matches('\n').count() + 1;
            edges
                .entry(from.clone())
                .or_default()
                .entry(to)
                .or_insert_with(|| format!("{}:{line}", file.path.display()));
        }
    }
    edges
}

/// `store/api.rs` -> `store`; `error.rs` -> `error`.
fn top_of(path: &Path) -> String {
    let first = path
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_str()
        .unwrap();
    first.trim_end_matches(".rs").to_string()
}

/// A cycle in the graph, as the modules around it (the first repeated at the end), or None.
fn find_cycle(edges: &Edges) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &Edges,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|start| visit(start, edges, &mut Vec::new(), &mut done))
}

/// The cycle said with where each step is named: "store -> query (store/api.rs:26) -> store
/// (query/pods.rs:12)".
fn describe_cycle(cycle: &[String], edges: &Edges) -> String {
    let mut text = cycle[0].clone();
    for pair in cycle.windows(2) {
        text.push_str(&format!(" -> {} ({})", pair[1], edges[&pair[0]][&pair[1]]));
    }
    text
}

/// Every edge the layering does not allow, said with where it is named.
fn layer_violations(edges: &Edges) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut found = Vec::new();
    for (from, targets) in edges {
        for (to, at) in targets {
            match allowed.get(from.as_str()) {
                None => found.push(format!(
                    "{at}: {from} names {to}, and {from} has no place in the layers (add it to LAYERS)"
                )),
                Some(may) if !may.contains(&to.as_str()) => found.push(format!(
                    "{at}: {from} names crate::{to}; {from} may name only: {}",
                    if may.is_empty() {
                        "nothing else".to_string()
                    } else {
                        may.join(", ")
                    }
                )),
                Some(_) => {}
            }
        }
    }
    found
}

#[test]
fn the_top_level_modules_have_no_cycle() {
    let edges = edges(&sources(&library()));
    assert!(
        edges.contains_key("store"),
        "the guard sees no edges: {edges:?}"
    );
    if let Some(cycle) = find_cycle(&edges) {
        panic!(
            "the library's top-level modules name each other in a cycle: {}\nmove the shared \
             vocabulary down (into model, or into store if only the store computes it), or hand \
             a rule in from above instead of calling up",
            describe_cycle(&cycle, &edges)
        );
    }
}

#[test]
fn each_layer_names_only_the_layers_below_it() {
    let found = layer_violations(&edges(&sources(&library())));
    assert!(
        found.is_empty(),
        "a module names a layer it must not (model <- store <- query, retention <- recorder; \
         output and error are leaves):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_guard_sees_cycles_groups_macros_and_skips_tests() {
    let file = |path: &str, text: &str| Source {
        path: PathBuf::from(path),
        text: text.to_string(),
    };
    let files = vec![
        file(
            "lib.rs",
            "#[cfg(test)]\nmod suite;\npub mod a;\npub mod b;\npub mod c;\n",
        ),
        file("a/mod.rs", "use crate::b::X;\n#[cfg(test)]\nmod tests;\n"),
        file("a/tests.rs", "use crate::c::Y;\n"),
        file("b.rs", "use crate::{\n    a::{Z, W},\n    model,\n};\n"),
        file(
            "c.rs",
            "fn f() { crate::shout!(); }\n#[cfg(test)]\nmod tests { use crate::a; }\n",
        ),
        file(
            "d.rs",
            "#[macro_export]\nmacro_rules! shout {\n    () => {};\n}\n",
        ),
        file("suite.rs", "use crate::a;\n"),
        file("suite/more.rs", "use crate::c;\n"),
    ];
    let edges = edges(&files);
    let named = |from: &str| -> Vec<&str> {
        edges
            .get(from)
            .map_or(vec![], |e| e.keys().map(String::as_str).collect())
    };
    assert_eq!(named("a"), vec!["b"], "a/tests.rs is test code");
    assert_eq!(
        named("b"),
        vec!["a"],
        "a group names a; model is no module here"
    );
    assert_eq!(
        named("c"),
        vec!["d"],
        "an exported macro names its module; tests do not count"
    );
    assert_eq!(
        named("suite"),
        Vec::<&str>::new(),
        "a test-only top module is skipped"
    );
    let cycle = find_cycle(&edges).expect("a <-> b");
    assert_eq!(
        describe_cycle(&cycle, &edges),
        "a -> b (a/mod.rs:1) -> a (b.rs:1)"
    );
    let found = layer_violations(&edges);
    assert!(
        found
            .iter()
            .any(|v| v.contains("a has no place in the layers")),
        "{found:?}"
    );
}
