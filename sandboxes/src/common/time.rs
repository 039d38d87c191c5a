//! The date and time formats each provider writes and reads.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// Toast: `2019-02-24T13:48:44.206+0000` (UTC, milliseconds, offset without colon).
pub fn toast(ts: Timestamp) -> String {
    ts.to_zoned_datetime(TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S%.3f%z")
        .to_string()
}

/// Parses a Toast query date: `2016-01-01T14:13:12.000+0400` (milliseconds
/// optional; the offset may be written with a colon or as `Z`).
pub fn parse_toast(s: &str) -> Option<Timestamp> {
    let s = s.trim();
    if let Some(base) = s.strip_suffix('Z') {
        return Timestamp::strptime("%Y-%m-%dT%H:%M:%S%.f%z", format!("{base}+0000")).ok();
    }
    Timestamp::strptime("%Y-%m-%dT%H:%M:%S%.f%z", s)
        .or_else(|_| Timestamp::strptime("%Y-%m-%dT%H:%M:%S%.f%:z", s))
        .ok()
}

/// RFC 3339 in UTC with milliseconds: `2021-10-13T19:34:33.524Z` (Square).
pub fn rfc3339_ms(ts: Timestamp) -> String {
    ts.to_zoned_datetime(TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Parses RFC 3339 (any offset, optional fraction).
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    s.trim().parse::<Timestamp>().ok()
}

/// QuickBooks `MetaData` times: `2015-07-29T09:25:02-07:00`, in `tz`.
pub fn qbo(ts: Timestamp, tz: &TimeZone) -> String {
    ts.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// QuickBooks response `time`: `2015-07-29T09:25:04.214-07:00`.
pub fn qbo_ms(ts: Timestamp, tz: &TimeZone) -> String {
    ts.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
        .to_string()
}

/// MarketMan: `2025/02/18 00:00:00`, UTC.
pub fn marketman(ts: Timestamp) -> String {
    ts.to_zoned_datetime(TimeZone::UTC)
        .strftime("%Y/%m/%d %H:%M:%S")
        .to_string()
}

/// Parses a MarketMan UTC date `yyyy/mm/dd hh:mm:ss`.
pub fn parse_marketman(s: &str) -> Option<Timestamp> {
    jiff::civil::DateTime::strptime("%Y/%m/%d %H:%M:%S", s.trim())
        .ok()
        .and_then(|dt| TimeZone::UTC.to_zoned_datetime(dt).ok())
        .map(|z| z.timestamp())
}

/// Xero's .NET JSON date: `/Date(1551139200000+0000)/`.
pub fn xero(ts: Timestamp) -> String {
    format!("/Date({}+0000)/", ts.as_millisecond())
}

/// Xero's `DateString`: `2019-02-26T00:00:00`.
pub fn xero_date_string(d: Date) -> String {
    d.strftime("%Y-%m-%dT00:00:00").to_string()
}

/// Parses a Xero date as sent by clients: `2019-02-26`, `2019-02-26T00:00:00`
/// or `/Date(1551139200000+0000)/` (the date is taken in UTC).
pub fn parse_xero_date(s: &str) -> Option<Date> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix("/Date(").and_then(|r| r.strip_suffix(")/")) {
        let digits: String = inner
            .chars()
            .enumerate()
            .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && *c == '-'))
            .map(|(_, c)| c)
            .collect();
        let ms: i64 = digits.parse().ok()?;
        return Timestamp::from_millisecond(ms)
            .ok()
            .map(|t| TimeZone::UTC.to_datetime(t).date());
    }
    let date_part = s.get(..10)?;
    date_part.parse::<Date>().ok()
}

/// Business date as Toast writes it: `20190224`.
pub fn yyyymmdd(d: Date) -> i64 {
    i64::from(d.year()) * 10_000 + i64::from(d.month()) * 100 + i64::from(d.day())
}

/// Parses Toast's `businessDate=yyyyMMdd`.
pub fn parse_yyyymmdd(s: &str) -> Option<Date> {
    Date::strptime("%Y%m%d", s.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toast_dates_round_trip() {
        let ts = parse_toast("2016-01-01T14:13:12.000+0400").unwrap();
        assert_eq!(toast(ts), "2016-01-01T10:13:12.000+0000");
        assert_eq!(parse_toast("2016-01-01T10:13:12.000Z"), Some(ts));
        assert_eq!(parse_toast("2016-01-01T14:13:12.000+04:00"), Some(ts));
        assert_eq!(parse_toast("2016-01-01T14:13:12.000 0400"), None);
    }

    #[test]
    fn other_formats() {
        let ts: Timestamp = "2021-10-13T19:34:33.524Z".parse().unwrap();
        assert_eq!(rfc3339_ms(ts), "2021-10-13T19:34:33.524Z");
        let la = TimeZone::get("America/Los_Angeles").unwrap();
        assert_eq!(qbo(ts, &la), "2021-10-13T12:34:33-07:00");
        assert_eq!(qbo_ms(ts, &la), "2021-10-13T12:34:33.524-07:00");
        assert_eq!(marketman(ts), "2021/10/13 19:34:33");
        assert_eq!(
            parse_marketman("2021/10/13 19:34:33").unwrap().as_second(),
            ts.as_second()
        );
        assert_eq!(xero(ts), "/Date(1634153673524+0000)/");
        let d = parse_xero_date("/Date(1551139200000+0000)/").unwrap();
        assert_eq!(xero_date_string(d), "2019-02-26T00:00:00");
        assert_eq!(parse_xero_date("2019-02-26"), Some(d));
        assert_eq!(yyyymmdd(d), 20190226);
        assert_eq!(parse_yyyymmdd("20190226"), Some(d));
    }
}
