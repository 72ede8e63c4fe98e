-- 0005: four pod transition kinds that real incident timelines need.
--
-- * container_waiting: a container entered a waiting reason worth seeing (CrashLoopBackOff,
--   ImagePullBackOff, ErrImagePull, CreateContainerConfigError, ...). The ordinary
--   ContainerCreating and PodInitializing are not recorded.
-- * left_scope / entered_scope: with a label selector, a relabelled pod stops (or starts)
--   matching. The API server sends DELETED (ADDED) for it, but the pod lives on; recording a
--   deletion there would be false.
-- * resize_requested: an in-place resize asked for new resources (spec); `resized` is kept for
--   the change the pod's effective resources actually made.
INSERT INTO transition_kinds (code, name, subject) VALUES
    (13, 'container_waiting', 'pod'), (14, 'left_scope', 'pod'), (15, 'entered_scope', 'pod'),
    (16, 'resize_requested', 'pod');
