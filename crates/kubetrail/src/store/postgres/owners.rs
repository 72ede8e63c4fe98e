//! Workload owners in PostgreSQL, with the same results as SQLite's (`store::sqlite::owners`):
//! idempotent by (cluster, uid) and content, one scale row per change of replicas or revision,
//! read with their scale history. See migration 0004.

use postgres::types::ToSql;
use postgres::{Client, Transaction};

use crate::model::owner::{OwnerFilter, OwnerKind, OwnerRecord, ScaleRecord, split_images};
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
                template_hash, images, created_at_ms, deleted_at_ms
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
