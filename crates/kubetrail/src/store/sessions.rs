//! Recording sessions (migration 0006): one row per run of `kubetrail record`, with when it
//! started, its last commit (the heartbeat), when it stopped cleanly, and its scope. Readers use
//! them to integrate only over the time the history covers (`query::coverage`).

/// What a recorder watched: reports say when node sums were written from only some pods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// None: all namespaces.
    pub namespace: Option<String>,
    /// The label selector, as given; None: every pod.
    pub selector: Option<String>,
    /// Whether nodes were watched (false with `--no-nodes`).
    pub nodes: bool,
}

impl Scope {
    /// Every pod of every namespace, and the nodes: node sums are the node's own.
    pub fn everything() -> Scope {
        Scope {
            namespace: None,
            selector: None,
            nodes: true,
        }
    }

    /// Whether only some pods were seen, so that a node's sums cover only those.
    pub fn is_partial(&self) -> bool {
        self.namespace.is_some() || self.selector.is_some()
    }

    /// `-n ns -l app=web`, or `all namespaces`, for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(ns) = &self.namespace {
            parts.push(format!("-n {ns}"));
        }
        if let Some(sel) = &self.selector {
            parts.push(format!("-l {sel}"));
        }
        if parts.is_empty() {
            "all namespaces".to_string()
        } else {
            parts.join(" ")
        }
    }
}

/// One stored session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: i64,
    pub started_at_ms: i64,
    pub heartbeat_at_ms: i64,
    pub stopped_at_ms: Option<i64>,
    pub scope: Scope,
    /// Made up by migration 0006 for history recorded before sessions existed.
    pub inferred: bool,
}

impl Session {
    /// Where the covered time of this session ends: a clean stop, else the last commit.
    pub fn end_ms(&self) -> i64 {
        self.stopped_at_ms
            .unwrap_or(self.heartbeat_at_ms)
            .max(self.started_at_ms)
    }
}
