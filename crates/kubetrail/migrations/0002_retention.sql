-- 0002: retention. Hourly rollups of node utilisation, and an index to find ended pods by age.
--
-- Design notes (why it looks like this):
-- * Raw node utilisation (`node_usage`) is a step function with a row per change plus a keyframe
--   every snapshot interval: about 120 rows per node and hour at the default 30s. Past the raw
--   horizon (`--raw-usage-age`) retention replaces those rows by one `node_usage_rollup` row per
--   node and bucket, so "how full were the nodes in March" still answers for `--rollup-age`.
-- * A rollup row holds, for every quantity, the time-weighted average and the peak over the part
--   of the bucket the node existed and had a value (`covered_ms`). Coarser buckets are then exact
--   combinations of finer ones: averages weighted by covered_ms, peaks by max. Both are what
--   `query nodes` prints, computed by the same integrator it uses on raw rows.
-- * Ratios against allocatable are stored, not derived from the averages, because allocatable can
--   change inside a bucket; they are NULL when allocatable was unknown (0) for the whole bucket.
--   When it was unknown for only part of a bucket, combining weights the ratio by covered_ms, a
--   negligible approximation (allocatable is 0 only for seconds while a node registers).
-- * `bucket_ms` is stored per row so that a coarser tier (e.g. daily) can be added later without
--   a migration; today every row is one hour, aligned to the hour (UTC).
-- * WITHOUT ROWID with PRIMARY KEY (node_id, bucket_start_ms): the key is the row's identity and
--   also the only access path (one node's buckets in time order, like `node_usage`), so a rowid
--   table would keep a second b-tree for nothing.
-- * Rollups cover only time before the node's first raw row: retention writes the value in force
--   at the horizon as a keyframe row in `node_usage` before it deletes older raw rows. Raw and
--   rolled-up ranges never overlap, which lets a reader combine them without double counting.

CREATE TABLE node_usage_rollup (
    node_id          INTEGER NOT NULL REFERENCES nodes (id),
    bucket_start_ms  INTEGER NOT NULL,
    bucket_ms        INTEGER NOT NULL,
    covered_ms       INTEGER NOT NULL,
    pods_avg                      REAL NOT NULL,
    pods_peak                     INTEGER NOT NULL,
    cpu_requested_avg_millis      REAL NOT NULL,
    cpu_requested_peak_millis     INTEGER NOT NULL,
    memory_requested_avg_bytes    REAL NOT NULL,
    memory_requested_peak_bytes   INTEGER NOT NULL,
    cpu_limits_avg_millis         REAL NOT NULL,
    cpu_limits_peak_millis        INTEGER NOT NULL,
    memory_limits_avg_bytes       REAL NOT NULL,
    memory_limits_peak_bytes      INTEGER NOT NULL,
    cpu_allocatable_avg_millis    REAL NOT NULL,
    cpu_allocatable_peak_millis   INTEGER NOT NULL,
    memory_allocatable_avg_bytes  REAL NOT NULL,
    memory_allocatable_peak_bytes INTEGER NOT NULL,
    cpu_requested_ratio_avg       REAL,
    cpu_requested_ratio_peak      REAL,
    memory_requested_ratio_avg    REAL,
    memory_requested_ratio_peak   REAL,
    cpu_limits_ratio_avg          REAL,
    cpu_limits_ratio_peak         REAL,
    memory_limits_ratio_avg       REAL,
    memory_limits_ratio_peak      REAL,
    PRIMARY KEY (node_id, bucket_start_ms)
) STRICT, WITHOUT ROWID;

-- Retention deletes ended pods oldest first, and `--max-db-size` asks for "the oldest ended pod"
-- on every step; without this index each of those is a scan of the whole pods table. Partial, so
-- open pods (the common case while a cluster runs) cost nothing here.
CREATE INDEX pods_by_deleted ON pods (deleted_at_ms) WHERE deleted_at_ms IS NOT NULL;

-- A readable view, like those of 0001.
CREATE VIEW node_usage_rollup_log AS
SELECT n.name AS node, n.uid AS node_uid, r.bucket_start_ms, r.bucket_ms, r.covered_ms,
       r.pods_avg, r.pods_peak, r.cpu_requested_avg_millis, r.cpu_requested_peak_millis,
       r.memory_requested_avg_bytes, r.memory_requested_peak_bytes,
       r.cpu_allocatable_avg_millis, r.memory_allocatable_avg_bytes
FROM node_usage_rollup r
JOIN nodes n ON n.id = r.node_id;
