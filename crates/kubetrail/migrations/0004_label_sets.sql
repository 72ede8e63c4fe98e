-- 0004: each distinct set of pod labels is stored once, in `label_sets`; a pod points at it.
--
-- Why: the pods of one ReplicaSet, StatefulSet or DaemonSet carry identical labels, and as JSON
-- in every pod row they were the largest part of that row (about 110 bytes; measured: 50.6 of
-- the 206 bytes per transition went to `pods`). Stored once per distinct set, they cost a
-- small integer per pod.
--
-- `hash` (FNV-1a, 64 bits, of the JSON text) finds a set; a unique index over the text would
-- store every set a second time. kubetrail registers `kubetrail_labels_hash` on the connections
-- that migrate, so this file can fill it.
CREATE TABLE label_sets (
    id      INTEGER PRIMARY KEY,
    hash    INTEGER NOT NULL,
    labels  TEXT NOT NULL           -- JSON object of labels, for -l in queries
) STRICT;

CREATE INDEX label_sets_by_hash ON label_sets (hash);

INSERT INTO label_sets (hash, labels)
SELECT kubetrail_labels_hash(labels), labels
FROM (SELECT DISTINCT labels FROM pods WHERE labels IS NOT NULL);

ALTER TABLE pods ADD COLUMN label_set_id INTEGER REFERENCES label_sets (id);

UPDATE pods SET label_set_id = (
    SELECT s.id FROM label_sets s
    WHERE s.hash = kubetrail_labels_hash(pods.labels) AND s.labels = pods.labels
)
WHERE labels IS NOT NULL;

-- Retention removes a set with its last pod; this finds whether any pod still uses it.
CREATE INDEX pods_by_label_set ON pods (label_set_id) WHERE label_set_id IS NOT NULL;

ALTER TABLE pods DROP COLUMN labels;

-- For other SQLite tools: each pod with its labels.
CREATE VIEW pod_labels AS
SELECT p.id AS pod_id, p.uid, p.namespace, p.name AS pod, s.labels
FROM pods p
LEFT JOIN label_sets s ON s.id = p.label_set_id;
