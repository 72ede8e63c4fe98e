//! Workload owners in PostgreSQL, with the same results as SQLite's (`store::sqlite::owners`):
//! idempotent by (cluster, uid) and content, one scale row per change of replicas or revision,
//! read with their scale history. See migration 0004.

use std::collections::{HashMap, HashSet};

use postgres::types::ToSql;
use postgres::{Client, Transaction};

use super::reader::ClusterNames;
use super::reports::cluster_name;
use crate::model::owner::{OwnerFilter, OwnerKind, OwnerRecord, ScaleRecord, split_images};
use crate::store::copy::{ChunkCounts, ScaleCopy};
use crate::store::rows::{BatchStats, OwnerRow};

/// Spec replicas, status replicas and revision: what a scale row records.
type Scale = (Option<i64>, Option<i64>, Option<i64>);

/// What is stored of an owner, to compare a new sight with.
#[derive(Clone, PartialEq, Eq)]
struct Stored {
    controller_kind: Option<String>,
    controller_name: Option<String>,
    revision: Option<i64>,
    template_hash: Option<String>,
    images: String,
    deleted_at_ms: Option<i64>,
    spec_replicas: Option<i64>,
    status_replicas: Option<i64>,
}

impl Stored {
    /// The stored state after `o` is seen: its fields, and the deletion time once one is set.
    fn after(&self, o: &OwnerRow) -> Stored {
        Stored {
            deleted_at_ms: self.deleted_at_ms.or(o.deleted_at_ms),
            ..Stored::of(o)
        }
    }

    fn of(o: &OwnerRow) -> Stored {
        Stored {
            controller_kind: o.controller_kind.clone(),
            controller_name: o.controller_name.clone(),
            revision: o.revision,
            template_hash: o.template_hash.clone(),
            images: o.images.clone(),
            deleted_at_ms: o.deleted_at_ms,
            spec_replicas: o.spec_replicas,
            status_replicas: o.status_replicas,
        }
    }

    fn scale(&self) -> Scale {
        (self.spec_replicas, self.status_replicas, self.revision)
    }
}

