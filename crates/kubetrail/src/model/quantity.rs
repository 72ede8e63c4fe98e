//! Kubernetes resource quantities ("250m", "1.5Gi", "2e3") to integers and back.
//!
//! The grammar is apimachinery's `resource.ParseQuantity` (tests/reference_resources.rs checks
//! it against the Go code): an amount is exact in nano units ([`parse_nanos`]), and CPU is kept
//! in millicores and memory in bytes, both as `i64`, rounded up like Kubernetes' own
//! `MilliValue()` / `Value()`. Parsing is exact integer arithmetic (no floats), so "0.1" CPU is
//! exactly 100 millicores.

use thiserror::Error;

#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("invalid quantity {value:?}: {why} (expected e.g. 250m, 2, 1.5Gi, 512Mi, 1e3)")]
pub struct QuantityError {
    pub value: String,
    pub why: &'static str,
}

/// Nano units per unit: Kubernetes keeps every quantity to a precision of 10^-9 and rounds a
/// finer value up to the next nano unit, so an amount in nano units is exact.
pub const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// The largest amount, in nano units, that kubetrail accepts: `i64::MAX` units. apimachinery
/// caps a binary-suffixed quantity there; a larger decimal one is refused as too large.
const MAX_NANOS: i128 = i64::MAX as i128 * NANOS_PER_UNIT;

/// The suffix of a quantity: a power of ten (`m`, `k`, `e3`) or of two (`Ki`, `Mi`).
#[derive(Clone, Copy)]
enum Unit {
    Decimal(i32),
    Binary(u32),
}

fn unit(suffix: &str) -> Result<Unit, &'static str> {
    Ok(match suffix {
        "" => Unit::Decimal(0),
        "n" => Unit::Decimal(-9),
        "u" => Unit::Decimal(-6),
        "m" => Unit::Decimal(-3),
        "k" => Unit::Decimal(3),
        "M" => Unit::Decimal(6),
        "G" => Unit::Decimal(9),
        "T" => Unit::Decimal(12),
        "P" => Unit::Decimal(15),
        "E" => Unit::Decimal(18),
        "Ki" => Unit::Binary(10),
        "Mi" => Unit::Binary(20),
        "Gi" => Unit::Binary(30),
        "Ti" => Unit::Binary(40),
        "Pi" => Unit::Binary(50),
        "Ei" => Unit::Binary(60),
        exp if exp.len() > 1 && exp.starts_with(['e', 'E']) => {
            // apimachinery reads the exponent as an int64 and keeps its low 32 bits.
            let e: i64 = exp[1..].parse().map_err(|_| "bad exponent")?;
            Unit::Decimal(e as i32)
        }
        _ => return Err("unknown suffix"),
    })
}

/// `digits` (decimal, most significant first) times 2^power, as decimal digits.
fn times_power_of_two(digits: &str, power: u32) -> Vec<u8> {
    let mut value: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
    for _ in 0..power {
        let mut carry = 0;
        for d in value.iter_mut().rev() {
            let doubled = *d * 2 + carry;
            *d = doubled % 10;
            carry = doubled / 10;
        }
        if carry > 0 {
            value.insert(0, carry);
        }
    }
    value
}

/// ceil(digits * 10^power) for non-negative decimal digits without leading zeros, or None when
/// it is at least 10^30 (far past [`MAX_NANOS`]).
fn ceil_scaled(digits: &[u8], power: i64) -> Option<i128> {
    let int_len = digits.len() as i64 + power;
    if int_len > 30 {
        return None;
    }
    let kept = int_len.clamp(0, digits.len() as i64) as usize;
    let mut value: i128 = 0;
    for &d in &digits[..kept] {
        value = value * 10 + i128::from(d);
    }
    for _ in digits.len() as i64..int_len {
        value *= 10;
    }
    if digits[kept..].iter().any(|&d| d != 0) {
        value += 1;
    }
    Some(value)
}

/// ceil(value * 10^power) for 0 < value < 10^38, or None when it overflows an i128 (far past
/// [`MAX_NANOS`]).
fn ceil_times_power_of_ten(value: i128, power: i64) -> Option<i128> {
    if power >= 0 {
        let scale = 10i128.checked_pow(u32::try_from(power).ok()?)?;
        return value.checked_mul(scale);
    }
    match 10i128.checked_pow(u32::try_from(-power).unwrap_or(u32::MAX)) {
        Some(divisor) => Some((value + divisor - 1) / divisor),
        // 10^39 and beyond: any positive value below 10^38 rounds up to one nano unit.
        None => Some(1),
    }
}

