//! Times: Kubernetes sends RFC 3339 strings; we keep milliseconds since the Unix epoch (UTC) and
//! print RFC 3339 UTC. chrono is the one time library past the API boundary.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the epoch of an RFC 3339 timestamp, or None if it does not parse.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// RFC 3339 UTC with milliseconds, always the same width: "2024-05-01T22:00:00.000Z". The
/// machine form of every time kubetrail writes: JSON, CSV, the simulator's ground truth.
pub fn format_time_ms(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(at) => at.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => ms.to_string(),
    }
}

/// Now, in milliseconds since the epoch (the recorder's clock, and "now" of query windows).
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_utc_milliseconds() {
        let ms = parse_rfc3339_ms("2026-11-29T02:08:08Z").unwrap();
        assert_eq!(format_time_ms(ms), "2026-11-29T02:08:08.000Z");
        assert_eq!(
            parse_rfc3339_ms("2026-11-29T03:08:08.5+01:00"),
            Some(ms + 500)
        );
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }
}
