//! Workload owners in PostgreSQL, with the same results as SQLite's (`store::sqlite::owners`):
//! idempotent by (cluster, uid) and content, one scale row per change of replicas or revision,
//! read with their scale history. See migration 0004.

use postgres::types::ToSql;
use postgres::{Client, Transaction};

use super::reader::ClusterNames;
use super::reports::cluster_name;
use crate::model::owner::{OwnerFilter, OwnerKind, OwnerRecord, ScaleRecord, split_images};
use crate::store::copy::{ChunkCounts, ScaleCopy};
use crate::store::rows::{BatchStats, OwnerRow};

/// Writes a batch's owners in the batch's transaction (see the SQLite twin for the rule).
pub fn write_owners(
    tx: &mut Transaction,
    cluster: i32,
    owners: &[OwnerRow],
    stats: &mut BatchStats,
) -> Result<(), postgres::Error> {
    if owners.is_empty() {
        return Ok(());
    }
    let known = tx.prepare(
        "SELECT id, controller_kind, controller_name, revision, template_hash, images,
                deleted_at_ms, spec_replicas, status_replicas
         FROM owners WHERE cluster_id = $1 AND uid = $2",
    )?;
    let insert = tx.prepare(
        "INSERT INTO owners (cluster_id, uid, kind, namespace, name, controller_kind,
             controller_name, revision, template_hash, images, created_at_ms, deleted_at_ms,
             spec_replicas, status_replicas)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
    )?;
    let update = tx.prepare(
        "UPDATE owners SET controller_kind = $2, controller_name = $3, revision = $4,
             template_hash = $5, images = $6, deleted_at_ms = coalesce(deleted_at_ms, $7),
             spec_replicas = $8, status_replicas = $9
         WHERE id = $1",
    )?;
    let scale = tx.prepare(
        "INSERT INTO owner_scales (cluster_id, owner_id, at_ms, spec_replicas, status_replicas,
             revision)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (owner_id, at_ms) DO UPDATE SET spec_replicas = excluded.spec_replicas,
             status_replicas = excluded.status_replicas, revision = excluded.revision",
    )?;
    for o in owners {
        let (id, scaled) = match tx.query_opt(&known, &[&cluster, &o.uid])? {
            None => {
                let kind = o.kind.code() as i16;
                let row = tx.query_one(
                    &insert,
                    &[
                        &cluster,
                        &o.uid,
                        &kind,
                        &o.namespace,
                        &o.name,
                        &o.controller_kind,
                        &o.controller_name,
                        &o.revision,
                        &o.template_hash,
                        &o.images,
                        &o.created_at_ms,
                        &o.deleted_at_ms,
                        &o.spec_replicas,
                        &o.status_replicas,
                    ],
                )?;
                (row.get::<_, i64>(0), true)
            }
            Some(r) => {
                let id: i64 = r.get(0);
                let ck: Option<String> = r.get(1);
                let cn: Option<String> = r.get(2);
                let rev: Option<i64> = r.get(3);
                let hash: Option<String> = r.get(4);
                let images: String = r.get(5);
                let deleted: Option<i64> = r.get(6);
                let spec: Option<i64> = r.get(7);
                let status: Option<i64> = r.get(8);
                let same = ck == o.controller_kind
                    && cn == o.controller_name
                    && rev == o.revision
                    && hash == o.template_hash
                    && images == o.images
                    && deleted.or(o.deleted_at_ms) == deleted
                    && (spec, status) == (o.spec_replicas, o.status_replicas);
                if same {
                    continue;
                }
                tx.execute(
                    &update,
                    &[
                        &id,
                        &o.controller_kind,
                        &o.controller_name,
                        &o.revision,
                        &o.template_hash,
                        &o.images,
                        &o.deleted_at_ms,
                        &o.spec_replicas,
                        &o.status_replicas,
                    ],
                )?;
                let scaled =
                    (spec, status, rev) != (o.spec_replicas, o.status_replicas, o.revision);
                (id, scaled)
            }
        };
        stats.owners_written += 1;
        if scaled {
            tx.execute(
                &scale,
                &[
                    &cluster,
                    &id,
                    &o.observed_at_ms,
                    &o.spec_replicas,
                    &o.status_replicas,
                    &o.revision,
                ],
            )?;
            stats.owner_scales_added += 1;
        }
    }
    Ok(())
}