/// Parses a quantity the way apimachinery's `resource.ParseQuantity` does and returns its exact
/// amount in nano units. Beyond ParseQuantity, a negative amount (no resource amount the API
/// server accepts is negative) and a decimal amount past `i64::MAX` units are refused: there
/// apimachinery's own `MilliValue()` and `Value()` give wrapped or inconsistent numbers.
pub fn parse_nanos(input: &str) -> Result<i128, QuantityError> {
    let err = |why| QuantityError {
        value: input.to_string(),
        why,
    };
    let bytes = input.as_bytes();
    if bytes.is_empty() {
        return Err(err("empty"));
    }
    let mut pos = 0;
    let negative = bytes[0] == b'-';
    if matches!(bytes[0], b'-' | b'+') {
        pos = 1;
    }
    let digits_from = |mut at: usize| {
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            at += 1;
        }
        at
    };
    let int_end = digits_from(pos);
    let int_part = &input[pos..int_end];
    pos = int_end;
    let mut frac_part = "";
    if pos < bytes.len() && bytes[pos] == b'.' {
        let frac_end = digits_from(pos + 1);
        frac_part = &input[pos + 1..frac_end];
        pos = frac_end;
    }
    // The suffix: letters of the known suffixes, then an optional signed exponent to the end.
    let suffix_start = pos;
    while pos < bytes.len() && b"eEinumkKMGTP".contains(&bytes[pos]) {
        pos += 1;
    }
    if pos < bytes.len() && matches!(bytes[pos], b'-' | b'+') {
        pos += 1;
    }
    pos = digits_from(pos);
    if pos != bytes.len() {
        return Err(err("unexpected character"));
    }
    let unit = unit(&input[suffix_start..]).map_err(err)?;

    // apimachinery takes a fast path for short numbers, which needs no digit at all ("m" and
    // "." are zero); the slow path parses the number as a decimal and needs one.
    let significant_int = int_part.trim_start_matches('0');
    let num_len = significant_int.len().max(1) as i64;
    let denom_len = frac_part.len() as i64;
    // apimachinery's "precision": how many more digits fit the int64 fast path.
    let precision = match unit {
        Unit::Decimal(_) => 18 - (num_len + denom_len),
        Unit::Binary(p) => 14 - num_len - i64::from(p) * 3 / 10,
    };
    let fast = precision >= 0
        && match unit {
            Unit::Decimal(e) => i64::from(e) - denom_len >= -9,
            Unit::Binary(_) => denom_len == 0,
        };

    if !fast && int_part.is_empty() && frac_part.is_empty() {
        return Err(err("no digits"));
    }

    // Up to 18 digits fit an i64, so the quantities pods carry ("250m", "512Mi", "1.5Gi") are
    // scaled in integer arithmetic without allocating; only longer ones take decimal digits.
    // This runs for every container of every pod event (measured in BENCHMARKS.md).
    let nanos = if int_part.len() + frac_part.len() <= 18 {
        let value = int_part
            .bytes()
            .chain(frac_part.bytes())
            .fold(0i128, |v, b| v * 10 + i128::from(b - b'0'));
        if value == 0 {
            return Ok(0);
        }
        if negative {
            return Err(err("negative"));
        }
        match unit {
            Unit::Decimal(e) => ceil_times_power_of_ten(value, i64::from(e) - denom_len + 9),
            // value < 10^18 < 2^60 and p <= 60, so the shift stays below 2^120.
            Unit::Binary(p) => ceil_times_power_of_ten(value << p, 9 - denom_len),
        }
    } else {
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        if digits.is_empty() {
            return Ok(0);
        }
        if negative {
            return Err(err("negative"));
        }
        let (scaled, power) = match unit {
            Unit::Decimal(e) => (
                digits.bytes().map(|b| b - b'0').collect(),
                i64::from(e) - denom_len + 9,
            ),
            Unit::Binary(p) => (times_power_of_two(digits, p), 9 - denom_len),
        };
        ceil_scaled(&scaled, power)
    };
    match (nanos, unit) {
        (Some(nanos), _) if nanos <= MAX_NANOS => Ok(nanos),
        // apimachinery caps a binary quantity at i64::MAX units.
        (_, Unit::Binary(_)) => Ok(MAX_NANOS),
        (_, Unit::Decimal(_)) => Err(err("too large")),
    }
}

/// ceil(nanos / per), as an i64.
fn nanos_to(input: &str, nanos: i128, per: i128) -> Result<i64, QuantityError> {
    i64::try_from((nanos + per - 1).div_euclid(per)).map_err(|_| QuantityError {
        value: input.to_string(),
        why: "too large",
    })
}

/// Exact nano units to millicores, rounded up like `Quantity.MilliValue()`.
pub fn nanos_to_millis(nanos: i128) -> i64 {
    i64::try_from((nanos + 999_999).div_euclid(1_000_000)).unwrap_or(i64::MAX)
}

