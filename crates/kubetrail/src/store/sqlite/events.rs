//! Kubernetes Events in SQLite: writing them inside a batch's transaction (idempotent by uid
//! and count), reading them for `query events` and `query history`, the counts a recorder
//! resumes from, and retention's age step. See migration 0008 for the tables, and 0012 and
//! [`uid`](super::uid) for how their uids are stored.

use std::ops::ControlFlow;

use rusqlite::types::Value;
use rusqlite::{Connection, Transaction, params};

use super::uid::{UidKey, canonical_hex, get_opt_uid, get_uid};
use crate::model::event::{EventFilter, EventRecord, EventType, RegardingKind};
use crate::store::copy::OccurrenceCopy;
use crate::store::rows::{BatchStats, EventRow};

/// Every event, for `kubetrail copy` ([`event_row`] reads a row).
pub const EXPORT_EVENTS: &str = "SELECT uid, regarding_kind, regarding_uid, namespace, name,
        container, reason, type, note, reporting_controller, count, first_seen_ms, last_seen_ms
    FROM events ORDER BY id";

/// Every occurrence by its event's uid, for `kubetrail copy`.
pub const EXPORT_OCCURRENCES: &str = "SELECT e.uid, o.count, o.at_ms
    FROM event_occurrences o JOIN events e ON e.id = o.event_id ORDER BY o.event_id, o.count";

pub fn event_row(r: &rusqlite::Row) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        uid: get_uid(r, 0)?,
        regarding_kind: RegardingKind::from_code(r.get(1)?).unwrap_or(RegardingKind::Pod),
        regarding_uid: get_opt_uid(r, 2)?,
        namespace: r.get(3)?,
        name: r.get(4)?,
        container: r.get(5)?,
        reason: r.get(6)?,
        event_type: r
            .get::<_, Option<String>>(7)?
            .and_then(|t| EventType::parse(&t).ok()),
        note: r.get(8)?,
        reporting_controller: r.get(9)?,
        count: r.get(10)?,
        first_seen_ms: r.get(11)?,
        last_seen_ms: r.get(12)?,
    })
}

pub fn occurrence_row(r: &rusqlite::Row) -> rusqlite::Result<OccurrenceCopy> {
    Ok(OccurrenceCopy {
        event_uid: get_uid(r, 0)?,
        count: r.get(1)?,
        at_ms: r.get(2)?,
    })
}

/// Writes the events of a batch: a new uid is inserted; a known one is updated only when its
/// count grew (then an occurrence is added); anything else changes nothing.
pub fn write_events(
    tx: &Transaction,
    events: &[EventRow],
    stats: &mut BatchStats,
) -> rusqlite::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut known = tx.prepare_cached("SELECT id, count FROM events WHERE uid = ?1")?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO events (uid, regarding_kind, regarding_uid, namespace, name, container,
             reason, type, note, reporting_controller, count, first_seen_ms, last_seen_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id",
    )?;
    let mut update = tx.prepare_cached(
        "UPDATE events SET count = ?2, last_seen_ms = max(last_seen_ms, ?3), note = ?4,
             first_seen_ms = min(first_seen_ms, ?5)
         WHERE id = ?1",
    )?;
    let mut occurrence = tx.prepare_cached(
        "INSERT OR IGNORE INTO event_occurrences (event_id, count, at_ms) VALUES (?1, ?2, ?3)",
    )?;
    for e in events {
        let found: Option<(i64, i64)> = known
            .query_row([UidKey(&e.uid)], |r| Ok((r.get(0)?, r.get(1)?)))
            .map(Some)
            .or_else(|err| match err {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                other => Err(other),
            })?;
        let id = match found {
            Some((_, count)) if count >= e.count => continue,
            Some((id, _)) => {
                update.execute(params![
                    id,
                    e.count,
                    e.last_seen_ms,
                    e.note,
                    e.first_seen_ms
                ])?;
                stats.events_updated += 1;
                id
            }
            None => {
                let id: i64 = insert.query_row(
                    params![
                        UidKey(&e.uid),
                        e.regarding_kind.code(),
                        e.regarding_uid.as_deref().map(UidKey),
                        e.namespace,
                        e.name,
                        e.container,
                        e.reason,
                        e.event_type.map(EventType::as_str),
                        e.note,
                        e.reporting_controller,
                        e.count,
                        e.first_seen_ms,
                        e.last_seen_ms
                    ],
                    |r| r.get(0),
                )?;
                stats.events_inserted += 1;
                id
            }
        };
        // The first occurrence is the row's first_seen; repeats are kept one row per count.
        if e.count > 1 {
            occurrence.execute(params![id, e.count, e.last_seen_ms])?;
        }
    }
    Ok(())
}

