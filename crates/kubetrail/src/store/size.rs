//! How much room the history takes, as the backend measures it: the portable figures that the
//! size budget (`retention::size`) and the pass report work with.

/// The database file and its write-ahead log, as SQLite and the file system see them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FileSize {
    /// The main file's length on disk.
    pub db_bytes: u64,
    /// The `-wal` file's length on disk (0 when absent).
    pub wal_bytes: u64,
    pub page_size: u64,
    /// Pages of the database as of the latest commit (the main file after a checkpoint).
    pub page_count: u64,
    /// Pages on the freelist: space the file holds but no row uses.
    pub freelist_pages: u64,
}

impl FileSize {
    /// What the file system sees: main file plus write-ahead log.
    pub fn on_disk(&self) -> u64 {
        self.db_bytes + self.wal_bytes
    }

    /// Bytes of pages that hold rows; what deleting rows can lower.
    pub fn used_bytes(&self) -> u64 {
        self.page_count.saturating_sub(self.freelist_pages) * self.page_size
    }

    /// Bytes on the freelist, handed back by the next vacuum step.
    pub fn free_bytes(&self) -> u64 {
        self.freelist_pages * self.page_size
    }
}
