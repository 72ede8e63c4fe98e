-- 0006: recording sessions, i.e. which stretches of time the history covers, and with what scope.
--
-- Why: every step function in the file (node utilisation, a pod's lifetime) holds its last value
-- "until the next row". Without knowing when recording stopped, a backup read a week later shows
-- a week of invented utilisation, and the hours the recorder was down count as observed.
-- A session is one run of `kubetrail record`:
-- * `started_at_ms` when it opened the database; `heartbeat_at_ms` is moved forward inside every
--   commit (and on an idle cluster at least every status interval), so after a crash or kill -9
--   the session ends at its last commit, which is exactly where its history ends;
--   `stopped_at_ms` is set by a clean stop.
-- * The scope: `namespace` (NULL = all namespaces), `selector` (NULL = none) and `nodes` (0 with
--   --no-nodes). With a namespace or a selector the recorder sees only some pods, so the node
--   sums it writes are partial: reports say so for every bucket recorded that way.
-- * `inferred` = 1 for the one session this migration makes up for history recorded before it:
--   from the first to the last row of the file, scope unknown. Gaps inside it cannot be known.
--
-- Corrections to comments of shipped migrations (a shipped migration is never edited):
-- * 0001 says a transition costs "near 60 bytes on disk with indexes". Measured in steady churn
--   it is about 200 bytes per transition, everything in the file included (BENCHMARKS.md).
-- * 0002 says the raw step function has "about 120 rows per node and hour at the default 30s".
--   The default --snapshot-interval is 30m: a node has 2 keyframes an hour plus one row per
--   change of its sums.

CREATE TABLE recording_sessions (
    id               INTEGER PRIMARY KEY,
    started_at_ms    INTEGER NOT NULL,
    heartbeat_at_ms  INTEGER NOT NULL,
    stopped_at_ms    INTEGER,
    namespace        TEXT,
    selector         TEXT,
    nodes            INTEGER NOT NULL DEFAULT 1,
    inferred         INTEGER NOT NULL DEFAULT 0
) STRICT;

INSERT INTO recording_sessions (started_at_ms, heartbeat_at_ms, stopped_at_ms, inferred)
SELECT lo, hi, hi, 1
FROM (
    SELECT min(lo) AS lo, max(hi) AS hi FROM (
        SELECT min(observed_at_ms) AS lo, max(observed_at_ms) AS hi FROM transitions
        UNION ALL SELECT min(at_ms), max(at_ms) FROM node_usage
        UNION ALL SELECT min(bucket_start_ms), max(bucket_start_ms + bucket_ms)
                  FROM node_usage_rollup
    )
)
WHERE lo IS NOT NULL;
