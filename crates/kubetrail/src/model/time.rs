//! Times and durations: as Kubernetes sends them, as users type them, as reports print them.
//!
//! Kubernetes sends RFC 3339 strings; kubetrail keeps milliseconds since the Unix epoch (UTC) and
//! prints RFC 3339 UTC. chrono is the one time library past the API boundary.
//!
//! One parser serves every command: `--since`/`--until` of queries and exports, `--step` of node
//! utilisation, and the recorder's and pruner's own intervals (`parse_duration("30s")`). Parsing
//! is strict and the errors name the bad value and say what is accepted, because a silently
//! misread window gives a report that looks right and is not.
//!
//! All times are milliseconds since the Unix epoch (`i64`), the unit the database stores.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use thiserror::Error;

/// What the accepted forms look like, repeated in every error message.
const DURATION_FORMS: &str =
    "a duration such as 90s, 30m, 2h, 7d, 1w or 1h30m (units: ms, s, m, h, d, w)";
const TIME_FORMS: &str = "a duration before now (90s, 30m, 2h, 7d) or an RFC 3339 time \
                          (2024-05-01T22:00:00Z, 2024-05-01T22:00:00+02:00) or a date (2024-05-01, UTC)";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TimeError {
    #[error("invalid duration {value:?}: {why}; expected {DURATION_FORMS}")]
    Duration { value: String, why: &'static str },
    #[error("invalid time {flag} {value:?}; expected {TIME_FORMS}")]
    Time { flag: &'static str, value: String },
    #[error(
        "--until {until} ({until_at}) is before --since {since} ({since_at}); swap them or widen the window"
    )]
    Reversed {
        since: String,
        since_at: String,
        until: String,
        until_at: String,
    },
    #[error(
        "--since {since} ({since_at}) is in the future, so the window up to now is empty; give a \
         time in the past, or pass --until too"
    )]
    FutureSince { since: String, since_at: String },
}

/// Parses "90s", "30m", "2h", "7d", "1w", "250ms" and sums like "1h30m". Whitespace around the
/// value is ignored; a bare number is refused (is "30" seconds or minutes?).
pub fn parse_duration(input: &str) -> Result<Duration, TimeError> {
    parse_duration_ms(input).map(|ms| Duration::from_millis(ms as u64))
}

/// [`parse_duration`] in milliseconds, the unit of the database.
pub fn parse_duration_ms(input: &str) -> Result<i64, TimeError> {
    let err = |why| TimeError::Duration {
        value: input.to_string(),
        why,
    };
    let mut rest = input.trim();
    if rest.is_empty() {
        return Err(err("it is empty"));
    }
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(err("expected a number"));
        }
        let number: i64 = rest[..digits]
            .parse()
            .map_err(|_| err("the number is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms: i64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "" => return Err(err("a unit is missing")),
            _ => return Err(err("unknown unit")),
        };
        rest = &rest[unit_len..];
        total = number
            .checked_mul(unit_ms)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| err("the duration is too large"))?;
    }
    Ok(total)
}

/// Parses one end of a window: a duration before `now_ms`, an RFC 3339 time, or a UTC date.
/// `flag` is the flag's name, for the message.
pub fn parse_time_ms(flag: &'static str, input: &str, now_ms: i64) -> Result<i64, TimeError> {
    let value = input.trim();
    if let Ok(ago) = parse_duration_ms(value) {
        return Ok(now_ms.saturating_sub(ago));
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Ok(at.timestamp_millis());
    }
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        && let Some(midnight) = date.and_hms_opt(0, 0, 0)
    {
        return Ok(midnight.and_utc().timestamp_millis());
    }
    Err(TimeError::Time {
        flag,
        value: input.to_string(),
    })
}

/// A half-open time window `[since_ms, until_ms)`; a missing end is unbounded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

impl Window {
    /// Parses `--since` and `--until` against one `now_ms`, so "2h" and "1h" are measured from
    /// the same instant, and refuses a window that ends before it starts.
    pub fn parse(
        since: Option<&str>,
        until: Option<&str>,
        now_ms: i64,
    ) -> Result<Window, TimeError> {
        let since_ms = since
            .map(|s| parse_time_ms("--since", s, now_ms))
            .transpose()?;
        let until_ms = until
            .map(|s| parse_time_ms("--until", s, now_ms))
            .transpose()?;
        if let (Some(s), None) = (since_ms, until_ms)
            && s > now_ms
        {
            return Err(TimeError::FutureSince {
                since: since.unwrap_or_default().to_string(),
                since_at: format_time_ms(s),
            });
        }
        if let (Some(s), Some(u)) = (since_ms, until_ms)
            && u < s
        {
            return Err(TimeError::Reversed {
                since: since.unwrap_or_default().to_string(),
                since_at: format_time_ms(s),
                until: until.unwrap_or_default().to_string(),
                until_at: format_time_ms(u),
            });
        }
        Ok(Window { since_ms, until_ms })
    }

