//! Kubernetes Events in PostgreSQL, with the same results as SQLite's (`store::sqlite::events`):
//! idempotent by (cluster, uid) and count, read for `query events` and `query history`, the
//! counts a recorder resumes from, and retention's age step. See migration 0003.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::ControlFlow;

use postgres::{Client, Transaction};

use super::reader::ClusterNames;
use super::reports::{Conditions, cluster_name, stream};
use crate::model::event::{EventFilter, EventRecord, EventType, RegardingKind};
use crate::store::copy::{ChunkCounts, OccurrenceCopy};
use crate::store::rows::{BatchStats, EventRow};

/// `kubetrail copy`: events, written as the recorder writes them (idempotent by uid and count).
pub fn import_events(
    tx: &mut Transaction,
    cluster: i32,
    rows: &[EventRow],
) -> Result<ChunkCounts, postgres::Error> {
    let mut stats = BatchStats::default();
    write_events(tx, cluster, rows, &mut stats)?;
    Ok(ChunkCounts {
        new: stats.events_inserted as u64,
        updated: stats.events_updated as u64,
        skipped: 0,
    })
}

/// `kubetrail copy`: the occurrences of events already copied, by the event's uid.
pub fn import_occurrences(
    tx: &mut Transaction,
    cluster: i32,
    rows: &[OccurrenceCopy],
) -> Result<ChunkCounts, postgres::Error> {
    let uid: Vec<&str> = rows.iter().map(|o| o.event_uid.as_str()).collect();
    let count: Vec<i64> = rows.iter().map(|o| o.count).collect();
    let at: Vec<i64> = rows.iter().map(|o| o.at_ms).collect();
    let new = tx.execute(
        "INSERT INTO event_occurrences (cluster_id, event_id, count, at_ms)
         SELECT $1, e.id, o.count, o.at_ms
         FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS o (uid, count, at_ms)
         JOIN events e ON e.cluster_id = $1 AND e.uid = o.uid
         ON CONFLICT DO NOTHING",
        &[&cluster, &uid, &count, &at],
    )?;
    let skipped = rows.len() as u64
        - tx.query_one(
            "SELECT count(*) FROM unnest($2::text[]) AS o (uid)
             JOIN events e ON e.cluster_id = $1 AND e.uid = o.uid",
            &[&cluster, &uid],
        )?
        .get::<_, i64>(0) as u64;
    Ok(ChunkCounts {
        new,
        updated: 0,
        skipped,
    })
}

/// What one uid of a batch comes to: the event row to insert or update, and its occurrences.
struct Pending<'a> {
    /// The stored id; None for an event new to the database.
    id: Option<i64>,
    row: Cow<'a, EventRow>,
}

