//! `prune --dry-run`'s plan in SQLite: the age rules counted exactly (the same cutoffs and
//! conditions as the pass uses), and the size budget estimated from `dbstat` (page bytes of a
//! table and its indexes over its rows), walking the oldest ended history forward until the
//! estimate fits. A real pass measures pages after every step instead.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::file::{measure, wal_allowance};
use crate::model::policy::Policy;
use crate::model::rollup::{KEEP_NEWEST_ROLLUPS_MS, ROLLUP_BUCKET_MS, floor_to_bucket};
use crate::store::FileSize;
use crate::store::plan::{AgedOut, HISTORY_TABLES, Plan, SizeOutlook, TableSize, UsageOutlook};

/// Rows and bytes per history table. Counting rows reads every index entry, so this takes about
/// a second per ten million rows.
pub fn table_sizes(conn: &Connection) -> rusqlite::Result<Vec<TableSize>> {
    let bytes = page_bytes_by_table(conn);
    HISTORY_TABLES
        .iter()
        .map(|table| {
            // Table names come from the constant list above, never from input.
            let rows: i64 =
                conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
            Ok(TableSize {
                table: table.to_string(),
                rows: rows as u64,
                bytes: bytes.as_ref().map(|b| b.get(*table).copied().unwrap_or(0)),
            })
        })
        .collect()
}

/// Page bytes per table, indexes counted with their table; None without `dbstat`.
fn page_bytes_by_table(conn: &Connection) -> Option<HashMap<String, u64>> {
    let mut stmt = conn
        .prepare(
            "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize)
             FROM dbstat d LEFT JOIN sqlite_master m ON m.name = d.name
             GROUP BY 1",
        )
        .ok()?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })
        .ok()?;
    rows.collect::<rusqlite::Result<HashMap<_, _>>>().ok()
}

