//! Credits: a number of calls a key or token may make, spent by each allowed request (1, or a
//! route rule's `cost`) and, optionally, refilled to an amount at each day's or month's
//! boundary in UTC.

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::timestamp::{civil_from_days, days_from_civil};

/// Largest number of credits a credential may hold or be refilled to.
pub const MAX_CREDITS: i64 = 1_000_000_000_000;

const DAY: i64 = 86_400;

/// How often credits are refilled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Every {
    Day,
    Month,
}

impl Every {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    pub fn from_storage(text: &str) -> Option<Self> {
        match text {
            "day" => Some(Self::Day),
            "month" => Some(Self::Month),
            _ => None,
        }
    }
}

/// A refill: back to `amount` at each boundary (midnight UTC; for months, of day `on_day`, or
/// the month's last day when it has fewer days).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refill {
    pub amount: i64,
    pub every: Every,
    /// For monthly refills: the day of the month, 1 to 31 (1 when left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_day: Option<u8>,
}

/// Why credits were refused, for the field they were given in.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidCredits(pub &'static str);

impl Refill {
    pub fn new(amount: i64, every: Every, on_day: Option<u8>) -> Result<Self, InvalidCredits> {
        if !(1..=MAX_CREDITS).contains(&amount) {
            return Err(InvalidCredits(
                "a refill's amount must be 1 to 1000000000000",
            ));
        }
        match (every, on_day) {
            (Every::Day, Some(_)) => Err(InvalidCredits(
                "on_day is for monthly refills (every: \"month\")",
            )),
            (Every::Month, Some(day)) if !(1..=31).contains(&day) => {
                Err(InvalidCredits("on_day must be 1 to 31"))
            }
            _ => Ok(Self {
                amount,
                every,
                on_day,
            }),
        }
    }

    /// The refill period `at` is in: from the last boundary at or before it to the next one
    /// (Unix seconds).
    pub fn period(self, at: Timestamp) -> (i64, i64) {
        let seconds = at.unix_seconds();
        match self.every {
            Every::Day => {
                let start = seconds - seconds.rem_euclid(DAY);
                (start, start + DAY)
            }
            Every::Month => {
                let day = i64::from(self.on_day.unwrap_or(1));
                let (year, month, _) = civil_from_days(seconds.div_euclid(DAY));
                let this = boundary(year, month, day);
                if seconds >= this {
                    let (next_year, next_month) = next(year, month);
                    (this, boundary(next_year, next_month, day))
                } else {
                    let (last_year, last_month) = previous(year, month);
                    (boundary(last_year, last_month, day), this)
                }
            }
        }
    }
}

/// Credits as set on a credential: what is left, and the refill if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditSettings {
    pub remaining: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refill: Option<Refill>,
}

impl CreditSettings {
    pub fn new(remaining: i64, refill: Option<Refill>) -> Result<Self, InvalidCredits> {
        if !(0..=MAX_CREDITS).contains(&remaining) {
            return Err(InvalidCredits("remaining must be 0 to 1000000000000"));
        }
        Ok(Self { remaining, refill })
    }

    /// The refill due at `now` for a balance whose `remaining` belongs to the period that
    /// starts at `period`: the new period's start, if a boundary has passed since.
    pub fn refill_due(&self, period: i64, now: Timestamp) -> Option<(i64, Refill)> {
        let refill = self.refill?;
        let (start, _) = refill.period(now);
        (start > period).then_some((start, refill))
    }

    /// The period `at` is in: the refill's, or all time without one.
    pub fn period(&self, at: Timestamp) -> (i64, i64) {
        match self.refill {
            Some(refill) => refill.period(at),
            None => (0, i64::MAX),
        }
    }
}

fn next(year: i64, month: i64) -> (i64, i64) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

fn previous(year: i64, month: i64) -> (i64, i64) {
    if month == 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    }
}

/// Midnight UTC of day `day` of the month, or of its last day when it has fewer.
fn boundary(year: i64, month: i64, day: i64) -> i64 {
    let (next_year, next_month) = next(year, month);
    let length = days_from_civil(next_year, next_month, 1) - days_from_civil(year, month, 1);
    days_from_civil(year, month, day.min(length)) * DAY
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn period(refill: Refill, text: &str) -> (Timestamp, Timestamp) {
        let (start, end) = refill.period(at(text));
        (
            Timestamp::from_unix_seconds(start),
            Timestamp::from_unix_seconds(end),
        )
    }

    #[test]
    fn dates_convert_both_ways() {
        use crate::timestamp::{civil_from_days, days_from_civil};
        for days in [-800_000, -1, 0, 59, 11_016, 20_000, 20_792, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(20_792), (2026, 12, 5));
    }

    #[test]
    fn periods_run_from_boundary_to_boundary_in_utc() {
        let daily = Refill::new(100, Every::Day, None).unwrap();
        assert_eq!(
            period(daily, "2026-12-05T13:20:00Z"),
            (at("2026-12-05T00:00:00Z"), at("2026-12-06T00:00:00Z"))
        );
        // The boundary itself starts the new period.
        assert_eq!(
            period(daily, "2026-12-06T00:00:00Z").0,
            at("2026-12-06T00:00:00Z")
        );
        let monthly = Refill::new(100, Every::Month, None).unwrap();
        assert_eq!(
            period(monthly, "2026-12-05T13:20:00Z"),
            (at("2026-12-01T00:00:00Z"), at("2027-01-01T00:00:00Z"))
        );
        let fifteenth = Refill::new(100, Every::Month, Some(15)).unwrap();
        assert_eq!(
            period(fifteenth, "2026-12-05T13:20:00Z"),
            (at("2026-11-15T00:00:00Z"), at("2026-12-15T00:00:00Z"))
        );
        assert_eq!(
            period(fifteenth, "2026-12-15T00:00:00Z"),
            (at("2026-12-15T00:00:00Z"), at("2027-01-15T00:00:00Z"))
        );
        // The 31st is each month's last day when it has fewer.
        let last = Refill::new(100, Every::Month, Some(31)).unwrap();
        assert_eq!(
            period(last, "2027-02-10T00:00:00Z"),
            (at("2027-01-31T00:00:00Z"), at("2027-02-28T00:00:00Z"))
        );
        assert_eq!(
            period(last, "2028-02-29T12:00:00Z"),
            (at("2028-02-29T00:00:00Z"), at("2028-03-31T00:00:00Z"))
        );
    }

    #[test]
    fn settings_are_checked() {
        assert!(Refill::new(0, Every::Day, None).is_err());
        assert!(Refill::new(1, Every::Day, Some(1)).is_err());
        assert!(Refill::new(1, Every::Month, Some(0)).is_err());
        assert!(Refill::new(1, Every::Month, Some(32)).is_err());
        assert!(CreditSettings::new(-1, None).is_err());
        assert!(CreditSettings::new(MAX_CREDITS + 1, None).is_err());
        assert_eq!(
            CreditSettings::new(0, None)
                .unwrap()
                .period(at("2026-12-05T00:00:00Z")),
            (0, i64::MAX)
        );
        let parsed: CreditSettings = serde_json::from_str(
            r#"{"remaining": 5, "refill": {"amount": 10, "every": "month", "on_day": 3}}"#,
        )
        .unwrap();
        assert_eq!(parsed.refill.unwrap().on_day, Some(3));
    }
}
