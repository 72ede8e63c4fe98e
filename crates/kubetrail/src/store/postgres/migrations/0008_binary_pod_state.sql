-- 0008: an open pod's compact state in the recorder's binary encoding (recorder::codec), as in
-- SQLite's migration 0013: under half the bytes of the JSON it replaces, rewritten on every pod
-- event. The JSON states already stored become their UTF-8 bytes, which the recorder still
-- reads (they begin with `{`).
ALTER TABLE pod_state ALTER COLUMN state TYPE bytea USING convert_to(state, 'UTF8');
