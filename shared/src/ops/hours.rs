//! Worked hours of a shift: clock-out minus clock-in minus unpaid breaks, on
//! absolute instants, so a shift across midnight or a clock change counts the
//! hours actually worked. An open shift (no clock-out, or a break not ended)
//! has no hours yet and is held until it closes.

use crate::model::TimeEntry;
use jiff::SignedDuration;
use rust_decimal::{Decimal, RoundingStrategy};

/// Worked hours to the hundredth, or `None` while the shift is open.
pub fn worked_hours(e: &TimeEntry) -> Result<Option<Decimal>, String> {
    let Some(out) = e.clock_out else {
        return Ok(None);
    };
    if out <= e.clock_in {
        return Err("clock_out: is not after clock_in".into());
    }
    let mut unpaid = SignedDuration::ZERO;
    for (i, b) in e.breaks.iter().enumerate() {
        let Some(end) = b.end else {
            return Ok(None);
        };
        if end <= b.start {
            return Err(format!("breaks[{i}].end: is not after its start"));
        }
        if b.start < e.clock_in || end > out {
            return Err(format!("breaks[{i}]: falls outside the shift"));
        }
        if !b.paid {
            unpaid += end.duration_since(b.start);
        }
    }
    let worked = out.duration_since(e.clock_in) - unpaid;
    let seconds = Decimal::from(worked.as_secs());
    Ok(Some(
        (seconds / Decimal::from(3600))
            .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ExternalId, TenantId};
    use crate::model::Break;
    use std::str::FromStr;

    fn entry(clock_in: &str, clock_out: Option<&str>, breaks: Vec<Break>) -> TimeEntry {
        TimeEntry {
            tenant: TenantId::new("t").unwrap(),
            id: ExternalId::new("te-1").unwrap(),
            employee_id: "e-1".into(),
            location: "main".into(),
            job: None,
            clock_in: clock_in.parse().unwrap(),
            clock_out: clock_out.map(|c| c.parse().unwrap()),
            breaks,
        }
    }

    fn h(s: &str) -> Option<Decimal> {
        Some(Decimal::from_str(s).unwrap())
    }

    #[test]
    fn a_shift_across_midnight_counts_every_hour() {
        // 22:00 to 02:30 in New York.
        let e = entry("2026-11-28T03:00:00Z", Some("2026-11-28T07:30:00Z"), vec![]);
        assert_eq!(worked_hours(&e).unwrap(), h("4.5"));
    }

    #[test]
    fn a_shift_across_the_fall_back_change_counts_the_repeated_hour() {
        // 22:00 EDT Oct 31 to 06:00 EST Nov 1, 2026: nine hours were worked, not eight.
        let e = entry("2026-11-01T02:00:00Z", Some("2026-11-01T11:00:00Z"), vec![]);
        assert_eq!(worked_hours(&e).unwrap(), h("9"));
        // Spring forward, 22:00 EST Mar 7 to 06:00 EDT Mar 8: seven.
        let e = entry("2026-03-08T03:00:00Z", Some("2026-03-08T10:00:00Z"), vec![]);
        assert_eq!(worked_hours(&e).unwrap(), h("7"));
    }

    #[test]
    fn unpaid_breaks_are_deducted_and_paid_ones_not() {
        let b = |s: &str, e: &str, paid| Break {
            start: s.parse().unwrap(),
            end: Some(e.parse().unwrap()),
            paid,
        };
        let e = entry(
            "2026-11-28T14:00:00Z",
            Some("2026-11-28T22:10:00Z"),
            vec![
                b("2026-11-28T17:00:00Z", "2026-11-28T17:30:00Z", false),
                b("2026-11-28T20:00:00Z", "2026-11-28T20:10:00Z", true),
            ],
        );
        assert_eq!(worked_hours(&e).unwrap(), h("7.67"));
    }

    #[test]
    fn open_shifts_and_open_breaks_have_no_hours_yet() {
        assert_eq!(
            worked_hours(&entry("2026-11-28T14:00:00Z", None, vec![])).unwrap(),
            None
        );
        let open_break = Break {
            start: "2026-11-28T17:00:00Z".parse().unwrap(),
            end: None,
            paid: false,
        };
        assert_eq!(
            worked_hours(&entry(
                "2026-11-28T14:00:00Z",
                Some("2026-11-28T18:00:00Z"),
                vec![open_break]
            ))
            .unwrap(),
            None
        );
    }

    #[test]
    fn impossible_shifts_name_the_field() {
        let err = worked_hours(&entry(
            "2026-11-28T14:00:00Z",
            Some("2026-11-28T13:00:00Z"),
            vec![],
        ))
        .unwrap_err();
        assert!(err.starts_with("clock_out"), "{err}");
        let outside = Break {
            start: "2026-11-28T12:00:00Z".parse().unwrap(),
            end: Some("2026-11-28T12:30:00Z".parse().unwrap()),
            paid: false,
        };
        let err = worked_hours(&entry(
            "2026-11-28T14:00:00Z",
            Some("2026-11-28T18:00:00Z"),
            vec![outside],
        ))
        .unwrap_err();
        assert!(err.starts_with("breaks[0]"), "{err}");
    }
}
