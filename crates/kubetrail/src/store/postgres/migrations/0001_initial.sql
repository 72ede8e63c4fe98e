-- kubetrail's history in PostgreSQL, for many clusters in one database. The same tables as the
-- SQLite file (crates/kubetrail/migrations, as of its 0007), with three differences:
--   * every row names its cluster (`cluster_id`), and every key is per cluster;
--   * the three big tables are range-partitioned by time, one partition per calendar month
--     (UTC), created by the writer before it needs them (store::postgres::partitions), so that
--     retention gives disk back by dropping emptied partitions instead of leaving dead rows;
--   * flags are booleans, codes smallints, times bigint milliseconds since the epoch.
-- The big tables carry no foreign keys: a key check per inserted row would cost more than the
-- insert, and the writer resolves every uid to its key itself (rows for unknown subjects are
-- skipped and counted, as in SQLite).

CREATE TABLE kubetrail_schema (
    version     integer NOT NULL,
    -- Which program made this database: a database of kubetrail's is told apart from another
    -- program's by this row, not by table names.
    application text NOT NULL CHECK (application = 'kubetrail')
);

CREATE TABLE clusters (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    created_at_ms bigint NOT NULL
);

CREATE TABLE transition_kinds (
    code    smallint PRIMARY KEY,
    name    text NOT NULL,
    subject text NOT NULL CHECK (subject IN ('pod', 'node'))
);
INSERT INTO transition_kinds (code, name, subject) VALUES
    (1, 'created', 'pod'), (2, 'scheduled', 'pod'), (3, 'started', 'pod'), (4, 'ready', 'pod'),
    (5, 'unready', 'pod'), (6, 'container_restarted', 'pod'), (7, 'container_terminated', 'pod'),
    (8, 'succeeded', 'pod'), (9, 'failed', 'pod'), (10, 'terminating', 'pod'), (11, 'deleted', 'pod'),
    (12, 'resized', 'pod'), (13, 'container_waiting', 'pod'), (14, 'left_scope', 'pod'),
    (15, 'entered_scope', 'pod'), (16, 'resize_requested', 'pod'),
    (20, 'added', 'node'), (21, 'deleted', 'node'), (22, 'ready', 'node'), (23, 'not_ready', 'node'),
    (24, 'cordoned', 'node'), (25, 'uncordoned', 'node'), (26, 'capacity_changed', 'node');

CREATE TABLE phases (
    code smallint PRIMARY KEY,
    name text NOT NULL
);
INSERT INTO phases (code, name) VALUES
    (0, 'Unknown'), (1, 'Pending'), (2, 'Running'), (3, 'Succeeded'), (4, 'Failed');

CREATE TABLE nodes (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cluster_id    integer NOT NULL REFERENCES clusters (id),
    uid           text NOT NULL,
    name          text NOT NULL,
    created_at_ms bigint NOT NULL,
    deleted_at_ms bigint,
    cpu_capacity_millis      bigint NOT NULL DEFAULT 0,
    memory_capacity_bytes    bigint NOT NULL DEFAULT 0,
    pods_capacity            bigint NOT NULL DEFAULT 0,
    cpu_allocatable_millis   bigint NOT NULL DEFAULT 0,
    memory_allocatable_bytes bigint NOT NULL DEFAULT 0,
    pods_allocatable         bigint NOT NULL DEFAULT 0,
    state         text NOT NULL,          -- compact JSON projection, see recorder::state
    UNIQUE (cluster_id, uid)
);
CREATE INDEX nodes_by_name ON nodes (cluster_id, name, created_at_ms);
CREATE INDEX nodes_open ON nodes (cluster_id) WHERE deleted_at_ms IS NULL;

CREATE TABLE label_sets (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cluster_id integer NOT NULL REFERENCES clusters (id),
    hash       bigint NOT NULL,             -- FNV-1a 64 of `labels`, as in SQLite
    labels     text NOT NULL                -- JSON object of labels, for -l in queries
);
CREATE INDEX label_sets_by_hash ON label_sets (cluster_id, hash);

