//! PostgreSQL, the second store: many clusters recording into one server, each row naming its
//! cluster. The schema (`migrations/`, applied by [`schema`]) has the SQLite file's tables
//! plus `cluster_id`, with the big tables partitioned by month ([`partitions`]).
//!
//! - [`PgLocation`]: `--db postgres://...` and `--cluster`;
//! - [`PgWriter`] (its seam impl in [`writer`]): one cluster's recorder, holding that cluster's
//!   advisory lock; batches go in by binary COPY ([`batch`]);
//! - [`reader::PgReader`]: snapshots over the clusters a query reads ([`reports`]);
//! - retention's statements ([`retention`], [`rollup`]) for one cluster at a time.
//!
//! The client is the blocking `postgres` crate (it wraps `tokio-postgres` with its own small
//! runtime), because the store's callers are plain threads: the recorder's writer thread and
//! the readers' blocking tasks. It must never be called from inside an async task.

pub mod batch;
pub mod config;
pub mod events;
pub mod import;
pub mod owners;
pub mod partitions;
pub mod reader;
pub mod reports;
pub mod retention;
pub mod rollup;
pub mod schema;
pub mod sessions;
pub mod tls;
pub mod usage;
pub mod usage_copy;
pub mod usage_rollup;
pub mod writer;

use postgres::Client;

use batch::BatchWriter;
use config::Target;
use partitions::{Partitioned, Partitions};
use reader::{ClusterChoice, PgReader};

use crate::store::api::{ReadOptions, WriteMode};
use crate::store::rows::Batch;
use crate::store::{BatchStats, StoreError};

/// `pg_try_advisory_lock(class, cluster)`: one recorder per cluster ("kt" in ASCII).
const RECORDER_LOCK_CLASS: i32 = 0x6b74;

/// A PostgreSQL `--db` and the `--cluster`s given with it.
#[derive(Clone, Debug)]
pub struct PgLocation {
    pub target: Target,
    pub clusters: Vec<String>,
}

impl PgLocation {
    pub fn parse(url: &str, clusters: &[String]) -> Result<PgLocation, String> {
        Ok(PgLocation {
            target: Target::from_url(url)?,
            clusters: clusters.to_vec(),
        })
    }

    fn describe(&self) -> String {
        config::describe(&self.target.config)
    }

    /// The writer of the one cluster given.
    pub fn open_writer(&self, mode: WriteMode) -> Result<PgWriter, StoreError> {
        let cluster = match &self.clusters[..] {
            [one] => one,
            [] => {
                return Err(StoreError::Cluster {
                    target: self.describe(),
                    detail: "name the cluster this writes for with --cluster NAME (a \
                             PostgreSQL database holds many)"
                        .to_string(),
                });
            }
            _ => {
                return Err(StoreError::Cluster {
                    target: self.describe(),
                    detail: "a writer writes for one cluster: give --cluster once".to_string(),
                });
            }
        };
        outside_runtime(|| PgWriter::open(self.target.clone(), cluster, mode == WriteMode::Record))
    }

    pub fn open_reader(&self, opts: ReadOptions) -> Result<PgReader, StoreError> {
        let choice = if self.clusters.is_empty() {
            ClusterChoice::All
        } else {
            ClusterChoice::Named(self.clusters.clone())
        };
        outside_runtime(|| PgReader::open(self.target.clone(), &choice, opts))
    }
}

impl std::fmt::Display for PgLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A postgres error in one phrase, and whether retrying can help.
pub fn describe(err: &postgres::Error) -> (String, bool) {
    use postgres::error::SqlState;
    if let Some(db) = err.as_db_error() {
        let code = db.code();
        let class = &code.code()[..2];
        // "no partition of relation ... found for row": another cluster's retention dropped an
        // empty partition between our check and our insert; the retry creates it again. Any
        // other check violation is the row's own fault, for good.
        let missing_partition =
            code == &SqlState::CHECK_VIOLATION && db.message().starts_with("no partition of");
        let transient = matches!(class, "08" | "53" | "57")
            || missing_partition
            || [
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::LOCK_NOT_AVAILABLE,
            ]
            .contains(code);
        let mut text = db.message().to_string();
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        if code == &SqlState::INVALID_PASSWORD
            || code == &SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            text = format!("authentication failed: {text}");
        }
        return (text, transient);
    }
    // Not from the server: the connection (refused, closed, timed out) or the client itself.
    let source = std::error::Error::source(err);
    let text = match source {
        Some(s) => format!("{err}: {s}"),
        None => err.to_string(),
    };
    let transient = err.is_closed() || source.is_some_and(|s| s.is::<std::io::Error>());
    (text, transient)
}