/// Writes a batch's events in the batch's transaction, with the rule of SQLite's row-by-row
/// writer: a new uid is inserted, a known one is updated only when its count grew (then an
/// occurrence is added). Here it is applied in memory first, so that the batch costs four
/// statements, whatever its size: one read of the known counts, one insert of the new events,
/// one update of the grown ones and one insert of their occurrences.
pub fn write_events(
    tx: &mut Transaction,
    cluster: i32,
    events: &[EventRow],
    stats: &mut BatchStats,
) -> Result<(), postgres::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let uids: Vec<&str> = events.iter().map(|e| e.uid.as_str()).collect();
    let mut known: HashMap<String, (i64, i64)> = HashMap::new();
    for r in tx.query(
        "SELECT uid, id, count FROM events WHERE cluster_id = $1 AND uid = ANY($2)",
        &[&cluster, &uids],
    )? {
        known.insert(r.get(0), (r.get(1), r.get(2)));
    }
    // Row by row, as SQLite does: the first row of an unknown uid is its insert; any later row
    // whose count is larger updates it; each such row with a count above 1 is an occurrence.
    let mut order: Vec<&str> = Vec::new();
    let mut pending: HashMap<&str, Pending> = HashMap::new();
    let mut occurrences: Vec<(&str, i64, i64)> = Vec::new();
    for e in events {
        match pending.get_mut(e.uid.as_str()) {
            Some(p) => {
                if p.row.count >= e.count {
                    continue;
                }
                let row = p.row.to_mut();
                row.count = e.count;
                row.last_seen_ms = row.last_seen_ms.max(e.last_seen_ms);
                row.first_seen_ms = row.first_seen_ms.min(e.first_seen_ms);
                row.note.clone_from(&e.note);
                stats.events_updated += 1;
            }
            None => {
                let p = match known.get(&e.uid) {
                    Some(&(_, count)) if count >= e.count => continue,
                    Some(&(id, _)) => {
                        stats.events_updated += 1;
                        // The stored first and last times are kept where they are wider.
                        Pending {
                            id: Some(id),
                            row: Cow::Borrowed(e),
                        }
                    }
                    None => {
                        stats.events_inserted += 1;
                        Pending {
                            id: None,
                            row: Cow::Borrowed(e),
                        }
                    }
                };
                order.push(e.uid.as_str());
                pending.insert(e.uid.as_str(), p);
            }
        }
        if e.count > 1 {
            occurrences.push((e.uid.as_str(), e.count, e.last_seen_ms));
        }
    }
    let (new, grown): (Vec<&Pending>, Vec<&Pending>) = order
        .iter()
        .map(|uid| &pending[uid])
        .partition(|p| p.id.is_none());
    let mut ids: HashMap<String, i64> = HashMap::new();
    if !new.is_empty() {
        let col = |f: fn(&EventRow) -> Option<&str>| -> Vec<Option<&str>> {
            new.iter().map(|p| f(&p.row)).collect()
        };
        let num = |f: fn(&EventRow) -> i64| -> Vec<i64> { new.iter().map(|p| f(&p.row)).collect() };
        let uid = col(|e| Some(e.uid.as_str()));
        let kind: Vec<i16> = new
            .iter()
            .map(|p| p.row.regarding_kind.code() as i16)
            .collect();
        let regarding = col(|e| e.regarding_uid.as_deref());
        let namespace = col(|e| e.namespace.as_deref());
        let name = col(|e| Some(e.name.as_str()));
        let container = col(|e| e.container.as_deref());
        let reason = col(|e| e.reason.as_deref());
        let event_type = col(|e| e.event_type.map(EventType::as_str));
        let note = col(|e| e.note.as_deref());
        let reporting = col(|e| e.reporting_controller.as_deref());
        let count = num(|e| e.count);
        let first = num(|e| e.first_seen_ms);
        let last = num(|e| e.last_seen_ms);
        for r in tx.query(
            "INSERT INTO events (cluster_id, uid, regarding_kind, regarding_uid, namespace, name,
                 container, reason, type, note, reporting_controller, count, first_seen_ms,
                 last_seen_ms)
             SELECT $1, * FROM unnest($2::text[], $3::int2[], $4::text[], $5::text[], $6::text[],
                 $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[],
                 $13::int8[], $14::int8[])
             RETURNING uid, id",
            &[
                &cluster,
                &uid,
                &kind,
                &regarding,
                &namespace,
                &name,
                &container,
                &reason,
                &event_type,
                &note,
                &reporting,
                &count,
                &first,
                &last,
            ],
        )? {
            ids.insert(r.get(0), r.get(1));
        }
    }
    if !grown.is_empty() {
        let id: Vec<i64> = grown.iter().filter_map(|p| p.id).collect();
        let count: Vec<i64> = grown.iter().map(|p| p.row.count).collect();
        let last: Vec<i64> = grown.iter().map(|p| p.row.last_seen_ms).collect();
        let first: Vec<i64> = grown.iter().map(|p| p.row.first_seen_ms).collect();
        let note: Vec<Option<&str>> = grown.iter().map(|p| p.row.note.as_deref()).collect();
        tx.execute(
            "UPDATE events e SET count = s.count, last_seen_ms = greatest(e.last_seen_ms, s.last),
                 note = s.note, first_seen_ms = least(e.first_seen_ms, s.first)
             FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::int8[])
                 AS s (id, count, last, note, first)
             WHERE e.id = s.id",
            &[&id, &count, &last, &note, &first],
        )?;
        for p in &grown {
            ids.insert(p.row.uid.clone(), p.id.expect("a grown event is stored"));
        }
    }
    if !occurrences.is_empty() {
        let id: Vec<i64> = occurrences.iter().map(|(uid, ..)| ids[*uid]).collect();
        let count: Vec<i64> = occurrences.iter().map(|o| o.1).collect();
        let at: Vec<i64> = occurrences.iter().map(|o| o.2).collect();
        tx.execute(
            "INSERT INTO event_occurrences (cluster_id, event_id, count, at_ms)
             SELECT $1, * FROM unnest($2::int8[], $3::int8[], $4::int8[])
             ON CONFLICT DO NOTHING",
            &[&cluster, &id, &count, &at],
        )?;
    }
    Ok(())
}

