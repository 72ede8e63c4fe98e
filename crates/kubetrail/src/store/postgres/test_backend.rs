//! The PostgreSQL backend of the store's conformance suite (`crate::conformance`): a fresh
//! database per case on the test process's server (kubetrail-pgtest), and a trigger that
//! refuses one pod's row.

use kubetrail_pgtest::PgServer;

use crate::conformance::{Backend, Fixture};
use crate::store::{Location, ReadOptions, WriteMode, open_reader, open_writer};

pub(crate) struct PgBackend;

/// The conninfo of the fixture's database, kept in the fixture.
struct Database(String);

impl Backend for PgBackend {
    fn fresh(&self) -> Fixture {
        let conninfo = PgServer::shared().fresh_database();
        let url = PgServer::shared().url(&conninfo);
        let at = Location::parse(&url, &["conformance".to_string()]).unwrap();
        let writer = open_writer(&at, WriteMode::Record).unwrap();
        let reader = open_reader(&at, ReadOptions::default()).unwrap();
        Fixture::new(writer, reader, Box::new(Database(conninfo)))
    }

    fn poison(&self, fixture: &mut Fixture, pod_uid: &str) {
        let Database(conninfo) = fixture.kept::<Database>().unwrap();
        let mut c = postgres::Client::connect(conninfo, postgres::NoTls).unwrap();
        c.batch_execute(&format!(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'poison row'; END $$;
             CREATE TRIGGER poison BEFORE INSERT ON pods
             FOR EACH ROW WHEN (NEW.uid = '{pod_uid}') EXECUTE FUNCTION poison();"
        ))
        .unwrap();
    }
}
