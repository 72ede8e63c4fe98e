//! The SQLite backend: the only place that names rusqlite or r2d2. The schema and its
//! migrations, opening the file (`db`), writing batches (`batch`, `labels`, `sessions`), the
//! file's own mechanics (`file`: size, free pages, the log), `VACUUM INTO` copies (`backup`),
//! and SQLite's errors in the store's terms (`error`); the seam's implementation
//! (`reader`: [`SqliteReader`], [`SqliteSnapshot`]; `writer`: `HistoryWriter` for a connection
//! and the recorder's `WriteHandle`) over the statements of `reports`, `resume`, `retention`,
//! `rollup`, `plan` and `stats`.

pub mod backup;
pub mod batch;
pub mod db;
pub mod error;
pub mod events;
pub mod export;
pub mod file;
pub mod labels;
pub mod owners;
pub mod plan;
mod reader;
pub mod reports;
pub mod resume;
pub mod retention;
pub mod rollup;
pub mod sessions;
pub mod stats;
#[cfg(test)]
pub(crate) mod test_backend;
pub mod uid;
pub mod usage;
pub mod usage_rollup;
mod writer;

pub use batch::{write_batch, write_batch_in_session};
pub use db::{
    ReadPool, SCHEMA_VERSION, WriteHandle, check_file, open_for_maintenance, open_for_writing,
    open_read_pool,
};
pub use reader::{SqliteReader, SqliteSnapshot};
