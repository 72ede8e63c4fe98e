//! Retention's statements in PostgreSQL, for one cluster at a time: deleting ended pods and
//! deleted nodes in bounded steps, expiring rollups, and where the parts of the history begin.
//! Which rows go is retention's rule (`retention::prune`, `retention::size`); the same rule
//! runs on SQLite. After the deletes, [`super::partitions`] drops the partitions they emptied,
//! which is how disk space goes back to the server.
//!
//! Open pods and nodes (`deleted_at_ms IS NULL`) never match. Rows are picked by key, never by
//! `ctid`: on a partitioned table a ctid names a row only within its own partition.

use postgres::Client;

use crate::model::policy::Policy;
use crate::store::api::{Bounds, Span, StoreStats};
use crate::store::plan::{AgedOut, Plan, PruneCounts, TableSize, UsageOutlook, rollup_hours};

/// Pods examined per query; the row budget, not this, bounds a step.
const PODS_PER_QUERY: i64 = 256;

/// Deletes the cluster's ended pods with `deleted_at_ms < cutoff_ms`, oldest first, until about
/// `row_budget` rows are gone; one transaction. Returns the counts and whether none is left.
pub fn ended_pods_step(
    client: &mut Client,
    cluster: i32,
    cutoff_ms: i64,
    row_budget: u64,
) -> Result<(PruneCounts, bool), postgres::Error> {
    let mut tx = client.transaction()?;
    let mut counts = PruneCounts::default();
    let done = 'outer: loop {
        let ids: Vec<i64> = tx
            .query(
                "SELECT id FROM pods
                 WHERE cluster_id = $1 AND deleted_at_ms IS NOT NULL AND deleted_at_ms < $2
                 ORDER BY deleted_at_ms LIMIT $3",
                &[&cluster, &cutoff_ms, &PODS_PER_QUERY],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if ids.is_empty() {
            break true;
        }
        for id in ids {
            let remaining = row_budget.saturating_sub(counts.rows()) as i64;
            if remaining == 0 {
                break 'outer false;
            }
            let transitions = tx.execute(
                "DELETE FROM transitions WHERE pod_id = $1 AND id = ANY(ARRAY(
                     SELECT id FROM transitions WHERE pod_id = $1 LIMIT $2))",
                &[&id, &remaining],
            )?;
            counts.pod_transitions += transitions;
            let resources = tx.execute(
                "DELETE FROM pod_resources WHERE pod_id = $1 AND at_ms = ANY(ARRAY(
                     SELECT at_ms FROM pod_resources WHERE pod_id = $1 LIMIT $2))",
                &[&id, &(remaining - transitions as i64).max(0)],
            )?;
            counts.pod_resources += resources;
            let left: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM transitions WHERE pod_id = $1)
                         OR EXISTS (SELECT 1 FROM pod_resources WHERE pod_id = $1)",
                    &[&id],
                )?
                .get(0);
            if !left {
                tx.execute("DELETE FROM pod_state WHERE pod_id = $1", &[&id])?;
                super::usage::delete_pod_usage(&mut tx, id)?;
                if let Some(row) = tx.query_opt(
                    "DELETE FROM pods WHERE id = $1 RETURNING label_set_id",
                    &[&id],
                )? {
                    counts.pods += 1;
                    if let Some(set) = row.get::<_, Option<i64>>(0) {
                        tx.execute(
                            "DELETE FROM label_sets WHERE id = $1
                               AND NOT EXISTS (SELECT 1 FROM pods WHERE label_set_id = $1)",
                            &[&set],
                        )?;
                    }
                }
            }
        }
    };
    tx.commit()?;
    Ok((counts, done))
}

