//! Byte sizes as users type them (`--max-db-size 2GiB`) and as reports print them.
//!
//! Units follow the two conventions people actually type: decimal `K`/`M`/`G`/`T` (also `KB`,
//! `MB`, ...) and binary `Ki`/`Mi`/`Gi`/`Ti` (also `KiB`, `MiB`, ...), case-insensitive, with an
//! optional fraction ("1.5G"). A bare number is refused, as with durations: is "2000" bytes or
//! megabytes? Parsing is exact integer arithmetic.

use thiserror::Error;

const SIZE_FORMS: &str = "a size such as 500MB, 2GiB, 1.5G or 512Mi (units: B, K, M, G, T and \
                          KiB, MiB, GiB, TiB; K/M/G/T are powers of 1000, Ki/Mi/Gi/Ti of 1024)";

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid size {value:?}: {why}; expected {SIZE_FORMS}")]
pub struct SizeError {
    pub value: String,
    pub why: &'static str,
}

/// Parses "2GiB", "500MB", "1.5G", "512Mi", "4096B" into bytes (rounded down to a whole byte).
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let err = |why| SizeError {
        value: input.to_string(),
        why,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(number_end);
    let unit = unit.trim();
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(err("expected a number"));
    }
    if frac_part.contains('.') {
        return Err(err("more than one decimal point"));
    }
    if int_part.len() + frac_part.len() > 24 {
        return Err(err("the number is too large"));
    }
    let multiplier: u128 = match unit.to_ascii_lowercase().as_str() {
        "" => return Err(err("a unit is missing")),
        "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => return Err(err("unknown unit")),
    };
    let digits: u128 = format!("{int_part}{frac_part}")
        .parse()
        .map_err(|_| err("expected a number"))?;
    let scale = 10u128.pow(frac_part.len() as u32);
    let bytes = digits * multiplier / scale;
    u64::try_from(bytes).map_err(|_| err("the size is too large"))
}

/// Bytes in the largest binary unit, with one decimal where it matters: "1.5 GiB", "800 KiB",
/// "512 B". For reports; `parse_size` reads it back.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (suffix, unit) in UNITS {
        if bytes >= unit {
            let tenths = (bytes as u128 * 10 + unit as u128 / 2) / unit as u128;
            return if tenths.is_multiple_of(10) {
                format!("{} {suffix}", tenths / 10)
            } else {
                format!("{}.{} {suffix}", tenths / 10, tenths % 10)
            };
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_and_binary_units() {
        for (input, want) in [
            ("2GiB", 2 << 30),
            ("2gib", 2 << 30),
            ("2Gi", 2 << 30),
            ("500MB", 500_000_000),
            ("500 MB", 500_000_000),
            ("1.5G", 1_500_000_000),
            ("1.5GiB", 3 << 29),
            ("512Mi", 512 << 20),
            ("4096B", 4096),
            ("10k", 10_000),
            ("1TiB", 1 << 40),
            (".5K", 500),
        ] {
            assert_eq!(parse_size(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn refuses_what_is_ambiguous_or_malformed_and_names_it() {
        for (input, why) in [
            ("", "it is empty"),
            ("2000", "a unit is missing"),
            ("GiB", "expected a number"),
            ("2XB", "unknown unit"),
            ("1.2.3G", "more than one decimal point"),
            ("-1G", "expected a number"),
            ("99999999999999TiB", "the size is too large"),
        ] {
            let err = parse_size(input).unwrap_err();
            assert_eq!(err.why, why, "{input}");
            assert!(err.to_string().contains(&format!("{input:?}")), "{err}");
        }
    }

    #[test]
    fn formats_in_binary_units_and_round_trips() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(800 << 10), "800 KiB");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
        assert_eq!(parse_size(&format_size(3 << 29)), Ok(3 << 29));
    }
}
