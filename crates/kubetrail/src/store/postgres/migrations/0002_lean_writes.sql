-- The write path without per-row key checks. A foreign key is checked by a trigger for every
-- inserted or updated row; on the initial list of a large cluster (100k pods, each with a
-- label set, a state row and a resource row) those checks took longer than the inserts. The
-- writer resolves every uid to its key itself and writes children after their parents in one
-- transaction, and retention deletes children before parents (store::postgres::retention), so
-- the keys held without the checks; the big tables never had them (0001's header).
-- The small tables written once per session (recording_sessions, quarantine) keep theirs.
ALTER TABLE nodes DROP CONSTRAINT nodes_cluster_id_fkey;
ALTER TABLE label_sets DROP CONSTRAINT label_sets_cluster_id_fkey;
ALTER TABLE pods DROP CONSTRAINT pods_cluster_id_fkey;
ALTER TABLE pods DROP CONSTRAINT pods_label_set_id_fkey;
ALTER TABLE pods DROP CONSTRAINT pods_phase_fkey;
ALTER TABLE pod_state DROP CONSTRAINT pod_state_pod_id_fkey;
ALTER TABLE pod_resources DROP CONSTRAINT pod_resources_pod_id_fkey;
ALTER TABLE node_capacity DROP CONSTRAINT node_capacity_node_id_fkey;
