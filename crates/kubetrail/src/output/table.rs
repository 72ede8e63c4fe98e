//! `-o table`: left-aligned columns separated by three spaces, like kubectl.
//!
//! Alignment needs the widest cell, which would mean holding the whole report. Instead rows are
//! buffered a chunk at a time and widths only ever grow, so memory stays bounded on a report of
//! millions of rows while any report that fits in one chunk (nearly all) is aligned exactly.

use std::io::{self, Write};

/// Rows held back to compute column widths before printing.
const CHUNK_ROWS: usize = 1000;

const GAP: &str = "   ";

pub struct TableWriter<W: Write> {
    out: W,
    headers: Vec<String>,
    widths: Vec<usize>,
    pending: Vec<Vec<String>>,
    header_written: bool,
    rows: u64,
    /// Legends under the table, each once, in the order first asked for.
    footnotes: Vec<&'static str>,
}

impl<W: Write> TableWriter<W> {
    pub fn new(out: W, headers: &[&str]) -> Self {
        TableWriter {
            out,
            headers: headers.iter().map(|h| h.to_string()).collect(),
            widths: headers.iter().map(|h| h.chars().count()).collect(),
            pending: Vec::new(),
            header_written: false,
            rows: 0,
            footnotes: Vec::new(),
        }
    }

    /// Adds a row; an empty cell prints as `-` so columns stay readable.
    pub fn row(&mut self, cells: Vec<String>) -> io::Result<()> {
        let cells: Vec<String> = cells
            .into_iter()
            .map(|c| if c.is_empty() { "-".to_string() } else { c })
            .collect();
        for (width, cell) in self.widths.iter_mut().zip(&cells) {
            *width = (*width).max(cell.chars().count());
        }
        self.pending.push(cells);
        self.rows += 1;
        if self.pending.len() >= CHUNK_ROWS {
            self.flush_pending()?;
        }
        Ok(())
    }

    /// Adds a legend under the table (once, however many rows ask for it).
    pub fn set_footnote(&mut self, note: &'static str) {
        if !self.footnotes.contains(&note) {
            self.footnotes.push(note);
        }
    }

    /// Prints what is pending. An empty table prints nothing at all (not even the header), so
    /// the caller can say "no pods found" instead.
    pub fn finish(mut self) -> io::Result<u64> {
        self.flush_pending()?;
        if self.rows > 0 {
            for note in &self.footnotes {
                writeln!(self.out, "{note}")?;
            }
        }
        self.out.flush()?;
        Ok(self.rows)
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if !self.header_written {
            let headers = std::mem::take(&mut self.headers);
            write_line(&mut self.out, &self.widths, &headers)?;
            self.header_written = true;
        }
        for cells in std::mem::take(&mut self.pending) {
            write_line(&mut self.out, &self.widths, &cells)?;
        }
        Ok(())
    }
}

fn write_line<W: Write>(out: &mut W, widths: &[usize], cells: &[String]) -> io::Result<()> {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i + 1 == cells.len() {
            // No trailing spaces after the last column.
            line.push_str(cell);
        } else {
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', pad));
            line.push_str(GAP);
        }
    }
    line.push('\n');
    out.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_and_marks_empty_cells() {
        let mut out = Vec::new();
        let mut t = TableWriter::new(&mut out, &["A", "LONG HEADER", "C"]);
        t.row(vec!["wide value".into(), "".into(), "x".into()])
            .unwrap();
        t.row(vec!["b".into(), "2".into(), "".into()]).unwrap();
        t.set_footnote("* note");
        assert_eq!(t.finish().unwrap(), 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "A            LONG HEADER   C\n\
             wide value   -             x\n\
             b            2             -\n\
             * note\n"
        );
    }

    #[test]
    fn an_empty_table_prints_nothing() {
        let mut out = Vec::new();
        let t = TableWriter::new(&mut out, &["A"]);
        assert_eq!(t.finish().unwrap(), 0);
        assert!(out.is_empty());
    }
}
