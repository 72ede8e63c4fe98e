//! The PostgreSQL schema's migrations: embedded SQL files, applied in order in one transaction
//! under an advisory lock (so that recorders of several clusters starting together do not race),
//! with the version kept in `kubetrail_schema`. A database made by a newer kubetrail is refused,
//! and so is one that holds another program's tables.

use postgres::Client;

/// Every migration, in order; the version is the position (1-based).
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_lean_writes.sql"),
    include_str!("migrations/0003_events.sql"),
    include_str!("migrations/0004_owners.sql"),
    include_str!("migrations/0005_usage.sql"),
    include_str!("migrations/0006_fillfactor.sql"),
    include_str!("migrations/0007_container_resources.sql"),
    include_str!("migrations/0008_binary_pod_state.sql"),
];

/// The newest schema this build knows.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// `pg_advisory_xact_lock`'s key for migrations (any constant; "kubetrail" in ASCII, truncated).
const MIGRATION_LOCK: i64 = 0x6b75_6265_7472_6169;

/// Why a database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "it holds tables of another program ({tables}) and no kubetrail schema; give kubetrail \
         a database of its own (CREATE DATABASE kubetrail)"
    )]
    Foreign { tables: String },
    #[error(
        "it was written by a newer kubetrail (schema version {found}; this one knows up to \
         {VERSION}); upgrade kubetrail"
    )]
    TooNew { found: i32 },
    #[error(
        "it holds no kubetrail history (no kubetrail_schema table); record into it first with \
         `kubetrail record --db URL --cluster NAME`"
    )]
    Empty,
    #[error("{0}")]
    Database(#[from] postgres::Error),
}

/// For a reader: the database must be kubetrail's, at a version this build can read. Changes
/// nothing. (`query_typed`: one round trip per statement, where `query` prepares first.)
pub fn check(client: &mut Client) -> Result<(), SchemaError> {
    let ours: bool = client
        .query_typed_one("SELECT to_regclass('kubetrail_schema') IS NOT NULL", &[])?
        .get(0);
    if !ours {
        return Err(SchemaError::Empty);
    }
    let found: i32 = client
        .query_typed_one(
            "SELECT coalesce(max(version), 0) FROM kubetrail_schema",
            &[],
        )?
        .get(0);
    if found > VERSION {
        return Err(SchemaError::TooNew { found });
    }
    Ok(())
}

/// Brings the database to [`VERSION`], creating the tables in an empty database. Safe to run
/// from many processes at once.
pub fn migrate(client: &mut Client) -> Result<(), SchemaError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    let ours: bool = tx
        .query_one("SELECT to_regclass('kubetrail_schema') IS NOT NULL", &[])?
        .get(0);
    let found = if ours {
        tx.query_one("SELECT max(version) FROM kubetrail_schema", &[])?
            .get::<_, Option<i32>>(0)
            .unwrap_or(0)
    } else {
        let tables: Vec<String> = tx
            .query(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()
                 ORDER BY tablename LIMIT 4",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !tables.is_empty() {
            return Err(SchemaError::Foreign {
                tables: tables.join(", "),
            });
        }
        0
    };
    if found > VERSION {
        return Err(SchemaError::TooNew { found });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql)?;
        let version = i as i32 + 1;
        // 0001 inserts its own row; later ones move it.
        tx.execute("UPDATE kubetrail_schema SET version = $1", &[&version])?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubetrail_pgtest::PgServer;

    fn connect() -> Client {
        let conninfo = PgServer::shared().fresh_database();
        Client::connect(&conninfo, postgres::NoTls).unwrap()
    }

    #[test]
    fn an_empty_database_gets_the_schema_and_a_second_run_changes_nothing() {
        let mut c = connect();
        migrate(&mut c).unwrap();
        migrate(&mut c).unwrap();
        let v: i32 = c
            .query_one("SELECT version FROM kubetrail_schema", &[])
            .unwrap()
            .get(0);
        assert_eq!(v, VERSION);
        let rows: i64 = c
            .query_one("SELECT count(*) FROM kubetrail_schema", &[])
            .unwrap()
            .get(0);
        assert_eq!(rows, 1);
    }

    #[test]
    fn another_programs_database_is_refused_and_left_alone() {
        let mut c = connect();
        c.batch_execute("CREATE TABLE invoices (id int); CREATE TABLE customers (id int)")
            .unwrap();
        let err = migrate(&mut c).unwrap_err();
        assert!(
            err.to_string()
                .contains("another program (customers, invoices)"),
            "{err}"
        );
        let ours: bool = c
            .query_one("SELECT to_regclass('pods') IS NOT NULL", &[])
            .unwrap()
            .get(0);
        assert!(!ours, "nothing was created");
    }

    /// Migration 0008 turns the stored pod states into bytes: a JSON state an older recorder
    /// wrote stays byte for byte what it was (the recorder still reads it).
    #[test]
    fn an_older_schema_is_upgraded_keeping_the_json_pod_states() {
        let mut c = connect();
        for sql in &MIGRATIONS[..7] {
            c.batch_execute(sql).unwrap();
        }
        c.batch_execute(
            "UPDATE kubetrail_schema SET version = 7;
             INSERT INTO pod_state (pod_id, state) VALUES (1, '{\"rd\":true,\"ü\":1}')",
        )
        .unwrap();
        migrate(&mut c).unwrap();
        let row = c
            .query_one(
                "SELECT pg_typeof(state)::text, state FROM pod_state WHERE pod_id = 1",
                &[],
            )
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "bytea");
        assert_eq!(row.get::<_, Vec<u8>>(1), "{\"rd\":true,\"ü\":1}".as_bytes());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut c = connect();
        migrate(&mut c).unwrap();
        c.execute(
            "UPDATE kubetrail_schema SET version = $1",
            &[&(VERSION + 1)],
        )
        .unwrap();
        let err = migrate(&mut c).unwrap_err();
        assert!(matches!(err, SchemaError::TooNew { .. }), "{err}");
        assert!(err.to_string().contains("upgrade kubetrail"), "{err}");
    }

    #[test]
    fn recorders_starting_together_do_not_race() {
        let conninfo = PgServer::shared().fresh_database();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let conninfo = conninfo.clone();
                std::thread::spawn(move || {
                    let mut c = Client::connect(&conninfo, postgres::NoTls).unwrap();
                    migrate(&mut c)
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
    }
}
