//! Whole-second UTC timestamps, written as RFC 3339 (`2026-11-27T07:24:06Z`).
//!
//! Seconds are precise enough for creation, expiry and last use, they compare as integers in
//! every store, and they make "never move last use backwards" a plain `<`.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 date-time (for example 2030-01-31T12:00:00Z)")]
pub struct TimestampError;

/// Years after this are refused: no key needs them, and it keeps arithmetic far from overflow.
const LATEST: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

impl Timestamp {
    pub fn now() -> Self {
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self(i64::try_from(seconds).unwrap_or(LATEST))
    }

    /// The system's time now in Unix nanoseconds (0 before 1970, saturating in 2262).
    pub fn unix_nanos_now() -> i64 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        i64::try_from(nanos).unwrap_or(i64::MAX)
    }

    pub fn from_unix_seconds(seconds: i64) -> Self {
        Self(seconds.clamp(0, LATEST))
    }

    pub fn unix_seconds(self) -> i64 {
        self.0
    }

    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self::from_unix_seconds(self.0.saturating_add(seconds))
    }

    /// Parses RFC 3339 with any offset; fractions of a second are dropped.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        let parsed = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| TimestampError)?;
        let seconds = parsed.unix_timestamp();
        if !(0..=LATEST).contains(&seconds) {
            return Err(TimestampError);
        }
        Ok(Self(seconds))
    }
}

impl Timestamp {
    /// The RFC 3339 form, `YYYY-MM-DDTHH:MM:SSZ`, written without allocating: every API
    /// answer carries a few of these.
    fn rfc3339(self) -> [u8; 20] {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let mut out = *b"0000-00-00T00:00:00Z";
        let mut put = |at: usize, value: i64, width: usize| {
            let mut value = value;
            for i in (0..width).rev() {
                out[at + i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, year, 4);
        put(5, month, 2);
        put(8, day, 2);
        put(11, secs / 3600, 2);
        put(14, secs % 3600 / 60, 2);
        put(17, secs % 60, 2);
        out
    }
}

/// The date of a day since 1970-01-01: year, month (1 to 12) and day (1 to 31), in the
/// proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let of_era = days - era * 146_097;
    let year_of_era = (of_era - of_era / 1_460 + of_era / 36_524 - of_era / 146_096) / 365;
    let of_year = of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * of_year + 2) / 153;
    let day = of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse, `days_from_civil`).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let of_era = year - era * 400;
    let of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let of_era_days = of_era * 365 + of_era / 4 - of_era / 100 + of_year;
    era * 146_097 + of_era_days - 719_468
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.rfc3339();
        // Only ASCII digits and separators were written.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.rfc3339();
        serializer.serialize_str(std::str::from_utf8(&text).unwrap_or_default())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_rfc3339_utc_seconds() {
        assert_eq!(
            Timestamp::from_unix_seconds(1_795_757_046).to_string(),
            "2026-11-27T05:24:06Z"
        );
        assert_eq!(
            Timestamp::from_unix_seconds(0).to_string(),
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn parses_offsets_and_drops_fractions() {
        let t = Timestamp::parse("2026-11-27T07:24:06.999+02:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-27T05:24:06Z");
        assert!(Timestamp::parse("2026-11-27").is_err());
        assert!(Timestamp::parse("tomorrow").is_err());
        assert!(Timestamp::parse("1960-01-01T00:00:00Z").is_err());
        let json: Timestamp = serde_json::from_str("\"2030-01-31T12:00:00Z\"").unwrap();
        assert_eq!(
            serde_json::to_string(&json).unwrap(),
            "\"2030-01-31T12:00:00Z\""
        );
    }

    #[test]
    fn formatting_agrees_with_the_time_crate_everywhere() {
        // Leap years, century rules, month ends, the epoch and the last supported second.
        let mut samples = vec![0, 951_782_400, 951_868_799, 4_107_542_400, LATEST];
        samples.extend((0..2_000).map(|n| n * 126_230_400 + n * 7_919));
        for seconds in samples.into_iter().filter(|s| (0..=LATEST).contains(s)) {
            let ours = Timestamp::from_unix_seconds(seconds).to_string();
            let theirs = OffsetDateTime::from_unix_timestamp(seconds)
                .unwrap()
                .format(&Rfc3339)
                .unwrap();
            assert_eq!(ours, theirs, "{seconds}");
        }
    }

    #[test]
    fn orders_by_time() {
        let now = Timestamp::now();
        assert!(now < now.plus_seconds(1));
        assert_eq!(
            now.plus_seconds(i64::MAX).to_string(),
            "9999-12-31T23:59:59Z"
        );
    }
}