/// A postgres error as the store's error, naming the server.
pub fn store_error(target: &str, err: postgres::Error) -> StoreError {
    let (detail, transient) = describe(&err);
    StoreError::Database {
        target: target.to_string(),
        detail,
        transient,
    }
}

/// The writer's connection for one cluster.
pub struct PgWriter {
    server: Target,
    target: String,
    cluster: String,
    cluster_id: i32,
    /// Whether this writer holds the cluster's recorder lock (`record`; not `prune`).
    exclusive: bool,
    client: Option<Client>,
    partitions: Partitions,
    batches: BatchWriter,
}

impl PgWriter {
    /// Connects, brings the schema up to date, registers the cluster, and (when `exclusive`)
    /// takes the cluster's recorder lock.
    pub fn open(server: Target, cluster: &str, exclusive: bool) -> Result<PgWriter, StoreError> {
        let target = config::describe(&server.config);
        let mut writer = PgWriter {
            server,
            target,
            cluster: cluster.to_string(),
            cluster_id: 0,
            exclusive,
            client: None,
            partitions: Partitions::default(),
            batches: BatchWriter::default(),
        };
        writer.client_mut()?;
        Ok(writer)
    }

    /// The cluster this writer records.
    pub fn cluster_id(&self) -> i32 {
        self.cluster_id
    }

    /// A postgres error as the store's, forgetting a connection that is gone so that the next
    /// call opens a new one.
    pub fn error(&mut self, err: postgres::Error) -> StoreError {
        let err = store_error(&self.target, err);
        if err.is_transient() {
            // A connection that failed may be half-dead (a reset, a terminated backend): the
            // next call opens a new one, which is cheap next to a retry on a broken one. And
            // the partitions this writer knew may be gone (see `describe`).
            if let Some(client) = self.client.take() {
                outside_runtime(move || drop(client));
            }
            self.partitions.forget();
        }
        err
    }

