-- 0008: Kubernetes Events about pods and nodes (events.k8s.io/v1, or core/v1 where that group
-- is missing).
--
-- One row per event (its uid), updated in place as a series grows: `count` and `last_seen_ms`
-- move forward, never back (a replayed or older copy changes nothing). Each growth of the count
-- past 1 also adds an `event_occurrences` row (the count reached and when), so the timeline of
-- a crash loop's BackOff series is kept, not only its last value. The first occurrence is the
-- event row's own `first_seen_ms`.
--
-- Events refer to their pod or node by uid and name, not by a key into `pods`/`nodes`: an
-- event can arrive before the pod's row is committed (the two watches are separate streams),
-- and a node's events outlive nothing they need. `note` is cut to 1 KiB by the recorder.
-- `regarding_kind`: 1 Pod, 2 Node. `type`: 'Normal' or 'Warning'.
CREATE TABLE events (
    id                    INTEGER PRIMARY KEY,
    uid                   TEXT NOT NULL UNIQUE,
    regarding_kind        INTEGER NOT NULL,
    regarding_uid         TEXT,
    namespace             TEXT,
    name                  TEXT NOT NULL,
    container             TEXT,
    reason                TEXT,
    type                  TEXT,
    note                  TEXT,
    reporting_controller  TEXT,
    count                 INTEGER NOT NULL,
    first_seen_ms         INTEGER NOT NULL,
    last_seen_ms          INTEGER NOT NULL
) STRICT;
-- `query events` by time, `query history` by the pod, retention by age.
CREATE INDEX events_by_last_seen ON events (last_seen_ms);
CREATE INDEX events_by_subject ON events (regarding_uid, last_seen_ms);
CREATE INDEX events_by_name ON events (name, last_seen_ms);

CREATE TABLE event_occurrences (
    event_id  INTEGER NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    count     INTEGER NOT NULL,
    at_ms     INTEGER NOT NULL,
    PRIMARY KEY (event_id, count)
) STRICT, WITHOUT ROWID;
