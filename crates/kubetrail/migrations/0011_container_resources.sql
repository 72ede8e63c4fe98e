-- 0011: each container's own requests and limits beside its usage key.
--
-- `query usage --by container` sets a container's usage against its own request, not its
-- pod's. The recorder fills these from its cache of the pod's spec when it writes a sample
-- (`spec.containers[].resources`, CPU in millicores, memory in bytes, 0 where the spec sets
-- none), and updates them when an in-place resize changes them: they hold the latest. They
-- stay NULL for keys written by an older kubetrail, and for a pod the recorder does not cache;
-- the report then leaves the container's request empty, as it did before.
ALTER TABLE usage_containers ADD COLUMN cpu_request_millis INTEGER;
ALTER TABLE usage_containers ADD COLUMN memory_request_bytes INTEGER;
ALTER TABLE usage_containers ADD COLUMN cpu_limit_millis INTEGER;
ALTER TABLE usage_containers ADD COLUMN memory_limit_bytes INTEGER;
