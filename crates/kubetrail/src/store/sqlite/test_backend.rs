//! The SQLite backend of the store's conformance suite (`crate::conformance`): a fresh file in
//! a temporary directory per case, and a trigger that refuses one pod's row.

use std::path::PathBuf;

use crate::conformance::{Backend, Fixture};
use crate::store::{Location, ReadOptions, WriteMode, open_reader, open_writer};

pub(crate) struct SqliteBackend;

impl Backend for SqliteBackend {
    fn fresh(&self) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let at = Location::Sqlite(dir.path().join("t.db"));
        let writer = open_writer(&at, WriteMode::Record).unwrap();
        let reader = open_reader(&at, ReadOptions::default()).unwrap();
        Fixture::new(writer, reader, Box::new(dir))
    }

    fn poison(&self, fixture: &mut Fixture, pod_uid: &str) {
        // A row the database refuses for good, as a constraint would.
        let conn = rusqlite::Connection::open(file(fixture)).unwrap();
        conn.execute_batch(&format!(
            "CREATE TRIGGER poison BEFORE INSERT ON pods WHEN NEW.uid = '{pod_uid}'
             BEGIN SELECT RAISE(ABORT, 'poison row'); END;"
        ))
        .unwrap();
    }
}

/// The file in the fixture's temporary directory.
fn file(fixture: &Fixture) -> PathBuf {
    let dir = fixture.kept::<tempfile::TempDir>().unwrap();
    dir.path().join("t.db")
}
