//! Rendering report rows as `-o table`, `-o json` or `-o csv`.
//!
//! Queries and exports produce typed rows (one struct per report, see `query`); this module
//! only prints them, so `query` and `export` can never disagree about what a row contains. Every
//! renderer streams: rows are written as they arrive and never collected as a whole (the table
//! buffers one chunk at a time to align its columns).
//!
//! JSON and CSV share the field names and machine units of the row's `Serialize` impl; the table
//! has its own human columns (`250m`, `1.5Gi`, short RFC 3339 times).

pub mod table;

use std::io::{self, Write};

use serde::Serialize;

pub use table::TableWriter;

/// `-o/--output`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// A JSON array of objects, one per line, in machine units.
    Json,
    /// RFC 4180 CSV with a header row, in machine units.
    Csv,
}

/// One row of a report.
pub trait Record: Serialize {
    /// The machine field names in order: the JSON keys and the CSV header. A unit test per row
    /// type checks them against the `Serialize` impl, so the documented header cannot drift.
    const FIELDS: &'static [&'static str];
    /// Column titles of `-o table`.
    const TABLE_HEADERS: &'static [&'static str];
    /// The human cells of `-o table`, one per header.
    fn table_cells(&self) -> Vec<String>;
    /// A legend printed under the table when any row asks for it (e.g. what `*` means).
    fn table_footnote(&self) -> Option<&'static str> {
        None
    }
    /// A second legend, for a mark only some rows carry (printed after the first).
    fn table_footnote_extra(&self) -> Option<&'static str> {
        None
    }
    /// The row's cluster, set only when the report reads several; it serialises as the
    /// row's first field then (`cluster`).
    fn cluster(&self) -> Option<&str> {
        None
    }
}

/// Writes rows of one type in one format.
pub enum Renderer<W: Write> {
    /// With a leading CLUSTER column when the bool is set.
    Table(TableWriter<W>, bool),
    Json(JsonWriter<W>),
    // Boxed: the csv writer carries its own buffers and would bloat every variant.
    Csv(Box<CsvWriter<W>>),
}

impl<W: Write> Renderer<W> {
    /// Starts a report of `R` rows (the CSV header is written at once, so an empty report still
    /// has its header).
    pub fn new<R: Record>(format: Format, out: W) -> io::Result<Renderer<W>> {
        Renderer::with_clusters::<R>(format, out, false)
    }

    /// [`Renderer::new`] for a report over several clusters (`clustered`): every format then
    /// starts with the row's cluster, a CLUSTER column or a `cluster` field. Over one cluster
    /// it is left out, so a single cluster's reports read as a SQLite file's do.
    pub fn with_clusters<R: Record>(
        format: Format,
        out: W,
        clustered: bool,
    ) -> io::Result<Renderer<W>> {
        let with_cluster = |first: &'static str, rest: &[&'static str]| -> Vec<&'static str> {
            clustered
                .then_some(first)
                .into_iter()
                .chain(rest.iter().copied())
                .collect()
        };
        Ok(match format {
            Format::Table => Renderer::Table(
                TableWriter::new(out, &with_cluster("CLUSTER", R::TABLE_HEADERS)),
                clustered,
            ),
            // A JSON row carries its `cluster` field exactly when it is set.
            Format::Json => Renderer::Json(JsonWriter::new(out)),
            Format::Csv => Renderer::Csv(Box::new(CsvWriter::new(
                out,
                &with_cluster("cluster", R::FIELDS),
            )?)),
        })
    }

    pub fn row<R: Record>(&mut self, row: &R) -> io::Result<()> {
        match self {
            Renderer::Table(t, clustered) => {
                if let Some(note) = row.table_footnote() {
                    t.set_footnote(note);
                }
                if let Some(note) = row.table_footnote_extra() {
                    t.set_footnote(note);
                }
                let mut cells = row.table_cells();
                if *clustered {
                    cells.insert(0, row.cluster().unwrap_or("-").to_string());
                }
                t.row(cells)
            }
            Renderer::Json(j) => j.row(row),
            Renderer::Csv(c) => c.row(row),
        }
    }

    /// Ends the report and flushes; returns the number of rows.
    pub fn finish(self) -> io::Result<u64> {
        match self {
            Renderer::Table(t, _) => t.finish(),
            Renderer::Json(j) => j.finish(),
            Renderer::Csv(c) => c.finish(),
        }
    }
}

/// A JSON array with one object per line, written as rows arrive.
pub struct JsonWriter<W: Write> {
    out: W,
    rows: u64,
    buffer: Vec<u8>,
}

