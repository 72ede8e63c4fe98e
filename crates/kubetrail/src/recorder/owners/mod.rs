//! The owners watch: ReplicaSets and Jobs, the links between pods and their Deployments and
//! CronJobs, on a task of their own.
//!
//! Pods record only their direct owner; the chain above it (ReplicaSet -> Deployment,
//! Job -> CronJob) lives in these objects, and the API server forgets them (a Deployment keeps
//! `revisionHistoryLimit` old ReplicaSets, a CronJob a few finished Jobs). So kubetrail keeps
//! each one it sees, with its rollout facts and the times its replicas moved.
//!
//! - [`decode`]: the slim ReplicaSet and Job types and their projection into rows.
//! - [`known`]: what was already handed on, packed (about 30k Jobs at 100k pods).
//! - [`watch`]: the task that lists and watches both kinds, keeps what it already wrote (so an
//!   unchanged MODIFIED or a relist writes nothing), marks the ones a relist no longer finds as
//!   deleted, and sends rows to the writer's main queue. They are few (a rollout writes a handful),
//!   so they share the writer's backpressure rather than a queue of their own.

pub mod decode;
pub mod known;
pub mod watch;
