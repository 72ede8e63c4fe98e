//! Reading a PostgreSQL store through the seam: [`PgReader`] (a pool of connections) hands
//! out [`PgSnapshot`]s, each one `REPEATABLE READ, READ ONLY` transaction, over the clusters
//! the reader was opened for; the writer's reads use a snapshot on its own connection.

use std::collections::HashMap;
use std::ops::{ControlFlow, Deref, DerefMut};
use std::sync::Arc;

use postgres::Client;
use r2d2::PooledConnection;
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::config::Target;
use super::{reports, retention, sessions};
use crate::model::event::{EventFilter, EventRecord};
use crate::model::owner::{OwnerFilter, OwnerRecord};
use crate::model::policy::Policy;
use crate::model::report::{
    Incarnation, PodFilter, PodSummary, TransitionFilter, TransitionRecord,
};
use crate::model::utilisation::{BucketUsage, UsageSample};
use crate::store::api::{
    Bounds, HistoryReader, NodeInfo, OpenNode, OpenPod, R, ReadOptions, Snapshot, StoreStats,
};
use crate::store::plan::Plan;
use crate::store::{Session, StoreError};

type Manager = FirstThen;

/// The pool's connection manager, which hands out the connection [`PgReader::open`] already
/// made (to learn a wrong password at once) before making new ones: a short `query` then pays
/// for one connection, not two (each is a TCP or socket round trip, authentication and a new
/// server process: 3-10 ms of a 20 ms budget).
pub struct FirstThen {
    first: std::sync::Mutex<Option<Client>>,
    make: PostgresConnectionManager<MakeRustlsConnect>,
}

impl r2d2::ManageConnection for FirstThen {
    type Connection = Client;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Client, postgres::Error> {
        let first = self.first.lock().unwrap_or_else(|e| e.into_inner()).take();
        match first {
            Some(client) => Ok(client),
            None => self.make.connect(),
        }
    }

    fn is_valid(&self, conn: &mut Client) -> Result<(), postgres::Error> {
        self.make.is_valid(conn)
    }

    fn has_broken(&self, conn: &mut Client) -> bool {
        self.make.has_broken(conn)
    }
}

/// The read side of a PostgreSQL store.
pub struct PgReader {
    /// Always Some until dropped.
    pool: Option<r2d2::Pool<Manager>>,
    target: String,
    clusters: Vec<i32>,
    /// The names of the clusters read, by id, when there are several: reports then say
    /// which cluster each row is of.
    names: Option<Arc<ClusterNames>>,
}

/// Cluster names by id.
pub type ClusterNames = HashMap<i32, String>;

/// Which clusters a reader reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClusterChoice {
    /// Every cluster in the database.
    #[default]
    All,
    /// These, by name; an unknown name is an error.
    Named(Vec<String>),
}

impl PgReader {
    pub fn open(server: Target, clusters: &ClusterChoice, opts: ReadOptions) -> R<PgReader> {
        let target = super::config::describe(&server.config);
        let tls = super::tls::connector(&server.tls).map_err(|detail| StoreError::Database {
            target: target.clone(),
            detail,
            transient: false,
        })?;
        // One connection first, by hand: the pool would retry a wrong password or a missing
        // database until its timeout and then say only "timed out".
        let probe = server
            .config
            .connect(tls.clone())
            .map_err(|e| super::store_error(&target, e))?;
        let manager = FirstThen {
            first: std::sync::Mutex::new(Some(probe)),
            make: PostgresConnectionManager::new(server.config, tls),
        };
        let pool = r2d2::Pool::builder()
            // Failures reach the caller as errors; r2d2's own log lines would repeat them.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .max_size(opts.connections.max(1))
            // The first connection is made now, so a wrong URL fails here, once, clearly.
            .min_idle(Some(1))
            .connection_timeout(std::time::Duration::from_secs(10))
            .build(manager)
            .map_err(|e| StoreError::Database {
                target: target.clone(),
                detail: format!("cannot connect: {e}"),
                transient: true,
            })?;
        let mut reader = PgReader {
            pool: Some(pool),
            target,
            clusters: Vec::new(),
            names: None,
        };
        let mut conn = reader.get()?;
        match super::schema::check(&mut conn) {
            Ok(()) => {}
            Err(super::schema::SchemaError::Database(e)) => return Err(reader.error(e)),
            Err(refused) => {
                return Err(StoreError::Refused {
                    target: reader.target.clone(),
                    reason: refused.to_string(),
                });
            }
        }
        let ids = resolve_clusters(&mut conn, clusters).map_err(|e| reader.error(e))?;
        drop(conn);
        let chosen = ids.map_err(|detail| StoreError::Cluster {
            target: reader.target.clone(),
            detail,
        })?;
        reader.clusters = chosen.iter().map(|(id, _)| *id).collect();
        if chosen.len() > 1 {
            reader.names = Some(Arc::new(chosen.into_iter().collect()));
        }
        Ok(reader)
    }