/// Writes a batch's owners in the batch's transaction, with the rule of SQLite's row-by-row
/// writer (`store::sqlite::owners`): a new uid is inserted with a scale row; a known one that
/// differs is updated (its deletion time kept once set), with a scale row when its replicas or
/// revision changed; one equal to the stored state writes nothing. The rule runs in memory over
/// the batch, so that the batch costs four statements whatever its size.
pub fn write_owners(
    tx: &mut Transaction,
    cluster: i32,
    owners: &[OwnerRow],
    stats: &mut BatchStats,
) -> Result<(), postgres::Error> {
    if owners.is_empty() {
        return Ok(());
    }
    let uids: Vec<&str> = owners.iter().map(|o| o.uid.as_str()).collect();
    // uid -> (stored id, state); the id is None for an owner this batch inserts.
    let mut state: HashMap<String, (Option<i64>, Stored)> = HashMap::new();
    for r in tx.query(
        "SELECT uid, id, controller_kind, controller_name, revision, template_hash, images,
                deleted_at_ms, spec_replicas, status_replicas
         FROM owners WHERE cluster_id = $1 AND uid = ANY($2)",
        &[&cluster, &uids],
    )? {
        let stored = Stored {
            controller_kind: r.get(2),
            controller_name: r.get(3),
            revision: r.get(4),
            template_hash: r.get(5),
            images: r.get(6),
            deleted_at_ms: r.get(7),
            spec_replicas: r.get(8),
            status_replicas: r.get(9),
        };
        state.insert(r.get(0), (Some(r.get(1)), stored));
    }
    let mut first: Vec<&OwnerRow> = Vec::new();
    let mut changed: Vec<&str> = Vec::new();
    let mut changed_seen: HashSet<&str> = HashSet::new();
    // One scale row per owner and time: the last wins, as ON CONFLICT DO UPDATE would.
    let mut scales: Vec<(&str, i64, Scale)> = Vec::new();
    let mut scale_at: HashMap<(&str, i64), usize> = HashMap::new();
    for o in owners {
        let uid = o.uid.as_str();
        let scaled = match state.get_mut(uid) {
            None => {
                state.insert(uid.to_string(), (None, Stored::of(o)));
                first.push(o);
                true
            }
            Some((id, stored)) => {
                let next = stored.after(o);
                if next == *stored {
                    continue;
                }
                let scaled = next.scale() != stored.scale();
                *stored = next;
                if id.is_some() && changed_seen.insert(uid) {
                    changed.push(uid);
                }
                scaled
            }
        };
        stats.owners_written += 1;
        if scaled {
            let row = (uid, o.observed_at_ms, Stored::of(o).scale());
            match scale_at.get(&(uid, o.observed_at_ms)) {
                Some(&i) => scales[i] = row,
                None => {
                    scale_at.insert((uid, o.observed_at_ms), scales.len());
                    scales.push(row);
                }
            }
            stats.owner_scales_added += 1;
        }
    }
    let mut ids: HashMap<String, i64> = state
        .iter()
        .filter_map(|(uid, (id, _))| id.map(|id| (uid.clone(), id)))
        .collect();
    if !first.is_empty() {
        let now = |o: &&OwnerRow| &state[o.uid.as_str()].1;
        let uid: Vec<&str> = first.iter().map(|o| o.uid.as_str()).collect();
        let kind: Vec<i16> = first.iter().map(|o| o.kind.code() as i16).collect();
        let namespace: Vec<&str> = first.iter().map(|o| o.namespace.as_str()).collect();
        let name: Vec<&str> = first.iter().map(|o| o.name.as_str()).collect();
        let created: Vec<i64> = first.iter().map(|o| o.created_at_ms).collect();
        let columns = StoredColumns::of(first.iter().map(now));
        let rows = tx.query(
            "INSERT INTO owners (cluster_id, uid, kind, namespace, name, created_at_ms,
                 controller_kind, controller_name, revision, template_hash, images,
                 deleted_at_ms, spec_replicas, status_replicas)
             SELECT $1, * FROM unnest($2::text[], $3::int2[], $4::text[], $5::text[],
                 $6::int8[], $7::text[], $8::text[], $9::int8[], $10::text[], $11::text[],
                 $12::int8[], $13::int8[], $14::int8[])
             RETURNING uid, id",
            &[
                &[
                    &cluster as &(dyn ToSql + Sync),
                    &uid,
                    &kind,
                    &namespace,
                    &name,
                    &created,
                ][..],
                &columns.params(),
            ]
            .concat(),
        )?;
        for r in rows {
            ids.insert(r.get(0), r.get(1));
        }
    }
    if !changed.is_empty() {
        let id: Vec<i64> = changed.iter().map(|uid| ids[*uid]).collect();
        let columns = StoredColumns::of(changed.iter().map(|uid| &state[*uid].1));
        tx.execute(
            "UPDATE owners o SET controller_kind = s.ck, controller_name = s.cn,
                 revision = s.revision, template_hash = s.hash, images = s.images,
                 deleted_at_ms = s.deleted, spec_replicas = s.spec, status_replicas = s.status
             FROM unnest($1::int8[], $2::text[], $3::text[], $4::int8[], $5::text[],
                 $6::text[], $7::int8[], $8::int8[], $9::int8[])
                 AS s (id, ck, cn, revision, hash, images, deleted, spec, status)
             WHERE o.id = s.id",
            &[&[&id as &(dyn ToSql + Sync)][..], &columns.params()].concat(),
        )?;
    }
    if !scales.is_empty() {
        let owner: Vec<i64> = scales.iter().map(|(uid, ..)| ids[*uid]).collect();
        let at: Vec<i64> = scales.iter().map(|s| s.1).collect();
        let spec: Vec<Option<i64>> = scales.iter().map(|s| s.2.0).collect();
        let status: Vec<Option<i64>> = scales.iter().map(|s| s.2.1).collect();
        let revision: Vec<Option<i64>> = scales.iter().map(|s| s.2.2).collect();
        tx.execute(
            "INSERT INTO owner_scales (cluster_id, owner_id, at_ms, spec_replicas,
                 status_replicas, revision)
             SELECT $1, * FROM unnest($2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[])
             ON CONFLICT (owner_id, at_ms) DO UPDATE SET spec_replicas = excluded.spec_replicas,
                 status_replicas = excluded.status_replicas, revision = excluded.revision",
            &[&cluster, &owner, &at, &spec, &status, &revision],
        )?;
    }
    Ok(())
}

/// [`Stored`] states as one array per column, for `unnest`.
struct StoredColumns<'a> {
    controller_kind: Vec<Option<&'a str>>,
    controller_name: Vec<Option<&'a str>>,
    revision: Vec<Option<i64>>,
    template_hash: Vec<Option<&'a str>>,
    images: Vec<&'a str>,
    deleted_at_ms: Vec<Option<i64>>,
    spec_replicas: Vec<Option<i64>>,
    status_replicas: Vec<Option<i64>>,
}

impl<'a> StoredColumns<'a> {
    /// The columns in the order both statements take them (`controller_kind` ... `status_replicas`).
    fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.controller_kind,
            &self.controller_name,
            &self.revision,
            &self.template_hash,
            &self.images,
            &self.deleted_at_ms,
            &self.spec_replicas,
            &self.status_replicas,
        ]
    }

    fn of(states: impl Iterator<Item = &'a Stored>) -> StoredColumns<'a> {
        let states: Vec<&Stored> = states.collect();
        StoredColumns {
            controller_kind: states
                .iter()
                .map(|s| s.controller_kind.as_deref())
                .collect(),
            controller_name: states
                .iter()
                .map(|s| s.controller_name.as_deref())
                .collect(),
            revision: states.iter().map(|s| s.revision).collect(),
            template_hash: states.iter().map(|s| s.template_hash.as_deref()).collect(),
            images: states.iter().map(|s| s.images.as_str()).collect(),
            deleted_at_ms: states.iter().map(|s| s.deleted_at_ms).collect(),
            spec_replicas: states.iter().map(|s| s.spec_replicas).collect(),
            status_replicas: states.iter().map(|s| s.status_replicas).collect(),
        }
    }
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
