//! The monthly partitions of the three big tables. A row can only be inserted once the
//! partition for its time exists, so the writer creates partitions before the transaction that
//! needs them (in a short transaction of their own, because creating a partition locks its
//! parent table against every other cluster's writer), remembers which ones exist, and
//! retention drops partitions once they are empty.
//!
//! One partition per calendar month (UTC) of the partition key: `transitions` by its subject's
//! creation time, `node_usage` by `at_ms`, `node_usage_rollup` by `bucket_start_ms`.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use postgres::Client;

/// A partitioned table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Partitioned {
    Transitions,
    NodeUsage,
    NodeUsageRollup,
}

impl Partitioned {
    pub const ALL: [Partitioned; 3] = [
        Partitioned::Transitions,
        Partitioned::NodeUsage,
        Partitioned::NodeUsageRollup,
    ];

    pub fn table(self) -> &'static str {
        match self {
            Partitioned::Transitions => "transitions",
            Partitioned::NodeUsage => "node_usage",
            Partitioned::NodeUsageRollup => "node_usage_rollup",
        }
    }
}

/// `pg_advisory_xact_lock`'s key while partitions are created or dropped: two writers that
/// need the same new month must not both try to create it.
const PARTITION_LOCK: i64 = 0x6b74_7061_7274_0001;

/// The calendar month (UTC) holding `ms`: its first millisecond, the first of the next month,
/// and the partition suffix (`y2026m12`).
pub fn month_of(ms: i64) -> (i64, i64, String) {
    let at = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let start = Utc
        .with_ymd_and_hms(at.year(), at.month(), 1, 0, 0, 0)
        .single()
        .expect("the first of a month exists");
    let (y, m) = if at.month() == 12 {
        (at.year() + 1, 1)
    } else {
        (at.year(), at.month() + 1)
    };
    let end = Utc
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .expect("the first of a month exists");
    // A sign keeps months before 1970 (or year 0) apart from later ones in the name.
    let year = at.year();
    let suffix = if year < 0 {
        format!("yneg{:04}m{:02}", -year, at.month())
    } else {
        format!("y{year:04}m{:02}", at.month())
    };
    (start.timestamp_millis(), end.timestamp_millis(), suffix)
}

/// The first millisecond of every month from the one holding `from_ms` to the one holding
/// `to_ms`, for [`Partitions::ensure`].
pub fn months_between(from_ms: i64, to_ms: i64) -> Vec<i64> {
    let mut months = Vec::new();
    let mut at = month_of(from_ms).0;
    while at <= to_ms {
        months.push(at);
        at = month_of(at).1;
    }
    months
}

/// Which partitions this writer knows to exist.
#[derive(Default)]
pub struct Partitions {
    known: HashSet<(Partitioned, i64)>,
}

