//! The pod phase, stored as a small integer code (see the `phases` table).

use std::fmt;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Phase {
    #[default]
    Unknown,
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Unknown,
        Phase::Pending,
        Phase::Running,
        Phase::Succeeded,
        Phase::Failed,
    ];

    /// Kubernetes' spelling; anything unknown (or missing) is `Unknown`.
    pub fn parse(s: &str) -> Phase {
        match s {
            "Pending" => Phase::Pending,
            "Running" => Phase::Running,
            "Succeeded" => Phase::Succeeded,
            "Failed" => Phase::Failed,
            _ => Phase::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Unknown => "Unknown",
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }

    pub fn code(self) -> i64 {
        match self {
            Phase::Unknown => 0,
            Phase::Pending => 1,
            Phase::Running => 2,
            Phase::Succeeded => 3,
            Phase::Failed => 4,
        }
    }

    pub fn from_code(code: i64) -> Phase {
        Phase::ALL
            .into_iter()
            .find(|p| p.code() == code)
            .unwrap_or(Phase::Unknown)
    }

    /// Succeeded and Failed are final: the pod no longer holds node resources.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
