//! Deleting the history of pods and nodes that have ended: a pod deleted before a cutoff goes
//! with its transitions and resource history; a node deleted before a cutoff loses its
//! transitions and capacity history, and its row once no utilisation (raw or rolled up) refers
//! to it any more, because the rollups need its name for "how full was node X in March".
//!
//! Open pods and nodes (`deleted_at_ms IS NULL`) never match: the recorder reconciles its first
//! list after a restart against their rows, and their history is still being written.
//!
//! Each step is one short transaction of about `row_budget` rows, oldest first, so a recorder
//! writing the same file waits at most one step. The steps are the store's
//! (`HistoryWriter::prune_ended_pods`, `prune_deleted_nodes`); this module holds what they count.

/// Rows deleted, by table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneCounts {
    pub pods: u64,
    pub pod_transitions: u64,
    pub pod_resources: u64,
    pub nodes: u64,
    pub node_transitions: u64,
    pub node_capacity: u64,
}

impl PruneCounts {
    pub fn rows(&self) -> u64 {
        self.pods
            + self.pod_transitions
            + self.pod_resources
            + self.nodes
            + self.node_transitions
            + self.node_capacity
    }

    pub fn add(&mut self, other: &PruneCounts) {
        self.pods += other.pods;
        self.pod_transitions += other.pod_transitions;
        self.pod_resources += other.pod_resources;
        self.nodes += other.nodes;
        self.node_transitions += other.node_transitions;
        self.node_capacity += other.node_capacity;
    }
}
