-- 0001: the initial schema.
--
-- Design notes (why it looks like this):
-- * Transitions are typed rows, not object dumps: integer codes for kind and phase, integer
--   milliseconds since the Unix epoch for times, and integer keys into `pods` and `nodes` instead
--   of repeating uid/namespace/name. That keeps a transition near 60 bytes on disk with indexes.
-- * `pods` and `nodes` hold one row per incarnation (uid). `deleted_at_ms IS NULL` means "open":
--   alive as far as the recorder knows. `state` holds the recorder's compact projection of the
--   object (never the object, never env values or whole specs), so a restarted recorder can diff
--   the first list against what it last committed and infer what it missed.
-- * Node utilisation is a step function in `node_usage`: one row whenever a node's requested sums
--   or allocatable change, plus a keyframe every snapshot interval.
-- * The views at the end give readable names for anyone opening the file with the sqlite3 shell.

CREATE TABLE transition_kinds (
    code    INTEGER PRIMARY KEY,
    name    TEXT NOT NULL,
    subject TEXT NOT NULL CHECK (subject IN ('pod', 'node'))
) STRICT;

INSERT INTO transition_kinds (code, name, subject) VALUES
    (1, 'created', 'pod'), (2, 'scheduled', 'pod'), (3, 'started', 'pod'), (4, 'ready', 'pod'),
    (5, 'unready', 'pod'), (6, 'container_restarted', 'pod'), (7, 'container_terminated', 'pod'),
    (8, 'succeeded', 'pod'), (9, 'failed', 'pod'), (10, 'terminating', 'pod'), (11, 'deleted', 'pod'),
    (12, 'resized', 'pod'),
    (20, 'added', 'node'), (21, 'deleted', 'node'), (22, 'ready', 'node'), (23, 'not_ready', 'node'),
    (24, 'cordoned', 'node'), (25, 'uncordoned', 'node'), (26, 'capacity_changed', 'node');

CREATE TABLE phases (
    code INTEGER PRIMARY KEY,
    name TEXT NOT NULL
) STRICT;

INSERT INTO phases (code, name) VALUES
    (0, 'Unknown'), (1, 'Pending'), (2, 'Running'), (3, 'Succeeded'), (4, 'Failed');

CREATE TABLE nodes (
    id             INTEGER PRIMARY KEY,
    uid            TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    deleted_at_ms  INTEGER,
    -- latest capacity and allocatable (history is in node_capacity)
    cpu_capacity_millis       INTEGER NOT NULL DEFAULT 0,
    memory_capacity_bytes     INTEGER NOT NULL DEFAULT 0,
    pods_capacity             INTEGER NOT NULL DEFAULT 0,
    cpu_allocatable_millis    INTEGER NOT NULL DEFAULT 0,
    memory_allocatable_bytes  INTEGER NOT NULL DEFAULT 0,
    pods_allocatable          INTEGER NOT NULL DEFAULT 0,
    state          TEXT NOT NULL           -- compact JSON projection, see recorder::state
) STRICT;

CREATE INDEX nodes_by_name ON nodes (name, created_at_ms);
CREATE INDEX nodes_open ON nodes (id) WHERE deleted_at_ms IS NULL;

CREATE TABLE pods (
    id             INTEGER PRIMARY KEY,
    uid            TEXT NOT NULL UNIQUE,
    namespace      TEXT NOT NULL,
    name           TEXT NOT NULL,
    node           TEXT,                   -- node name once scheduled
    owner_kind     TEXT,
    owner_name     TEXT,
    labels         TEXT,                   -- JSON object of labels, for -l in queries
    created_at_ms  INTEGER NOT NULL,
    started_at_ms  INTEGER,
    finished_at_ms INTEGER,                -- when the phase became Succeeded or Failed
    deleted_at_ms  INTEGER,                -- NULL while the pod is open
    phase          INTEGER NOT NULL REFERENCES phases (code),
    reason         TEXT,                   -- final reason (Evicted, OOMKilled, ...)
    restarts       INTEGER NOT NULL DEFAULT 0,
    cpu_request_millis    INTEGER NOT NULL DEFAULT 0,
    memory_request_bytes  INTEGER NOT NULL DEFAULT 0,
    cpu_limit_millis      INTEGER NOT NULL DEFAULT 0,
    memory_limit_bytes    INTEGER NOT NULL DEFAULT 0,
    state          TEXT NOT NULL           -- compact JSON projection, see recorder::state
) STRICT;

CREATE INDEX pods_by_name ON pods (namespace, name, created_at_ms);
CREATE INDEX pods_by_created ON pods (created_at_ms);
CREATE INDEX pods_by_node ON pods (node, created_at_ms);
CREATE INDEX pods_open ON pods (id) WHERE deleted_at_ms IS NULL;

