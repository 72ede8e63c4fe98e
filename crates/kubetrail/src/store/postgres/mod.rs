//! PostgreSQL, the second store: many clusters recording into one server, each row naming its
//! cluster. The schema (`migrations/`, applied by [`schema`]) has the SQLite file's tables
//! plus `cluster_id`, with the big tables partitioned by month ([`partitions`]).
//!
//! The client is the blocking `postgres` crate (it wraps `tokio-postgres` with its own small
//! runtime), because the store's callers are plain threads: the recorder's writer thread and
//! the readers' blocking tasks. It must never be called from inside an async task.

pub mod batch;
pub mod config;
pub mod partitions;
pub mod schema;
pub mod sessions;
pub mod tls;

use postgres::Client;

use batch::BatchWriter;
use partitions::{Partitioned, Partitions};

use crate::store::rows::Batch;
use crate::store::BatchStats;

/// `pg_try_advisory_lock(class, cluster)`: one recorder per cluster ("kt" in ASCII).
const RECORDER_LOCK_CLASS: i32 = 0x6b74;

/// Why a PostgreSQL store cannot be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("database {target}: {detail}")]
    Database {
        target: String,
        detail: String,
        transient: bool,
    },
    #[error("database {target}: {source}")]
    Schema {
        target: String,
        source: schema::SchemaError,
    },
    #[error(
        "another kubetrail process is already recording cluster {cluster} into {target}; stop \
         it first, or give this one another --cluster"
    )]
    Locked { target: String, cluster: String },
}

impl PgError {
    pub fn is_transient(&self) -> bool {
        matches!(self, PgError::Database { transient: true, .. })
    }
}

/// A postgres error in one phrase, and whether retrying can help.
pub fn describe(err: &postgres::Error) -> (String, bool) {
    use postgres::error::SqlState;
    if let Some(db) = err.as_db_error() {
        let code = db.code();
        let class = &code.code()[..2];
        let transient = matches!(class, "08" | "53" | "57")
            || [
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::LOCK_NOT_AVAILABLE,
                // "no partition of relation found for row": another cluster's retention dropped
                // an empty partition between our check and our insert; the retry creates it.
                SqlState::CHECK_VIOLATION,
            ]
            .contains(code);
        let mut text = db.message().to_string();
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" ({detail})"));
        }
        if code == &SqlState::INVALID_PASSWORD || code == &SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            text = format!("authentication failed: {text}");
        }
        return (text, transient);
    }
    // Not from the server: the connection (refused, closed, timed out) or the client itself.
    let text = std::error::Error::source(err)
        .map(|s| format!("{err}: {s}"))
        .unwrap_or_else(|| err.to_string());
    (text, err.is_closed() || std::error::Error::source(err).is_some_and(|s| s.is::<std::io::Error>()))
}

/// The writer's connection for one cluster.
pub struct PgWriter {
    server: config::Target,
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
    pub fn open(
        server: config::Target,
        cluster: &str,
        exclusive: bool,
    ) -> Result<PgWriter, PgError> {
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
        writer.connect()?;
        Ok(writer)
    }

    /// The cluster this writer records.
    pub fn cluster_id(&self) -> i32 {
        self.cluster_id
    }

    /// A postgres error as a [`PgError`], forgetting a connection that is gone so that the
    /// next call opens a new one.
    pub fn error(&mut self, err: postgres::Error) -> PgError {
        if err.is_closed() || self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        let (detail, transient) = describe(&err);
        if transient {
            // The partitions this writer knew may be gone (see `describe`).
            self.partitions.forget();
        }
        PgError::Database {
            target: self.target.clone(),
            detail,
            transient,
        }
    }

    fn connect(&mut self) -> Result<&mut Client, PgError> {
        if self.client.is_none() {
            let tls = tls::connector(&self.server.tls).map_err(|detail| PgError::Database {
                target: self.target.clone(),
                detail,
                transient: false,
            })?;
            let mut client = match self.server.config.connect(tls) {
                Ok(c) => c,
                Err(e) => return Err(self.error(e)),
            };
            if let Err(source) = schema::migrate(&mut client) {
                return Err(match source {
                    schema::SchemaError::Database(e) => self.error(e),
                    source => PgError::Schema {
                        target: self.target.clone(),
                        source,
                    },
                });
            }
            let id = match register_cluster(&mut client, &self.cluster) {
                Ok(id) => id,
                Err(e) => return Err(self.error(e)),
            };
            if self.exclusive {
                let locked: bool = match client.query_one(
                    "SELECT pg_try_advisory_lock($1, $2)",
                    &[&RECORDER_LOCK_CLASS, &id],
                ) {
                    Ok(row) => row.get(0),
                    Err(e) => return Err(self.error(e)),
                };
                if !locked && self.cluster_id != 0 {
                    // Reconnecting: the server may not yet have noticed that our previous
                    // connection, which held the lock, is gone. Retrying is right.
                    return Err(PgError::Database {
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
                    return Err(PgError::Locked {
                        target: self.target.clone(),
                        cluster: self.cluster.clone(),
                    });
                }
            }
            self.cluster_id = id;
            self.batches = BatchWriter::default();
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// Runs `f` on the connection (opening one first if the last was lost), mapping errors.
    pub fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Client, i32) -> Result<T, postgres::Error>,
    ) -> Result<T, PgError> {
        let cluster = {
            self.connect()?;
            self.cluster_id
        };
        let client = self.client.as_mut().expect("connected");
        match f(client, cluster) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Writes one batch (and the heartbeat) in one transaction.
    pub fn commit(
        &mut self,
        batch: &Batch,
        heartbeat: Option<(i64, i64)>,
    ) -> Result<BatchStats, PgError> {
        self.connect()?;
        let cluster = self.cluster_id;
        let client = self.client.as_mut().expect("connected");
        let created = batch
            .pods
            .iter()
            .map(|p| p.created_at_ms)
            .chain(batch.nodes.iter().map(|n| n.created_at_ms));
        let result = self
            .partitions
            .ensure(client, Partitioned::Transitions, created)
            .and_then(|()| {
                self.partitions.ensure(
                    client,
                    Partitioned::NodeUsage,
                    batch.node_usage.iter().map(|u| u.at_ms),
                )
            })
            .and_then(|()| self.batches.write(client, cluster, batch, heartbeat));
        result.map_err(|e| self.error(e))
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
mod tests;