/// Exact nano units to whole units (bytes), rounded up like `Quantity.Value()`.
pub fn nanos_to_units(nanos: i128) -> i64 {
    i64::try_from((nanos + NANOS_PER_UNIT - 1).div_euclid(NANOS_PER_UNIT)).unwrap_or(i64::MAX)
}

/// "250m" -> 250, "2" -> 2000, "0.1" -> 100.
pub fn parse_cpu_millis(s: &str) -> Result<i64, QuantityError> {
    nanos_to(s, parse_nanos(s)?, 1_000_000)
}

/// "1Gi" -> 1073741824, "500M" -> 500000000, "1.5Gi" -> 1610612736.
pub fn parse_memory_bytes(s: &str) -> Result<i64, QuantityError> {
    nanos_to(s, parse_nanos(s)?, NANOS_PER_UNIT)
}

/// Millicores as Kubernetes prints a cpu quantity (`Quantity.String()` of a DecimalSI amount):
/// 250 -> "250m", 2000 -> "2", 1500 -> "1500m", 2000000 -> "2k".
pub fn format_cpu_millis(millis: i64) -> String {
    if millis == 0 {
        return "0".to_string();
    }
    let mut mantissa = millis;
    let mut exponent = -3;
    while mantissa % 1000 == 0 && exponent < 18 {
        mantissa /= 1000;
        exponent += 3;
    }
    let suffix = match exponent {
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        _ => "E",
    };
    format!("{mantissa}{suffix}")
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
            ("m", 0),
            ("1.", 1000),
            (".5", 500),
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
        for input in ["", "abc", "1.2.3", "5Xi", "1e99", " 1", "-1", "e-10"] {
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

    // Regression tests named after the disagreements with apimachinery that
    // tests/reference_resources.rs found; each failed on the earlier parser.
    #[test]
    fn a_bare_suffix_or_point_is_zero_like_apimachinery() {
        assert_eq!(parse_cpu_millis("m"), Ok(0));
        assert_eq!(parse_memory_bytes("."), Ok(0));
        assert_eq!(parse_memory_bytes("Ki"), Ok(0));
        assert_eq!(parse_memory_bytes("1.G"), Ok(1_000_000_000));
    }

    #[test]
    fn surrounding_spaces_are_refused_like_apimachinery() {
        assert!(parse_cpu_millis(" 1").is_err());
        assert!(parse_cpu_millis("1 ").is_err());
    }

    #[test]
    fn long_digit_strings_and_big_exponents_parse_like_apimachinery() {
        // Finer than a nano unit rounds up to one nano unit, so up to one millicore.
        assert_eq!(parse_cpu_millis("0.000000000000000000000000000001"), Ok(1));
        assert_eq!(parse_cpu_millis("1e-20"), Ok(1));
        assert_eq!(
            parse_memory_bytes("00000000000000000000000000000001"),
            Ok(1)
        );
        // apimachinery keeps the low 32 bits of the exponent.
        assert_eq!(parse_memory_bytes("1e4294967296"), Ok(1));
    }

    #[test]
    fn the_integer_fast_path_agrees_with_the_decimal_digits() {
        // Leading zeros change no amount but push a quantity past 18 digits, onto the path
        // that scales decimal digits; the short form takes the integer path.
        for short in [
            "250m",
            "1",
            "0.1",
            "1.5Gi",
            "512Mi",
            "100u",
            "1n",
            "7e-12",
            "3e20",
            "9Ei",
            "8Ei",
            "1.000000001",
            "0.0000000001",
            "123456789012345678",
            "1.5e-9",
            "2.5Ki",
            "0.5Ki",
            "1E",
            "9.223372036854775807E",
            "9.3E",
            "1e-40",
            "17e38",
        ] {
            let long = format!("{}{short}", "0".repeat(20));
            assert_eq!(
                parse_nanos(short),
                parse_nanos(&long).map_err(|mut e| {
                    e.value = short.to_string();
                    e
                }),
                "{short}"
            );
        }
    }

    #[test]
    fn binary_quantities_past_i64_are_capped_like_apimachinery() {
        assert_eq!(parse_memory_bytes("9Ei"), Ok(i64::MAX));
        assert!(parse_cpu_millis("9Ei").is_err());
        assert!(parse_memory_bytes("10E").is_err());
    }

    #[test]
    fn negative_quantities_are_refused_not_rounded() {
        assert!(parse_cpu_millis("-0.5m").is_err());
        assert_eq!(parse_cpu_millis("-0"), Ok(0));
    }

    #[test]
    fn cpu_prints_with_si_suffixes_like_kubernetes() {
        assert_eq!(format_cpu_millis(2_000_000), "2k");
        assert_eq!(format_cpu_millis(1_500_000), "1500");
        assert_eq!(format_cpu_millis(-250), "-250m");
    }
}
