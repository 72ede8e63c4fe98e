//! The `recording_sessions` table: opening a session, moving its heartbeat, stopping it, and
//! reading them all back.

use rusqlite::{Connection, params};

use crate::store::sessions::{Scope, Session};

/// Opens a session at `now_ms`; returns its id for [`heartbeat`] and [`stop`].
pub fn start(conn: &Connection, scope: &Scope, now_ms: i64) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO recording_sessions (started_at_ms, heartbeat_at_ms, namespace, selector, nodes)
         VALUES (?1, ?1, ?2, ?3, ?4)",
        params![now_ms, scope.namespace, scope.selector, scope.nodes],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Moves the session's covered end to `now_ms` (never backwards). Run inside each commit's
/// transaction, so the heartbeat is on disk exactly when the rows are.
pub fn heartbeat(conn: &Connection, session_id: i64, now_ms: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE recording_sessions SET heartbeat_at_ms = max(heartbeat_at_ms, ?2) WHERE id = ?1",
    )?
    .execute(params![session_id, now_ms])?;
    Ok(())
}

/// Ends the session cleanly at `now_ms`, after the last commit.
pub fn stop(conn: &Connection, session_id: i64, now_ms: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE recording_sessions
         SET heartbeat_at_ms = max(heartbeat_at_ms, ?2), stopped_at_ms = max(heartbeat_at_ms, ?2)
         WHERE id = ?1",
        params![session_id, now_ms],
    )?;
    Ok(())
}

/// Every session, oldest first. The table holds one row per recorder start: tiny.
pub fn read_all(conn: &Connection) -> rusqlite::Result<Vec<Session>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, started_at_ms, heartbeat_at_ms, stopped_at_ms, namespace, selector, nodes,
                inferred
         FROM recording_sessions ORDER BY started_at_ms, id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Session {
            id: r.get(0)?,
            started_at_ms: r.get(1)?,
            heartbeat_at_ms: r.get(2)?,
            stopped_at_ms: r.get(3)?,
            scope: Scope {
                namespace: r.get(4)?,
                selector: r.get(5)?,
                nodes: r.get(6)?,
            },
            inferred: r.get(7)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_at_its_last_heartbeat_until_it_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let handle = crate::store::sqlite::open_for_writing(&dir.path().join("t.db")).unwrap();
        let scope = Scope {
            namespace: Some("web".into()),
            selector: None,
            nodes: true,
        };
        let id = start(&handle.conn, &scope, 1_000).unwrap();
        heartbeat(&handle.conn, id, 5_000).unwrap();
        heartbeat(&handle.conn, id, 4_000).unwrap();
        let sessions = read_all(&handle.conn).unwrap();
        assert_eq!(sessions.len(), 1);
        assert_eq!(
            (sessions[0].end_ms(), sessions[0].stopped_at_ms),
            (5_000, None)
        );
        assert!(sessions[0].scope.is_partial());
        stop(&handle.conn, id, 9_000).unwrap();
        let sessions = read_all(&handle.conn).unwrap();
        assert_eq!(sessions[0].end_ms(), 9_000);
        assert_eq!(sessions[0].scope, scope);
    }
}