    /// Whether `[start_ms, end_ms)` (end `None` = still open) overlaps the window.
    pub fn overlaps(&self, start_ms: i64, end_ms: Option<i64>) -> bool {
        self.until_ms.is_none_or(|u| start_ms < u)
            && self.since_ms.is_none_or(|s| end_ms.is_none_or(|e| e > s))
    }
}

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

/// RFC 3339 UTC, with a fraction only when there is one: "2024-05-01T22:00:00Z". The human form,
/// for tables (Kubernetes' own times have whole seconds).
pub fn format_time_short(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(at) => at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => ms.to_string(),
    }
}

/// A duration the way kubectl prints ages, with at most two units: "850ms", "45s", "12m5s",
/// "3h12m", "2d3h".
pub fn format_duration_ms(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    const UNITS: [(&str, u64); 4] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ];
    if ms < 1_000 {
        return format!("{sign}{ms}ms");
    }
    for (i, (name, size)) in UNITS.iter().enumerate() {
        if ms >= *size {
            let whole = ms / size;
            let mut out = format!("{sign}{whole}{name}");
            if let Some((next_name, next_size)) = UNITS.get(i + 1) {
                let rest = (ms % size) / next_size;
                if rest > 0 {
                    out.push_str(&format!("{rest}{next_name}"));
                }
            }
            return out;
        }
    }
    unreachable!("ms >= 1000 matches the seconds unit")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_714_600_000_000; // 2024-05-01T21:46:40Z

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

    #[test]
    fn parses_durations() {
        for (input, want) in [
            ("90s", 90_000),
            ("30m", 1_800_000),
            ("2h", 7_200_000),
            ("7d", 604_800_000),
            ("1w", 604_800_000),
            ("250ms", 250),
            ("1h30m", 5_400_000),
            (" 2h ", 7_200_000),
            ("0s", 0),
        ] {
            assert_eq!(parse_duration_ms(input), Ok(want), "{input}");
        }
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    }

    #[test]
    fn refuses_malformed_durations_naming_the_value() {
        for input in [
            "",
            "30",
            "h",
            "2x",
            "1.5h",
            "-2h",
            "2h30",
            "99999999999999999999s",
        ] {
            let err = parse_duration_ms(input).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(&format!("{input:?}")), "{text}");
            assert!(text.contains("90s, 30m, 2h, 7d"), "{text}");
        }
    }

    #[test]
    fn parses_times_relative_absolute_and_dates() {
        assert_eq!(parse_time_ms("--since", "2h", NOW), Ok(NOW - 7_200_000));
        assert_eq!(
            parse_time_ms("--since", "2024-05-01T22:00:00Z", NOW),
            Ok(1_714_600_800_000)
        );
        assert_eq!(
            parse_time_ms("--since", "2024-05-02T00:00:00+02:00", NOW),
            Ok(1_714_600_800_000)
        );
        assert_eq!(
            parse_time_ms("--since", "2024-05-01T22:00:00.250Z", NOW),
            Ok(1_714_600_800_250)
        );
        assert_eq!(
            parse_time_ms("--since", "2024-05-01", NOW),
            Ok(1_714_521_600_000)
        );
        let err = parse_time_ms("--since", "yesterday", NOW)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--since \"yesterday\""), "{err}");
        assert!(err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn a_reversed_window_names_both_values() {
        let err = Window::parse(Some("1h"), Some("2h"), NOW)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--until 2h") && err.contains("--since 1h"),
            "{err}"
        );
        let ok = Window::parse(Some("2h"), Some("1h"), NOW).unwrap();
        assert_eq!(
            ok,
            Window {
                since_ms: Some(NOW - 7_200_000),
                until_ms: Some(NOW - 3_600_000)
            }
        );
        assert_eq!(Window::parse(None, None, NOW).unwrap(), Window::default());
    }

    #[test]
    fn overlap_is_half_open() {
        let w = Window {
            since_ms: Some(100),
            until_ms: Some(200),
        };
        assert!(w.overlaps(50, None));
        assert!(w.overlaps(150, Some(160)));
        assert!(!w.overlaps(200, None), "starts at the end");
        assert!(!w.overlaps(0, Some(100)), "ends at the start");
        assert!(w.overlaps(0, Some(101)));
    }

    #[test]
    fn formats_times_and_durations() {
        assert_eq!(
            format_time_ms(1_714_600_800_000),
            "2024-05-01T22:00:00.000Z"
        );
        assert_eq!(format_time_short(1_714_600_800_000), "2024-05-01T22:00:00Z");
        assert_eq!(
            format_time_short(1_714_600_800_250),
            "2024-05-01T22:00:00.250Z"
        );
        for (ms, want) in [
            (850, "850ms"),
            (45_000, "45s"),
            (725_000, "12m5s"),
            (720_000, "12m"),
            (11_520_000, "3h12m"),
            (183_600_000, "2d3h"),
        ] {
            assert_eq!(format_duration_ms(ms), want);
        }
    }
}