impl Partitions {
    /// Makes sure that a partition of `table` holds each of `times`.
    pub fn ensure(
        &mut self,
        client: &mut Client,
        table: Partitioned,
        times: impl IntoIterator<Item = i64>,
    ) -> Result<(), postgres::Error> {
        let mut missing: Vec<(i64, i64, String)> = Vec::new();
        for ms in times {
            let month = month_of(ms);
            if !self.known.contains(&(table, month.0)) && !missing.iter().any(|m| m.0 == month.0) {
                missing.push(month);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])?;
        for (start, end, suffix) in &missing {
            let parent = table.table();
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {parent}_{suffix} PARTITION OF {parent}
                 FOR VALUES FROM ({start}) TO ({end})"
            ))?;
        }
        tx.commit()?;
        self.known.extend(missing.into_iter().map(|m| (table, m.0)));
        Ok(())
    }

    /// Forgets what it knows, after an error that says a partition is missing (another
    /// cluster's retention may have dropped an empty one).
    pub fn forget(&mut self) {
        self.known.clear();
    }

    /// Drops the partitions that are empty, of months that ended before `before_ms`. One that
    /// another writer is using is skipped (it is not empty then anyway), and so is a
    /// `transitions` partition whose month still holds a pod's or node's creation (a
    /// later transition of that subject would need it again). Returns how many were dropped.
    pub fn drop_empty(
        &mut self,
        client: &mut Client,
        before_ms: i64,
    ) -> Result<usize, postgres::Error> {
        let mut dropped = 0;
        for table in Partitioned::ALL {
            let parent = table.table();
            let partitions = client.query(
                "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid)
                 FROM pg_inherits i
                 JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = $1::text::regclass",
                &[&parent],
            )?;
            for row in partitions {
                let name: String = row.get(0);
                let bound: String = row.get(1);
                let Some((start, end)) = parse_bound(&bound) else {
                    continue;
                };
                if end > before_ms {
                    continue;
                }
                let mut tx = client.transaction()?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])?;
                // Never wait behind a writer: skip the partition and try at the next pass.
                tx.batch_execute("SET LOCAL lock_timeout = '2s'")?;
                if let Err(e) =
                    tx.batch_execute(&format!("LOCK TABLE {name} IN ACCESS EXCLUSIVE MODE"))
                {
                    if e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
                        continue;
                    }
                    return Err(e);
                }
                let empty: bool = tx
                    .query_one(&format!("SELECT NOT EXISTS (SELECT 1 FROM {name})"), &[])?
                    .get(0);
                let still_needed: bool = table == Partitioned::Transitions
                    && tx
                        .query_one(
                            "SELECT EXISTS (SELECT 1 FROM pods WHERE created_at_ms >= $1
                                                                AND created_at_ms < $2)
                                 OR EXISTS (SELECT 1 FROM nodes WHERE created_at_ms >= $1
                                                                 AND created_at_ms < $2)",
                            &[&start, &end],
                        )?
                        .get(0);
                if empty && !still_needed {
                    tx.batch_execute(&format!("DROP TABLE {name}"))?;
                    tx.commit()?;
                    self.known.remove(&(table, start));
                    dropped += 1;
                }
            }
        }
        Ok(dropped)
    }
}

/// The bounds of `FOR VALUES FROM ('1764547200000') TO ('1767225600000')`.
fn parse_bound(bound: &str) -> Option<(i64, i64)> {
    let numbers: Vec<i64> = bound
        .split(|c: char| !(c.is_ascii_digit() || c == '-'))
        .filter(|s| !s.is_empty() && *s != "-")
        .filter_map(|s| s.parse().ok())
        .collect();
    match numbers[..] {
        [start, end] => Some((start, end)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_calendar_months_in_utc() {
        // 2026-12-01T00:00:00Z and 2027-01-01T00:00:00Z.
        let (start, end, name) = month_of(1_796_083_200_000 + 5 * 86_400_000);
        assert_eq!(name, "y2026m12");
        assert_eq!(start, 1_796_083_200_000);
        assert_eq!(end, 1_798_761_600_000);
        assert_eq!(month_of(start).0, start, "the first millisecond is in it");
        assert_eq!(month_of(end - 1).0, start, "the last millisecond is in it");
        assert_eq!(month_of(end).2, "y2027m01");
        assert_eq!(month_of(-1).2, "y1969m12");
        assert_eq!(months_between(start + 5, end + 5), vec![start, end]);
        assert_eq!(months_between(start, start), vec![start]);
    }

    #[test]
    fn bounds_are_read_back_from_the_catalog_text() {
        assert_eq!(
            parse_bound("FOR VALUES FROM ('1796083200000') TO ('1798761600000')"),
            Some((1_796_083_200_000, 1_798_761_600_000))
        );
        assert_eq!(
            parse_bound("FOR VALUES FROM ('-2678400000') TO ('0')"),
            Some((-2_678_400_000, 0))
        );
        assert_eq!(parse_bound("DEFAULT"), None);
    }
}
