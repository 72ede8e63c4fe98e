//! `query history`: one pod's whole timeline.
//!
//! A pod is named by namespace and name, but a name is reused over time (StatefulSet pods,
//! recreated Jobs), so one name can mean several incarnations, each with its own uid. All of them
//! are returned, oldest first, each with its transitions. A bare name (no namespace) is looked up
//! in every namespace; if it exists in more than one the answer is "ambiguous", not a guess.

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::error::QueryError;
use super::transitions::{TransitionFilter, TransitionRecord, for_each_transition};
use crate::model::Phase;
use crate::model::time::{Window, format_time_ms, format_time_short};

/// How the user named the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodRef {
    Uid(String),
    /// `namespace: None` searches every namespace.
    Name {
        namespace: Option<String>,
        name: String,
    },
}

/// One incarnation (uid) of a pod and its transitions. Serialised as one element of the
/// `query history -o json` array.
#[derive(Clone, Debug, Serialize)]
pub struct Incarnation {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    pub created: String,
    pub created_at_ms: i64,
    pub deleted: Option<String>,
    pub deleted_at_ms: Option<i64>,
    /// The last phase recorded, and its reason.
    pub phase: &'static str,
    pub reason: Option<String>,
    pub transitions: Vec<TransitionRecord>,
    #[serde(skip)]
    pod_id: i64,
}

impl Incarnation {
    /// The line printed above this incarnation's table.
    pub fn heading(&self, index: usize, of: usize) -> String {
        let mut line = format!("pod {}/{}   uid {}", self.namespace, self.name, self.uid);
        if of > 1 {
            line.push_str(&format!("   (incarnation {} of {of})", index + 1));
        }
        line.push_str(&format!(
            "\n  created {}",
            format_time_short(self.created_at_ms)
        ));
        match self.deleted_at_ms {
            Some(at) => line.push_str(&format!(", deleted {}", format_time_short(at))),
            None => line.push_str(", not deleted"),
        }
        if let Some(node) = &self.node {
            line.push_str(&format!(", node {node}"));
        }
        line.push_str(&format!(", last phase {}", self.phase));
        if let Some(reason) = &self.reason {
            line.push_str(&format!(" ({reason})"));
        }
        line
    }
}

const INCARNATION_COLUMNS: &str = "id, uid, namespace, name, node, created_at_ms, deleted_at_ms, \
                                   phase, reason";

fn incarnation(row: &rusqlite::Row) -> rusqlite::Result<Incarnation> {
    let created_at_ms: i64 = row.get(5)?;
    let deleted_at_ms: Option<i64> = row.get(6)?;
    Ok(Incarnation {
        pod_id: row.get(0)?,
        uid: row.get(1)?,
        namespace: row.get(2)?,
        name: row.get(3)?,
        node: row.get(4)?,
        created: format_time_ms(created_at_ms),
        created_at_ms,
        deleted: deleted_at_ms.map(format_time_ms),
        deleted_at_ms,
        phase: Phase::from_code(row.get(7)?).as_str(),
        reason: row.get(8)?,
        transitions: Vec::new(),
    })
}

/// The incarnations of the pod that overlap the window, oldest first, with their transitions in
/// the window.
pub fn history(
    conn: &Connection,
    pod: &PodRef,
    window: Window,
) -> Result<Vec<Incarnation>, QueryError> {
    let mut found = find_incarnations(conn, pod)?;
    found.retain(|i| window.overlaps(i.created_at_ms, i.deleted_at_ms));
    if found.is_empty() {
        return Err(QueryError::NotFound(format!(
            "{} has no history in the requested window",
            describe(pod)
        )));
    }
    for inc in &mut found {
        let filter = TransitionFilter {
            pod_id: Some(inc.pod_id),
            window,
            ..Default::default()
        };
        for_each_transition(conn, &filter, |t| {
            inc.transitions.push(t);
            Ok(())
        })?;
    }
    Ok(found)
}

fn describe(pod: &PodRef) -> String {
    match pod {
        PodRef::Uid(uid) => format!("pod with uid {uid:?}"),
        PodRef::Name {
            namespace: Some(ns),
            name,
        } => format!("pod {ns}/{name}"),
        PodRef::Name {
            namespace: None,
            name,
        } => format!("pod {name:?}"),
    }
}

/// Every incarnation the reference names, or NotFound / Ambiguous.
fn find_incarnations(conn: &Connection, pod: &PodRef) -> Result<Vec<Incarnation>, QueryError> {
    match pod {
        PodRef::Uid(uid) => {
            let sql = format!("SELECT {INCARNATION_COLUMNS} FROM pods WHERE uid = ?1");
            let found = conn.query_row(&sql, [uid], incarnation).optional()?;
            found.map(|i| vec![i]).ok_or_else(|| {
                QueryError::NotFound(format!("no pod with uid {uid:?} in the database"))
            })
        }
        PodRef::Name {
            namespace: Some(ns),
            name,
        } => {
            let found = by_namespace_and_name(conn, ns, name)?;
            if found.is_empty() {
                let elsewhere = namespaces_with(conn, name)?;
                let hint = if elsewhere.is_empty() {
                    "and in no other namespace".to_string()
                } else {
                    format!("it exists in namespaces {}", elsewhere.join(", "))
                };
                return Err(QueryError::NotFound(format!(
                    "no pod named {name:?} in namespace {ns:?} ({hint})"
                )));
            }
            Ok(found)
        }
        PodRef::Name {
            namespace: None,
            name,
        } => {
            let namespaces = namespaces_with(conn, name)?;
            match namespaces.as_slice() {
                [] => Err(QueryError::NotFound(format!(
                    "no pod named {name:?} in any namespace (list pods with `kubetrail query pods`)"
                ))),
                [ns] => by_namespace_and_name(conn, ns, name),
                _ => Err(QueryError::Ambiguous {
                    name: name.clone(),
                    namespaces,
                }),
            }
        }
    }
}

fn by_namespace_and_name(
    conn: &Connection,
    ns: &str,
    name: &str,
) -> Result<Vec<Incarnation>, QueryError> {
    let sql = format!(
        "SELECT {INCARNATION_COLUMNS} FROM pods WHERE namespace = ?1 AND name = ?2
         ORDER BY created_at_ms, id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([ns, name], incarnation)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The namespaces that have (or had) a pod with this name, sorted.
///
/// The `pods_by_name` index starts with the namespace, so a lookup by bare name would scan
/// every pod. Instead this skips from one distinct namespace to the next through the index and
/// probes each: two index seeks per namespace, well under a millisecond for the tens to hundreds
/// of namespaces of a real cluster, and no extra index to store.
fn namespaces_with(conn: &Connection, name: &str) -> Result<Vec<String>, QueryError> {
    let mut next_ns = conn.prepare_cached(
        "SELECT namespace FROM pods WHERE namespace > ?1 ORDER BY namespace LIMIT 1",
    )?;
    let mut has_name =
        conn.prepare_cached("SELECT 1 FROM pods WHERE namespace = ?1 AND name = ?2 LIMIT 1")?;
    let mut found = Vec::new();
    // Every namespace sorts after the empty string (Kubernetes namespaces are never empty).
    let mut current = String::new();
    while let Some(ns) = next_ns
        .query_row([&current], |r| r.get::<_, String>(0))
        .optional()?
    {
        if has_name.exists([ns.as_str(), name])? {
            found.push(ns.clone());
        }
        current = ns;
    }
    Ok(found)
}