/// Deletes the history of the cluster's nodes deleted before `cutoff_ms`, until about
/// `row_budget` rows are gone; the node row goes once nothing names it (rollups outlive it).
pub fn deleted_nodes_step(
    client: &mut Client,
    cluster: i32,
    cutoff_ms: i64,
    row_budget: u64,
) -> Result<(PruneCounts, bool), postgres::Error> {
    let mut tx = client.transaction()?;
    let mut counts = PruneCounts::default();
    let ids: Vec<i64> = tx
        .query(
            "SELECT id FROM nodes
             WHERE cluster_id = $1 AND deleted_at_ms IS NOT NULL AND deleted_at_ms < $2
             ORDER BY deleted_at_ms",
            &[&cluster, &cutoff_ms],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut done = true;
    for id in ids {
        let remaining = row_budget.saturating_sub(counts.rows()) as i64;
        if remaining == 0 {
            done = false;
            break;
        }
        let transitions = tx.execute(
            "DELETE FROM transitions WHERE node_id = $1 AND id = ANY(ARRAY(
                 SELECT id FROM transitions WHERE node_id = $1 LIMIT $2))",
            &[&id, &remaining],
        )? as i64;
        let capacity = tx.execute(
            "DELETE FROM node_capacity WHERE node_id = $1 AND at_ms = ANY(ARRAY(
                 SELECT at_ms FROM node_capacity WHERE node_id = $1 LIMIT $2))",
            &[&id, &(remaining - transitions).max(0)],
        )? as i64;
        counts.node_transitions += transitions as u64;
        counts.node_capacity += capacity as u64;
        if transitions + capacity >= remaining {
            done = false;
        }
        super::usage::delete_node_usage(&mut tx, id)?;
        counts.nodes += tx.execute(
            "DELETE FROM nodes WHERE id = $1
               AND NOT EXISTS (SELECT 1 FROM transitions WHERE node_id = $1)
               AND NOT EXISTS (SELECT 1 FROM node_capacity WHERE node_id = $1)
               AND NOT EXISTS (SELECT 1 FROM node_usage WHERE node_id = $1)
               AND NOT EXISTS (SELECT 1 FROM node_usage_rollup WHERE node_id = $1)",
            &[&id],
        )?;
    }
    tx.commit()?;
    Ok((counts, done))
}

/// Deletes the cluster's rollup buckets that end at or before the cutoff (never from
/// `keep_from_ms` on), at most about `row_budget` rows; one transaction.
pub fn expire_step(
    client: &mut Client,
    cluster: i32,
    cutoff_ms: i64,
    keep_from_ms: Option<i64>,
    row_budget: u64,
) -> Result<(u64, bool), postgres::Error> {
    let cutoff = keep_from_ms.map_or(cutoff_ms, |keep| cutoff_ms.min(keep));
    let budget = row_budget as i64;
    let deleted = client.execute(
        "DELETE FROM node_usage_rollup WHERE (node_id, bucket_start_ms) IN (
             SELECT node_id, bucket_start_ms FROM node_usage_rollup
             WHERE cluster_id = $1 AND bucket_start_ms + bucket_ms <= $2
             ORDER BY bucket_start_ms LIMIT $3)",
        &[&cluster, &cutoff, &budget],
    )?;
    Ok((deleted, (deleted as i64) < budget))
}

fn opt_ms(
    client: &mut Client,
    sql: &str,
    clusters: &[i32],
) -> Result<Option<i64>, postgres::Error> {
    Ok(client.query_one(sql, &[&clusters])?.get(0))
}

/// The end of the newest rollup bucket; None when nothing is rolled up.
pub fn rolled_up_until_ms(
    client: &mut Client,
    clusters: &[i32],
) -> Result<Option<i64>, postgres::Error> {
    opt_ms(
        client,
        "SELECT max(bucket_start_ms + bucket_ms) FROM node_usage_rollup WHERE cluster_id = ANY($1)",
        clusters,
    )
}

/// Where the parts of the history begin and end, for the size rule.
pub fn bounds(client: &mut Client, clusters: &[i32]) -> Result<Bounds, postgres::Error> {
    Ok(Bounds {
        raw_from_ms: opt_ms(
            client,
            "SELECT min(at_ms) FROM node_usage WHERE cluster_id = ANY($1)",
            clusters,
        )?,
        oldest_rollup_ms: opt_ms(
            client,
            "SELECT min(bucket_start_ms) FROM node_usage_rollup WHERE cluster_id = ANY($1)",
            clusters,
        )?,
        rolled_up_until_ms: rolled_up_until_ms(client, clusters)?,
        oldest_ended_pod_ms: opt_ms(
            client,
            "SELECT min(deleted_at_ms) FROM pods WHERE cluster_id = ANY($1) AND deleted_at_ms IS NOT NULL",
            clusters,
        )?,
        oldest_deleted_node_with_history_ms: opt_ms(
            client,
            "SELECT min(deleted_at_ms) FROM nodes n
             WHERE cluster_id = ANY($1) AND deleted_at_ms IS NOT NULL
               AND (EXISTS (SELECT 1 FROM transitions t WHERE t.node_id = n.id)
                    OR EXISTS (SELECT 1 FROM node_capacity c WHERE c.node_id = n.id))",
            clusters,
        )?,
    })
}

/// The time of the raw usage row `offset` rows after the oldest.
pub fn nth_raw_usage_ms(
    client: &mut Client,
    clusters: &[i32],
    offset: u64,
) -> Result<Option<i64>, postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT at_ms FROM node_usage WHERE cluster_id = ANY($1) ORDER BY at_ms OFFSET $2 LIMIT 1",
            &[&clusters, &(offset as i64)],
        )?
        .map(|r| r.get(0)))
}

