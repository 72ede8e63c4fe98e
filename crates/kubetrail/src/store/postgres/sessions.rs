//! Recording sessions in PostgreSQL: the same rows as SQLite's (`store::sessions`), one set per
//! cluster.

use postgres::GenericClient;

use crate::store::sessions::{Scope, Session};

/// Opens a session of `cluster` at `now_ms`; returns its id.
pub fn start(
    client: &mut impl GenericClient,
    cluster: i32,
    scope: &Scope,
    now_ms: i64,
) -> Result<i64, postgres::Error> {
    let row = client.query_one(
        "INSERT INTO recording_sessions (cluster_id, started_at_ms, heartbeat_at_ms, namespace,
             selector, nodes)
         VALUES ($1, $2, $2, $3, $4, $5) RETURNING id",
        &[
            &cluster,
            &now_ms,
            &scope.namespace,
            &scope.selector,
            &scope.nodes,
        ],
    )?;
    Ok(row.get(0))
}

/// Moves the session's covered end to `now_ms`, never backwards.
pub fn heartbeat(
    client: &mut impl GenericClient,
    session: i64,
    now_ms: i64,
) -> Result<(), postgres::Error> {
    client.execute(
        "UPDATE recording_sessions SET heartbeat_at_ms = greatest(heartbeat_at_ms, $2)
         WHERE id = $1",
        &[&session, &now_ms],
    )?;
    Ok(())
}

/// Ends the session cleanly at `now_ms`.
pub fn stop(
    client: &mut impl GenericClient,
    session: i64,
    now_ms: i64,
) -> Result<(), postgres::Error> {
    client.execute(
        "UPDATE recording_sessions
         SET heartbeat_at_ms = greatest(heartbeat_at_ms, $2),
             stopped_at_ms = greatest(heartbeat_at_ms, $2)
         WHERE id = $1",
        &[&session, &now_ms],
    )?;
    Ok(())
}

/// Every session of the clusters given, oldest first.
pub fn read_all(
    client: &mut impl GenericClient,
    clusters: &[i32],
) -> Result<Vec<Session>, postgres::Error> {
    let rows = client.query(
        "SELECT id, started_at_ms, heartbeat_at_ms, stopped_at_ms, namespace, selector, nodes,
                inferred
         FROM recording_sessions WHERE cluster_id = ANY($1)
         ORDER BY started_at_ms, id",
        &[&clusters],
    )?;
    Ok(rows
        .iter()
        .map(|r| Session {
            id: r.get(0),
            started_at_ms: r.get(1),
            heartbeat_at_ms: r.get(2),
            stopped_at_ms: r.get(3),
            scope: Scope {
                namespace: r.get(4),
                selector: r.get(5),
                nodes: r.get(6),
            },
            inferred: r.get(7),
        })
        .collect())
}
