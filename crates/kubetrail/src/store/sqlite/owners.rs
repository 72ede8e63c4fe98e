//! Workload owners in SQLite: writing ReplicaSets and Jobs inside a batch's transaction
//! (idempotent: a row equal to the stored one writes nothing, a change of replicas or revision
//! adds one scale row), and reading them with their scale history for `query pods --owner`,
//! `query history KIND/NAME` and `query workloads`. See migration 0009 for the tables.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::model::owner::{OwnerFilter, OwnerKind, OwnerRecord, ScaleRecord, split_images};
use crate::store::copy::ScaleCopy;
use crate::store::rows::{BatchStats, OwnerRow};

/// What is stored of an owner, to compare a new sight with.
type Stored = (
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// Writes a batch's owners: a new uid is inserted with its first scale row; a known one is
/// updated only where it differs (a deletion time, once set, stays), and a change of its
/// replica counts or revision adds a scale row.
pub fn write_owners(
    tx: &Transaction,
    owners: &[OwnerRow],
    stats: &mut BatchStats,
) -> rusqlite::Result<()> {
    if owners.is_empty() {
        return Ok(());
    }
    let mut known = tx.prepare_cached(
        "SELECT id, controller_kind, controller_name, revision, template_hash, images,
                deleted_at_ms, spec_replicas, status_replicas
         FROM owners WHERE uid = ?1",
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO owners (uid, kind, namespace, name, controller_kind, controller_name,
             revision, template_hash, images, created_at_ms, deleted_at_ms, spec_replicas,
             status_replicas)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id",
    )?;
    let mut update = tx.prepare_cached(
        "UPDATE owners SET controller_kind = ?2, controller_name = ?3, revision = ?4,
             template_hash = ?5, images = ?6, deleted_at_ms = coalesce(deleted_at_ms, ?7),
             spec_replicas = ?8, status_replicas = ?9
         WHERE id = ?1",
    )?;
    // Two changes seen in the same millisecond: the later one is what there was.
    let mut scale = tx.prepare_cached(
        "INSERT INTO owner_scales (owner_id, at_ms, spec_replicas, status_replicas, revision)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (owner_id, at_ms) DO UPDATE SET spec_replicas = excluded.spec_replicas,
             status_replicas = excluded.status_replicas, revision = excluded.revision",
    )?;
    for o in owners {
        let found: Option<Stored> = known
            .query_row([&o.uid], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })
            .optional()?;
        let (id, scaled) = match found {
            None => {
                let id: i64 = insert.query_row(
                    params![
                        o.uid,
                        o.kind.code(),
                        o.namespace,
                        o.name,
                        o.controller_kind,
                        o.controller_name,
                        o.revision,
                        o.template_hash,
                        o.images,
                        o.created_at_ms,
                        o.deleted_at_ms,
                        o.spec_replicas,
                        o.status_replicas
                    ],
                    |r| r.get(0),
                )?;
                (id, true)
            }
            Some((id, ck, cn, rev, hash, images, deleted, spec, status)) => {
                let deleted_after = deleted.or(o.deleted_at_ms);
                let same = (ck.as_ref(), cn.as_ref(), rev, hash.as_ref(), &images)
                    == (
                        o.controller_kind.as_ref(),
                        o.controller_name.as_ref(),
                        o.revision,
                        o.template_hash.as_ref(),
                        &o.images,
                    )
                    && deleted_after == deleted
                    && (spec, status) == (o.spec_replicas, o.status_replicas);
                if same {
                    continue;
                }
                update.execute(params![
                    id,
                    o.controller_kind,
                    o.controller_name,
                    o.revision,
                    o.template_hash,
                    o.images,
                    o.deleted_at_ms,
                    o.spec_replicas,
                    o.status_replicas
                ])?;
                let scaled =
                    (spec, status, rev) != (o.spec_replicas, o.status_replicas, o.revision);
                (id, scaled)
            }
        };
        stats.owners_written += 1;
        if scaled {
            scale.execute(params![
                id,
                o.observed_at_ms,
                o.spec_replicas,
                o.status_replicas,
                o.revision
            ])?;
            stats.owner_scales_added += 1;
        }
    }
    Ok(())
}

