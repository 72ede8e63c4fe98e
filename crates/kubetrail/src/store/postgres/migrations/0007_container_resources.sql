-- 0007: each container's own requests and limits beside its usage key, as in SQLite's
-- migration 0011: filled from the recorder's cache of the pod's spec when a sample is written,
-- updated when an in-place resize changes them, NULL for keys written before.
ALTER TABLE usage_containers
    ADD COLUMN cpu_request_millis bigint,
    ADD COLUMN memory_request_bytes bigint,
    ADD COLUMN cpu_limit_millis bigint,
    ADD COLUMN memory_limit_bytes bigint;
