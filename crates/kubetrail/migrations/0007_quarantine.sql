-- 0007: rows the database refused for a reason that retrying cannot fix.
--
-- The writer retries a failed commit only for transient errors (busy, disk full, I/O). Any other
-- failure is narrowed down to the rows that cause it; each is kept here, as its Rust Debug text
-- with the error, instead of blocking every later commit (retried forever) or vanishing. A user
-- sees them with `kubetrail stats` or any SQLite tool; nothing reads them back into history.
CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    -- nodes, pods, transitions, pod_resources, node_capacity or node_usage.
    kind TEXT NOT NULL,
    error TEXT NOT NULL,
    row TEXT NOT NULL
);