    /// The connection, opened first when there is none (at start, or after one was lost).
    pub fn client_mut(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.is_none() {
            let client = self.connect()?;
            self.batches = BatchWriter::default();
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    fn connect(&mut self) -> Result<Client, StoreError> {
        let tls = tls::connector(&self.server.tls).map_err(|detail| StoreError::Database {
            target: self.target.clone(),
            detail,
            transient: false,
        })?;
        let mut client = self.server.config.connect(tls).map_err(|e| {
            // A server that is starting, shutting down, or not yet accepting connections for
            // this database can answer later; a refusal of who we are, or of a database that
            // does not exist, will not change by retrying.
            let (detail, _) = describe(&e);
            let refused = e.code().is_some_and(|c| {
                c.code().starts_with("28") || c == &postgres::error::SqlState::INVALID_CATALOG_NAME
            });
            StoreError::Database {
                target: self.target.clone(),
                detail,
                transient: !refused,
            }
        })?;
        match schema::migrate(&mut client) {
            Ok(()) => {}
            Err(schema::SchemaError::Database(e)) => return Err(self.error(e)),
            Err(refused) => {
                return Err(StoreError::Refused {
                    target: self.target.clone(),
                    reason: refused.to_string(),
                });
            }
        }
        let id = register_cluster(&mut client, &self.cluster).map_err(|e| self.error(e))?;
        if self.exclusive {
            let locked: bool = client
                .query_one(
                    "SELECT pg_try_advisory_lock($1, $2)",
                    &[&RECORDER_LOCK_CLASS, &id],
                )
                .map_err(|e| self.error(e))?
                .get(0);
            if !locked && self.cluster_id != 0 {
                // Reconnecting: the server may not yet have noticed that our previous
                // connection, which held the lock, is gone. Retrying is right.
                return Err(StoreError::Database {
                    target: self.target.clone(),
                    detail: format!(
                        "reconnected, but the lock on cluster {} is still held (by our \
                         previous connection, until the server notices it is gone)",
                        self.cluster
                    ),
                    transient: true,
                });
            }
            if !locked {
                return Err(StoreError::ClusterLocked {
                    target: self.target.clone(),
                    cluster: self.cluster.clone(),
                });
            }
        }
        self.cluster_id = id;
        Ok(client)
    }

    /// Runs `f` on the connection (opening one first if the last was lost), mapping errors.
    pub fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Client, i32) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let cluster = {
            self.client_mut()?;
            self.cluster_id
        };
        let client = self.client.as_mut().expect("connected");
        match f(client, cluster) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Makes sure partitions of `table` hold `times` (a short transaction of its own).
    pub fn ensure_partitions(
        &mut self,
        table: Partitioned,
        times: impl IntoIterator<Item = i64>,
    ) -> Result<(), StoreError> {
        self.client_mut()?;
        let client = self.client.as_mut().expect("connected");
        let result = self.partitions.ensure(client, table, times);
        result.map_err(|e| self.error(e))
    }

    /// Writes one batch (and the heartbeat) in one transaction.
    pub fn commit(
        &mut self,
        batch: &Batch,
        heartbeat: Option<(i64, i64)>,
    ) -> Result<BatchStats, StoreError> {
        let created = batch
            .pods
            .iter()
            .map(|p| p.created_at_ms)
            .chain(batch.nodes.iter().map(|n| n.created_at_ms));
        self.ensure_partitions(Partitioned::Transitions, created)?;
        self.ensure_partitions(
            Partitioned::NodeUsage,
            batch.node_usage.iter().map(|u| u.at_ms),
        )?;
        let cluster = self.cluster_id;
        let client = self.client.as_mut().expect("connected");
        let result = self.batches.write(client, cluster, batch, heartbeat);
        result.map_err(|e| self.error(e))
    }
}

impl Drop for PgWriter {
    fn drop(&mut self) {
        if let Some(mut client) = self.client.take() {
            let lock = (self.exclusive && self.cluster_id != 0).then_some(self.cluster_id);
            outside_runtime(move || {
                if let Some(cluster) = lock {
                    free_cluster(&mut client, cluster);
                }
                drop(client)
            });
        }
    }
}

/// Frees the recorder lock on `cluster` that this connection holds. The server frees a
/// session's locks when it notices the connection is gone, which can be after this process has
/// exited: a recorder started right after a copy (or a restarted recorder) would find the
/// cluster still locked. Freed before the connection is dropped, the lock is gone before we
/// are. On error (a lost connection) the server frees it as before.
fn free_cluster(client: &mut Client, cluster: i32) {
    if let Err(e) = client.execute(
        "SELECT pg_advisory_unlock($1, $2)",
        &[&RECORDER_LOCK_CLASS, &cluster],
    ) {
        tracing::debug!(%e, "the cluster's lock is left to the server to free");
    }
}

/// Runs `f` on a thread of its own when this thread is driving an async runtime. The
/// `postgres` client blocks on its own small runtime, which tokio refuses to start inside
/// another: a store opened, used or dropped from async code (the recorder's end, a test)
/// would otherwise panic.
pub(crate) fn outside_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(f).join().expect("the store's thread panicked"))
    } else {
        f()
    }
}

/// The id of the cluster named `name`, registered if new.
fn register_cluster(client: &mut Client, name: &str) -> Result<i32, postgres::Error> {
    client.execute(
        "INSERT INTO clusters (name, created_at_ms)
         VALUES ($1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
         ON CONFLICT (name) DO NOTHING",
        &[&name],
    )?;
    Ok(client
        .query_one("SELECT id FROM clusters WHERE name = $1", &[&name])?
        .get(0))
}

#[cfg(test)]
pub(crate) mod test_backend;
#[cfg(test)]
mod tests;
