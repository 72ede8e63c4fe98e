//! Storage: the SQLite schema (in `migrations/`), opening the file, and the single batched writer.

pub mod db;

pub use db::{open_for_writing, open_read_pool, ReadPool, StoreError, WriteHandle, SCHEMA_VERSION};