/// The owners `filter` selects in these clusters, by creation, each with its scale rows.
pub fn owners(
    client: &mut Client,
    clusters: &[i32],
    names: Option<&ClusterNames>,
    filter: &OwnerFilter,
) -> Result<Vec<OwnerRecord>, postgres::Error> {
    let mut params: Vec<Box<dyn ToSql + Sync>> = vec![Box::new(clusters.to_vec())];
    let mut conditions = vec!["cluster_id = ANY($1)".to_string()];
    let param = |v: Box<dyn ToSql + Sync>, params: &mut Vec<Box<dyn ToSql + Sync>>| {
        params.push(v);
        format!("${}", params.len())
    };
    if let Some(ns) = &filter.namespace {
        let p = param(Box::new(ns.clone()), &mut params);
        conditions.push(format!("namespace = {p}"));
    }
    if let Some((kind, name)) = &filter.controller {
        let k = param(Box::new(kind.clone()), &mut params);
        let n = param(Box::new(name.clone()), &mut params);
        conditions.push(format!("controller_kind = {k} AND controller_name = {n}"));
    }
    if let Some(kind) = filter.kind {
        let p = param(Box::new(kind.code() as i16), &mut params);
        conditions.push(format!("kind = {p}"));
    }
    if let Some(name) = &filter.name {
        let p = param(Box::new(name.clone()), &mut params);
        conditions.push(format!("name = {p}"));
    }
    if filter.open_only {
        conditions.push("deleted_at_ms IS NULL".into());
    }
    let sql = format!(
        "SELECT id, uid, kind, namespace, name, controller_kind, controller_name, revision,
                template_hash, images, created_at_ms, deleted_at_ms, cluster_id
         FROM owners WHERE {} ORDER BY created_at_ms, id",
        conditions.join(" AND ")
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
    let rows = client.query(&sql, &refs)?;
    let scales = client.prepare(
        "SELECT at_ms, spec_replicas, status_replicas, revision FROM owner_scales
         WHERE owner_id = $1 ORDER BY at_ms",
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.get(0);
        let steps = client
            .query(&scales, &[&id])?
            .into_iter()
            .map(|s| ScaleRecord::new(s.get(0), s.get(1), s.get(2), s.get(3)))
            .collect();
        let images: String = r.get(9);
        out.push(
            OwnerRecord {
                cluster: cluster_name(names, r.get(12)),
                uid: r.get(1),
                kind: OwnerKind::from_code(i64::from(r.get::<_, i16>(2)))
                    .unwrap_or(OwnerKind::ReplicaSet)
                    .as_str(),
                namespace: r.get(3),
                name: r.get(4),
                controller_kind: r.get(5),
                controller_name: r.get(6),
                revision: r.get(7),
                template_hash: r.get(8),
                images: split_images(&images),
                created: String::new(),
                created_at_ms: r.get(10),
                deleted: None,
                deleted_at_ms: r.get(11),
                scales: steps,
            }
            .with_times(),
        );
    }
    Ok(out)
}

/// The owners `--max-age` removes, as in SQLite (`store::sqlite::owners::prune_owners`):
/// deleted before the cutoff (`$2`), and the direct owner of no pod kept past it. `$1` is the
/// cluster (or, in the plan, the clusters).
fn aged_owners(cluster: &str) -> String {
    format!(
        "FROM owners o
         WHERE o.cluster_id {cluster} AND o.deleted_at_ms < $2
           AND NOT EXISTS (SELECT 1 FROM pods p
               WHERE p.cluster_id = o.cluster_id AND p.namespace = o.namespace
                 AND p.owner_name = o.name
                 AND p.owner_kind = CASE o.kind WHEN 1 THEN 'ReplicaSet' ELSE 'Job' END
                 AND (p.deleted_at_ms IS NULL OR p.deleted_at_ms >= $2))"
    )
}

/// Retention: removes at most `budget` aged owners of `cluster` with their scale rows, in one
/// transaction; returns owners and scale rows removed, and whether none are left.
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
            &format!("SELECT o.id {} ORDER BY o.id LIMIT $3", aged_owners("= $1")),
            &[&cluster, &cutoff_ms, &budget],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let scales = tx.execute("DELETE FROM owner_scales WHERE owner_id = ANY($1)", &[&ids])?;
    let owners = tx.execute("DELETE FROM owners WHERE id = ANY($1)", &[&ids])?;
    tx.commit()?;
    Ok((owners, scales, (ids.len() as i64) < budget))
}

/// How many owners (and scale rows) of these clusters [`prune_step`] would remove.
pub fn count_aged(
    client: &mut Client,
    clusters: &[i32],
    cutoff_ms: i64,
) -> Result<(u64, u64), postgres::Error> {
    let r = client.query_one(
        &format!(
            "SELECT count(*), coalesce(sum((SELECT count(*) FROM owner_scales s
                                             WHERE s.owner_id = o.id)), 0)::bigint {}",
            aged_owners("= ANY($1)")
        ),
        &[&clusters, &cutoff_ms],
    )?;
    Ok((r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64))
}