    fn pool(&self) -> &r2d2::Pool<Manager> {
        self.pool.as_ref().expect("the pool lives until drop")
    }

    fn get(&self) -> R<PooledConnection<Manager>> {
        self.pool().get().map_err(|e| StoreError::Database {
            target: self.target.clone(),
            detail: format!("cannot open a read connection: {e}"),
            transient: true,
        })
    }

    fn error(&self, err: postgres::Error) -> StoreError {
        let (detail, transient) = super::describe(&err);
        StoreError::Database {
            target: self.target.clone(),
            detail,
            transient,
        }
    }
}

/// The ids and names of the chosen clusters; Err(message) when a named one is not in the
/// database.
fn resolve_clusters(
    client: &mut Client,
    choice: &ClusterChoice,
) -> Result<Result<Vec<(i32, String)>, String>, postgres::Error> {
    let known: Vec<(i32, String)> = client
        .query_typed("SELECT id, name FROM clusters ORDER BY name", &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(match choice {
        ClusterChoice::All => Ok(known),
        ClusterChoice::Named(names) => names
            .iter()
            .map(|name| {
                known
                    .iter()
                    .find(|(_, n)| n == name)
                    .cloned()
                    .ok_or_else(|| {
                        let names: Vec<&str> = known.iter().map(|(_, n)| n.as_str()).collect();
                        format!(
                            "no cluster named {name:?} in this database (it has: {})",
                            if names.is_empty() {
                                "none yet".to_string()
                            } else {
                                names.join(", ")
                            }
                        )
                    })
            })
            .collect(),
    })
}

impl HistoryReader for PgReader {
    fn snapshot(&self) -> R<Box<dyn Snapshot + '_>> {
        let mut conn = self.get()?;
        conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .map_err(|e| self.error(e))?;
        Ok(Box::new(PgSnapshot {
            conn: Conn::Pooled(Box::new(conn)),
            target: self.target.clone(),
            clusters: self.clusters.clone(),
            names: self.names.clone(),
            in_transaction: true,
        }))
    }

    fn max_snapshots(&self) -> usize {
        self.pool().max_size() as usize
    }

    fn clusters(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .names
            .iter()
            .flat_map(|n| n.values().cloned())
            .collect();
        names.sort();
        names
    }
}

enum Conn<'a> {
    Pooled(Box<PooledConnection<Manager>>),
    Borrowed(&'a mut Client),
}

impl Deref for Conn<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        match self {
            Conn::Pooled(c) => c,
            Conn::Borrowed(c) => c,
        }
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        match self {
            Conn::Pooled(c) => c,
            Conn::Borrowed(c) => c,
        }
    }
}

/// Reads on one connection, over some clusters.
pub struct PgSnapshot<'a> {
    conn: Conn<'a>,
    target: String,
    clusters: Vec<i32>,
    names: Option<Arc<ClusterNames>>,
    in_transaction: bool,
}

