-- 0013: an open pod's compact state in the recorder's binary encoding (recorder::codec).
--
-- Why: every open pod's state is written on the initial list and rewritten on every event of
-- the pod, and as JSON it was the largest table a 100k-pod list wrote (308 bytes a state on
-- average); the binary form takes under half (BENCHMARKS.md). The column becomes a BLOB; the
-- JSON states already stored become their UTF-8 bytes, which the recorder still reads (they
-- begin with `{`, which no binary state does).
--
-- SQLite cannot change a column's type in place, so the table is rebuilt; nothing refers to it.
CREATE TABLE pod_state_v13 (
    pod_id  INTEGER PRIMARY KEY REFERENCES pods (id),
    state   BLOB NOT NULL
) STRICT;

INSERT INTO pod_state_v13 (pod_id, state) SELECT pod_id, CAST(state AS BLOB) FROM pod_state;
DROP TABLE pod_state;
ALTER TABLE pod_state_v13 RENAME TO pod_state;