/// The owners `filter` selects, by creation, each with its scale rows.
pub fn owners(conn: &Connection, filter: &OwnerFilter) -> rusqlite::Result<Vec<OwnerRecord>> {
    let mut sql = String::from(
        "SELECT id, uid, kind, namespace, name, controller_kind, controller_name, revision,
                template_hash, images, created_at_ms, deleted_at_ms
         FROM owners",
    );
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let param = |v: Value, values: &mut Vec<Value>| {
        values.push(v);
        format!("?{}", values.len())
    };
    if let Some(ns) = &filter.namespace {
        let p = param(Value::Text(ns.clone()), &mut values);
        conditions.push(format!("namespace = {p}"));
    }
    if let Some((kind, name)) = &filter.controller {
        let k = param(Value::Text(kind.clone()), &mut values);
        let n = param(Value::Text(name.clone()), &mut values);
        conditions.push(format!("controller_kind = {k} AND controller_name = {n}"));
    }
    if let Some(kind) = filter.kind {
        let p = param(Value::Integer(kind.code()), &mut values);
        conditions.push(format!("kind = {p}"));
    }
    if let Some(name) = &filter.name {
        let p = param(Value::Text(name.clone()), &mut values);
        conditions.push(format!("name = {p}"));
    }
    if filter.open_only {
        conditions.push("deleted_at_ms IS NULL".into());
    }
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY created_at_ms, id");
    let mut stmt = conn.prepare(&sql)?;
    let mut scales = conn.prepare_cached(
        "SELECT at_ms, spec_replicas, status_replicas, revision FROM owner_scales
         WHERE owner_id = ?1 ORDER BY at_ms",
    )?;
    let mut out = Vec::new();
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        let images: String = r.get(9)?;
        let steps = scales
            .query_map([id], |s| {
                Ok(ScaleRecord::new(s.get(0)?, s.get(1)?, s.get(2)?, s.get(3)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        out.push(
            OwnerRecord {
                cluster: None,
                uid: r.get(1)?,
                kind: OwnerKind::from_code(r.get(2)?)
                    .unwrap_or(OwnerKind::ReplicaSet)
                    .as_str(),
                namespace: r.get(3)?,
                name: r.get(4)?,
                controller_kind: r.get(5)?,
                controller_name: r.get(6)?,
                revision: r.get(7)?,
                template_hash: r.get(8)?,
                images: split_images(&images),
                created: String::new(),
                created_at_ms: r.get(10)?,
                deleted: None,
                deleted_at_ms: r.get(11)?,
                scales: steps,
            }
            .with_times(),
        );
    }
    Ok(out)
}

/// The owners `--max-age` removes: deleted before the cutoff (`?1`), and the direct owner of
/// no pod the store keeps past it, so that every kept pod still resolves to its workload. A
/// ReplicaSet orphaned on deletion (`--cascade=orphan`) stays while its pods do.
const AGED_OWNERS: &str = "FROM owners o
    WHERE o.deleted_at_ms < ?1
      AND NOT EXISTS (SELECT 1 FROM pods p
          WHERE p.namespace = o.namespace AND p.owner_name = o.name
            AND p.owner_kind = CASE o.kind WHEN 1 THEN 'ReplicaSet' ELSE 'Job' END
            AND (p.deleted_at_ms IS NULL OR p.deleted_at_ms >= ?1))";

/// Retention: removes at most `budget` aged owners (see [`AGED_OWNERS`]) with their scale rows,
/// in the caller's transaction; returns owners and scale rows removed, and whether none are
/// left.
pub fn prune_owners(
    conn: &Connection,
    cutoff_ms: i64,
    budget: u64,
) -> rusqlite::Result<(u64, u64, bool)> {
    let budget = budget.max(1);
    let ids: Vec<i64> = conn
        .prepare_cached(&format!("SELECT o.id {AGED_OWNERS} ORDER BY o.id LIMIT ?2"))?
        .query_map(params![cutoff_ms, budget as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut scales = 0;
    let mut del_scales = conn.prepare_cached("DELETE FROM owner_scales WHERE owner_id = ?1")?;
    let mut del = conn.prepare_cached("DELETE FROM owners WHERE id = ?1")?;
    for id in &ids {
        scales += del_scales.execute([id])? as u64;
        del.execute([id])?;
    }
    Ok((ids.len() as u64, scales, (ids.len() as u64) < budget))
}

/// How many owners and scale rows [`prune_owners`] would remove (the retention plan).
pub fn count_aged(conn: &Connection, cutoff_ms: i64) -> rusqlite::Result<(u64, u64)> {
    conn.query_row(
        &format!(
            "SELECT count(*), coalesce(sum((SELECT count(*) FROM owner_scales s
                                            WHERE s.owner_id = o.id)), 0) {AGED_OWNERS}"
        ),
        [cutoff_ms],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
}

/// Every owner, for `kubetrail copy` (in id order, so the destination numbers them alike).
pub const EXPORT_OWNERS: &str = "SELECT uid, kind, namespace, name, controller_kind,
        controller_name, revision, template_hash, images, created_at_ms, deleted_at_ms,
        spec_replicas, status_replicas
    FROM owners ORDER BY id";

/// Every scale row by its owner's uid, for `kubetrail copy`.
pub const EXPORT_SCALES: &str = "SELECT o.uid, s.at_ms, s.spec_replicas, s.status_replicas,
        s.revision
    FROM owner_scales s JOIN owners o ON o.id = s.owner_id ORDER BY s.owner_id, s.at_ms";

pub fn owner_row(r: &rusqlite::Row) -> rusqlite::Result<OwnerRow> {
    let code: i64 = r.get(1)?;
    let kind = OwnerKind::from_code(code).ok_or_else(|| {
        rusqlite::Error::InvalidColumnType(
            1,
            format!("owner kind {code}, unknown to this kubetrail"),
            rusqlite::types::Type::Integer,
        )
    })?;
    let created_at_ms = r.get(9)?;
    Ok(OwnerRow {
        uid: r.get(0)?,
        kind,
        namespace: r.get(2)?,
        name: r.get(3)?,
        controller_kind: r.get(4)?,
        controller_name: r.get(5)?,
        revision: r.get(6)?,
        template_hash: r.get(7)?,
        images: r.get(8)?,
        created_at_ms,
        deleted_at_ms: r.get(10)?,
        spec_replicas: r.get(11)?,
        status_replicas: r.get(12)?,
        observed_at_ms: created_at_ms,
    })
}

pub fn scale_row(r: &rusqlite::Row) -> rusqlite::Result<ScaleCopy> {
    Ok(ScaleCopy {
        owner_uid: r.get(0)?,
        at_ms: r.get(1)?,
        spec_replicas: r.get(2)?,
        status_replicas: r.get(3)?,
        revision: r.get(4)?,
    })
}