CREATE TABLE pods (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cluster_id     integer NOT NULL REFERENCES clusters (id),
    uid            text NOT NULL,
    namespace      text NOT NULL,
    name           text NOT NULL,
    node           text,
    owner_kind     text,
    owner_name     text,
    label_set_id   bigint REFERENCES label_sets (id),
    created_at_ms  bigint NOT NULL,
    started_at_ms  bigint,
    finished_at_ms bigint,
    deleted_at_ms  bigint,
    phase          smallint NOT NULL REFERENCES phases (code),
    reason         text,
    restarts       bigint NOT NULL DEFAULT 0,
    cpu_request_millis   bigint NOT NULL DEFAULT 0,
    memory_request_bytes bigint NOT NULL DEFAULT 0,
    cpu_limit_millis     bigint NOT NULL DEFAULT 0,
    memory_limit_bytes   bigint NOT NULL DEFAULT 0,
    UNIQUE (cluster_id, uid)
);
CREATE INDEX pods_by_name ON pods (cluster_id, namespace, name, created_at_ms);
-- Not per cluster: retention asks whether any pod was created in a month (store::postgres::partitions).
CREATE INDEX pods_by_created ON pods (created_at_ms);
CREATE INDEX pods_by_node ON pods (cluster_id, node, created_at_ms);
CREATE INDEX pods_by_deleted ON pods (cluster_id, deleted_at_ms) WHERE deleted_at_ms IS NOT NULL;
CREATE INDEX pods_open ON pods (cluster_id) WHERE deleted_at_ms IS NULL;
CREATE INDEX pods_by_label_set ON pods (label_set_id) WHERE label_set_id IS NOT NULL;

CREATE TABLE pod_state (
    pod_id bigint PRIMARY KEY REFERENCES pods (id),
    state  text NOT NULL
);

-- Partitioned by the subject's creation time: the idempotency key (subject, kind, seq) must
-- hold the partition key, and a subject's creationTimestamp never changes, whereas a row's
-- at_ms may (a deletion seen live, and the same deletion inferred after a restart). Pod rows
-- have node_id NULL and node rows pod_id NULL; NULLS NOT DISTINCT makes one index the key of both.
CREATE SEQUENCE transitions_id_seq AS bigint;
CREATE TABLE transitions (
    id                 bigint NOT NULL DEFAULT nextval('transitions_id_seq'),
    cluster_id         integer NOT NULL,
    pod_id             bigint,
    node_id            bigint,
    kind               smallint NOT NULL,
    seq                bigint NOT NULL DEFAULT 0,
    subject_created_ms bigint NOT NULL,
    at_ms              bigint NOT NULL,
    observed_at_ms     bigint NOT NULL,
    phase_before       smallint,
    phase_after        smallint,
    container          text,
    reason             text,
    message            text,
    exit_code          bigint,
    restart_count      bigint,
    resource_version   bigint,
    inferred           boolean NOT NULL DEFAULT false,
    CHECK ((pod_id IS NULL) <> (node_id IS NULL))
) PARTITION BY RANGE (subject_created_ms);
CREATE UNIQUE INDEX transitions_key
    ON transitions (pod_id, node_id, kind, seq, subject_created_ms) NULLS NOT DISTINCT;
CREATE INDEX transitions_by_at ON transitions (cluster_id, at_ms);
CREATE INDEX transitions_by_kind_at ON transitions (cluster_id, kind, at_ms);
CREATE INDEX transitions_by_node ON transitions (node_id, at_ms) WHERE node_id IS NOT NULL;

CREATE TABLE pod_resources (
    pod_id               bigint NOT NULL REFERENCES pods (id),
    at_ms                bigint NOT NULL,
    cpu_request_millis   bigint NOT NULL,
    memory_request_bytes bigint NOT NULL,
    cpu_limit_millis     bigint NOT NULL,
    memory_limit_bytes   bigint NOT NULL,
    PRIMARY KEY (pod_id, at_ms)
);

CREATE TABLE node_capacity (
    node_id                  bigint NOT NULL REFERENCES nodes (id),
    at_ms                    bigint NOT NULL,
    cpu_capacity_millis      bigint NOT NULL,
    memory_capacity_bytes    bigint NOT NULL,
    pods_capacity            bigint NOT NULL,
    cpu_allocatable_millis   bigint NOT NULL,
    memory_allocatable_bytes bigint NOT NULL,
    pods_allocatable         bigint NOT NULL,
    PRIMARY KEY (node_id, at_ms)
);

CREATE TABLE node_usage (
    cluster_id               integer NOT NULL,
    node_id                  bigint NOT NULL,
    at_ms                    bigint NOT NULL,
    cpu_requested_millis     bigint NOT NULL,
    memory_requested_bytes   bigint NOT NULL,
    cpu_limits_millis        bigint NOT NULL,
    memory_limits_bytes      bigint NOT NULL,
    pod_count                bigint NOT NULL,
    cpu_allocatable_millis   bigint NOT NULL,
    memory_allocatable_bytes bigint NOT NULL,
    keyframe                 boolean NOT NULL DEFAULT false,
    PRIMARY KEY (node_id, at_ms)
) PARTITION BY RANGE (at_ms);
CREATE INDEX node_usage_by_at ON node_usage (cluster_id, at_ms);