impl<'a> PgSnapshot<'a> {
    /// Reads on the writer's connection as it is, for its own cluster.
    pub fn borrowed(client: &'a mut Client, target: String, cluster: i32) -> PgSnapshot<'a> {
        PgSnapshot {
            conn: Conn::Borrowed(client),
            target,
            clusters: vec![cluster],
            names: None,
            in_transaction: false,
        }
    }

    /// Runs a read, on a thread of its own when called from async code (the recorder reads
    /// its open state there; see `outside_runtime`).
    fn run<T: Send>(
        &mut self,
        read: impl FnOnce(&mut Client, &[i32]) -> Result<T, postgres::Error> + Send,
    ) -> R<T> {
        let (conn, clusters) = (&mut self.conn, &self.clusters);
        super::outside_runtime(move || read(conn, clusters))
            .map_err(|e| super::store_error(&self.target, e))
    }

    /// Runs a read that hands rows to a callback as they come: from blocking code only (the
    /// reports run in `spawn_blocking`).
    fn run_here<T>(
        &mut self,
        read: impl FnOnce(&mut Client, &[i32]) -> Result<T, postgres::Error>,
    ) -> R<T> {
        read(&mut self.conn, &self.clusters).map_err(|e| super::store_error(&self.target, e))
    }
}

impl Drop for PgSnapshot<'_> {
    fn drop(&mut self) {
        if self.in_transaction {
            let conn = &mut self.conn;
            super::outside_runtime(move || {
                let _ = conn.batch_execute("ROLLBACK");
            });
        }
    }
}

impl Drop for PgReader {
    fn drop(&mut self) {
        // The pool's connections close as it goes (see `outside_runtime`).
        if let Some(pool) = self.pool.take() {
            super::outside_runtime(move || drop(pool));
        }
    }
}

