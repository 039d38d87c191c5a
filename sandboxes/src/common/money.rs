//! Money on the wire, exactly.
//!
//! Amounts live as integer cents (or `rust_decimal::Decimal`) and become JSON
//! numbers only at the edge. Square sends integer cents; Toast, QuickBooks and
//! Xero send decimal numbers with at most two places (`35.0`, `1.06`).

use rust_decimal::Decimal;
use serde_json::Value;

/// Exact powers of ten as `f64` (every one up to 1e22 is representable).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `mantissa / 10^scale` as the nearest `f64`.
///
/// Both operands are exact (mantissa below 2^53, power of ten at most 1e22),
/// and IEEE division rounds correctly, so the result is the double nearest the
/// decimal; serde_json prints doubles in their shortest round-trip form, which
/// is then the decimal's own digits (`106 / 100` prints `1.06`). No float is
/// ever added to another.
#[allow(clippy::float_arithmetic)]
fn scaled(mantissa: i64, scale: u32) -> f64 {
    let power = POW10[usize::try_from(scale).unwrap_or(22).min(22)];
    mantissa as f64 / power
}

/// Integer cents as a JSON number with at most two decimals.
pub fn cents_json(cents: i64) -> Value {
    number(scaled(cents, 2))
}

/// A decimal as a JSON number (exact for the magnitudes money uses).
pub fn decimal_json(d: Decimal) -> Value {
    let d = d.normalize();
    match i64::try_from(d.mantissa()) {
        Ok(m) if m.unsigned_abs() < (1u64 << 53) => number(scaled(m, d.scale())),
        // Beyond money magnitudes: fall back to the nearest double.
        _ => d
            .to_string()
            .parse::<f64>()
            .map(number)
            .unwrap_or(Value::Null),
    }
}

fn number(f: f64) -> Value {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Integer cents as a `Decimal` with two places.
pub fn cents_decimal(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

/// A `Decimal` with at most two places as integer cents; `None` if it has
/// more (sub-cent) precision or does not fit.
pub fn decimal_cents(d: Decimal) -> Option<i64> {
    let d = d.normalize();
    if d.scale() > 2 {
        return None;
    }
    let cents = d.checked_mul(Decimal::ONE_HUNDRED)?;
    i64::try_from(cents.mantissa() / 10i128.pow(cents.scale())).ok()
}

/// A JSON number or numeric string as a `Decimal`, from its text (no float
/// round trip).
pub fn json_decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => parse_decimal(&n.to_string()),
        Value::String(s) => parse_decimal(s.trim()),
        _ => None,
    }
}

/// A JSON *number* as a `Decimal` (a numeric string is not one): for the
/// APIs that take numbers and refuse strings (MarketMan's quantities and
/// prices).
pub fn json_number(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => parse_decimal(&n.to_string()),
        _ => None,
    }
}

fn parse_decimal(s: &str) -> Option<Decimal> {
    use std::str::FromStr;
    Decimal::from_str(s)
        .or_else(|_| Decimal::from_scientific(s))
        .ok()
}

/// Half-up rounding to two places (away from zero on .5), as invoices do.
pub fn round_cents(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_print_as_their_decimal_digits() {
        for cents in (-100_000i64..100_000).chain([12_345_678_901, 99_999_999_999]) {
            let expected = {
                let sign = if cents < 0 { "-" } else { "" };
                let abs = cents.unsigned_abs();
                let (whole, frac) = (abs / 100, abs % 100);
                let s = format!("{sign}{whole}.{frac:02}");
                let s = s.trim_end_matches('0').to_string();
                if s.ends_with('.') { format!("{s}0") } else { s }
            };
            let got = cents_json(cents).to_string();
            let expected = if expected == "-0.0" {
                "0.0".to_string()
            } else {
                expected
            };
            assert_eq!(got, expected, "cents {cents}");
        }
    }

    #[test]
    fn decimals_round_trip_through_json() {
        for s in ["35.0", "1.06", "337.5", "4.5", "0.0625", "-1091.23", "0.01"] {
            let d: Decimal = s.parse().unwrap();
            let v = decimal_json(d);
            assert_eq!(json_decimal(&v).unwrap(), d, "{s}");
        }
    }

    #[test]
    fn sub_cent_amounts_have_no_cents() {
        assert_eq!(decimal_cents("1.06".parse().unwrap()), Some(106));
        assert_eq!(decimal_cents("35.0".parse().unwrap()), Some(3500));
        assert_eq!(decimal_cents("-2".parse().unwrap()), Some(-200));
        assert_eq!(decimal_cents("0.30000000000000004".parse().unwrap()), None);
    }
}