/// The events `filter` selects, in `(last_seen_ms, id)` order, handed to `each` until it
/// breaks; returns how many were.
pub fn events(
    conn: &Connection,
    filter: &EventFilter,
    each: &mut dyn FnMut(EventRecord) -> ControlFlow<()>,
) -> rusqlite::Result<u64> {
    let (sql, values) = select_events(filter);
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let kind = RegardingKind::from_code(r.get(1)?).unwrap_or(RegardingKind::Pod);
        let record = EventRecord {
            cluster: None,
            uid: get_uid(r, 0)?,
            kind: kind.as_str(),
            namespace: r.get(2)?,
            name: r.get(3)?,
            regarding_uid: get_opt_uid(r, 4)?,
            container: r.get(5)?,
            reason: r.get(6)?,
            event_type: r.get(7)?,
            count: r.get(8)?,
            first_seen: String::new(),
            first_seen_ms: r.get(9)?,
            last_seen: String::new(),
            last_seen_ms: r.get(10)?,
            reporting_controller: r.get(11)?,
            note: r.get(12)?,
        }
        .with_times();
        n += 1;
        if each(record).is_break() {
            break;
        }
    }
    Ok(n)
}

/// The statement and its parameters for `filter`.
fn select_events(filter: &EventFilter) -> (String, Vec<Value>) {
    let mut sql = String::from(
        "SELECT uid, regarding_kind, namespace, name, regarding_uid, container, reason, type,
             count, first_seen_ms, last_seen_ms, reporting_controller, note
         FROM events",
    );
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let param = |v: Value, values: &mut Vec<Value>| {
        values.push(v);
        format!("?{}", values.len())
    };
    if !filter.reasons.is_empty() {
        let list: Vec<String> = filter
            .reasons
            .iter()
            .map(|r| param(Value::Text(r.clone()), &mut values))
            .collect();
        conditions.push(format!("reason IN ({})", list.join(", ")));
    }
    if let Some(t) = filter.event_type {
        conditions.push(format!(
            "type = {}",
            param(Value::Text(t.as_str().into()), &mut values)
        ));
    }
    if let Some(ns) = &filter.namespace {
        conditions.push(format!(
            "namespace = {}",
            param(Value::Text(ns.clone()), &mut values)
        ));
    }
    if let Some(pod) = &filter.pod {
        conditions.push(format!(
            "regarding_kind = {} AND name = {}",
            RegardingKind::Pod.code(),
            param(Value::Text(pod.clone()), &mut values)
        ));
    }
    if let Some(node) = &filter.node {
        conditions.push(format!(
            "regarding_kind = {} AND name = {}",
            RegardingKind::Node.code(),
            param(Value::Text(node.clone()), &mut values)
        ));
    }
    if let Some(uids) = &filter.regarding_uids {
        // One parameter per encoding however many objects: JSON arrays, read back by
        // `json_each`. Canonical uids are stored as 16 bytes (see `uid`), so they go as hex;
        // every uid goes as text too (a file not yet migrated, and the other uids).
        let hex = canonical_hex(uids);
        conditions.push(format!(
            "regarding_uid IN (SELECT unhex(value) FROM json_each({})
                               UNION ALL SELECT value FROM json_each({}))",
            param(
                Value::Text(serde_json::to_string(&hex).expect("strings")),
                &mut values
            ),
            param(
                Value::Text(serde_json::to_string(uids).expect("strings")),
                &mut values
            )
        ));
    }
    // A series overlaps the window: it began before the end and was last seen after the start.
    if let Some(since) = filter.window.since_ms {
        conditions.push(format!(
            "last_seen_ms >= {}",
            param(Value::Integer(since), &mut values)
        ));
    }
    if let Some(until) = filter.window.until_ms {
        conditions.push(format!(
            "first_seen_ms < {}",
            param(Value::Integer(until), &mut values)
        ));
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY last_seen_ms, id");
    if let Some(limit) = filter.limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    (sql, values)
}

