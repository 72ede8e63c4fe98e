-- 0005: measured usage from the metrics API, as in SQLite's migration 0010.
--
-- `usage_containers` gives each (pod incarnation, container name) an integer key once; a
-- sample is then a few integers keyed by (container, timestamp), so a replay inserts nothing.
-- Node samples point at `nodes.id`. Not partitioned: retention removes a pod's samples with
-- the pod. This migration adds only its own tables.
CREATE TABLE usage_containers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cluster_id  integer NOT NULL,
    pod_id      bigint NOT NULL,
    name        text NOT NULL,
    UNIQUE (pod_id, name)
);

CREATE TABLE container_usage (
    container_id  bigint NOT NULL,
    at_ms         bigint NOT NULL,
    window_ms     bigint NOT NULL,
    cpu_millis    bigint NOT NULL,
    memory_bytes  bigint NOT NULL,
    PRIMARY KEY (container_id, at_ms)
);
CREATE INDEX container_usage_by_at ON container_usage (at_ms);

CREATE TABLE node_usage_samples (
    node_id       bigint NOT NULL,
    at_ms         bigint NOT NULL,
    window_ms     bigint NOT NULL,
    cpu_millis    bigint NOT NULL,
    memory_bytes  bigint NOT NULL,
    PRIMARY KEY (node_id, at_ms)
);
CREATE INDEX node_usage_samples_by_at ON node_usage_samples (at_ms);

-- Hourly rollups of samples older than --raw-usage-age, exact over the samples they replace.
CREATE TABLE container_usage_hourly (
    container_id  bigint NOT NULL,
    hour_ms       bigint NOT NULL,
    samples       bigint NOT NULL,
    cpu_min       bigint NOT NULL,
    cpu_max       bigint NOT NULL,
    cpu_sum       bigint NOT NULL,
    cpu_p95       bigint NOT NULL,
    memory_min    bigint NOT NULL,
    memory_max    bigint NOT NULL,
    memory_sum    bigint NOT NULL,
    memory_p95    bigint NOT NULL,
    PRIMARY KEY (container_id, hour_ms)
);
CREATE INDEX container_usage_hourly_by_hour ON container_usage_hourly (hour_ms);

CREATE TABLE node_usage_samples_hourly (
    node_id       bigint NOT NULL,
    hour_ms       bigint NOT NULL,
    samples       bigint NOT NULL,
    cpu_min       bigint NOT NULL,
    cpu_max       bigint NOT NULL,
    cpu_sum       bigint NOT NULL,
    cpu_p95       bigint NOT NULL,
    memory_min    bigint NOT NULL,
    memory_max    bigint NOT NULL,
    memory_sum    bigint NOT NULL,
    memory_p95    bigint NOT NULL,
    PRIMARY KEY (node_id, hour_ms)
);
CREATE INDEX node_usage_samples_hourly_by_hour ON node_usage_samples_hourly (hour_ms);