/// `kubetrail stats` for these clusters. Rows are counted per cluster; bytes are left out,
/// because the tables are shared by every cluster in the database.
pub fn stats(client: &mut Client, clusters: &[i32]) -> Result<StoreStats, postgres::Error> {
    let count = |client: &mut Client, sql: &str| -> Result<u64, postgres::Error> {
        Ok(client.query_one(sql, &[&clusters])?.get::<_, i64>(0) as u64)
    };
    let span = |client: &mut Client, sql: &str| -> Result<Span, postgres::Error> {
        let r = client.query_one(sql, &[&clusters])?;
        Ok(Span {
            from_ms: r.get(0),
            to_ms: r.get(1),
        })
    };
    let mut tables = Vec::new();
    for (table, sql) in [
        (
            "pods",
            "SELECT count(*) FROM pods WHERE cluster_id = ANY($1)",
        ),
        (
            "label_sets",
            "SELECT count(*) FROM label_sets WHERE cluster_id = ANY($1)",
        ),
        (
            "pod_state",
            "SELECT count(*) FROM pod_state s JOIN pods p ON p.id = s.pod_id WHERE p.cluster_id = ANY($1)",
        ),
        (
            "transitions",
            "SELECT count(*) FROM transitions WHERE cluster_id = ANY($1)",
        ),
        (
            "pod_resources",
            "SELECT count(*) FROM pod_resources r JOIN pods p ON p.id = r.pod_id WHERE p.cluster_id = ANY($1)",
        ),
        (
            "nodes",
            "SELECT count(*) FROM nodes WHERE cluster_id = ANY($1)",
        ),
        (
            "node_capacity",
            "SELECT count(*) FROM node_capacity c JOIN nodes n ON n.id = c.node_id WHERE n.cluster_id = ANY($1)",
        ),
        (
            "node_usage",
            "SELECT count(*) FROM node_usage WHERE cluster_id = ANY($1)",
        ),
        (
            "node_usage_rollup",
            "SELECT count(*) FROM node_usage_rollup WHERE cluster_id = ANY($1)",
        ),
        (
            "events",
            "SELECT count(*) FROM events WHERE cluster_id = ANY($1)",
        ),
        (
            "event_occurrences",
            "SELECT count(*) FROM event_occurrences WHERE cluster_id = ANY($1)",
        ),
        (
            "owners",
            "SELECT count(*) FROM owners WHERE cluster_id = ANY($1)",
        ),
        (
            "owner_scales",
            "SELECT count(*) FROM owner_scales WHERE cluster_id = ANY($1)",
        ),
        (
            "usage_containers",
            "SELECT count(*) FROM usage_containers WHERE cluster_id = ANY($1)",
        ),
        (
            "container_usage",
            "SELECT count(*) FROM container_usage u JOIN usage_containers c
                 ON c.id = u.container_id WHERE c.cluster_id = ANY($1)",
        ),
        (
            "node_usage_samples",
            "SELECT count(*) FROM node_usage_samples s JOIN nodes n ON n.id = s.node_id
                 WHERE n.cluster_id = ANY($1)",
        ),
        (
            "container_usage_hourly",
            "SELECT count(*) FROM container_usage_hourly u JOIN usage_containers c
                 ON c.id = u.container_id WHERE c.cluster_id = ANY($1)",
        ),
        (
            "node_usage_samples_hourly",
            "SELECT count(*) FROM node_usage_samples_hourly s JOIN nodes n ON n.id = s.node_id
                 WHERE n.cluster_id = ANY($1)",
        ),
    ] {
        tables.push(TableSize {
            table: table.to_string(),
            rows: count(client, sql)?,
            bytes: None,
        });
    }
    let schema_version: i32 = client
        .query_one("SELECT version FROM kubetrail_schema", &[])?
        .get(0);
    Ok(StoreStats {
        schema_version: i64::from(schema_version),
        auto_vacuum: None,
        tables,
        transitions: span(
            client,
            "SELECT min(at_ms), max(at_ms) FROM transitions WHERE cluster_id = ANY($1)",
        )?,
        raw_node_usage: span(
            client,
            "SELECT min(at_ms), max(at_ms) FROM node_usage WHERE cluster_id = ANY($1)",
        )?,
        node_usage_rollups: span(
            client,
            "SELECT min(bucket_start_ms), max(bucket_start_ms + bucket_ms) FROM node_usage_rollup
             WHERE cluster_id = ANY($1)",
        )?,
        open_pods: count(
            client,
            "SELECT count(*) FROM pods WHERE cluster_id = ANY($1) AND deleted_at_ms IS NULL",
        )?,
        ended_pods: count(
            client,
            "SELECT count(*) FROM pods WHERE cluster_id = ANY($1) AND deleted_at_ms IS NOT NULL",
        )?,
        open_nodes: count(
            client,
            "SELECT count(*) FROM nodes WHERE cluster_id = ANY($1) AND deleted_at_ms IS NULL",
        )?,
        deleted_nodes: count(
            client,
            "SELECT count(*) FROM nodes WHERE cluster_id = ANY($1) AND deleted_at_ms IS NOT NULL",
        )?,
        events: span(
            client,
            "SELECT min(last_seen_ms), max(last_seen_ms) FROM events WHERE cluster_id = ANY($1)",
        )?,
        event_count: count(
            client,
            "SELECT count(*) FROM events WHERE cluster_id = ANY($1)",
        )?,
        quarantined_rows: count(
            client,
            "SELECT count(*) FROM quarantine WHERE cluster_id = ANY($1)",
        )?,
    })
}