impl Snapshot for PgSnapshot<'_> {
    fn sessions(&mut self) -> R<Vec<Session>> {
        self.run(sessions::read_all)
    }

    fn transitions(
        &mut self,
        filter: &TransitionFilter,
        each: &mut dyn FnMut(TransitionRecord) -> ControlFlow<()>,
    ) -> R<u64> {
        let names = self.names.clone();
        self.run_here(|c, clusters| {
            reports::transitions(c, clusters, names.as_deref(), filter, each)
        })
    }

    fn events(
        &mut self,
        filter: &EventFilter,
        each: &mut dyn FnMut(EventRecord) -> ControlFlow<()>,
    ) -> R<u64> {
        let names = self.names.clone();
        self.run_here(|c, clusters| {
            super::events::events(c, clusters, names.as_deref(), filter, each)
        })
    }

    fn container_samples(
        &mut self,
        filter: &crate::model::usage::UsageFilter,
        each: &mut dyn FnMut(crate::model::usage::ContainerSample),
    ) -> R<()> {
        self.run_here(|c, clusters| super::usage::container_samples(c, clusters, filter, each))
    }

    fn container_rollups(
        &mut self,
        filter: &crate::model::usage::UsageFilter,
        each: &mut dyn FnMut(crate::model::usage::ContainerRollup),
    ) -> R<()> {
        self.run_here(|c, clusters| super::usage::container_rollups(c, clusters, filter, each))
    }

    fn container_hours(
        &mut self,
        each: &mut dyn FnMut(crate::model::usage::ContainerHour),
    ) -> R<()> {
        self.run_here(|c, clusters| super::usage_rollup::container_hours(c, clusters, each))
    }

    fn node_hours(
        &mut self,
        node: Option<&str>,
        since_ms: i64,
        until_ms: i64,
        each: &mut dyn FnMut(crate::model::usage::NodeHour),
    ) -> R<()> {
        self.run_here(|c, clusters| {
            super::usage_rollup::node_hours(c, clusters, node, since_ms, until_ms, each)
        })
    }

    fn node_samples_measured(
        &mut self,
        node: Option<&str>,
        since_ms: Option<i64>,
        until_ms: Option<i64>,
        each: &mut dyn FnMut(crate::model::usage::NodeSample),
    ) -> R<()> {
        self.run_here(|c, clusters| {
            super::usage::node_samples(c, clusters, node, since_ms, until_ms, each)
        })
    }

    fn recent_event_counts(&mut self, since_ms: i64, each: &mut dyn FnMut(String, i64)) -> R<()> {
        let counts = self.run(|c, clusters| {
            let mut counts = Vec::new();
            super::events::recent_counts(c, clusters, since_ms, &mut |u, n| counts.push((u, n)))?;
            Ok(counts)
        })?;
        for (uid, count) in counts {
            each(uid, count);
        }
        Ok(())
    }

    fn owners(&mut self, filter: &OwnerFilter) -> R<Vec<OwnerRecord>> {
        let names = self.names.clone();
        self.run(|c, clusters| super::owners::owners(c, clusters, names.as_deref(), filter))
    }

    fn pods(
        &mut self,
        filter: &PodFilter,
        open_until_ms: i64,
        each: &mut dyn FnMut(PodSummary) -> ControlFlow<()>,
    ) -> R<u64> {
        let names = self.names.clone();
        self.run_here(|c, clusters| {
            reports::pods(c, clusters, names.as_deref(), filter, open_until_ms, each)
        })
    }

    fn pod_by_uid(&mut self, uid: &str) -> R<Option<Incarnation>> {
        self.run(|c, clusters| reports::pod_by_uid(c, clusters, uid))
    }

    fn pods_named(&mut self, namespace: &str, name: &str) -> R<Vec<Incarnation>> {
        self.run(|c, clusters| reports::pods_named(c, clusters, namespace, name))
    }

    fn namespaces_with(&mut self, pod_name: &str) -> R<Vec<String>> {
        self.run(|c, clusters| reports::namespaces_with(c, clusters, pod_name))
    }

    fn nodes_alive(
        &mut self,
        node: Option<&str>,
        since_ms: i64,
        until_ms: i64,
    ) -> R<Vec<NodeInfo>> {
        let names = self.names.clone();
        self.run(move |c, clusters| {
            reports::nodes_alive(c, clusters, names.as_deref(), node, since_ms, until_ms)
        })
    }

    fn node_samples(
        &mut self,
        node_id: i64,
        since_ms: i64,
        until_ms: i64,
        each: &mut dyn FnMut(UsageSample),
    ) -> R<()> {
        self.run_here(|c, _| reports::node_samples(c, node_id, since_ms, until_ms, each))
    }

    fn node_rollups(
        &mut self,
        node: &NodeInfo,
        since_ms: i64,
        until_ms: i64,
    ) -> R<Vec<BucketUsage>> {
        self.run(|c, _| reports::node_rollups(c, node, since_ms, until_ms))
    }

    fn bounds(&mut self) -> R<Bounds> {
        self.run(retention::bounds)
    }

    fn first_usage_ms(&mut self) -> R<Option<i64>> {
        self.run(reports::first_usage_ms)
    }

    fn rolled_up_until_ms(&mut self) -> R<Option<i64>> {
        self.run(retention::rolled_up_until_ms)
    }

    fn nth_raw_usage_ms(&mut self, offset: u64) -> R<Option<i64>> {
        self.run(|c, clusters| retention::nth_raw_usage_ms(c, clusters, offset))
    }

    fn open_pods(&mut self, namespace: Option<&str>, each: &mut dyn FnMut(OpenPod)) -> R<()> {
        // Read whole, then handed over: the recorder calls this from async code.
        let pods = self.run(|c, clusters| {
            let mut pods = Vec::new();
            reports::open_pods(c, clusters, namespace, &mut |p| pods.push(p))?;
            Ok(pods)
        })?;
        pods.into_iter().for_each(each);
        Ok(())
    }

    fn open_nodes(&mut self, each: &mut dyn FnMut(OpenNode)) -> R<()> {
        let nodes = self.run(|c, clusters| {
            let mut nodes = Vec::new();
            reports::open_nodes(c, clusters, &mut |n| nodes.push(n))?;
            Ok(nodes)
        })?;
        nodes.into_iter().for_each(each);
        Ok(())
    }

    fn pods_left_scope(&mut self, namespace: Option<&str>) -> R<Vec<String>> {
        self.run(|c, clusters| reports::pods_left_scope(c, clusters, namespace))
    }

    fn plan(&mut self, policy: &Policy, now_ms: i64) -> R<Plan> {
        self.run(|c, clusters| retention::plan(c, clusters, policy, now_ms))
    }

    fn stats(&mut self) -> R<StoreStats> {
        self.run(retention::stats)
    }
}
