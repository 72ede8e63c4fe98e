//! The simulator's virtual clock: time advances in fixed ticks from a start instant, and every
//! timestamp the simulator writes is derived from it (never from the wall clock), so a run with
//! the same seed and start time produces the same objects and the same ground truth.

use chrono::{DateTime, SecondsFormat, Utc};

/// Length of one scenario tick. Every change happens on a tick boundary.
pub const TICK_MS: i64 = 10;

/// Virtual time of tick `tick` for a scenario that starts at `start_ms` (Unix milliseconds).
pub fn tick_time_ms(start_ms: i64, tick: u64) -> i64 {
    start_ms + tick as i64 * TICK_MS
}

/// A metav1.Time as a real apiserver serialises it: RFC 3339 at second precision, UTC.
/// Truncates (not rounds), as Go's `time.Time.Truncate(time.Second)` would.
pub fn format_secs(at_ms: i64) -> String {
    to_datetime(at_ms.div_euclid(1000) * 1000).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The ground truth's time format: RFC 3339 UTC with milliseconds.
pub use kubetrail::model::time::format_time_ms as format_millis;

/// Parses an RFC 3339 time (any offset) into Unix milliseconds, with a message for users.
pub fn parse_rfc3339_ms(s: &str) -> Result<i64, String> {
    kubetrail::model::time::parse_rfc3339_ms(s).ok_or_else(|| {
        format!("invalid time {s:?}; expected RFC 3339 such as 2026-01-02T03:04:05Z")
    })
}

fn to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_precision_truncates_and_millis_keep_three_digits() {
        let ms = parse_rfc3339_ms("2026-11-29T02:08:08.999Z").unwrap();
        assert_eq!(format_secs(ms), "2026-11-29T02:08:08Z");
        assert_eq!(format_millis(ms), "2026-11-29T02:08:08.999Z");
        assert_eq!(format_millis(ms + 1), "2026-11-29T02:08:09.000Z");
        assert!(
            parse_rfc3339_ms("yesterday")
                .unwrap_err()
                .contains("yesterday")
        );
    }
}
