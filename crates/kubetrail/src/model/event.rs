//! Kubernetes Events as kubetrail keeps them: which object one is about, its reason, type and
//! note, how often it happened (a series' count) and when it was first and last seen; and the
//! filter `query events` reads them with. Plain data, shared by the recorder (which makes
//! them), the store (which keeps them) and `query` (which prints them).

use serde::Serialize;

use super::time::{Window, format_time_ms};

/// The longest note kept, in bytes. A note is free text written by any controller; a few
/// chatty ones write kilobytes (a whole scheduler diagnosis), and an event flood of those
/// would fill the store with text nobody reads past its first lines.
pub const NOTE_MAX_BYTES: usize = 1024;

/// What a truncated note ends with, so that a reader knows it was cut.
pub const TRUNCATED_MARK: &str = " [truncated]";

/// `note` cut to at most [`NOTE_MAX_BYTES`] bytes (mark included), on a character boundary.
pub fn truncate_note(note: &str) -> String {
    if note.len() <= NOTE_MAX_BYTES {
        return note.to_string();
    }
    let end = note.floor_char_boundary(NOTE_MAX_BYTES - TRUNCATED_MARK.len());
    format!("{}{TRUNCATED_MARK}", &note[..end])
}

/// The kinds of object whose events are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum RegardingKind {
    Pod,
    Node,
}

impl RegardingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RegardingKind::Pod => "Pod",
            RegardingKind::Node => "Node",
        }
    }

    /// The kinds kept; anything else (Deployments, ReplicaSets, ...) is not.
    pub fn parse(kind: &str) -> Option<RegardingKind> {
        match kind {
            "Pod" => Some(RegardingKind::Pod),
            "Node" => Some(RegardingKind::Node),
            _ => None,
        }
    }

    /// The integer a store keeps.
    pub fn code(self) -> i64 {
        match self {
            RegardingKind::Pod => 1,
            RegardingKind::Node => 2,
        }
    }

    pub fn from_code(code: i64) -> Option<RegardingKind> {
        match code {
            1 => Some(RegardingKind::Pod),
            2 => Some(RegardingKind::Node),
            _ => None,
        }
    }
}

/// An event's type. Kubernetes knows two; anything else is refused by the API server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }

    /// `--type`: exactly `Normal` or `Warning` (any case).
    pub fn parse(s: &str) -> Result<EventType, String> {
        match s.to_ascii_lowercase().as_str() {
            "normal" => Ok(EventType::Normal),
            "warning" => Ok(EventType::Warning),
            _ => Err(format!(
                "unknown event type {s:?}: expected Normal or Warning"
            )),
        }
    }
}

/// Which events to read. The default reads every event.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// Only these reasons (exact match); empty means every reason.
    pub reasons: Vec<String>,
    pub event_type: Option<EventType>,
    /// Events about objects in this namespace (node events have none).
    pub namespace: Option<String>,
    /// Events about the pod with this name.
    pub pod: Option<String>,
    /// Events about the node with this name.
    pub node: Option<String>,
    /// Events about the objects with these uids (`query history`, a workload's pods), in one
    /// read. `Some` of an empty list reads nothing.
    pub regarding_uids: Option<Vec<String>>,
    /// Events last seen inside the window (`last_seen` in `[since, until)`), or, for a series,
    /// first seen before its end and last seen after its start.
    pub window: Window,
    pub limit: Option<u64>,
}

/// One event, in machine units. The field order is the CSV header.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventRecord {
    /// The cluster, when the report reads several (PostgreSQL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub uid: String,
    /// "Pod" or "Node".
    pub kind: &'static str,
    pub namespace: Option<String>,
    pub name: String,
    pub regarding_uid: Option<String>,
    /// The container the event is about, from `fieldPath` (`spec.containers{app}`).
    pub container: Option<String>,
    pub reason: Option<String>,
    /// "Normal" or "Warning".
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub count: i64,
    pub first_seen: String,
    pub first_seen_ms: i64,
    pub last_seen: String,
    pub last_seen_ms: i64,
    pub reporting_controller: Option<String>,
    pub note: Option<String>,
}

impl EventRecord {
    /// Fills in the time strings from the millisecond fields.
    pub fn with_times(mut self) -> Self {
        self.first_seen = format_time_ms(self.first_seen_ms);
        self.last_seen = format_time_ms(self.last_seen_ms);
        self
    }

    /// The history timeline's KIND cell: `event:BackOff`.
    pub fn kind_cell(&self) -> String {
        format!("event:{}", self.reason.as_deref().unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_note_is_cut_on_a_character_boundary_and_marked() {
        let short = "Back-off restarting failed container";
        assert_eq!(truncate_note(short), short);
        let exact = "x".repeat(NOTE_MAX_BYTES);
        assert_eq!(truncate_note(&exact), exact);
        // Multi-byte characters straddle the cut.
        let long = "é".repeat(NOTE_MAX_BYTES);
        let cut = truncate_note(&long);
        assert!(cut.len() <= NOTE_MAX_BYTES, "{}", cut.len());
        assert!(cut.ends_with(TRUNCATED_MARK));
        assert!(
            cut.trim_end_matches(TRUNCATED_MARK)
                .chars()
                .all(|c| c == 'é')
        );
    }

    #[test]
    fn an_event_type_is_normal_or_warning() {
        assert_eq!(EventType::parse("Warning"), Ok(EventType::Warning));
        assert_eq!(EventType::parse("normal"), Ok(EventType::Normal));
        let err = EventType::parse("Bogus").unwrap_err();
        assert!(err.contains("Normal or Warning"), "{err}");
    }
}