fn count(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> rusqlite::Result<u64> {
    conn.prepare_cached(sql)?
        .query_row(params, |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}

/// Computes the plan; reads only.
pub fn plan(conn: &Connection, policy: &Policy, now_ms: i64) -> rusqlite::Result<Plan> {
    let file = measure(conn)?;
    let aged_out = aged_out(conn, policy.ended_cutoff_ms(now_ms))?;
    let usage = usage_outlook(conn, policy, now_ms)?;
    let size = match policy.max_db_bytes {
        Some(budget) => Some(size_outlook(
            conn, budget, &file, &aged_out, &usage, now_ms,
        )?),
        None => None,
    };
    Ok(Plan {
        now_ms,
        policy: policy.describe(),
        file: Some(file),
        aged_out,
        usage,
        size,
    })
}

fn aged_out(conn: &Connection, cutoff: Option<i64>) -> rusqlite::Result<AgedOut> {
    let Some(cutoff) = cutoff else {
        return Ok(AgedOut::default());
    };
    let (events, event_occurrences) = super::events::count_older(conn, cutoff)?;
    let (owners, owner_scales) = super::owners::count_aged(conn, cutoff)?;
    Ok(AgedOut {
        cutoff_ms: Some(cutoff),
        pods: count(conn, "SELECT count(*) FROM pods WHERE deleted_at_ms IS NOT NULL AND deleted_at_ms < ?1", [cutoff])?,
        pod_transitions: count(
            conn,
            "SELECT count(*) FROM pods p JOIN transitions t ON t.pod_id = p.id
             WHERE p.deleted_at_ms IS NOT NULL AND p.deleted_at_ms < ?1",
            [cutoff],
        )?,
        pod_resources: count(
            conn,
            "SELECT count(*) FROM pods p JOIN pod_resources r ON r.pod_id = p.id
             WHERE p.deleted_at_ms IS NOT NULL AND p.deleted_at_ms < ?1",
            [cutoff],
        )?,
        deleted_nodes: count(
            conn,
            "SELECT count(*) FROM nodes n WHERE deleted_at_ms IS NOT NULL AND deleted_at_ms < ?1
               AND (EXISTS (SELECT 1 FROM transitions t WHERE t.pod_id IS NULL AND t.node_id = n.id)
                    OR EXISTS (SELECT 1 FROM node_capacity c WHERE c.node_id = n.id))",
            [cutoff],
        )?,
        node_transitions: count(
            conn,
            "SELECT count(*) FROM nodes n JOIN transitions t ON t.pod_id IS NULL AND t.node_id = n.id
             WHERE n.deleted_at_ms IS NOT NULL AND n.deleted_at_ms < ?1",
            [cutoff],
        )?,
        node_capacity: count(
            conn,
            "SELECT count(*) FROM nodes n JOIN node_capacity c ON c.node_id = n.id
             WHERE n.deleted_at_ms IS NOT NULL AND n.deleted_at_ms < ?1",
            [cutoff],
        )?,
        events,
        event_occurrences,
        owners,
        owner_scales,
    })
}

fn usage_outlook(
    conn: &Connection,
    policy: &Policy,
    now_ms: i64,
) -> rusqlite::Result<UsageOutlook> {
    let mut out = UsageOutlook {
        raw_horizon_ms: policy.raw_horizon_ms(now_ms),
        rollup_cutoff_ms: policy.rollup_cutoff_ms(now_ms),
        ..Default::default()
    };
    if let Some(horizon) = out.raw_horizon_ms {
        out.raw_rows_rolled_up = count(
            conn,
            "SELECT count(*) FROM node_usage WHERE at_ms < ?1",
            [horizon],
        )?;
        out.rollups_written = hours_to_roll_up(conn, horizon)?;
    }
    if let Some(cutoff) = out.rollup_cutoff_ms {
        out.rollups_expired = count(
            conn,
            "SELECT count(*) FROM node_usage_rollup WHERE bucket_start_ms + bucket_ms <= ?1",
            [cutoff],
        )?;
    }
    Ok(out)
}

/// Node-hours between each node's first raw row and the horizon (or its deletion): the rollup
/// rows a pass would write.
fn hours_to_roll_up(conn: &Connection, horizon_ms: i64) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare_cached(
        "SELECT (SELECT min(u.at_ms) FROM node_usage u WHERE u.node_id = n.id), n.deleted_at_ms FROM nodes n",
    )?;
    let mut rows = stmt.query([])?;
    let mut hours = 0u64;
    while let Some(row) = rows.next()? {
        let (Some(first), deleted): (Option<i64>, Option<i64>) = (row.get(0)?, row.get(1)?) else {
            continue;
        };
        hours += crate::store::plan::rollup_hours(first, deleted, horizon_ms);
    }
    Ok(hours)
}

/// Average bytes per row of a table, from dbstat, or a typical figure without it.
fn bytes_per_row(sizes: &[TableSize], table: &str, typical: f64) -> f64 {
    sizes
        .iter()
        .find(|s| s.table == table)
        .and_then(|s| match s.bytes {
            Some(bytes) if s.rows > 0 => Some(bytes as f64 / s.rows as f64),
            _ => None,
        })
        .unwrap_or(typical)
}

fn size_outlook(
    conn: &Connection,
    budget: u64,
    file: &FileSize,
    aged: &AgedOut,
    usage: &UsageOutlook,
    now_ms: i64,
) -> rusqlite::Result<SizeOutlook> {
    let sizes = table_sizes(conn)?;
    let pod = bytes_per_row(&sizes, "pods", 300.0);
    let transition = bytes_per_row(&sizes, "transitions", 60.0);
    let resource = bytes_per_row(&sizes, "pod_resources", 40.0);
    let raw = bytes_per_row(&sizes, "node_usage", 45.0);
    let rollup = bytes_per_row(&sizes, "node_usage_rollup", 200.0);
    let target = budget.saturating_sub(wal_allowance(conn, budget, file.wal_bytes)?);
    let used = file.used_bytes();
    let freed_by_age = aged.pods as f64 * pod
        + (aged.pod_transitions + aged.node_transitions) as f64 * transition
        + aged.pod_resources as f64 * resource
        + usage.raw_rows_rolled_up as f64 * raw
        - usage.rollups_written as f64 * rollup
        + usage.rollups_expired as f64 * rollup;
    let after_age = (used as f64 - freed_by_age.max(0.0)).max(0.0) as u64;
    let mut out = SizeOutlook {
        budget_bytes: budget,
        target_used_bytes: target,
        used_bytes_now: used,
        used_bytes_after_age_rules: after_age,
        ..Default::default()
    };
    if after_age <= target {
        return Ok(out);
    }
    let excess = (after_age - target) as f64;

    // Ended pods and raw utilisation newer than what the age rules take, up to a cutoff T.
    let pods_from = aged.cutoff_ms.unwrap_or(i64::MIN);
    let raw_from = usage.raw_horizon_ms.unwrap_or(i64::MIN);
    let raw_floor = floor_to_bucket(now_ms - ROLLUP_BUCKET_MS);
    let ended: u64 = count(
        conn,
        "SELECT count(*) FROM pods WHERE deleted_at_ms IS NOT NULL",
        [],
    )?
    .max(1);
    let ended_transitions = count(
        conn,
        "SELECT count(*) FROM pods p JOIN transitions t ON t.pod_id = p.id WHERE p.deleted_at_ms IS NOT NULL",
        [],
    )?;
    let per_ended_pod = pod + ended_transitions as f64 / ended as f64 * transition + resource;
    let nodes_with_raw = count(conn, "SELECT count(DISTINCT node_id) FROM node_usage", [])?;
    let oldest_raw: Option<i64> =
        conn.query_row("SELECT min(at_ms) FROM node_usage", [], |r| r.get(0))?;
    let raw_start = raw_from.max(oldest_raw.unwrap_or(raw_floor));
    let early = |t: i64| -> rusqlite::Result<(u64, u64, f64)> {
        let pods = count(
            conn,
            "SELECT count(*) FROM pods WHERE deleted_at_ms IS NOT NULL AND deleted_at_ms >= ?1 AND deleted_at_ms < ?2",
            params![pods_from, t],
        )?;
        let raw_end = floor_to_bucket(t).min(raw_floor);
        let raws = count(
            conn,
            "SELECT count(*) FROM node_usage WHERE at_ms >= ?1 AND at_ms < ?2",
            params![raw_start, raw_end],
        )?;
        // Rolled-up rows cost one rollup row per node and hour.
        let hours = ((raw_end - raw_start).max(0) / ROLLUP_BUCKET_MS) as u64;
        let rollups = (hours * nodes_with_raw).min(raws);
        let bytes = pods as f64 * per_ended_pod + raws as f64 * raw - rollups as f64 * rollup;
        Ok((pods, raws, bytes))
    };
    let oldest: Option<i64> = conn
        .query_row(
            "SELECT min(t) FROM (SELECT min(deleted_at_ms) AS t FROM pods WHERE deleted_at_ms IS NOT NULL
                                 UNION ALL SELECT min(at_ms) FROM node_usage)",
            [],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let (mut low, mut high) = (oldest.unwrap_or(now_ms), now_ms);
    let (pods_all, raws_all, bytes_all) = early(high)?;
    if bytes_all < excess {
        // Everything of tier 1 goes, then rollups except the newest.
        out.early_cutoff_ms = Some(high);
        out.early_pods = pods_all;
        out.early_raw_rows = raws_all;
        let newest_rollup: Option<i64> = super::rollup::rolled_up_until_ms(conn)?;
        let keep_from = newest_rollup.map_or(i64::MIN, |n| n - KEEP_NEWEST_ROLLUPS_MS);
        let expirable = count(
            conn,
            "SELECT count(*) FROM node_usage_rollup WHERE bucket_start_ms + bucket_ms <= ?1",
            [keep_from],
        )?
        .saturating_sub(usage.rollups_expired);
        let needed = ((excess - bytes_all) / rollup).ceil() as u64;
        out.early_rollups = needed.min(expirable);
        out.cannot_fit = needed > expirable;
        return Ok(out);
    }
    // Binary search for the earliest cutoff that frees enough, to the minute.
    while high - low > 60_000 {
        let mid = low + (high - low) / 2;
        if early(mid)?.2 >= excess {
            high = mid;
        } else {
            low = mid;
        }
    }
    let (pods, raws, _) = early(high)?;
    out.early_cutoff_ms = Some(high);
    out.early_pods = pods;
    out.early_raw_rows = raws;
    Ok(out)
}
