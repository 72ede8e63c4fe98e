-- 0009: workload owners: the ReplicaSets and Jobs between pods and their Deployments and
-- CronJobs, kept past the API server's own history (a Deployment keeps only
-- revisionHistoryLimit, 10 by default, old ReplicaSets; a finished Job is often cleaned up).
--
-- One row per object (its uid), updated in place when it changes; `deleted_at_ms` is set once.
-- `kind`: 1 ReplicaSet, 2 Job. `controller_kind`/`controller_name`: its controller
-- ownerReference (a Deployment, a CronJob), NULL for a bare one. Pods name their direct owner
-- by kind and name (pods.owner_kind, pods.owner_name), so the chain is a join on
-- (namespace, kind, name). `images`: the pod template's images, comma-joined in spec order.
CREATE TABLE owners (
    id               INTEGER PRIMARY KEY,
    uid              TEXT NOT NULL UNIQUE,
    kind             INTEGER NOT NULL,
    namespace        TEXT NOT NULL,
    name             TEXT NOT NULL,
    controller_kind  TEXT,
    controller_name  TEXT,
    revision         INTEGER,
    template_hash    TEXT,
    images           TEXT NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    deleted_at_ms    INTEGER,
    spec_replicas    INTEGER,
    status_replicas  INTEGER
) STRICT;
-- A pod's owner by name; a workload's ReplicaSets or Jobs by their controller.
CREATE INDEX owners_by_name ON owners (namespace, name);
CREATE INDEX owners_by_controller ON owners (controller_name, namespace);

-- Each change of an owner's replica counts or revision, when the recorder saw it (the object
-- keeps no time of its scaling): a rollout's scale-up of the new ReplicaSet and scale-down of
-- the old one. Written only when a value differs from the owner's stored one, so a relist or a
-- replay adds nothing.
CREATE TABLE owner_scales (
    owner_id         INTEGER NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    at_ms            INTEGER NOT NULL,
    spec_replicas    INTEGER,
    status_replicas  INTEGER,
    revision         INTEGER,
    PRIMARY KEY (owner_id, at_ms)
) STRICT, WITHOUT ROWID;
