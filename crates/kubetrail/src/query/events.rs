//! Event rows: `query events`, `export events`, and the event lines of `query history`. The
//! filter and the row are `model::event`'s; this module says how they print and reads them
//! through the store seam.

use serde::Serialize;

use super::error::{QueryError, handing_over};
pub use crate::model::event::{EventFilter, EventRecord, EventType};
use crate::model::time::format_time_short;
use crate::output::Record;
use crate::store::HistoryReader;

/// The CSV header and JSON field order.
pub const EVENT_FIELDS: &[&str] = &[
    "uid",
    "kind",
    "namespace",
    "name",
    "regarding_uid",
    "container",
    "reason",
    "type",
    "count",
    "first_seen",
    "first_seen_ms",
    "last_seen",
    "last_seen_ms",
    "reporting_controller",
    "note",
];

/// Table notes are cut here; JSON and CSV carry the whole (already 1 KiB-bounded) note.
const TABLE_NOTE_CHARS: usize = 80;

fn opt(value: &Option<impl ToString>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// A note on one line, cut for a table.
pub fn table_note(note: &Option<String>) -> String {
    let note = note.clone().unwrap_or_default().replace(['\n', '\r'], " ");
    if note.chars().count() > TABLE_NOTE_CHARS {
        note.chars().take(TABLE_NOTE_CHARS - 3).collect::<String>() + "..."
    } else {
        note
    }
}

impl Record for EventRecord {
    const FIELDS: &'static [&'static str] = EVENT_FIELDS;
    const TABLE_HEADERS: &'static [&'static str] = &[
        "LAST SEEN",
        "TYPE",
        "REASON",
        "OBJECT",
        "CONTAINER",
        "COUNT",
        "FIRST SEEN",
        "NOTE",
    ];

    fn table_cells(&self) -> Vec<String> {
        let object = match (self.kind, &self.namespace) {
            ("Pod", Some(ns)) => format!("{ns}/{}", self.name),
            (kind, _) => format!("{}/{}", kind.to_lowercase(), self.name),
        };
        vec![
            format_time_short(self.last_seen_ms),
            opt(&self.event_type),
            opt(&self.reason),
            object,
            opt(&self.container),
            self.count.to_string(),
            format_time_short(self.first_seen_ms),
            table_note(&self.note),
        ]
    }

    fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }
}

/// An event as a line of a pod's history table (the columns of `HistoryLine`): KIND is
/// `event:REASON`, REASON the event's type, MESSAGE its note with the count of a series.
#[derive(Serialize)]
#[serde(transparent)]
pub struct HistoryEventLine<'a>(pub &'a EventRecord);

impl HistoryEventLine<'_> {
    pub fn table_cells(&self) -> Vec<String> {
        let e = self.0;
        let mut note = table_note(&e.note);
        if e.count > 1 {
            note = format!(
                "(x{} since {}) {note}",
                e.count,
                format_time_short(e.first_seen_ms)
            );
        }
        vec![
            format_time_short(e.last_seen_ms),
            e.kind_cell(),
            String::new(),
            String::new(),
            opt(&e.container),
            opt(&e.event_type),
            String::new(),
            String::new(),
            note,
        ]
    }
}

/// Reads the events the filter selects, by last seen, handing each to `each` as it is read,
/// from one snapshot. Returns how many were handed over.
pub fn for_each_event(
    reader: &dyn HistoryReader,
    filter: &EventFilter,
    each: impl FnMut(EventRecord) -> Result<(), QueryError>,
) -> Result<u64, QueryError> {
    let mut read = reader.snapshot()?;
    handing_over(each, |each| read.events(filter, each))
}

/// Parses `--type`: Normal or Warning, anything else a usage error that says so.
pub fn parse_event_type(s: &str) -> Result<EventType, String> {
    EventType::parse(s)
}
