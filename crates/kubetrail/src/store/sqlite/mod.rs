//! The SQLite backend: the only place that names rusqlite or r2d2. The schema and its
//! migrations, opening the file, writing batches, the file's own mechanics (WAL, free pages),
//! and SQLite's errors in the store's terms.

pub mod error;