-- One row per transition. Pod rows have pod_id and leave node_id NULL (a pod never moves, so
-- its node is pods.node); node rows have node_id and no pod_id.
-- (pod_id, kind, seq) is the idempotency key: `seq` tells apart repeats of one kind of a pod
-- (see recorder::detect for how it is chosen), so replays and restarts never duplicate a row.
CREATE TABLE transitions (
    id              INTEGER PRIMARY KEY,
    pod_id          INTEGER REFERENCES pods (id),
    node_id         INTEGER REFERENCES nodes (id),
    kind            INTEGER NOT NULL REFERENCES transition_kinds (code),
    seq             INTEGER NOT NULL DEFAULT 0,
    at_ms           INTEGER NOT NULL,       -- Kubernetes' own time where one exists
    observed_at_ms  INTEGER NOT NULL,       -- the recorder's clock
    phase_before    INTEGER,
    phase_after     INTEGER,
    container       TEXT,
    reason          TEXT,
    message         TEXT,                   -- truncated
    exit_code       INTEGER,
    restart_count   INTEGER,
    resource_version INTEGER,
    inferred        INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE UNIQUE INDEX transitions_pod_key ON transitions (pod_id, kind, seq) WHERE pod_id IS NOT NULL;
CREATE UNIQUE INDEX transitions_node_key ON transitions (node_id, kind, seq) WHERE pod_id IS NULL;
CREATE INDEX transitions_by_at ON transitions (at_ms);
CREATE INDEX transitions_by_kind_at ON transitions (kind, at_ms);

-- The pod's effective requests and limits (Kubernetes' PodRequests/PodLimits rule), when first
-- seen and on every change.
CREATE TABLE pod_resources (
    pod_id          INTEGER NOT NULL REFERENCES pods (id),
    at_ms           INTEGER NOT NULL,
    cpu_request_millis    INTEGER NOT NULL,
    memory_request_bytes  INTEGER NOT NULL,
    cpu_limit_millis      INTEGER NOT NULL,
    memory_limit_bytes    INTEGER NOT NULL,
    PRIMARY KEY (pod_id, at_ms)
) STRICT, WITHOUT ROWID;

-- Node capacity and allocatable, when first seen and on every change.
CREATE TABLE node_capacity (
    node_id         INTEGER NOT NULL REFERENCES nodes (id),
    at_ms           INTEGER NOT NULL,
    cpu_capacity_millis       INTEGER NOT NULL,
    memory_capacity_bytes     INTEGER NOT NULL,
    pods_capacity             INTEGER NOT NULL,
    cpu_allocatable_millis    INTEGER NOT NULL,
    memory_allocatable_bytes  INTEGER NOT NULL,
    pods_allocatable          INTEGER NOT NULL,
    PRIMARY KEY (node_id, at_ms)
) STRICT, WITHOUT ROWID;

-- Step function of node utilisation: the values hold from at_ms until the node's next row.
-- keyframe = 1 for the periodic rows written every --snapshot-interval even without a change.
-- The step function of a node ends at nodes.deleted_at_ms.
CREATE TABLE node_usage (
    node_id         INTEGER NOT NULL REFERENCES nodes (id),
    at_ms           INTEGER NOT NULL,
    cpu_requested_millis      INTEGER NOT NULL,
    memory_requested_bytes    INTEGER NOT NULL,
    cpu_limits_millis         INTEGER NOT NULL,
    memory_limits_bytes       INTEGER NOT NULL,
    pod_count                 INTEGER NOT NULL,
    cpu_allocatable_millis    INTEGER NOT NULL,
    memory_allocatable_bytes  INTEGER NOT NULL,
    keyframe                  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (node_id, at_ms)
) STRICT, WITHOUT ROWID;

CREATE INDEX node_usage_by_at ON node_usage (at_ms);

-- Readable views for other SQLite tools.
CREATE VIEW pod_transition_log AS
SELECT t.id, p.uid, p.namespace, p.name AS pod, k.name AS kind, t.at_ms, t.observed_at_ms,
       pb.name AS phase_before, pa.name AS phase_after, p.node, t.container, t.reason, t.message,
       t.exit_code, t.restart_count, t.resource_version, t.inferred
FROM transitions t
JOIN pods p ON p.id = t.pod_id
JOIN transition_kinds k ON k.code = t.kind
LEFT JOIN phases pb ON pb.code = t.phase_before
LEFT JOIN phases pa ON pa.code = t.phase_after;

CREATE VIEW node_transition_log AS
SELECT t.id, n.uid, n.name AS node, k.name AS kind, t.at_ms, t.observed_at_ms, t.reason,
       t.message, t.resource_version, t.inferred
FROM transitions t
JOIN nodes n ON n.id = t.node_id
JOIN transition_kinds k ON k.code = t.kind
WHERE t.pod_id IS NULL;
