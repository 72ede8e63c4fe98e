-- 0010: measured usage from the metrics API (metrics.k8s.io PodMetrics and NodeMetrics).
--
-- Samples are many (every container, every --usage-interval), so they are keyed compactly:
-- `usage_containers` gives each (pod incarnation, container name) an integer id once, and a
-- sample is then five integers in a WITHOUT ROWID table keyed by (container, timestamp), which
-- also makes a replayed sample a no-op. Node samples point at `nodes.id` the same way.
-- `at_ms` is the sample's own timestamp (the end of its window), `window_ms` its length;
-- CPU is in millicores (rounded up, as Kubernetes' MilliValue does), memory is the working set
-- in bytes. This migration adds only its own tables.
CREATE TABLE usage_containers (
    id      INTEGER PRIMARY KEY,
    pod_id  INTEGER NOT NULL,       -- pods.id
    name    TEXT NOT NULL,
    UNIQUE (pod_id, name)
) STRICT;

CREATE TABLE container_usage (
    container_id  INTEGER NOT NULL, -- usage_containers.id
    at_ms         INTEGER NOT NULL,
    window_ms     INTEGER NOT NULL,
    cpu_millis    INTEGER NOT NULL,
    memory_bytes  INTEGER NOT NULL,
    PRIMARY KEY (container_id, at_ms)
) STRICT, WITHOUT ROWID;
-- `query usage --since` and retention by age.
CREATE INDEX container_usage_by_at ON container_usage (at_ms);

CREATE TABLE node_usage_samples (
    node_id       INTEGER NOT NULL, -- nodes.id
    at_ms         INTEGER NOT NULL,
    window_ms     INTEGER NOT NULL,
    cpu_millis    INTEGER NOT NULL,
    memory_bytes  INTEGER NOT NULL,
    PRIMARY KEY (node_id, at_ms)
) STRICT, WITHOUT ROWID;
CREATE INDEX node_usage_samples_by_at ON node_usage_samples (at_ms);

-- Hourly rollups of the samples older than --raw-usage-age, one row per container (or node)
-- and hour, exact over the samples they replace: their count, min, max, sum (the average is
-- sum / samples) and the nearest-rank 95th percentile, for CPU and memory each.
CREATE TABLE container_usage_hourly (
    container_id  INTEGER NOT NULL,
    hour_ms       INTEGER NOT NULL,
    samples       INTEGER NOT NULL,
    cpu_min       INTEGER NOT NULL,
    cpu_max       INTEGER NOT NULL,
    cpu_sum       INTEGER NOT NULL,
    cpu_p95       INTEGER NOT NULL,
    memory_min    INTEGER NOT NULL,
    memory_max    INTEGER NOT NULL,
    memory_sum    INTEGER NOT NULL,
    memory_p95    INTEGER NOT NULL,
    PRIMARY KEY (container_id, hour_ms)
) STRICT, WITHOUT ROWID;
CREATE INDEX container_usage_hourly_by_hour ON container_usage_hourly (hour_ms);

CREATE TABLE node_usage_samples_hourly (
    node_id       INTEGER NOT NULL,
    hour_ms       INTEGER NOT NULL,
    samples       INTEGER NOT NULL,
    cpu_min       INTEGER NOT NULL,
    cpu_max       INTEGER NOT NULL,
    cpu_sum       INTEGER NOT NULL,
    cpu_p95       INTEGER NOT NULL,
    memory_min    INTEGER NOT NULL,
    memory_max    INTEGER NOT NULL,
    memory_sum    INTEGER NOT NULL,
    memory_p95    INTEGER NOT NULL,
    PRIMARY KEY (node_id, hour_ms)
) STRICT, WITHOUT ROWID;
CREATE INDEX node_usage_samples_hourly_by_hour ON node_usage_samples_hourly (hour_ms);
