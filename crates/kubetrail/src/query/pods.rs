//! `query pods` and `export pods`: one lifecycle summary line per pod incarnation, read from the
//! `pods` table (the recorder keeps each row's summary current, so no transitions are scanned).

use super::error::{QueryError, handing_over};
use crate::model::Phase;
use crate::model::quantity::{format_cpu_millis, format_memory_bytes};
pub use crate::model::report::{PodFilter, PodSummary};
use crate::model::time::{format_duration_ms, format_time_short};
use crate::output::Record;
use crate::store::{Coverage, HistoryReader};

/// Parses `--phase`, case-insensitively.
pub fn parse_phase(s: &str) -> Result<Phase, String> {
    Phase::ALL
        .into_iter()
        .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| {
            format!(
                "unknown phase {s:?}; expected one of: Pending, Running, Succeeded, Failed, Unknown"
            )
        })
}

pub const POD_FIELDS: &[&str] = &[
    "namespace",
    "name",
    "uid",
    "node",
    "owner_kind",
    "owner_name",
    "created",
    "created_at_ms",
    "started",
    "started_at_ms",
    "finished",
    "finished_at_ms",
    "deleted",
    "deleted_at_ms",
    "lifetime_ms",
    "open",
    "phase",
    "reason",
    "restarts",
    "cpu_request_millis",
    "memory_request_bytes",
    "cpu_limit_millis",
    "memory_limit_bytes",
];

impl Record for PodSummary {
    const FIELDS: &'static [&'static str] = POD_FIELDS;
    const TABLE_HEADERS: &'static [&'static str] = &[
        "NAMESPACE",
        "NAME",
        "NODE",
        "CREATED",
        "STARTED",
        "FINISHED",
        "DELETED",
        "LIFETIME",
        "PHASE",
        "RESTARTS",
        "CPU",
        "MEMORY",
    ];

    fn table_cells(&self) -> Vec<String> {
        let phase = match &self.reason {
            Some(reason) => format!("{} ({reason})", self.phase),
            None => self.phase.to_string(),
        };
        let lifetime = format_duration_ms(self.lifetime_ms) + if self.open { "+" } else { "" };
        vec![
            self.namespace.clone(),
            self.name.clone(),
            self.node.clone().unwrap_or_default(),
            format_time_short(self.created_at_ms),
            self.started_at_ms
                .map(format_time_short)
                .unwrap_or_default(),
            self.finished_at_ms
                .map(format_time_short)
                .unwrap_or_default(),
            self.deleted_at_ms
                .map(format_time_short)
                .unwrap_or_default(),
            lifetime,
            phase,
            self.restarts.to_string(),
            format_cpu_millis(self.cpu_request_millis),
            format_memory_bytes(self.memory_request_bytes),
        ]
    }

    fn table_footnote(&self) -> Option<&'static str> {
        self.open
            .then_some("+ still open: not deleted as far as the recorder knows; lifetime until now, or until recording ended")
    }

    fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }
}

/// Reads the pods the filter selects, oldest first (by creation), and hands each to `each`.
/// An open pod's lifetime ends at `now_ms`, or where recording ended if that is earlier: a
/// file read after its recorder stopped does not make its pods live on.
pub fn for_each_pod(
    reader: &dyn HistoryReader,
    filter: &PodFilter,
    now_ms: i64,
    each: impl FnMut(PodSummary) -> Result<(), QueryError>,
) -> Result<u64, QueryError> {
    // One snapshot for the coverage and the rows.
    let mut read = reader.snapshot()?;
    let open_until_ms = Coverage::from_sessions(read.sessions()?).open_until_ms(now_ms);
    handing_over(each, |each| read.pods(filter, open_until_ms, each))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::time::format_time_ms;

    #[test]
    fn phases_parse_case_insensitively() {
        assert_eq!(parse_phase("running"), Ok(Phase::Running));
        assert_eq!(parse_phase("Failed"), Ok(Phase::Failed));
        assert!(parse_phase("done").unwrap_err().contains("\"done\""));
    }

    #[test]
    fn fields_match_the_serialized_row() {
        let row = PodSummary {
            cluster: None,
            namespace: "ns".into(),
            name: "p".into(),
            uid: "u".into(),
            node: None,
            owner_kind: None,
            owner_name: None,
            created: format_time_ms(0),
            created_at_ms: 0,
            started: None,
            started_at_ms: None,
            finished: None,
            finished_at_ms: None,
            deleted: None,
            deleted_at_ms: None,
            lifetime_ms: 725_000,
            open: true,
            phase: "Running",
            reason: None,
            restarts: 0,
            cpu_request_millis: 250,
            memory_request_bytes: 1 << 30,
            cpu_limit_millis: 0,
            memory_limit_bytes: 0,
        };
        assert_eq!(crate::output::json_keys(&row), POD_FIELDS);
        let cells = row.table_cells();
        assert_eq!(cells[7], "12m5s+");
        assert_eq!(cells[10..], ["250m".to_string(), "1Gi".to_string()]);
    }
}
