//! Seeded generation helpers: one ChaCha8 stream per purpose, so adding data
//! of one kind does not shift the values of another.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The first business date of generated data: `configured`, or else so that
/// the `days` days end the day before yesterday (UTC). A business day's
/// activity runs past its local midnight (orders close and are modified
/// until about 22:30 local, which is 10:30 UTC the next day at UTC-12), so
/// data ending *yesterday* would still lie partly in the future early in the
/// UTC day, and a pull up to now would see only some of it depending on the
/// hour it ran. Ending a day earlier, every generated instant is in the past
/// whatever the time zone and the hour, and still inside the hub's "recent"
/// pull windows. Records differ only in their dates between runs: ids,
/// amounts and local times of day come from the seed alone. Set a date for
/// runs that must be byte-for-byte reproducible.
pub fn first_date(configured: Option<Date>, days: u32) -> Date {
    configured.unwrap_or_else(|| {
        let today = TimeZone::UTC.to_datetime(Timestamp::now()).date();
        add_days(today, -i64::from(days) - 1)
    })
}

/// A generator for one purpose (`stream`) of one seed.
pub(crate) fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// A random (v4-shaped) UUID from `rng`, hyphenated.
pub(crate) fn guid(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// A random uppercase alphanumeric id of `len` characters (Square-style ids).
pub(crate) fn alnum_id(rng: &mut ChaCha8Rng, len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// A mixed-case alphanumeric id of `len` characters.
pub(crate) fn base62_id(rng: &mut ChaCha8Rng, len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// The instant of a local wall-clock time on `date` in `tz` (gaps resolve
/// forward, folds to the earlier instant).
pub(crate) fn local(
    date: Date,
    seconds_after_midnight: i64,
    millis: i64,
    tz: &TimeZone,
) -> Timestamp {
    let midnight = DateTime::from(date);
    let dt = midnight
        .checked_add(jiff::SignedDuration::from_millis(
            seconds_after_midnight * 1000 + millis,
        ))
        .unwrap_or(midnight);
    tz.to_zoned_datetime(dt)
        .map(|z| z.timestamp())
        .unwrap_or_else(|_| Timestamp::UNIX_EPOCH)
}

/// The date `days` after `date`.
pub(crate) fn add_days(date: Date, days: i64) -> Date {
    use jiff::ToSpan;
    date.checked_add(days.days()).unwrap_or(date)
}
