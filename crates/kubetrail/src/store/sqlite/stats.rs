//! `kubetrail stats`' figures in SQLite: pragmas, rows and bytes per table, and the time spans
//! of each kind of history.

use rusqlite::Connection;

use super::plan::table_sizes;
use super::rollup::{oldest_rollup_ms, rolled_up_until_ms};
use crate::store::api::{Span, StoreStats};

pub fn collect(conn: &Connection) -> rusqlite::Result<StoreStats> {
    let auto_vacuum = match conn.pragma_query_value(None, "auto_vacuum", |r| r.get::<_, i64>(0))? {
        2 => "incremental",
        1 => "full",
        _ => "none",
    };
    Ok(StoreStats {
        schema_version: conn.pragma_query_value(None, "user_version", |r| r.get(0))?,
        auto_vacuum: Some(auto_vacuum),
        tables: table_sizes(conn)?,
        // min and max over an index: two seeks each.
        transitions: span(conn, "SELECT min(at_ms), max(at_ms) FROM transitions")?,
        raw_node_usage: span(conn, "SELECT min(at_ms), max(at_ms) FROM node_usage")?,
        node_usage_rollups: Span {
            from_ms: oldest_rollup_ms(conn)?,
            to_ms: rolled_up_until_ms(conn)?,
        },
        open_pods: count(
            conn,
            "SELECT count(*) FROM pods WHERE deleted_at_ms IS NULL",
        )?,
        ended_pods: count(
            conn,
            "SELECT count(*) FROM pods WHERE deleted_at_ms IS NOT NULL",
        )?,
        open_nodes: count(
            conn,
            "SELECT count(*) FROM nodes WHERE deleted_at_ms IS NULL",
        )?,
        deleted_nodes: count(
            conn,
            "SELECT count(*) FROM nodes WHERE deleted_at_ms IS NOT NULL",
        )?,
        events: span(
            conn,
            "SELECT min(last_seen_ms), max(last_seen_ms) FROM events",
        )?,
        event_count: count(conn, "SELECT count(*) FROM events")?,
        quarantined_rows: count(conn, "SELECT count(*) FROM quarantine")?,
    })
}

fn span(conn: &Connection, sql: &str) -> rusqlite::Result<Span> {
    conn.query_row(sql, [], |r| {
        Ok(Span {
            from_ms: r.get(0)?,
            to_ms: r.get(1)?,
        })
    })
}

fn count(conn: &Connection, sql: &str) -> rusqlite::Result<u64> {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
}
