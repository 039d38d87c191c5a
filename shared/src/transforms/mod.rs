//! What every provider's transforms share: the error naming record and
//! field, and exact decimal, minor-unit and timestamp parsing. The transforms
//! themselves (a provider's payload in, the internal model out; no I/O, no
//! AWS or HTTP types) live in each provider's folder
//! (`providers/<name>/transform.rs`), with their wire structs private to it;
//! what comes out is `crate::model`.
//!
//! Money: JSON numbers are read through their shortest decimal text (what
//! `serde_json` prints back), which is exact for every amount of up to 15
//! significant digits; strings are parsed as decimals; minor units are
//! scaled by the currency's exponent. No arithmetic is done in floating point.

use crate::model::Provider;
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde_json::Value;
use std::str::FromStr;

/// A payload that cannot be turned into a record, naming the record and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{provider} record {id}: {field}: {reason}")]
pub struct TransformError {
    /// Whose payload.
    pub provider: Provider,
    /// The record's id, where known.
    pub id: String,
    /// The field at fault.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl TransformError {
    pub(crate) fn new(
        provider: Provider,
        id: &str,
        field: &str,
        reason: impl Into<String>,
    ) -> Self {
        TransformError {
            provider,
            id: id.to_string(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

/// A decimal from a JSON number or string; `None` for null or absent.
pub fn decimal(v: &Value) -> Result<Option<Decimal>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => Decimal::from_str(&n.to_string())
            .or_else(|_| Decimal::from_scientific(&n.to_string()))
            .map(Some)
            .map_err(|e| format!("{n} is not a decimal amount: {e}")),
        Value::String(s) => Decimal::from_str(s.trim())
            .map(Some)
            .map_err(|e| format!("{s:?} is not a decimal amount: {e}")),
        other => Err(format!("{other} is not an amount")),
    }
}

/// A decimal as an exact JSON number (what providers that take numbers,
/// not strings, are sent), or why it cannot be one.
pub fn json_number(d: Decimal) -> Result<Value, String> {
    let text = d.normalize().to_string();
    let n = serde_json::Number::from_str(&text).map_err(|e| format!("{text}: {e}"))?;
    match Decimal::from_str(&n.to_string()) {
        Ok(back) if back == d => Ok(Value::Number(n)),
        _ => Err(format!("{text} cannot be sent as an exact JSON number")),
    }
}

/// Minor units (cents) to a decimal amount in `currency`.
pub fn from_minor_units(amount: i64, currency: &str) -> Decimal {
    Decimal::new(amount, currency_exponent(currency))
}

/// ISO 4217 minor-unit exponent (the common exceptions; 2 otherwise).
pub fn currency_exponent(currency: &str) -> u32 {
    match currency.to_ascii_uppercase().as_str() {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" | "PYG" => 0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "IQD" | "LYD" => 3,
        _ => 2,
    }
}

/// Parses the timestamps providers send: RFC 3339 (`Z` or `+hh:mm`), basic
/// offsets (`+0000`, Toast), with or without fractional seconds, and bare
/// date-times (taken as UTC, MarketMan's `yyyy/mm/dd hh:mm:ss` included).
pub fn parse_timestamp(s: &str) -> Result<Timestamp, String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(z) = jiff::fmt::strtime::parse(fmt, s).and_then(|p| p.to_timestamp()) {
            return Ok(z);
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y/%m/%d %H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(dt) = jiff::civil::DateTime::strptime(fmt, s)
            && let Ok(z) = dt.to_zoned_datetime(jiff::tz::TimeZone::UTC)
        {
            return Ok(z.timestamp());
        }
    }
    Err(format!("{s:?} is not a timestamp"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_with_or_without_fractions_and_offsets() {
        let want: Timestamp = "2019-02-24T13:48:44Z".parse().unwrap();
        for s in [
            "2019-02-24T13:48:44Z",
            "2019-02-24T13:48:44.000Z",
            "2019-02-24T13:48:44.000+0000",
            "2019-02-24T13:48:44+0000",
            "2019-02-24T15:48:44+02:00",
            "2019-02-24T08:48:44.000-0500",
            "2019-02-24T13:48:44",
            "2019/02/24 13:48:44",
        ] {
            assert_eq!(parse_timestamp(s).unwrap(), want, "{s}");
        }
        assert_eq!(
            parse_timestamp("2019-02-24T13:48:44.206+0000").unwrap(),
            "2019-02-24T13:48:44.206Z".parse::<Timestamp>().unwrap()
        );
        assert!(parse_timestamp("yesterday").is_err());
    }

    #[test]
    fn amounts_are_exact_decimals() {
        assert_eq!(
            decimal(&serde_json::json!(1.06))
                .unwrap()
                .unwrap()
                .to_string(),
            "1.06"
        );
        assert_eq!(
            decimal(&serde_json::json!(0.1)).unwrap().unwrap() * Decimal::from(3),
            Decimal::from_str("0.3").unwrap()
        );
        assert_eq!(
            decimal(&serde_json::json!("12.50"))
                .unwrap()
                .unwrap()
                .to_string(),
            "12.50"
        );
        assert_eq!(
            decimal(&serde_json::json!(1234567890123.45))
                .unwrap()
                .unwrap()
                .to_string(),
            "1234567890123.45"
        );
        assert_eq!(decimal(&Value::Null).unwrap(), None);
        assert!(decimal(&serde_json::json!("abc")).is_err());
        assert_eq!(from_minor_units(1234, "USD").to_string(), "12.34");
        assert_eq!(from_minor_units(1234, "JPY").to_string(), "1234");
        assert_eq!(from_minor_units(-5, "usd").to_string(), "-0.05");
    }
}
