-- 0012: event uids as 16 bytes.
--
-- Why: Kubernetes Events are most of a busy cluster's file (measured: 61 % of the steady-churn
-- benchmark's), and two 36-character uids are a fifth of each event's row and most of two of
-- its indexes. The API server gives every object a UUID in canonical form (8-4-4-4-12 lowercase
-- hex digits); such a uid is now stored as its 16 bytes (a BLOB), anything else (an uppercase
-- or foreign uid, seen only in tests and hand-made data) as the text it is. `uid` and
-- `regarding_uid` are therefore declared ANY; `store::sqlite::uid` encodes and decodes them,
-- and the CASE below is its rule in SQL, for the rows already stored.
--
-- SQLite cannot change a column's type in place, so the table is rebuilt with the same ids
-- (event_occurrences refers to them) and the same indexes. Foreign keys are enforced (the
-- bundled SQLite's default) and cannot be turned off inside the migration's transaction, so
-- dropping the old table deletes the occurrences by cascade: they are set aside first and
-- put back once the new table holds their events.
CREATE TEMP TABLE occurrences_v12 AS SELECT event_id, count, at_ms FROM event_occurrences;
CREATE TABLE events_v12 (
    id                    INTEGER PRIMARY KEY,
    uid                   ANY NOT NULL UNIQUE,
    regarding_kind        INTEGER NOT NULL,
    regarding_uid         ANY,
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

INSERT INTO events_v12 (id, uid, regarding_kind, regarding_uid, namespace, name, container,
    reason, type, note, reporting_controller, count, first_seen_ms, last_seen_ms)
SELECT id,
    CASE WHEN uid GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]' THEN unhex(replace(uid, '-', '')) ELSE uid END,
    regarding_kind,
    CASE WHEN regarding_uid GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]' THEN unhex(replace(regarding_uid, '-', '')) ELSE regarding_uid END,
    namespace, name, container, reason, type, note, reporting_controller, count, first_seen_ms,
    last_seen_ms
FROM events ORDER BY id;

DROP TABLE events;
ALTER TABLE events_v12 RENAME TO events;
INSERT INTO event_occurrences (event_id, count, at_ms)
SELECT event_id, count, at_ms FROM occurrences_v12;
DROP TABLE occurrences_v12;
CREATE INDEX events_by_last_seen ON events (last_seen_ms);
CREATE INDEX events_by_subject ON events (regarding_uid, last_seen_ms);
CREATE INDEX events_by_name ON events (name, last_seen_ms);

-- For other SQLite tools: the events with their uids as text again, and kinds by name.
CREATE VIEW event_log AS
SELECT id,
    CASE WHEN typeof(uid) = 'blob' THEN substr(lower(hex(uid)), 1, 8) || '-' || substr(lower(hex(uid)), 9, 4) || '-'
        || substr(lower(hex(uid)), 13, 4) || '-' || substr(lower(hex(uid)), 17, 4) || '-' || substr(lower(hex(uid)), 21)
        ELSE uid END AS uid,
    CASE regarding_kind WHEN 1 THEN 'Pod' WHEN 2 THEN 'Node' END AS kind,
    CASE WHEN typeof(regarding_uid) = 'blob' THEN substr(lower(hex(regarding_uid)), 1, 8) || '-' || substr(lower(hex(regarding_uid)), 9, 4) || '-'
        || substr(lower(hex(regarding_uid)), 13, 4) || '-' || substr(lower(hex(regarding_uid)), 17, 4) || '-' || substr(lower(hex(regarding_uid)), 21)
        ELSE regarding_uid END AS regarding_uid,
    namespace, name, container, reason, type, note, reporting_controller, count, first_seen_ms,
    last_seen_ms
FROM events;
