//! The SQLite backend: the only place that names rusqlite or r2d2. The schema and its
//! migrations, opening the file (`db`), writing batches (`batch`, `labels`, `sessions`), the
//! file's own mechanics (`file`: size, free pages, the log), `VACUUM INTO` copies (`backup`),
//! and SQLite's errors in the store's terms (`error`).

pub mod backup;
pub mod batch;
pub mod db;
pub mod error;
pub mod file;
pub mod labels;
pub mod sessions;
