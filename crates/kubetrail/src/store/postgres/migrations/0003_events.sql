-- 0003: Kubernetes Events about pods and nodes, as in SQLite's migration 0008.
--
-- One row per event and cluster (`uid`), updated in place as a series grows; each growth of the
-- count past 1 adds an `event_occurrences` row. Events name their pod or node by uid and name,
-- not by key (the event and pod watches are separate streams, so either may come first).
-- Not partitioned: unlike transitions, events are bounded by --max-age from the last time they
-- were seen and by the 1 KiB note, and retention deletes them by an index on last_seen_ms.
CREATE TABLE events (
    id                    bigserial PRIMARY KEY,
    cluster_id            integer NOT NULL,
    uid                   text NOT NULL,
    regarding_kind        smallint NOT NULL,
    regarding_uid         text,
    namespace             text,
    name                  text NOT NULL,
    container             text,
    reason                text,
    type                  text,
    note                  text,
    reporting_controller  text,
    count                 bigint NOT NULL,
    first_seen_ms         bigint NOT NULL,
    last_seen_ms          bigint NOT NULL,
    UNIQUE (cluster_id, uid)
);
CREATE INDEX events_by_last_seen ON events (cluster_id, last_seen_ms);
CREATE INDEX events_by_subject ON events (cluster_id, regarding_uid, last_seen_ms);
CREATE INDEX events_by_name ON events (cluster_id, name, last_seen_ms);

CREATE TABLE event_occurrences (
    cluster_id  integer NOT NULL,
    event_id    bigint NOT NULL,
    count       bigint NOT NULL,
    at_ms       bigint NOT NULL,
    PRIMARY KEY (event_id, count)
);
