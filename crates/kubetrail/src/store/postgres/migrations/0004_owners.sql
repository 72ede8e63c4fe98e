-- 0004: workload owners (ReplicaSets and Jobs) and their scale history, as in SQLite's
-- migration 0009: one row per object and cluster (`uid`), updated in place; one scale row per
-- change of the replica counts or revision. Not partitioned: a cluster has few of them (a
-- Deployment's rollouts, a CronJob's runs), and they are what names a pod's workload.
CREATE TABLE owners (
    id               bigserial PRIMARY KEY,
    cluster_id       integer NOT NULL,
    uid              text NOT NULL,
    kind             smallint NOT NULL,
    namespace        text NOT NULL,
    name             text NOT NULL,
    controller_kind  text,
    controller_name  text,
    revision         bigint,
    template_hash    text,
    images           text NOT NULL,
    created_at_ms    bigint NOT NULL,
    deleted_at_ms    bigint,
    spec_replicas    bigint,
    status_replicas  bigint,
    UNIQUE (cluster_id, uid)
);
CREATE INDEX owners_by_name ON owners (cluster_id, namespace, name);
CREATE INDEX owners_by_controller ON owners (cluster_id, controller_name, namespace);

CREATE TABLE owner_scales (
    cluster_id       integer NOT NULL,
    owner_id         bigint NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    at_ms            bigint NOT NULL,
    spec_replicas    bigint,
    status_replicas  bigint,
    revision         bigint,
    PRIMARY KEY (owner_id, at_ms)
);
