//! When the side watches (Kubernetes Events, ReplicaSets and Jobs) begin: once the initial list
//! of pods and nodes is committed, or after [`AT_THE_LATEST`].
//!
//! Their first lists are big (a 100k-pod cluster holds about 200k Events and 30k Jobs) and go
//! through the same single writer. Listed beside the pods, they took the writer's time from the
//! pods' list and held their decoded pages in memory at its peak. Nothing is lost by waiting:
//! a list, when it comes, holds everything the API server still keeps.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The longest a side watch waits for the initial list of pods and nodes to be committed (a
/// list that keeps failing must not keep the others from being recorded).
pub const AT_THE_LATEST: Duration = Duration::from_secs(60);

/// Waits until `begin` completes (the recorder completes it once the initial list is
/// committed) or [`AT_THE_LATEST`] has passed. False when `stop` came first: the task returns.
pub async fn after_initial_list(
    what: &str,
    begin: impl Future<Output = ()>,
    stop: Pin<&mut impl Future<Output = ()>>,
) -> bool {
    tokio::select! {
        () = begin => true,
        () = tokio::time::sleep(AT_THE_LATEST) => {
            tracing::info!("the initial list is not committed yet; watching {what} all the same");
            true
        }
        () = stop => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_list_then_gives_up_waiting_and_never_outlives_a_stop() {
        let mut never = std::pin::pin!(futures::future::pending::<()>());
        assert!(after_initial_list("x", async {}, never.as_mut()).await);

        let started = tokio::time::Instant::now();
        let forever = futures::future::pending::<()>();
        assert!(after_initial_list("x", forever, never.as_mut()).await);
        assert_eq!(started.elapsed(), AT_THE_LATEST, "waited exactly the bound");

        let mut stopped = std::pin::pin!(async {});
        let forever = futures::future::pending::<()>();
        assert!(!after_initial_list("x", forever, stopped.as_mut()).await);
    }
}