/// `kubetrail copy`: a chunk of owners, idempotently by (cluster, uid). A deleted owner is
/// never changed; an open one takes the file's row when the file's is deleted, or when the
/// file's history is the newer one (`prefer`, as for pods: see `import`). Their scale rows
/// come apart ([`import_scales`]), so nothing is derived here.
pub fn import_owners(
    tx: &mut Transaction,
    cluster: i32,
    prefer: bool,
    rows: &[OwnerRow],
) -> Result<ChunkCounts, postgres::Error> {
    let col = |f: fn(&OwnerRow) -> Option<String>| rows.iter().map(f).collect::<Vec<_>>();
    let num = |f: fn(&OwnerRow) -> Option<i64>| rows.iter().map(f).collect::<Vec<_>>();
    let uid = col(|o| Some(o.uid.clone()));
    let kind: Vec<i16> = rows.iter().map(|o| o.kind.code() as i16).collect();
    let namespace = col(|o| Some(o.namespace.clone()));
    let name = col(|o| Some(o.name.clone()));
    let ck = col(|o| o.controller_kind.clone());
    let cn = col(|o| o.controller_name.clone());
    let revision = num(|o| o.revision);
    let hash = col(|o| o.template_hash.clone());
    let images = col(|o| Some(o.images.clone()));
    let created = num(|o| Some(o.created_at_ms));
    let deleted = num(|o| o.deleted_at_ms);
    let spec = num(|o| o.spec_replicas);
    let status = num(|o| o.status_replicas);
    let params: [&(dyn ToSql + Sync); 15] = [
        &cluster, &uid, &kind, &namespace, &name, &ck, &cn, &revision, &hash, &images, &created,
        &deleted, &spec, &status, &prefer,
    ];
    const ROWS: &str = "unnest($2::text[], $3::int2[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::int8[], $9::text[], $10::text[], $11::int8[], $12::int8[],
            $13::int8[], $14::int8[])
        AS s (uid, kind, namespace, name, controller_kind, controller_name, revision,
            template_hash, images, created_at_ms, deleted_at_ms, spec_replicas, status_replicas)";
    let updated = tx.execute(
        &format!(
            "UPDATE owners t SET controller_kind = s.controller_kind,
                 controller_name = s.controller_name, revision = s.revision,
                 template_hash = s.template_hash, images = s.images,
                 deleted_at_ms = s.deleted_at_ms, spec_replicas = s.spec_replicas,
                 status_replicas = s.status_replicas
             FROM {ROWS}
             WHERE t.cluster_id = $1 AND t.uid = s.uid AND t.deleted_at_ms IS NULL
               AND (s.deleted_at_ms IS NOT NULL OR $15)
               AND ROW(t.controller_kind, t.controller_name, t.revision, t.template_hash,
                       t.images, t.deleted_at_ms, t.spec_replicas, t.status_replicas)
                   IS DISTINCT FROM
                   ROW(s.controller_kind, s.controller_name, s.revision, s.template_hash,
                       s.images, s.deleted_at_ms, s.spec_replicas, s.status_replicas)"
        ),
        &params,
    )?;
    let new = tx.execute(
        &format!(
            "INSERT INTO owners (cluster_id, uid, kind, namespace, name, controller_kind,
                 controller_name, revision, template_hash, images, created_at_ms,
                 deleted_at_ms, spec_replicas, status_replicas)
             SELECT $1, uid, kind, namespace, name, controller_kind, controller_name,
                 revision, template_hash, images, created_at_ms, deleted_at_ms,
                 spec_replicas, status_replicas
             FROM {ROWS}
             ON CONFLICT (cluster_id, uid) DO NOTHING"
        ),
        &params[..14],
    )?;
    Ok(ChunkCounts {
        new,
        updated,
        skipped: 0,
    })
}

/// `kubetrail copy`: scale rows of owners already copied, by (owner, time); a row there
/// already is kept as it is.
pub fn import_scales(
    tx: &mut Transaction,
    cluster: i32,
    rows: &[ScaleCopy],
) -> Result<ChunkCounts, postgres::Error> {
    let uid: Vec<&str> = rows.iter().map(|s| s.owner_uid.as_str()).collect();
    let at: Vec<i64> = rows.iter().map(|s| s.at_ms).collect();
    let spec: Vec<Option<i64>> = rows.iter().map(|s| s.spec_replicas).collect();
    let status: Vec<Option<i64>> = rows.iter().map(|s| s.status_replicas).collect();
    let revision: Vec<Option<i64>> = rows.iter().map(|s| s.revision).collect();
    let r = tx.query_one(
        "WITH s AS (
             SELECT o.id, s.at_ms, s.spec, s.status, s.revision
             FROM unnest($2::text[], $3::int8[], $4::int8[], $5::int8[], $6::int8[])
                 AS s (uid, at_ms, spec, status, revision)
             JOIN owners o ON o.cluster_id = $1 AND o.uid = s.uid),
         ins AS (
             INSERT INTO owner_scales (cluster_id, owner_id, at_ms, spec_replicas,
                 status_replicas, revision)
             SELECT $1, id, at_ms, spec, status, revision FROM s
             ON CONFLICT (owner_id, at_ms) DO NOTHING RETURNING 1)
         SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM ins)",
        &[&cluster, &uid, &at, &spec, &status, &revision],
    )?;
    let found = r.get::<_, i64>(0) as u64;
    Ok(ChunkCounts {
        new: r.get::<_, i64>(1) as u64,
        updated: 0,
        skipped: rows.len() as u64 - found,
    })
}