CREATE TABLE node_usage_rollup (
    cluster_id       integer NOT NULL,
    node_id          bigint NOT NULL,
    bucket_start_ms  bigint NOT NULL,
    bucket_ms        bigint NOT NULL,
    covered_ms       bigint NOT NULL,
    pods_avg                      double precision NOT NULL,
    pods_peak                     bigint NOT NULL,
    cpu_requested_avg_millis      double precision NOT NULL,
    cpu_requested_peak_millis     bigint NOT NULL,
    memory_requested_avg_bytes    double precision NOT NULL,
    memory_requested_peak_bytes   bigint NOT NULL,
    cpu_limits_avg_millis         double precision NOT NULL,
    cpu_limits_peak_millis        bigint NOT NULL,
    memory_limits_avg_bytes       double precision NOT NULL,
    memory_limits_peak_bytes      bigint NOT NULL,
    cpu_allocatable_avg_millis    double precision NOT NULL,
    cpu_allocatable_peak_millis   bigint NOT NULL,
    memory_allocatable_avg_bytes  double precision NOT NULL,
    memory_allocatable_peak_bytes bigint NOT NULL,
    cpu_requested_ratio_avg       double precision,
    cpu_requested_ratio_peak      double precision,
    memory_requested_ratio_avg    double precision,
    memory_requested_ratio_peak   double precision,
    cpu_limits_ratio_avg          double precision,
    cpu_limits_ratio_peak         double precision,
    memory_limits_ratio_avg       double precision,
    memory_limits_ratio_peak      double precision,
    PRIMARY KEY (node_id, bucket_start_ms)
) PARTITION BY RANGE (bucket_start_ms);
CREATE INDEX node_usage_rollup_by_start ON node_usage_rollup (cluster_id, bucket_start_ms);

CREATE TABLE recording_sessions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cluster_id      integer NOT NULL REFERENCES clusters (id),
    started_at_ms   bigint NOT NULL,
    heartbeat_at_ms bigint NOT NULL,
    stopped_at_ms   bigint,
    namespace       text,
    selector        text,
    nodes           boolean NOT NULL DEFAULT true,
    inferred        boolean NOT NULL DEFAULT false
);
CREATE INDEX recording_sessions_by_cluster ON recording_sessions (cluster_id, started_at_ms);

CREATE TABLE quarantine (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cluster_id integer NOT NULL REFERENCES clusters (id),
    at_ms      bigint NOT NULL,
    kind       text NOT NULL,
    error      text NOT NULL,
    row        text NOT NULL
);

-- The views of the SQLite file, with the cluster's name.
CREATE VIEW pod_transition_log AS
SELECT t.id, c.name AS cluster, p.uid, p.namespace, p.name AS pod, k.name AS kind, t.at_ms,
       t.observed_at_ms, pb.name AS phase_before, pa.name AS phase_after, p.node, t.container,
       t.reason, t.message, t.exit_code, t.restart_count, t.resource_version, t.inferred
FROM transitions t
JOIN pods p ON p.id = t.pod_id
JOIN clusters c ON c.id = t.cluster_id
JOIN transition_kinds k ON k.code = t.kind
LEFT JOIN phases pb ON pb.code = t.phase_before
LEFT JOIN phases pa ON pa.code = t.phase_after;

CREATE VIEW node_transition_log AS
SELECT t.id, c.name AS cluster, n.uid, n.name AS node, k.name AS kind, t.at_ms,
       t.observed_at_ms, t.reason, t.message, t.resource_version, t.inferred
FROM transitions t
JOIN nodes n ON n.id = t.node_id
JOIN clusters c ON c.id = t.cluster_id
JOIN transition_kinds k ON k.code = t.kind;

CREATE VIEW pod_labels AS
SELECT p.id AS pod_id, c.name AS cluster, p.uid, p.namespace, p.name AS pod, s.labels
FROM pods p
JOIN clusters c ON c.id = p.cluster_id
LEFT JOIN label_sets s ON s.id = p.label_set_id;

INSERT INTO kubetrail_schema (version, application) VALUES (1, 'kubetrail');
