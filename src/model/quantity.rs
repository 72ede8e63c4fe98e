//! Kubernetes resource quantities ("250m", "1.5Gi", "2e3") to integers and back.
//!
//! CPU is kept in millicores and memory in bytes, both as `i64`, rounded up like Kubernetes'
//! own `MilliValue()` / `Value()`. Parsing is exact integer arithmetic (no floats), so "0.1" CPU is
//! exactly 100 millicores.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid quantity {value:?}: {why} (expected e.g. 250m, 2, 1.5Gi, 512Mi, 1e3)")]
pub struct QuantityError {
    pub value: String,
    pub why: &'static str,
}

/// Parses a quantity and returns `ceil(quantity * scale)`, where `scale` is 1000 for millicores
/// and 1 for bytes.
fn parse_scaled(input: &str, scale: i128) -> Result<i64, QuantityError> {
    let err = |why| QuantityError {
        value: input.to_string(),
        why,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    let (negative, s) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    if number.is_empty() || number == "." {
        return Err(err("no number"));
    }
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if frac_part.contains('.') {
        return Err(err("more than one decimal point"));
    }
    if int_part.len() + frac_part.len() > 30 {
        return Err(err("too many digits"));
    }
    let digits: i128 = format!("{int_part}{frac_part}")
        .parse()
        .map_err(|_| err("bad number"))?;
    // value = digits / 10^frac_len * num / den
    let mut num: i128 = 1;
    let mut den: i128 = 10i128.pow(frac_part.len() as u32);
    match suffix {
        "" => {}
        "n" => den *= 1_000_000_000,
        "u" => den *= 1_000_000,
        "m" => den *= 1_000,
        "k" => num = 1_000,
        "M" => num = 1_000_000,
        "G" => num = 1_000_000_000,
        "T" => num = 1_000_000_000_000,
        "P" => num = 1_000_000_000_000_000,
        "E" => num = 1_000_000_000_000_000_000,
        "Ki" => num = 1 << 10,
        "Mi" => num = 1 << 20,
        "Gi" => num = 1 << 30,
        "Ti" => num = 1 << 40,
        "Pi" => num = 1 << 50,
        "Ei" => num = 1 << 60,
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().map_err(|_| err("bad exponent"))?;
            if e.abs() > 18 {
                return Err(err("exponent out of range"));
            }
            if e >= 0 {
                num = 10i128.pow(e as u32);
            } else {
                den *= 10i128.pow((-e) as u32);
            }
        }
        _ => return Err(err("unknown suffix")),
    }
    let scaled = digits
        .checked_mul(num)
        .and_then(|v| v.checked_mul(scale))
        .ok_or_else(|| err("too large"))?;
    // Round up, as Kubernetes does when it turns a quantity into an integer.
    let value = (scaled + den - 1) / den;
    let value = i64::try_from(value).map_err(|_| err("too large"))?;
    Ok(if negative { -value } else { value })
}

/// "250m" -> 250, "2" -> 2000, "0.1" -> 100.
pub fn parse_cpu_millis(s: &str) -> Result<i64, QuantityError> {
    parse_scaled(s, 1000)
}

/// "1Gi" -> 1073741824, "500M" -> 500000000, "1.5Gi" -> 1610612736.
pub fn parse_memory_bytes(s: &str) -> Result<i64, QuantityError> {
    parse_scaled(s, 1)
}

/// 250 -> "250m", 2000 -> "2", 1500 -> "1500m" (kubectl's form).
pub fn format_cpu_millis(millis: i64) -> String {
    if millis % 1000 == 0 {
        format!("{}", millis / 1000)
    } else {
        format!("{millis}m")
    }
}

/// Bytes in the largest binary unit that keeps one decimal: 1610612736 -> "1.5Gi",
/// 268435456 -> "256Mi", 1000 -> "1000". Exact values print without a decimal.
pub fn format_memory_bytes(bytes: i64) -> String {
    const UNITS: [(&str, i64); 5] = [
        ("Pi", 1 << 50),
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    let magnitude = bytes.unsigned_abs() as i64;
    for (suffix, unit) in UNITS {
        if magnitude >= unit {
            if bytes % unit == 0 {
                return format!("{}{suffix}", bytes / unit);
            }
            let tenths =
                (bytes as i128 * 10 + (unit as i128 / 2) * bytes.signum() as i128) / unit as i128;
            if tenths % 10 == 0 {
                return format!("{}{suffix}", tenths / 10);
            }
            return format!("{}.{}{suffix}", tenths / 10, (tenths % 10).abs());
        }
    }
    format!("{bytes}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu() {
        for (input, want) in [
            ("250m", 250),
            ("2", 2000),
            ("0.1", 100),
            ("1.5", 1500),
            ("100u", 1), // rounds up
            ("1e3", 1_000_000),
            ("2k", 2_000_000),
            ("0", 0),
        ] {
            assert_eq!(parse_cpu_millis(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn parses_memory() {
        for (input, want) in [
            ("1Gi", 1 << 30),
            ("1.5Gi", 1_610_612_736),
            ("128974848", 128_974_848),
            ("129e6", 129_000_000),
            ("123Mi", 128_974_848),
            ("500M", 500_000_000),
            ("1k", 1000),
            ("1Ki", 1024),
        ] {
            assert_eq!(parse_memory_bytes(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejects_garbage_with_the_value_named() {
        for input in ["", "abc", "1.2.3", "5Xi", "1e99", "m"] {
            let err = parse_memory_bytes(input).unwrap_err();
            assert_eq!(err.value, input);
            assert!(err.to_string().contains("expected e.g."));
        }
    }

    #[test]
    fn formats_like_kubectl() {
        assert_eq!(format_cpu_millis(250), "250m");
        assert_eq!(format_cpu_millis(2000), "2");
        assert_eq!(format_cpu_millis(0), "0");
        assert_eq!(format_memory_bytes(1_610_612_736), "1.5Gi");
        assert_eq!(format_memory_bytes(268_435_456), "256Mi");
        assert_eq!(format_memory_bytes(1000), "1000");
        assert_eq!(format_memory_bytes(0), "0");
        assert_eq!(format_memory_bytes(1_000_000_000), "953.7Mi");
    }
}