/// What `policy` would remove from these clusters at `now_ms` (`prune --dry-run`). There is no
/// size rule: `--max-db-size` is SQLite's.
pub fn plan(
    client: &mut Client,
    clusters: &[i32],
    policy: &Policy,
    now_ms: i64,
) -> Result<Plan, postgres::Error> {
    let count = |client: &mut Client, sql: &str, at: i64| -> Result<u64, postgres::Error> {
        Ok(client.query_one(sql, &[&clusters, &at])?.get::<_, i64>(0) as u64)
    };
    let mut aged_out = AgedOut::default();
    if let Some(cutoff) = policy.ended_cutoff_ms(now_ms) {
        let ended =
            "p.cluster_id = ANY($1) AND p.deleted_at_ms IS NOT NULL AND p.deleted_at_ms < $2";
        let gone =
            "n.cluster_id = ANY($1) AND n.deleted_at_ms IS NOT NULL AND n.deleted_at_ms < $2";
        aged_out = AgedOut {
            cutoff_ms: Some(cutoff),
            pods: count(
                client,
                &format!("SELECT count(*) FROM pods p WHERE {ended}"),
                cutoff,
            )?,
            pod_transitions: count(
                client,
                &format!(
                    "SELECT count(*) FROM pods p JOIN transitions t ON t.pod_id = p.id WHERE {ended}"
                ),
                cutoff,
            )?,
            pod_resources: count(
                client,
                &format!(
                    "SELECT count(*) FROM pods p JOIN pod_resources r ON r.pod_id = p.id WHERE {ended}"
                ),
                cutoff,
            )?,
            deleted_nodes: count(
                client,
                &format!(
                    "SELECT count(*) FROM nodes n WHERE {gone}
                       AND (EXISTS (SELECT 1 FROM transitions t WHERE t.node_id = n.id)
                            OR EXISTS (SELECT 1 FROM node_capacity c WHERE c.node_id = n.id))"
                ),
                cutoff,
            )?,
            node_transitions: count(
                client,
                &format!(
                    "SELECT count(*) FROM nodes n JOIN transitions t ON t.node_id = n.id WHERE {gone}"
                ),
                cutoff,
            )?,
            node_capacity: count(
                client,
                &format!(
                    "SELECT count(*) FROM nodes n JOIN node_capacity c ON c.node_id = n.id WHERE {gone}"
                ),
                cutoff,
            )?,
            ..AgedOut::default()
        };
        (aged_out.events, aged_out.event_occurrences) =
            super::events::count_older(client, clusters, cutoff)?;
        (aged_out.owners, aged_out.owner_scales) =
            super::owners::count_aged(client, clusters, cutoff)?;
    }
    let mut usage = UsageOutlook {
        raw_horizon_ms: policy.raw_horizon_ms(now_ms),
        rollup_cutoff_ms: policy.rollup_cutoff_ms(now_ms),
        ..Default::default()
    };
    if let Some(horizon) = usage.raw_horizon_ms {
        usage.raw_rows_rolled_up = count(
            client,
            "SELECT count(*) FROM node_usage WHERE cluster_id = ANY($1) AND at_ms < $2",
            horizon,
        )?;
        for r in client.query(
            "SELECT (SELECT min(u.at_ms) FROM node_usage u WHERE u.node_id = n.id), n.deleted_at_ms
             FROM nodes n WHERE n.cluster_id = ANY($1)",
            &[&clusters],
        )? {
            if let Some(first) = r.get::<_, Option<i64>>(0) {
                usage.rollups_written += rollup_hours(first, r.get(1), horizon);
            }
        }
    }
    if let Some(cutoff) = usage.rollup_cutoff_ms {
        usage.rollups_expired = count(
            client,
            "SELECT count(*) FROM node_usage_rollup
             WHERE cluster_id = ANY($1) AND bucket_start_ms + bucket_ms <= $2",
            cutoff,
        )?;
    }
    Ok(Plan {
        now_ms,
        policy: policy.describe(),
        file: None,
        aged_out,
        usage,
        size: None,
    })
}