/// The events `filter` selects in these clusters, in `(last_seen_ms, id)` order.
pub fn events(
    client: &mut Client,
    clusters: &[i32],
    names: Option<&ClusterNames>,
    filter: &EventFilter,
    each: &mut dyn FnMut(EventRecord) -> ControlFlow<()>,
) -> Result<u64, postgres::Error> {
    let mut w = Conditions::for_clusters("events", clusters);
    if !filter.reasons.is_empty() {
        let p = w.param(filter.reasons.clone());
        w.push(format!("reason = ANY({p})"));
    }
    if let Some(t) = filter.event_type {
        let p = w.param(t.as_str().to_string());
        w.push(format!("type = {p}"));
    }
    if let Some(ns) = &filter.namespace {
        let p = w.param(ns.clone());
        w.push(format!("namespace = {p}"));
    }
    if let Some(pod) = &filter.pod {
        let p = w.param(pod.clone());
        w.push(format!(
            "regarding_kind = {} AND name = {p}",
            RegardingKind::Pod.code()
        ));
    }
    if let Some(node) = &filter.node {
        let p = w.param(node.clone());
        w.push(format!(
            "regarding_kind = {} AND name = {p}",
            RegardingKind::Node.code()
        ));
    }
    if let Some(uids) = &filter.regarding_uids {
        let p = w.param(uids.clone());
        w.push(format!("regarding_uid = ANY({p})"));
    }
    if let Some(since) = filter.window.since_ms {
        let p = w.param(since);
        w.push(format!("last_seen_ms >= {p}"));
    }
    if let Some(until) = filter.window.until_ms {
        let p = w.param(until);
        w.push(format!("first_seen_ms < {p}"));
    }
    let mut sql = String::from(
        "SELECT uid, regarding_kind, namespace, name, regarding_uid, container, reason, type,
             count, first_seen_ms, last_seen_ms, reporting_controller, note, cluster_id
         FROM events",
    );
    let params = w.finish(&mut sql);
    sql.push_str(" ORDER BY last_seen_ms, id");
    if let Some(limit) = filter.limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    let mut n = 0;
    stream(client, &sql, &params, |r| {
        let kind =
            RegardingKind::from_code(i64::from(r.get::<_, i16>(1))).unwrap_or(RegardingKind::Pod);
        let record = EventRecord {
            cluster: cluster_name(names, r.get(13)),
            uid: r.get(0),
            kind: kind.as_str(),
            namespace: r.get(2),
            name: r.get(3),
            regarding_uid: r.get(4),
            container: r.get(5),
            reason: r.get(6),
            event_type: r.get(7),
            count: r.get(8),
            first_seen: String::new(),
            first_seen_ms: r.get(9),
            last_seen: String::new(),
            last_seen_ms: r.get(10),
            reporting_controller: r.get(11),
            note: r.get(12),
        }
        .with_times();
        n += 1;
        each(record).is_continue()
    })?;
    Ok(n)
}

/// `(uid, count)` of the events last seen at or after `since_ms` (a recorder resuming).
pub fn recent_counts(
    client: &mut Client,
    clusters: &[i32],
    since_ms: i64,
    each: &mut dyn FnMut(String, i64),
) -> Result<(), postgres::Error> {
    let rows = client.query(
        "SELECT uid, count FROM events WHERE cluster_id = ANY($1) AND last_seen_ms >= $2",
        &[&clusters, &since_ms],
    )?;
    for r in rows {
        each(r.get(0), r.get(1));
    }
    Ok(())
}

/// Retention: removes at most `budget` events of `cluster` last seen before `cutoff_ms`, with
/// their occurrences, in one transaction. Returns (events, occurrences, done).
pub fn prune_step(
    client: &mut Client,
    cluster: i32,
    cutoff_ms: i64,
    budget: u64,
) -> Result<(u64, u64, bool), postgres::Error> {
    let budget = budget.max(1) as i64;
    let mut tx = client.transaction()?;
    let ids: Vec<i64> = tx
        .query(
            "SELECT id FROM events WHERE cluster_id = $1 AND last_seen_ms < $2
             ORDER BY last_seen_ms LIMIT $3",
            &[&cluster, &cutoff_ms, &budget],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let occurrences = tx.execute(
        "DELETE FROM event_occurrences WHERE event_id = ANY($1)",
        &[&ids],
    )?;
    let events = tx.execute("DELETE FROM events WHERE id = ANY($1)", &[&ids])?;
    tx.commit()?;
    Ok((events, occurrences, (ids.len() as i64) < budget))
}

/// How many events (and occurrences) of these clusters are older than `cutoff_ms`.
pub fn count_older(
    client: &mut Client,
    clusters: &[i32],
    cutoff_ms: i64,
) -> Result<(u64, u64), postgres::Error> {
    let r = client.query_one(
        "SELECT count(*),
                (SELECT count(*) FROM event_occurrences o JOIN events e ON e.id = o.event_id
                 WHERE e.cluster_id = ANY($1) AND e.last_seen_ms < $2)
         FROM events WHERE cluster_id = ANY($1) AND last_seen_ms < $2",
        &[&clusters, &cutoff_ms],
    )?;
    Ok((r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64))
}