impl<W: Write> JsonWriter<W> {
    pub fn new(out: W) -> Self {
        JsonWriter {
            out,
            rows: 0,
            buffer: Vec::new(),
        }
    }

    pub fn row<T: Serialize>(&mut self, row: &T) -> io::Result<()> {
        // Serialise into a buffer first: serde_json hides the io::Error of a failed write
        // behind its own error type, and a closed pipe must stay recognisable.
        self.buffer.clear();
        self.buffer
            .extend_from_slice(if self.rows == 0 { b"[\n" } else { b",\n" });
        serde_json::to_writer(&mut self.buffer, row).map_err(io::Error::other)?;
        self.out.write_all(&self.buffer)?;
        self.rows += 1;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<u64> {
        self.out
            .write_all(if self.rows == 0 { b"[]\n" } else { b"\n]\n" })?;
        self.out.flush()?;
        Ok(self.rows)
    }
}

/// RFC 4180 CSV through the `csv` crate: a header row from [`Record::FIELDS`], then one record
/// per row. `None` is an empty field, booleans are `true`/`false`.
pub struct CsvWriter<W: Write> {
    writer: csv::Writer<W>,
    rows: u64,
}

impl<W: Write> CsvWriter<W> {
    pub fn new(out: W, header: &[&str]) -> io::Result<Self> {
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(out);
        writer.write_record(header).map_err(csv_io)?;
        Ok(CsvWriter { writer, rows: 0 })
    }

    pub fn row<T: Serialize>(&mut self, row: &T) -> io::Result<()> {
        self.writer.serialize(row).map_err(csv_io)?;
        self.rows += 1;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<u64> {
        self.writer.flush()?;
        Ok(self.rows)
    }

    /// Flushes and hands back the underlying writer (e.g. to sync a file).
    pub fn into_inner(self) -> io::Result<W> {
        self.writer.into_inner().map_err(|e| e.into_error())
    }
}

/// The csv crate wraps io errors without exposing them as a `source()`; unwrap them so a closed
/// pipe is still an io::Error to the caller.
fn csv_io(err: csv::Error) -> io::Error {
    match err.into_kind() {
        csv::ErrorKind::Io(err) => err,
        other => io::Error::other(format!("CSV: {other:?}")),
    }
}

/// Test helper: the keys of a row's JSON object, in order, to compare with [`Record::FIELDS`].
#[cfg(test)]
pub(crate) fn json_keys<T: Serialize>(row: &T) -> Vec<String> {
    // serde_json without preserve_order sorts map keys, so read the order from the text.
    let text = serde_json::to_string(row).unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let mut keys: Vec<(usize, String)> = value
        .as_object()
        .map(|o| {
            o.keys()
                .map(|k| {
                    (
                        text.find(&format!("\"{k}\":")).unwrap_or(usize::MAX),
                        k.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        name: &'static str,
        cpu_millis: Option<i64>,
        inferred: bool,
    }

    impl Record for Row {
        const FIELDS: &'static [&'static str] = &["name", "cpu_millis", "inferred"];
        const TABLE_HEADERS: &'static [&'static str] = &["NAME", "CPU"];
        fn table_cells(&self) -> Vec<String> {
            vec![
                self.name.to_string(),
                self.cpu_millis.map(|c| c.to_string()).unwrap_or_default(),
            ]
        }
    }

    fn render(format: Format, rows: &[Row]) -> String {
        let mut out = Vec::new();
        let mut r = Renderer::new::<Row>(format, &mut out).unwrap();
        for row in rows {
            r.row(row).unwrap();
        }
        assert_eq!(r.finish().unwrap(), rows.len() as u64);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn renders_each_format() {
        let rows = [
            Row {
                name: "a,b",
                cpu_millis: Some(250),
                inferred: false,
            },
            Row {
                name: "c",
                cpu_millis: None,
                inferred: true,
            },
        ];
        assert_eq!(
            render(Format::Csv, &rows),
            "name,cpu_millis,inferred\n\"a,b\",250,false\nc,,true\n"
        );
        assert_eq!(render(Format::Csv, &[]), "name,cpu_millis,inferred\n");
        assert_eq!(
            render(Format::Json, &rows),
            "[\n{\"name\":\"a,b\",\"cpu_millis\":250,\"inferred\":false},\n\
             {\"name\":\"c\",\"cpu_millis\":null,\"inferred\":true}\n]\n"
        );
        assert_eq!(render(Format::Json, &[]), "[]\n");
        assert_eq!(
            render(Format::Table, &rows),
            "NAME   CPU\na,b    250\nc      -\n"
        );
        assert_eq!(json_keys(&rows[0]), Row::FIELDS);
    }
}