/// `(uid, count)` of every event last seen at or after `since_ms`: what a resuming recorder
/// already holds, so a relist of the API server's events writes only what is new.
pub fn recent_counts(
    conn: &Connection,
    since_ms: i64,
    each: &mut dyn FnMut(String, i64),
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT uid, count FROM events WHERE last_seen_ms >= ?1")?;
    let mut rows = stmt.query([since_ms])?;
    while let Some(r) = rows.next()? {
        each(get_uid(r, 0)?, r.get(1)?);
    }
    Ok(())
}

/// Retention: removes at most `budget` events last seen before `cutoff_ms`, with their
/// occurrences, in the caller's transaction; returns how many events, and whether none are left.
pub fn prune_events(
    conn: &Connection,
    cutoff_ms: i64,
    budget: u64,
) -> rusqlite::Result<(u64, u64, bool)> {
    let ids: Vec<i64> = conn
        .prepare_cached("SELECT id FROM events WHERE last_seen_ms < ?1 ORDER BY id LIMIT ?2")?
        .query_map(params![cutoff_ms, budget.max(1) as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut occurrences = 0;
    let mut del_occ = conn.prepare_cached("DELETE FROM event_occurrences WHERE event_id = ?1")?;
    let mut del = conn.prepare_cached("DELETE FROM events WHERE id = ?1")?;
    for id in &ids {
        occurrences += del_occ.execute([id])? as u64;
        del.execute([id])?;
    }
    Ok((
        ids.len() as u64,
        occurrences,
        (ids.len() as u64) < budget.max(1),
    ))
}

/// How many events and occurrences are older than `cutoff_ms` (the retention plan).
pub fn count_older(conn: &Connection, cutoff_ms: i64) -> rusqlite::Result<(u64, u64)> {
    conn.query_row(
        "SELECT count(*), coalesce(sum((SELECT count(*) FROM event_occurrences o
                                        WHERE o.event_id = e.id)), 0)
         FROM events e WHERE last_seen_ms < ?1",
        [cutoff_ms],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `query history` and `query events --owner` read a pod's events by its uids; with the
    /// uids in two encodings (see `uid`) the statement must still seek `events_by_subject`, not
    /// scan every event.
    #[test]
    fn events_by_regarding_uid_use_the_subject_index() {
        let dir = tempfile::tempdir().unwrap();
        let handle = super::super::open_for_writing(&dir.path().join("t.db")).unwrap();
        let filter = EventFilter {
            regarding_uids: Some(vec![
                "cf13eb72-b1c1-40bc-8cf1-ee72b1c135d5".into(),
                "p-1".into(),
            ]),
            ..EventFilter::default()
        };
        let (sql, values) = select_events(&filter);
        let mut stmt = handle
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let plan: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(values), |r| r.get(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX events_by_subject")),
            "{plan:#?}"
        );
        assert!(!plan.iter().any(|step| step == "SCAN events"), "{plan:#?}");
    }
}
